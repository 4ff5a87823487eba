"""caas.realtime.v1.RealtimeService: protobuf ↔ domain, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from caas.realtime.v1 import realtime_service_pb2 as pb

from services.conversations.servicer import parse_conversation
from services.core.names import parse_app, parse_children, parse_user
from services.core.protoconv import timestamp
from services.gateway.gateway import Call
from services.realtime.actions import RealtimeActions, presence_proto
from services.realtime.presence import Status


class RealtimeServicer:
    def __init__(self, actions: RealtimeActions) -> None:
        self._actions = actions

    def Subscribe(self, request: pb.SubscribeRequest, call: Call) -> AsyncIterator[bytes]:
        # Items come serialized already: one encoding per event, shared by every stream.
        app_id, user_id = parse_user(request.name, "name")
        return self._actions.subscribe(call.user(), app_id, user_id, request.resume_token,
                                       request.device_id)

    async def SendTyping(self, request: pb.SendTypingRequest, call: Call
                         ) -> pb.SendTypingResponse:
        expire = await self._actions.do_typing(
            call.user(), *parse_conversation(request.conversation, "conversation"),
            request.typing, request.thread_root_sequence)
        return pb.SendTypingResponse(expire_time=timestamp(expire))

    async def BatchGetPresences(self, request: pb.BatchGetPresencesRequest, call: Call
                                ) -> pb.BatchGetPresencesResponse:
        app_id = parse_app(request.parent, "parent")
        user_ids = parse_children(
            request.names, lambda name, field: parse_user(name.removesuffix("/presence"), field),
            (app_id,), "a user of the parent app")
        presences = await self._actions.presences(call.principal, app_id, user_ids)
        return pb.BatchGetPresencesResponse(
            presences=[presence_proto(app_id, p) for p in presences])

    async def SetPresence(self, request: pb.SetPresenceRequest, call: Call
                          ) -> pb.SetPresenceResponse:
        app_id, user_id = parse_user(request.name, "name")
        presence = await self._actions.do_set_presence(
            call.user(), app_id, user_id, Status(request.status), request.device_id)
        return pb.SetPresenceResponse(presence=presence_proto(app_id, presence))
