"""The standard gRPC services beside ours — health checking and server reflection —
served with the same care: a request whose bytes do not parse is INVALID_ARGUMENT
(`REQUEST_MALFORMED`, with its `google.rpc.Status`), never UNKNOWN with a traceback in
the log (what grpcio's own handlers do), and `Health/List` answers.

The servicers are grpcio's; only their method handlers are ours, built from the
services' descriptors with a deserializer that does not raise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor as pb_descriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from services.core.errors import InvalidArgument
from services.gateway.gateway import Malformed, deserializer
from services.gateway.status import STATUS_DETAILS_KEY, rpc_status

HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]


class HealthServicer(health.aio.HealthServicer):  # type: ignore[misc, name-defined]
    """grpcio's asyncio health servicer, with `List`: every service's status."""

    async def List(self, request: health_pb2.HealthListRequest, context: Any
                   ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(statuses={
            name: health_pb2.HealthCheckResponse(status=status)
            for name, status in self._server_status.items()})


async def _refuse(context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    error = InvalidArgument("REQUEST_MALFORMED",
                            f"the request bytes do not parse as the request of {method}")
    await context.abort(error.code, error.message, trailing_metadata=(
        (STATUS_DETAILS_KEY, rpc_status(error).SerializeToString()),))


def _handler(method: pb_descriptor.MethodDescriptor, implementation: Any
             ) -> grpc.RpcMethodHandler[Any, Any]:
    parse = deserializer(GetMessageClass(method.input_type))
    serialize = GetMessageClass(method.output_type).SerializeToString
    name = method.full_name

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, Malformed):
            await _refuse(context, name)
        return await implementation(request, context)

    async def streaming(requests: AsyncIterator[Any],
                        context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async def checked() -> AsyncIterator[Any]:
            async for request in requests:
                if isinstance(request, Malformed):
                    await _refuse(context, name)
                yield request

        async for response in implementation(checked(), context):
            yield response

    if method.client_streaming and method.server_streaming:
        return grpc.stream_stream_rpc_method_handler(
            streaming, request_deserializer=parse, response_serializer=serialize)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(
            unary, request_deserializer=parse, response_serializer=serialize)
    if method.client_streaming:
        raise TypeError(f"{name}: client streaming is not served")
    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=parse, response_serializer=serialize)


def handlers(service: pb_descriptor.ServiceDescriptor, servicer: object
             ) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The method handlers of a standard `service`, served by `servicer`."""
    return {m.name: _handler(m, getattr(servicer, m.name)) for m in service.methods}


class MethodTable(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Every method a server serves, found with one dictionary lookup per call.

    Not grpcio's registered methods (`add_registered_method_handlers`): its asyncio
    server keeps one pending request per registered method and waits on all of them
    again for every call that arrives, work that grows with the number of methods
    (with our 75, about a tenth of the event loop's time at 200 sends a second).
    """

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add(self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
        """Serve `handlers` (by method name) as the methods of `service` (its full name)."""
        for method, handler in handlers.items():
            self._handlers[f"/{service}/{method}"] = handler

    def service(self, handler_call_details: grpc.HandlerCallDetails
                ) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._handlers.get(handler_call_details.method)


def add_standard_services(table: MethodTable, names: Sequence[str]) -> HealthServicer:
    """Serve health (for every name in `names`) and reflection (of `names`, health and
    reflection) through `table`; returns the health servicer, to set statuses with."""
    health_servicer = HealthServicer()
    reflection_servicer = reflection.aio.ReflectionServicer(  # type: ignore[attr-defined]
        [*names, HEALTH.full_name, REFLECTION.full_name])
    for service, servicer in ((HEALTH, health_servicer), (REFLECTION, reflection_servicer)):
        table.add(service.full_name, handlers(service, servicer))
    return health_servicer

