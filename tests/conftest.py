"""Session-wide real servers, and a fresh app (tenant) per test for isolation."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.auth.v1 import auth_service_pb2 as auth_pb

from services.core.principal import Operator
from services.core.settings import load_settings
from services.runtime import Runtime, build_runtime
from tests.support.client import Client, ErrorDetails, bearer, details
from tests.support.localstripe import LocalStripe, start_localstripe
from tests.support.mail import SmtpServer, running_breach_api, running_smtp
from tests.support.servers import (
    CaasServer,
    ExternalServer,
    SearchServer,
    start_caas,
    start_clamd,
    start_mongo,
    start_redis,
    start_search_engine,
    start_seaweedfs,
)

# The shared test server: strict token expiry, a tiny plan for rate-limit tests, and one
# that lets a user send 3 messages a minute into a conversation.
TEST_CONFIG = """
token_leeway = 0
default_plan = "free"
stream_heartbeat_interval = 1
webhook_allow_insecure = true  # the receivers are local http servers
webhook_timeout = 1
webhook_retry_delays = [0.2, 0.2]
media_part_size = 5242880  # the smallest: multipart tests stay small
app_deletion_grace = 0  # DeleteApp erases at once (the grace: tests/compliance)
login_attempts_per_address = 100000  # every test calls from 127.0.0.1
login_attempts_per_email = 15  # the lockout test makes 12
guest_sessions_per_address = 5  # guest tests call from addresses of their own
analytics_flush_interval = 0.5  # usage counted in the process is written soon
call_ring_timeout = 2  # unanswered calls are missed soon
call_reconnect_grace = 2  # a device without a stream leaves its call soon
stun_urls = ["stun:127.0.0.1:3478"]
turn_urls = ["turn:127.0.0.1:3478?transport=udp"]
turn_secret = "calls-test-secret"  # tests/e2e/test_calls.py checks the credentials with it

[plans.free]
sends_per_conversation = 100000  # tests send fast; the "flood" plan tests the limit

[plans.free.default]
per_app = 6000
per_user = 600

[plans.tiny.default]
per_app = 5
per_user = 3

[plans.tiny.media]
max_file_bytes = 1500
quota_bytes = 2000

[plans.flood]
sends_per_conversation = 3

[plans.flood.default]
per_app = 6000
per_user = 600
"""


# The longest modules first. pytest-xdist (scripts/test.sh: --dist loadfile) hands each
# worker whole modules in collection order: one of these left to the end would keep one
# core busy for minutes while the other idles. Within a module the order is unchanged.
SLOW_FIRST = (
    "tests/browser/", "tests/e2e/test_store_start.py", "tests/e2e/test_realtime_processes.py",
    "tests/e2e/test_workers.py", "tests/e2e/test_kafka_relay.py", "tests/e2e/test_lifecycle.py",
    "tests/e2e/test_billing.py", "tests/e2e/test_chat.py", "tests/e2e/test_http_fuzz.py",
    "tests/e2e/test_realtime_servers.py", "tests/e2e/test_encryption.py",
    "tests/e2e/test_content_encryption.py", "tests/e2e/test_search_elasticsearch.py",
    "tests/e2e/test_readiness.py", "tests/e2e/test_redis_outages.py", "tests/e2e/test_audit.py",
    "tests/e2e/test_webhooks.py", "tests/web_bridge/", "tests/deploy/",
    "tests/e2e/test_validation.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return next((i for i, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)),
                    len(SLOW_FIRST))

    items.sort(key=rank)  # stable: the other modules keep their order


def unique_id(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:14]}"


@pytest.fixture(scope="session")
def mongo() -> Iterator[ExternalServer]:
    server = start_mongo()
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExternalServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExternalServer]:
    """An S3 store (SeaweedFS); url: host:port. Its credentials: SEAWEEDFS_* in
    tests/support/servers.py."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.process.stop(signum=signal.SIGKILL)


@pytest.fixture(scope="session")
def search_engine() -> Iterator[SearchServer]:
    """osmem-server, the Elasticsearch API in memory, behind its proxy; url: the proxy's.
    Tests isolate themselves by index prefix (or app)."""
    server = start_search_engine()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExternalServer]:
    """A ClamAV daemon that knows one signature (EICAR_SIGNATURE); url: host:port."""
    server = start_clamd(tmp_path_factory.mktemp("clamd"))
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpServer]:
    """A local SMTP server: the shared servers send the portal's emails there."""
    with running_smtp() as server:
        yield server


@pytest.fixture(scope="session")
def stripe_emulator() -> Iterator[LocalStripe]:
    """The Stripe API emulator (localstripe), started once: billing collects through it."""
    server = start_localstripe()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def breach_api() -> Iterator[str]:
    """A local range API of breached passwords (tests/support/mail.py)."""
    with running_breach_api() as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "mongodb"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           smtp: SmtpServer, breach_api: str) -> Iterator[CaasServer]:
    """The shared server, once per store engine: every test using it runs on both."""
    env: dict[str, str] = {"CAAS_SMTP_HOST": smtp.host, "CAAS_SMTP_PORT": str(smtp.port),
                           "CAAS_SMTP_SECURITY": "none", "CAAS_BREACHED_PASSWORD_URL": breach_api}
    if request.param == "mongodb":
        mongo: ExternalServer = request.getfixturevalue("mongo")
        env |= {"CAAS_STORE": "mongodb", "CAAS_MONGODB_URL": mongo.url,
                "CAAS_MONGODB_DATABASE": unique_id("e2e")}
    caas = start_caas(tmp_path_factory.mktemp("caas"), env=env, config=TEST_CONFIG, http=True)
    yield caas
    assert caas.process.stop() == 0


@pytest.fixture(scope="session")
async def client(server: CaasServer) -> AsyncIterator[Client]:
    caas = Client(server.address)
    yield caas
    await caas.close()


@dataclass
class AppHandle:
    app_id: str
    api_key: str  # secret

    @property
    def name(self) -> str:
        return f"apps/{self.app_id}"

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.api_key)


async def create_app(client: Client, operator_token: str, plan: str = "") -> AppHandle:
    app_id = unique_id("app-")
    response = await client.apps.CreateApp(
        apps_pb.CreateAppRequest(app_id=app_id,
                                 app=apps_res.App(display_name=f"Test {app_id}", plan=plan)),
        metadata=bearer(operator_token))
    return AppHandle(app_id, response.api_key_secret)


@pytest.fixture
async def app(client: Client, server: CaasServer) -> AppHandle:
    """A fresh app of the shared server: tests never see each other's data."""
    return await create_app(client, server.operator_token)


@pytest.fixture
async def other_app(client: Client, server: CaasServer) -> AppHandle:
    return await create_app(client, server.operator_token)


async def sign_in(client: Client, app: AppHandle, user_id: str, **fields: Any
                  ) -> auth_pb.CreateSessionResponse:
    response: auth_pb.CreateSessionResponse = await client.auth.CreateSession(
        auth_pb.CreateSessionRequest(parent=f"{app.name}/users/{user_id}", **fields),
        metadata=app.auth)
    return response


async def expect_error(call: Awaitable[Any], code: grpc.StatusCode, reason: str
                       ) -> ErrorDetails:
    """Await `call`, which must fail with `code` and ErrorInfo `reason` (domain caas.dev)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    got = details(caught.value)
    assert (got.code, got.reason) == (code, reason), got
    assert got.domain == "caas.dev"
    assert "Traceback" not in got.message
    return got


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    """The whole runtime in this process on a fresh embedded store: app "alpha" with
    users alice and bob."""
    built = await build_runtime(load_settings(data_dir=tmp_path,
                                              operator_token="caaso_" + "t" * 40))
    await built.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    for user_id in ("alice", "bob"):
        await built.users.ensure_user("alpha", user_id)
    yield built
    await built.close()


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
