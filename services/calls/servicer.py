"""caas.calls.v1.CallsService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from datetime import datetime

from caas.calls.v1 import calls_service_pb2 as pb

from services.calls.actions import CallsActions
from services.calls.protos import MEDIA_OF, call_proto, ice_protos
from services.conversations.servicer import parse_conversation
from services.core.errors import invalid_field
from services.core.protoconv import timestamp
from services.gateway.gateway import Call as RpcCall


def parse_call(name: str, field: str = "name") -> tuple[str, str, str]:
    """`apps/{app}/conversations/{conversation}/calls/{call}`."""
    conversation, sep, call_id = name.partition("/calls/")
    if not sep or "/" in call_id:
        raise invalid_field(field, "must be apps/{app}/conversations/{conversation}/calls/{call}")
    return (*parse_conversation(conversation, field), call_id)


class CallsServicer:
    def __init__(self, actions: CallsActions) -> None:
        self._actions = actions

    def _now(self) -> datetime:
        return self._actions.now()

    async def StartCall(self, request: pb.StartCallRequest, call: RpcCall
                        ) -> pb.StartCallResponse:
        app_id, conversation_id = parse_conversation(request.parent, "parent")
        started, created = await self._actions.start(
            call.user(), app_id, conversation_id, MEDIA_OF[request.media],
            request.device_id, request.request_id, list(request.invitee_ids))
        caller = started.participant(started.caller_id)  # on a retry: the first device
        device = caller.device_id if caller is not None else request.device_id
        servers, _ = self._actions.ice_servers(started, started.caller_id, device)
        return pb.StartCallResponse(call=call_proto(started, self._now()), created=created,
                                    ice_servers=ice_protos(servers))

    async def AcceptCall(self, request: pb.AcceptCallRequest, call: RpcCall
                         ) -> pb.AcceptCallResponse:
        accepted = await self._actions.accept(call.user(), *parse_call(request.name),
                                              request.device_id)
        servers, _ = self._actions.ice_servers(accepted, call.user().user_id,
                                               request.device_id)
        return pb.AcceptCallResponse(call=call_proto(accepted, self._now()),
                                     ice_servers=ice_protos(servers))

    async def DeclineCall(self, request: pb.DeclineCallRequest, call: RpcCall
                          ) -> pb.DeclineCallResponse:
        declined = await self._actions.decline(call.user(), *parse_call(request.name),
                                               request.busy)
        return pb.DeclineCallResponse(call=call_proto(declined, self._now()))

    async def LeaveCall(self, request: pb.LeaveCallRequest, call: RpcCall
                        ) -> pb.LeaveCallResponse:
        left = await self._actions.leave(call.user(), *parse_call(request.name))
        return pb.LeaveCallResponse(call=call_proto(left, self._now()))

    async def EndCall(self, request: pb.EndCallRequest, call: RpcCall) -> pb.EndCallResponse:
        ended = await self._actions.end(call.principal, *parse_call(request.name))
        return pb.EndCallResponse(call=call_proto(ended, self._now()))

    async def GetCall(self, request: pb.GetCallRequest, call: RpcCall) -> pb.GetCallResponse:
        found = await self._actions.get(call.principal, *parse_call(request.name))
        return pb.GetCallResponse(call=call_proto(found, self._now()))

    async def ListCalls(self, request: pb.ListCallsRequest, call: RpcCall
                        ) -> pb.ListCallsResponse:
        page = await self._actions.list_calls(call.principal,
                                        *parse_conversation(request.parent, "parent"),
                                        request.page_size, request.page_token)
        now = self._now()
        return pb.ListCallsResponse(calls=[call_proto(c, now) for c in page.items],
                                    next_page_token=page.next_page_token)

    async def SendSignal(self, request: pb.SendSignalRequest, call: RpcCall
                         ) -> pb.SendSignalResponse:
        body = (request.description if request.HasField("description")
                else request.candidate)
        signal = await self._actions.signal(
            call.user(), *parse_call(request.call, "call"), request.device_id,
            request.to_user_id, request.to_device_id, body)
        return pb.SendSignalResponse(signal=signal)

    async def GetIceServers(self, request: pb.GetIceServersRequest, call: RpcCall
                            ) -> pb.GetIceServersResponse:
        servers, expire = await self._actions.ice_for(
            call.user(), *parse_call(request.call, "call"), request.device_id)
        return pb.GetIceServersResponse(ice_servers=ice_protos(servers),
                                        expire_time=timestamp(expire))
