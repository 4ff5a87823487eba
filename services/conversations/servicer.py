"""caas.conversations.v1.ConversationsService: protobuf ↔ domain, nothing else."""

from __future__ import annotations

from datetime import timedelta

from caas.conversations.v1 import conversations_service_pb2 as pb
from caas.conversations.v1 import resources_pb2 as res

from services.conversations.access import ShownConversation, conversation_name
from services.conversations.actions import ConversationsActions, NewConversation
from services.conversations.models import (
    ConversationChanges,
    Kind,
    Member,
    MemberChanges,
    Role,
)
from services.core.errors import invalid_field
from services.core.names import parse_app, parse_user
from services.core.protoconv import duration, timestamp
from services.gateway.gateway import Call

KINDS = {Kind.DIRECT: res.Conversation.KIND_DIRECT, Kind.GROUP: res.Conversation.KIND_GROUP,
         Kind.CHANNEL: res.Conversation.KIND_CHANNEL}
KINDS_FROM_PROTO = {value: kind for kind, value in KINDS.items()}


def parse_conversation(name: str, field: str = "name") -> tuple[str, str]:
    """`apps/{app}/conversations/{conversation}` (already validated by the contract)."""
    app_part, sep, conversation_id = name.partition("/conversations/")
    if not sep or "/" in conversation_id:
        raise invalid_field(field, "must be apps/{app}/conversations/{conversation}")
    return parse_app(app_part, field), conversation_id


def parse_member(name: str, field: str = "name") -> tuple[str, str, str]:
    conversation, sep, user_id = name.partition("/members/")
    if not sep:
        raise invalid_field(field, "must be apps/{app}/conversations/{c}/members/{user}")
    return (*parse_conversation(conversation, field), user_id)


def member_proto(member: Member) -> res.Member:
    return res.Member(
        name=f"{conversation_name(member.app_id, member.conversation_id)}/members/"
             f"{member.user_id}",
        user_id=member.user_id, role=int(member.role), muted=member.muted,  # type: ignore[arg-type]
        archived=member.archived, pinned=member.pinned,
        read_sequence=member.read_sequence, delivered_sequence=member.delivered_sequence,
        unread_count=member.unread_count, join_time=timestamp(member.join_time),
        read_time=timestamp(member.read_time),
        unread_mention_count=member.unread_mention_count)


def conversation_proto(shown: ShownConversation) -> res.Conversation:
    """`shown.messages` False leaves out what comes from its messages: last_sequence,
    last_message and last_activity_time."""
    conversation, member, messages = shown.conversation, shown.membership, shown.messages
    preview = conversation.last_message if messages else None
    return res.Conversation(
        name=conversation_name(conversation.app_id, conversation.conversation_id),
        kind=KINDS[conversation.kind], title=conversation.title,
        image_uri=conversation.image_uri, metadata=dict(conversation.metadata),
        frozen=conversation.frozen, creator_id=conversation.creator_id,
        member_count=conversation.member_count,
        last_sequence=conversation.last_sequence if messages else 0,
        last_message=None if preview is None else res.MessagePreview(
            sequence=preview.sequence, sender_id=preview.sender_id, text=preview.text,
            deleted=preview.deleted, create_time=timestamp(preview.create_time)),
        create_time=timestamp(conversation.create_time),
        update_time=timestamp(conversation.update_time),
        last_activity_time=timestamp(conversation.last_activity_time) if messages else None,
        membership=None if member is None else member_proto(member),
        slow_mode=duration(conversation.slow_mode) if conversation.slow_mode else None,
        type=conversation.type, end_to_end_encrypted=conversation.encrypted)


def _slow_mode(conversation: res.Conversation) -> timedelta:
    """Slow mode as given, to the second (unset: off)."""
    return timedelta(seconds=conversation.slow_mode.seconds)


class ConversationsServicer:
    def __init__(self, actions: ConversationsActions) -> None:
        self._actions = actions

    async def CreateConversation(self, request: pb.CreateConversationRequest, call: Call
                                 ) -> pb.CreateConversationResponse:
        c = request.conversation
        conversation, created = await self._actions.do_create(
            call.principal, parse_app(request.parent, "parent"),
            NewConversation(KINDS_FROM_PROTO[c.kind], request.conversation_id, c.title,
                            c.image_uri, dict(c.metadata), c.frozen, list(request.member_ids),
                            request.owner_id, _slow_mode(c), c.type,
                            c.end_to_end_encrypted))
        shown = await self._actions.get(call.principal, conversation.app_id,
                                        conversation.conversation_id)
        return pb.CreateConversationResponse(conversation=conversation_proto(shown),
                                             created=created)

    async def GetConversation(self, request: pb.GetConversationRequest, call: Call
                              ) -> pb.GetConversationResponse:
        shown = await self._actions.get(call.principal, *parse_conversation(request.name))
        return pb.GetConversationResponse(conversation=conversation_proto(shown))

    async def UpdateConversation(self, request: pb.UpdateConversationRequest, call: Call
                                 ) -> pb.UpdateConversationResponse:
        c = request.conversation
        paths = set(request.update_mask.paths)
        shown = await self._actions.do_update(
            call.principal, *parse_conversation(c.name, "conversation.name"),
            ConversationChanges(
                title=c.title if "title" in paths else None,
                image_uri=c.image_uri if "image_uri" in paths else None,
                metadata=dict(c.metadata) if "metadata" in paths else None,
                frozen=c.frozen if "frozen" in paths else None,
                slow_mode=_slow_mode(c) if "slow_mode" in paths else None))
        return pb.UpdateConversationResponse(conversation=conversation_proto(shown))

    async def DeleteConversation(self, request: pb.DeleteConversationRequest, call: Call
                                 ) -> pb.DeleteConversationResponse:
        await self._actions.do_delete(call.principal, *parse_conversation(request.name))
        return pb.DeleteConversationResponse()

    async def ListConversations(self, request: pb.ListConversationsRequest, call: Call
                                ) -> pb.ListConversationsResponse:
        app_id, user_id = parse_user(request.parent)
        page = await self._actions.list_for_user(call.principal, app_id, user_id,
                                                 request.include_archived, request.page_size,
                                                 request.page_token, request.filter,
                                                 request.order_by)
        return pb.ListConversationsResponse(
            conversations=[conversation_proto(shown) for shown in page.items],
            next_page_token=page.next_page_token)

    async def ListChannels(self, request: pb.ListChannelsRequest, call: Call
                           ) -> pb.ListChannelsResponse:
        page = await self._actions.list_channels(call.principal,
                                                 parse_app(request.parent, "parent"),
                                                 request.page_size, request.page_token)
        return pb.ListChannelsResponse(
            conversations=[conversation_proto(shown) for shown in page.items],
            next_page_token=page.next_page_token)

    async def JoinConversation(self, request: pb.JoinConversationRequest, call: Call
                               ) -> pb.JoinConversationResponse:
        member = await self._actions.do_join(call.user(), *parse_conversation(request.name))
        return pb.JoinConversationResponse(member=member_proto(member))

    async def LeaveConversation(self, request: pb.LeaveConversationRequest, call: Call
                                ) -> pb.LeaveConversationResponse:
        await self._actions.do_leave(call.user(), *parse_conversation(request.name))
        return pb.LeaveConversationResponse()

    async def AddMembers(self, request: pb.AddMembersRequest, call: Call
                         ) -> pb.AddMembersResponse:
        added = await self._actions.do_add_members(
            call.principal, *parse_conversation(request.conversation, "conversation"),
            list(request.user_ids))
        return pb.AddMembersResponse(members=[member_proto(m) for m in added])

    async def RemoveMember(self, request: pb.RemoveMemberRequest, call: Call
                           ) -> pb.RemoveMemberResponse:
        await self._actions.do_remove_member(call.principal, *parse_member(request.name))
        return pb.RemoveMemberResponse()

    async def GetMember(self, request: pb.GetMemberRequest, call: Call) -> pb.GetMemberResponse:
        member = await self._actions.get_member(call.principal, *parse_member(request.name))
        return pb.GetMemberResponse(member=member_proto(member))

    async def ListMembers(self, request: pb.ListMembersRequest, call: Call
                          ) -> pb.ListMembersResponse:
        page = await self._actions.list_members(
            call.principal, *parse_conversation(request.parent, "parent"), request.page_size,
            request.page_token, request.filter, request.order_by)
        return pb.ListMembersResponse(members=[member_proto(m) for m in page.items],
                                      next_page_token=page.next_page_token)

    async def UpdateMember(self, request: pb.UpdateMemberRequest, call: Call
                           ) -> pb.UpdateMemberResponse:
        m = request.member
        paths = set(request.update_mask.paths)
        member = await self._actions.do_update_member(
            call.principal, *parse_member(m.name, "member.name"),
            MemberChanges(role=Role(m.role) if "role" in paths else None,
                          muted=m.muted if "muted" in paths else None,
                          archived=m.archived if "archived" in paths else None,
                          pinned=m.pinned if "pinned" in paths else None))
        return pb.UpdateMemberResponse(member=member_proto(member))
