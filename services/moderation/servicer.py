"""caas.moderation.v1.ModerationService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from datetime import UTC

from caas.moderation.v1 import moderation_service_pb2 as pb
from caas.moderation.v1 import resources_pb2 as res

from services.conversations.access import conversation_name
from services.conversations.servicer import parse_conversation
from services.core.errors import invalid_field
from services.core.names import parse_app, parse_restriction, restriction_name
from services.core.protoconv import timestamp
from services.gateway.gateway import Call
from services.moderation.actions import ModerationActions
from services.moderation.models import APP_WIDE, Restriction, RestrictionType

TYPES = {RestrictionType.MUTE: res.Restriction.TYPE_MUTE,
         RestrictionType.BAN: res.Restriction.TYPE_BAN}
TYPES_FROM_PROTO = {value: kind for kind, value in TYPES.items()}


def restriction_proto(r: Restriction) -> res.Restriction:
    return res.Restriction(
        name=restriction_name(r.app_id, r.restriction_id), user_id=r.user_id,
        conversation="" if r.conversation_id == APP_WIDE else conversation_name(
            r.app_id, r.conversation_id),
        type=TYPES[r.type], reason=r.reason, expire_time=timestamp(r.expire_time),
        creator=r.creator, create_time=timestamp(r.create_time))


def _conversation_in(app_id: str, name: str, field: str) -> str:
    """The conversation id of `name`, which must lie in `app_id` ("" for none)."""
    if not name:
        return APP_WIDE
    conversation_app, conversation_id = parse_conversation(name, field)
    if conversation_app != app_id:
        raise invalid_field(field, f"must be a conversation of apps/{app_id}")
    return conversation_id


class ModerationServicer:
    def __init__(self, actions: ModerationActions) -> None:
        self._actions = actions

    async def CreateRestriction(self, request: pb.CreateRestrictionRequest, call: Call
                                ) -> pb.CreateRestrictionResponse:
        app_id = parse_app(request.parent, "parent")
        given = request.restriction
        restriction = await self._actions.do_restrict(
            call.principal, app_id, given.user_id,
            _conversation_in(app_id, given.conversation, "restriction.conversation"),
            TYPES_FROM_PROTO[given.type], given.reason,
            given.expire_time.ToDatetime(UTC) if given.HasField("expire_time") else None)
        return pb.CreateRestrictionResponse(restriction=restriction_proto(restriction))

    async def GetRestriction(self, request: pb.GetRestrictionRequest, call: Call
                             ) -> pb.GetRestrictionResponse:
        restriction = await self._actions.get(call.principal, *parse_restriction(request.name))
        return pb.GetRestrictionResponse(restriction=restriction_proto(restriction))

    async def ListRestrictions(self, request: pb.ListRestrictionsRequest, call: Call
                               ) -> pb.ListRestrictionsResponse:
        app_id = parse_app(request.parent, "parent")
        conversation_id = (_conversation_in(app_id, request.conversation, "conversation")
                           if request.conversation else None)
        page = await self._actions.list_restrictions(
            call.principal, app_id, request.user_id, conversation_id, request.page_size,
            request.page_token)
        return pb.ListRestrictionsResponse(
            restrictions=[restriction_proto(r) for r in page.items],
            next_page_token=page.next_page_token)

    async def DeleteRestriction(self, request: pb.DeleteRestrictionRequest, call: Call
                                ) -> pb.DeleteRestrictionResponse:
        lifted = await self._actions.do_lift(call.principal, *parse_restriction(request.name))
        return pb.DeleteRestrictionResponse(restriction=restriction_proto(lifted))
