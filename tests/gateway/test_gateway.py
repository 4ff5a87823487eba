"""The gateway in-process, on a real gRPC server: what clients see of unexpected failures."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb

from services.core.db.transient import store_outage
from services.core.principal import Operator, Principal
from services.core.settings import Plan, RateLimit
from services.gateway.gateway import Call, Gateway
from services.gateway.ratelimit import InProcessRateLimiter
from services.gateway.validation import RequestValidator
from tests.conftest import expect_error
from tests.support.client import Client, bearer

SERVICE = apps_pb.DESCRIPTOR.services_by_name["AppsService"]


class EveryoneIsOperator:
    async def authenticate(self, credential: str | None) -> Principal:
        return Operator()


class OnePlan:
    async def plan_of(self, app_id: str) -> Plan:
        return Plan(default=RateLimit(per_app=10, per_user=10))


class Exploding:
    """A servicer whose every method fails the way a bug would."""

    def __getattr__(self, name: str) -> Any:
        async def method(request: Any, call: Call) -> Any:
            raise RuntimeError("password=hunter2 at /srv/caas/secret.py line 7")

        return method


def gateway() -> Gateway:
    return Gateway(EveryoneIsOperator(), InProcessRateLimiter(60), OnePlan(), RequestValidator())


@pytest.fixture
async def exploding_client() -> AsyncIterator[Client]:
    server = grpc.aio.server()
    server.add_registered_method_handlers(SERVICE.full_name,  # type: ignore[attr-defined]
                                          gateway().handlers(SERVICE, Exploding()))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = Client(f"127.0.0.1:{port}")
    yield client
    await client.close()
    await server.stop(None)


async def test_unexpected_errors_reach_the_client_as_internal_with_a_request_id(
        exploding_client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="caas.gateway"):
        got = await expect_error(
            exploding_client.apps.GetApp(apps_pb.GetAppRequest(name="apps/abc"),
                                         metadata=(*bearer("x"), ("x-request-id", "boom-1"))),
            grpc.StatusCode.INTERNAL, "INTERNAL")
    assert got.message == "internal error; report request id boom-1"
    assert got.metadata == {"request_id": "boom-1"}
    assert "hunter2" not in str(got) and "secret.py" not in str(got)
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == "boom-1"]
    assert logged and logged[0].exc_info is not None  # the stack stays in the server log


def test_a_servicer_missing_an_rpc_fails_at_startup() -> None:
    class Incomplete:
        async def GetApp(self, request: Any, call: Call) -> Any:
            raise NotImplementedError

    with pytest.raises(TypeError, match="does not implement"):
        gateway().handlers(SERVICE, Incomplete())


class Locked:
    """A servicer whose store is locked by another process for too long."""

    def __getattr__(self, name: str) -> Any:
        async def method(request: Any, call: Call) -> Any:
            raise sqlite3.OperationalError("database is locked")

        return method


async def test_store_outages_are_unavailable_with_retry_info() -> None:
    server = grpc.aio.server()
    gw = Gateway(EveryoneIsOperator(), InProcessRateLimiter(60), OnePlan(), RequestValidator(),
                 store_outage)
    server.add_registered_method_handlers(SERVICE.full_name,  # type: ignore[attr-defined]
                                          gw.handlers(SERVICE, Locked()))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = Client(f"127.0.0.1:{port}")
    try:
        got = await expect_error(
            client.apps.GetApp(apps_pb.GetAppRequest(name="apps/abc"), metadata=bearer("x")),
            grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")
        assert got.retry_seconds == 1 and "locked" not in got.message
    finally:
        await client.close()
        await server.stop(None)
