"""Server processes over their life: CLI, graceful shutdown, restart, MongoDB, Redis."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.auth.v1 import auth_service_pb2 as auth_pb

from tests.conftest import TEST_CONFIG, AppHandle, create_app, expect_error, sign_in
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer
from tests.support.servers import BIN, ExternalServer, start_caas


def caas_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "caas"), "admin", *args], capture_output=True, text=True,
                          timeout=60, check=False, env={"CAAS_DATA_DIR": str(data_dir),
                                                       "PATH": str(BIN)})


async def test_cli_creates_an_app_the_server_accepts(tmp_path: Path) -> None:
    made = caas_cli(tmp_path, "create-app", "cli-app", "--display-name", "From the CLI")
    assert made.returncode == 0, made.stderr
    printed = json.loads(made.stdout)
    assert printed["app"] == "apps/cli-app"
    refused = caas_cli(tmp_path, "create-app", "Bad_Id")
    assert refused.returncode == 1 and "REQUEST_INVALID" in refused.stderr
    duplicate = caas_cli(tmp_path, "create-app", "cli-app")
    assert duplicate.returncode == 1 and "RESOURCE_ALREADY_EXISTS" in duplicate.stderr

    server = start_caas(tmp_path)
    client = Client(server.address)
    try:
        got = await client.apps.GetApp(apps_pb.GetAppRequest(name="apps/cli-app"),
                                       metadata=bearer(printed["api_key_secret"]))
        assert got.app.display_name == "From the CLI"
    finally:
        await client.close()
        assert server.process.stop() == 0


def test_a_start_and_stop_log_nothing_but_json_lines(tmp_path: Path) -> None:
    """No gRPC fork-handler line, no Envoy warning (a downstream connection limit is
    configured; Envoy is stopped through its admin API): every line an operator sees
    is a JSON log record."""
    server = start_caas(tmp_path, http=True)
    with httpx.Client(base_url=server.http_url) as http:
        assert http.get("/openapi.json").status_code == 200
    assert server.process.stop() == 0
    lines = [line for line in server.process.lines if line.strip()]
    assert any('"message": "http serving"' in line for line in lines)
    assert any('"message": "stopped"' in line for line in lines)
    for line in lines:
        assert isinstance(json.loads(line), dict), line


def test_bad_settings_stop_the_server_with_a_clear_message(tmp_path: Path) -> None:
    almost = "caaso_AlmostASecretButTooShort"
    done = subprocess.run([str(BIN / "caas"), "serve"], capture_output=True, text=True,
                          timeout=60, check=False,
                          env={"CAAS_DATA_DIR": str(tmp_path), "CAAS_OPERATOR_TOKEN": almost})
    assert done.returncode == 2
    assert "operator_token" in done.stderr and "Traceback" not in done.stderr
    assert almost not in done.stderr  # a near-miss secret is still a secret


def test_a_setting_that_does_not_parse_stops_the_server_with_one_line(
        tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "caas"), "serve"], capture_output=True, text=True,
                          timeout=60, check=False,
                          env={"CAAS_DATA_DIR": str(tmp_path), "CAAS_CORS_ORIGINS": "[bad"})
    assert done.returncode == 2
    assert "cors_origins" in done.stderr and "Traceback" not in done.stderr


def test_generated_operator_token_is_private_and_stable(tmp_path: Path) -> None:
    first = json.loads(caas_cli(tmp_path, "operator-token").stdout)["operator_token"]
    again = json.loads(caas_cli(tmp_path, "operator-token").stdout)["operator_token"]
    assert first == again and first.startswith("caaso_")
    assert (tmp_path / "operator-token").stat().st_mode & 0o077 == 0


async def test_sigterm_drains_in_flight_calls_then_restart_keeps_everything(
        tmp_path: Path) -> None:
    server = start_caas(tmp_path, env={"CAAS_LOG_LEVEL": "DEBUG", "CAAS_SHUTDOWN_GRACE": "30"},
                        http=True)
    client = Client(server.address)
    app = await create_app(client, server.operator_token)
    health = httpx.AsyncClient(base_url=server.http_url, timeout=30)
    assert (await health.get("/healthz")).status_code == 200
    assert (await health.get("/readyz")).json() == {"status": "ready"}
    # Hold the database's write lock so the next write stays in flight.
    blocker = sqlite3.connect(tmp_path / "caas.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    start = len(server.process.lines)
    in_flight = asyncio.ensure_future(client.apps.CreateApiKey(
        apps_pb.CreateApiKeyRequest(parent=app.name,
                                    api_key=apps_res.ApiKey(display_name="in flight")),
        metadata=app.auth, timeout=60))
    try:
        await asyncio.to_thread(server.process.wait_for_line,
                                lambda line: "rpc started" in line and "CreateApiKey" in line,
                                30, start)
        server.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.process.wait_for_line,
                                lambda line: "shutting down" in line, 30, start)
        # Load balancers are told (/readyz), and a call arriving now is refused before
        # it starts, with a retry delay — while the one in flight waits. The process
        # is still alive (/healthz): nothing should restart it.
        drained = await health.get("/readyz")
        assert drained.status_code == 503
        assert (await health.get("/healthz")).json() == {"status": "alive"}
        await expect_error(client.apps.GetApp(apps_pb.GetAppRequest(name=app.name),
                                              metadata=app.auth, timeout=60),
                           grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")
        assert not in_flight.done()
    finally:
        blocker.execute("COMMIT")
        blocker.close()
        await health.aclose()
    try:
        created = await in_flight  # the in-flight call finished normally
    except grpc.aio.AioRpcError as error:
        log = "\n".join(server.process.lines[start:])
        raise AssertionError(f"in-flight call failed: {error}; server said:\n{log}") from error
    assert created.api_key.display_name == "in flight"
    assert await asyncio.to_thread(server.process.wait, 30) == 0
    await client.close()

    restarted = start_caas(tmp_path, port=0)
    client = Client(restarted.address)
    try:
        keys = await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                             metadata=app.auth)
        assert [k.display_name for k in keys.api_keys] == ["first key", "in flight"]
    finally:
        await client.close()
        assert restarted.process.stop() == 0


async def test_mongodb_by_configuration_alone(tmp_path: Path, mongo: ExternalServer) -> None:
    env = {"CAAS_STORE": "mongodb", "CAAS_MONGODB_URL": mongo.url,
           "CAAS_MONGODB_DATABASE": f"e2e{uuid.uuid4().hex[:10]}",
           "CAAS_KEY_DIR": str(tmp_path / "keys")}  # a deployment's servers share them
    server = start_caas(tmp_path / "one", env=env)
    client = Client(server.address)
    try:
        app = await create_app(client, server.operator_token)
        user = await sign_in(client, app, "alice")
        refreshed = await client.auth.RefreshSession(
            auth_pb.RefreshSessionRequest(refresh_token=user.credentials.refresh_token))
        listed = await client.auth.ListSessions(
            auth_pb.ListSessionsRequest(parent=f"{app.name}/users/alice"),
            metadata=bearer(refreshed.credentials.access_token))
        assert [s.name for s in listed.sessions] == [user.session.name]
        await expect_error(client.auth.RefreshSession(
            auth_pb.RefreshSessionRequest(refresh_token=user.credentials.refresh_token)),
            grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    finally:
        await client.close()
        assert server.process.stop() == 0
    # Another server process (own data dir) on the same database sees everything.
    second = start_caas(tmp_path / "two", env=env)
    client = Client(second.address)
    try:
        got = await client.auth.GetSession(auth_pb.GetSessionRequest(name=user.session.name),
                                           metadata=app.auth)
        assert got.session.revoke_reason == got.session.REVOKE_REASON_REFRESH_TOKEN_REUSED
    finally:
        await client.close()
        assert second.process.stop() == 0
    # A server with master keys of its own cannot open the deployment's data: it says so.
    with pytest.raises(RuntimeError, match="every server of a deployment needs the same"):
        start_caas(tmp_path / "three", env={**env, "CAAS_KEY_DIR": str(tmp_path / "other")})


async def test_processes_share_rate_limits_through_redis(
        tmp_path: Path, redis_server: ExternalServer) -> None:
    env = {"CAAS_REDIS_URL": redis_server.url}
    first = start_caas(tmp_path, env=env, config=TEST_CONFIG)
    second = start_caas(tmp_path, env=env, config=TEST_CONFIG)
    clients = [Client(first.address), Client(second.address)]
    try:
        app: AppHandle = await create_app(clients[0], first.operator_token, plan="tiny")
        request = apps_pb.GetAppRequest(name=app.name)
        for index in range(5):  # 5 per app, spread over both processes
            await clients[index % 2].apps.GetApp(request, metadata=app.auth)
        for client in clients:
            got = await expect_error(client.apps.GetApp(request, metadata=app.auth),
                                     grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
            assert got.quota_subjects == [f"app:{app.app_id}"]
    finally:
        for client in clients:
            await client.close()
        assert first.process.stop() == 0
        assert second.process.stop() == 0



async def test_a_retried_send_is_recognised_after_a_restart(tmp_path: Path) -> None:
    server = start_caas(tmp_path)
    client = Client(server.address)
    app = await create_app(client, server.operator_token)
    alice = await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    group = await alice.create(GROUP, ("bob",))
    first = await alice.send(group.name, "exactly once", request_id="before-restart")
    await client.close()
    assert server.process.stop() == 0

    restarted = start_caas(tmp_path)
    client = Client(restarted.address)
    try:
        alice.client = client
        retried = await alice.send(group.name, "exactly once", request_id="before-restart")
        assert not retried.created and retried.message == first.message
        listed = await alice.messages(group.name)
        assert [m.sequence for m in listed.messages] == [1]
    finally:
        await client.close()
        assert restarted.process.stop() == 0
