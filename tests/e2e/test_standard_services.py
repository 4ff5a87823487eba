"""Health checking and server reflection take malformed bytes as any CAAS RPC does
(INVALID_ARGUMENT, no traceback in the log), and Health/List answers."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.server import contract_services
from tests.support.client import Client, details
from tests.support.servers import CaasServer

GARBAGE = b"\x0a\xff\xff\xff\xff"  # a length running past the end


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "kind"), [
    ("/grpc.health.v1.Health/Check", "unary"),
    ("/grpc.health.v1.Health/List", "unary"),
    ("/grpc.health.v1.Health/Watch", "server-stream"),
    ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "bidi"),
])
async def test_malformed_bytes_are_invalid_argument_without_a_traceback(
        server: CaasServer, client: Client, method: str, kind: str) -> None:
    log_start = len(server.process.lines)
    channel = client.channel
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        if kind == "unary":
            await channel.unary_unary(method)(GARBAGE, timeout=10)
        elif kind == "server-stream":
            async for _ in channel.unary_stream(method)(GARBAGE, timeout=10):
                pass
        else:
            async for _ in channel.stream_stream(method)(iter([GARBAGE]), timeout=10):
                pass
    got = details(refused.value)
    assert (got.code, got.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_MALFORMED")
    assert not [line for line in server.process.lines[log_start:] if "Traceback" in line]


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_health_list_names_every_service(client: Client) -> None:
    listed = await health_pb2_grpc.HealthStub(client.channel).List(
        health_pb2.HealthListRequest(), timeout=10)
    serving = health_pb2.HealthCheckResponse.SERVING
    names = ["", *(s.full_name for s in contract_services())]
    assert {name: listed.statuses[name].status for name in names} == dict.fromkeys(
        names, serving)


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
@pytest.mark.parametrize("method", [
    "/caas.apps.v1.AppsService/NoSuchMethod",  # a method a served service lacks
    "/caas.nothing.v1.NothingService/Get",  # a service not served
    "/grpc.health.v1.Health/Check/extra",
])
async def test_a_method_not_served_is_unimplemented(client: Client, method: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.channel.unary_unary(method)(b"", timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
