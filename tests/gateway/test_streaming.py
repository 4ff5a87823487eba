"""Server-streaming RPCs through the gateway, on a real in-process gRPC server.

The service is built here, from descriptors, so these tests depend on no contract.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from caas.type.v1 import access_pb2
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2

from services.core.db.transient import store_outage
from services.core.errors import Unauthenticated, limit_exceeded
from services.core.principal import Anonymous, Principal, User
from services.gateway.gateway import TRANSCODED_HEADER, Call, Gateway
from services.gateway.ratelimit import InProcessRateLimiter
from services.gateway.validation import RequestValidator
from tests.gateway.test_gateway import OnePlan
from tests.support.client import ErrorDetails, bearer, details

FIELD = descriptor_pb2.FieldDescriptorProto


def _test_file() -> descriptor_pool.DescriptorPool:
    """caas.test.v1: TickService.Ticks (server streaming, users only),
    UploadService.Upload (client streaming), BareService.Bare and KeyService.Keyed
    (open to API keys without a scope)."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in (descriptor_pb2.DESCRIPTOR, access_pb2.DESCRIPTOR, any_pb2.DESCRIPTOR,
                       status_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        dependency.CopyToProto(proto)
        pool.Add(proto)
    file = descriptor_pb2.FileDescriptorProto(
        name="caas/test/v1/ticks.proto", package="caas.test.v1", syntax="proto3",
        dependency=["caas/type/v1/access.proto", "google/rpc/status.proto"])
    request = file.message_type.add(name="TickRequest")
    request.field.add(name="count", number=1, type=FIELD.TYPE_INT32, label=FIELD.LABEL_OPTIONAL)
    request.field.add(name="then", number=2, type=FIELD.TYPE_STRING, label=FIELD.LABEL_OPTIONAL)
    tick = file.message_type.add(name="Tick")
    tick.field.add(name="n", number=1, type=FIELD.TYPE_INT32, label=FIELD.LABEL_OPTIONAL)
    tick.field.add(name="error", number=2, type=FIELD.TYPE_MESSAGE,
                   type_name=".google.rpc.Status", label=FIELD.LABEL_OPTIONAL)
    file.message_type.add(name="Bare").field.add(
        name="n", number=1, type=FIELD.TYPE_INT32, label=FIELD.LABEL_OPTIONAL)
    for service, method, client_streaming, item in (
            ("TickService", "Ticks", False, "Tick"), ("UploadService", "Upload", True, "Tick"),
            ("BareService", "Bare", False, "Bare"), ("KeyService", "Keyed", False, "Tick")):
        rpc = file.service.add(name=service).method.add(
            name=method, input_type=".caas.test.v1.TickRequest",
            output_type=f".caas.test.v1.{item}", server_streaming=True,
            client_streaming=client_streaming)
        rpc.options.Extensions[access_pb2.access].allow.append(access_pb2.PRINCIPAL_USER)
        if service == "KeyService":  # open to API keys, and names no scope for them
            rpc.options.Extensions[access_pb2.access].allow.append(access_pb2.PRINCIPAL_API_KEY)
    pool.Add(file)
    return pool


POOL = _test_file()
SERVICE = POOL.FindServiceByName("caas.test.v1.TickService")
TickRequest: Any = GetMessageClass(POOL.FindMessageTypeByName("caas.test.v1.TickRequest"))
Tick: Any = GetMessageClass(POOL.FindMessageTypeByName("caas.test.v1.Tick"))


class UsersOnly:
    async def authenticate(self, credential: str | None) -> Principal:
        if credential is None:
            return Anonymous()
        if credential == "user":
            return User("app1", "u1", "s1")
        raise Unauthenticated("CREDENTIALS_INVALID", "unknown credential")


class Ticker:
    """Yields `count` ticks, then ends as `then` says: "" (OK), "refuse" (a domain
    error), "bug", "locked" (a store outage) or "idle" (waits forever)."""

    def __init__(self) -> None:
        self.started = 0
        self.before_yield: Callable[[int], None] = lambda n: None
        self.idle = asyncio.Event()
        self.closed = asyncio.Event()

    async def Ticks(self, request: Any, call: Call) -> AsyncIterator[Message]:
        self.started += 1
        try:
            for n in range(1, request.count + 1):
                self.before_yield(n)
                yield Tick(n=n)
            if request.then == "refuse":
                raise limit_exceeded("ticks", request.count)
            if request.then == "bug":
                raise RuntimeError("password=hunter2 at /srv/caas/secret.py line 7")
            if request.then == "locked":
                raise sqlite3.OperationalError("database is locked")
            if request.then in ("idle", "idle-unclean"):
                self.idle.set()
                await asyncio.Event().wait()
        finally:
            self.closed.set()
            if request.then == "idle-unclean":  # its clean-up fails, as a cut Redis call
                raise ConnectionError("the connection was closed during clean-up")


class AccessLines(logging.Handler):
    """Access-log records, as they are written."""

    def __init__(self) -> None:
        super().__init__()
        self.records: asyncio.Queue[logging.LogRecord] = asyncio.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.put_nowait(record)

    async def next(self) -> Any:
        return await asyncio.wait_for(self.records.get(), 5)


@dataclass
class Rig:
    gateway: Gateway
    ticker: Ticker
    ticks: Callable[..., grpc.aio.UnaryStreamCall[Any, Any]]
    access: AccessLines


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    gateway = Gateway(UsersOnly(), InProcessRateLimiter(60), OnePlan(), RequestValidator(),
                      store_outage)
    ticker = Ticker()
    server = grpc.aio.server()
    server.add_registered_method_handlers(SERVICE.full_name,  # type: ignore[attr-defined]
                                          gateway.handlers(SERVICE, ticker))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    access = AccessLines()
    logger = logging.getLogger("caas.access")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(access)
    try:
        yield Rig(gateway, ticker, channel.unary_stream(
            f"/{SERVICE.full_name}/Ticks", request_serializer=TickRequest.SerializeToString,
            response_deserializer=Tick.FromString), access)
    finally:
        logger.removeHandler(access)
        logger.setLevel(level)
        await channel.close()
        await server.stop(None)


async def collect(call: grpc.aio.UnaryStreamCall[Any, Any]
                  ) -> tuple[list[int], ErrorDetails | None]:
    """The ticks received, and how the stream failed (None if it ended OK)."""
    received: list[int] = []
    try:
        async for tick in call:
            received.append(tick.n)
    except grpc.aio.AioRpcError as error:
        return received, details(error)
    return received, None


def as_dict(metadata: Any) -> dict[str, Any]:
    return dict(tuple(metadata or ()))


async def test_items_arrive_in_order_and_the_stream_ends_ok(rig: Rig) -> None:
    call = rig.ticks(TickRequest(count=3),
                     metadata=(*bearer("user"), ("x-request-id", "stream-1")))
    assert await collect(call) == ([1, 2, 3], None)
    assert await call.code() == grpc.StatusCode.OK
    initial = as_dict(await call.initial_metadata())
    assert initial["x-request-id"] == "stream-1"
    assert (initial["x-ratelimit-limit"], initial["x-ratelimit-remaining"]) == ("10", "9")
    assert as_dict(await call.trailing_metadata())["x-request-id"] == "stream-1"
    line = await rig.access.next()
    assert (line.method, line.code, line.request_id, line.user) == (
        "caas.test.v1.TickService/Ticks", "OK", "stream-1", "u1")
    assert line.duration_ms >= 0
    assert rig.ticker.closed.is_set()


async def test_a_refusal_before_streaming_is_a_status_without_items(rig: Rig) -> None:
    received, got = await collect(rig.ticks(TickRequest(count=3)))
    assert received == [] and got is not None
    assert (got.code, got.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING")
    assert got.domain == "caas.dev" and "x-request-id" in got.trailers
    assert rig.ticker.started == 0  # the servicer never ran
    assert (await rig.access.next()).code == "UNAUTHENTICATED"


async def test_a_domain_error_mid_stream_follows_the_items_sent(rig: Rig) -> None:
    call = rig.ticks(TickRequest(count=2, then="refuse"),
                     metadata=(*bearer("user"), ("x-request-id", "stream-2")))
    received, got = await collect(call)
    assert received == [1, 2] and got is not None
    assert (got.code, got.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LIMIT_EXCEEDED")
    assert got.metadata == {"limit": "ticks", "maximum": "2"}
    assert got.trailers["x-request-id"] == "stream-2"
    assert (await rig.access.next()).code == "FAILED_PRECONDITION"


async def test_a_bug_mid_stream_is_internal_without_its_traceback(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="caas.gateway"):
        received, got = await collect(rig.ticks(
            TickRequest(count=1, then="bug"),
            metadata=(*bearer("user"), ("x-request-id", "boom-2"))))
    assert received == [1] and got is not None
    assert (got.code, got.reason) == (grpc.StatusCode.INTERNAL, "INTERNAL")
    assert got.message == "internal error; report request id boom-2"
    assert "Traceback" not in got.message and "hunter2" not in str(got)
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == "boom-2"]
    assert logged and logged[0].exc_info is not None  # the stack stays in the server log


async def test_a_store_outage_mid_stream_is_unavailable_with_retry_info(rig: Rig) -> None:
    received, got = await collect(rig.ticks(TickRequest(count=1, then="locked"),
                                            metadata=bearer("user")))
    assert received == [1] and got is not None
    assert (got.code, got.reason, got.retry_seconds) == (
        grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", 1)
    assert "locked" not in got.message


async def test_a_client_cancel_closes_the_servicer_generator(rig: Rig) -> None:
    call = rig.ticks(TickRequest(count=1, then="idle"), metadata=bearer("user"))
    assert (await call.read()).n == 1
    await rig.ticker.idle.wait()
    assert not rig.ticker.closed.is_set()
    call.cancel()
    await asyncio.wait_for(rig.ticker.closed.wait(), 5)
    assert (await rig.access.next()).code == "CANCELLED"


async def test_a_client_cancel_stays_a_cancel_when_the_clean_up_fails(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    call = rig.ticks(TickRequest(count=1, then="idle-unclean"), metadata=bearer("user"))
    assert (await call.read()).n == 1
    await rig.ticker.idle.wait()
    with caplog.at_level(logging.WARNING, logger="caas.gateway"):
        call.cancel()
        assert (await rig.access.next()).code == "CANCELLED"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in caplog.records] == [
        "a cancelled stream's clean-up failed"]


async def test_a_drained_stream_is_unavailable_when_its_clean_up_fails(rig: Rig) -> None:
    call = rig.ticks(TickRequest(count=1, then="idle-unclean"), metadata=bearer("user"))
    await rig.ticker.idle.wait()
    rig.gateway.end_streams()
    received, got = await asyncio.wait_for(collect(call), 5)
    assert received == [1] and got is not None
    assert (got.code, got.reason) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")


async def test_draining_ends_an_idle_stream_with_unavailable(rig: Rig) -> None:
    call = rig.ticks(TickRequest(then="idle"), metadata=bearer("user"))
    await rig.ticker.idle.wait()
    rig.gateway.end_streams()
    received, got = await asyncio.wait_for(collect(call), 5)
    assert received == [] and got is not None
    assert (got.code, got.reason, got.retry_seconds) == (
        grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", 1)
    assert "reconnect" in got.message
    assert rig.ticker.closed.is_set()
    assert (await rig.access.next()).code == "UNAVAILABLE"
    # New streams are refused before they start.
    received, got = await collect(rig.ticks(TickRequest(count=1), metadata=bearer("user")))
    assert received == [] and got is not None and got.code == grpc.StatusCode.UNAVAILABLE
    assert rig.ticker.started == 1


async def test_draining_between_items_ends_the_stream_after_the_item_in_flight(
        rig: Rig) -> None:
    def drain_before_the_second(n: int) -> None:
        if n == 2:
            rig.gateway.end_streams()

    rig.ticker.before_yield = drain_before_the_second
    received, got = await collect(rig.ticks(TickRequest(count=5), metadata=bearer("user")))
    assert received == [1, 2] and got is not None
    assert (got.code, got.reason) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")
    assert rig.ticker.closed.is_set()  # closed where it paused, at its yield


def test_client_streaming_rpcs_are_refused_at_startup() -> None:
    class Uploads:
        async def Upload(self, requests: Any, call: Call) -> Any:
            raise NotImplementedError

    gateway = Gateway(UsersOnly(), InProcessRateLimiter(60), OnePlan(), RequestValidator())
    with pytest.raises(TypeError, match="client-streaming and bidirectional RPCs are not served"):
        gateway.handlers(POOL.FindServiceByName("caas.test.v1.UploadService"), Uploads())


def test_an_rpc_open_to_api_keys_without_a_scope_is_refused_at_startup() -> None:
    class Keyed:
        async def Keyed(self, request: Any, call: Call) -> Any:
            raise NotImplementedError

    gateway = Gateway(UsersOnly(), InProcessRateLimiter(60), OnePlan(), RequestValidator())
    with pytest.raises(TypeError, match="allows API keys but names no api_key_scope"):
        gateway.handlers(POOL.FindServiceByName("caas.test.v1.KeyService"), Keyed())


JSON = (TRANSCODED_HEADER, "json")  # what the edge guard adds to a JSON request


async def items(call: grpc.aio.UnaryStreamCall[Any, Any]
                ) -> tuple[list[Any], ErrorDetails | None]:
    """The items received, whole, and how the stream failed (None if it ended OK)."""
    received: list[Any] = []
    try:
        async for tick in call:
            received.append(tick)
    except grpc.aio.AioRpcError as error:
        return received, details(error)
    return received, None


async def test_a_failure_before_the_first_item_sends_no_headers_first(rig: Rig) -> None:
    # Trailers-only: what lets Envoy answer a JSON caller with an HTTP error status.
    call = rig.ticks(TickRequest(count=0, then="refuse"),
                     metadata=(*bearer("user"), ("x-request-id", "early-1"), JSON))
    received, got = await items(call)
    assert received == [] and got is not None and got.reason == "LIMIT_EXCEEDED"
    assert "x-request-id" not in as_dict(await call.initial_metadata())
    assert got.trailers["x-request-id"] == "early-1"
    assert got.trailers["x-ratelimit-limit"] == "10"


async def test_a_json_stream_failing_after_it_started_ends_with_an_error_item(
        rig: Rig) -> None:
    call = rig.ticks(TickRequest(count=2, then="refuse"), metadata=(*bearer("user"), JSON))
    received, got = await items(call)
    assert [t.n for t in received[:2]] == [1, 2] and not received[0].HasField("error")
    assert len(received) == 3 and received[2].n == 0
    last = received[2].error
    assert got is not None and (last.code, last.message) == (got.code.value[0], got.message)
    info = error_details_pb2.ErrorInfo()
    assert last.details[0].Unpack(info) and info.reason == "LIMIT_EXCEEDED"
    assert got.reason == "LIMIT_EXCEEDED"  # and the call's status says the same


async def test_a_draining_json_stream_ends_with_unavailable_and_retry_info(rig: Rig) -> None:
    def drain_before_the_second(n: int) -> None:
        if n == 2:
            rig.gateway.end_streams()

    rig.ticker.before_yield = drain_before_the_second
    received, got = await items(rig.ticks(TickRequest(count=5),
                                          metadata=(*bearer("user"), JSON)))
    # The item in flight when the drain cancels the write may or may not go out.
    assert [t.n for t in received] in ([1, 2, 0], [1, 0]) and got is not None
    last = received[-1].error
    assert last.code == grpc.StatusCode.UNAVAILABLE.value[0]
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in last.details) and retry.retry_delay.seconds == 1


async def test_a_bug_in_a_json_stream_ends_with_internal_and_no_traceback(rig: Rig) -> None:
    received, got = await items(rig.ticks(
        TickRequest(count=1, then="bug"),
        metadata=(*bearer("user"), ("x-request-id", "boom-3"), JSON)))
    assert len(received) == 2 and got is not None
    last = received[-1].error
    assert (last.code, last.message) == (grpc.StatusCode.INTERNAL.value[0],
                                         "internal error; report request id boom-3")
    assert "hunter2" not in str(last)


async def test_a_gRPC_stream_gets_no_error_item(rig: Rig) -> None:
    received, got = await items(rig.ticks(TickRequest(count=1, then="refuse"),
                                          metadata=bearer("user")))
    assert [t.n for t in received] == [1] and not received[0].HasField("error")
    assert got is not None and got.reason == "LIMIT_EXCEEDED"


def test_a_stream_whose_items_cannot_carry_an_error_is_refused_at_startup() -> None:
    class Bares:
        async def Bare(self, request: Any, call: Call) -> Any:
            raise NotImplementedError

    gateway = Gateway(UsersOnly(), InProcessRateLimiter(60), OnePlan(), RequestValidator())
    with pytest.raises(TypeError, match=r"needs a `google\.rpc\.Status error` field"):
        gateway.handlers(POOL.FindServiceByName("caas.test.v1.BareService"), Bares())
