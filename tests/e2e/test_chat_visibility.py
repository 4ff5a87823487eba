"""Within one app, every answer shows a caller only what the read rules let them read:
the fields of each conversation, member and presence, not only the status codes, for
users, the app's backend and the operator (both store engines, a running server)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.realtime.v1 import realtime_service_pb2 as rt_pb
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import field_mask_pb2
from google.protobuf.descriptor import Descriptor

from tests.conftest import AppHandle, expect_error
from tests.support.chat import CHANNEL, DIRECT, GROUP, Person, person
from tests.support.client import Client, bearer
from tests.support.servers import CaasServer
from tests.support.stream import subscribed

Md = tuple[tuple[str, str], ...]
ONLINE, AWAY, OFFLINE = (rt_pb.Presence.STATUS_ONLINE, rt_pb.Presence.STATUS_AWAY,
                         rt_pb.Presence.STATUS_OFFLINE)
# What a member shows to the other members; the rest is the member's own.
PUBLIC_MEMBER = {"name", "user_id", "role", "join_time"}
# What a conversation shows only to those who may read its messages.
FROM_MESSAGES = {"last_sequence", "last_message", "last_activity_time"}


def set_fields(message: Any) -> set[str]:
    return {field.name for field, _ in message.ListFields()}


@pytest.fixture
def operator(server: CaasServer) -> Md:
    return bearer(server.operator_token)


# -- conversations: a channel seen from outside ------------------------------------------


async def get(client: Client, name: str, md: Md) -> conv_res.Conversation:
    response = await client.conversations.GetConversation(
        conv_pb.GetConversationRequest(name=name), metadata=md)
    return response.conversation


async def channel_listed(client: Client, app_id: str, name: str, md: Md
                         ) -> conv_res.Conversation:
    response = await client.conversations.ListChannels(
        conv_pb.ListChannelsRequest(parent=f"apps/{app_id}"), metadata=md)
    [found] = [c for c in response.conversations if c.name == name]
    return found


async def test_a_channel_seen_from_outside_shows_no_message(
        client: Client, app: AppHandle, operator: Md, alice: Person, bob: Person,
        carol: Person) -> None:
    created = await client.conversations.CreateConversation(conv_pb.CreateConversationRequest(
        parent=app.name, conversation=conv_res.Conversation(kind=CHANNEL, title="News")),
        metadata=alice.auth)
    channel = created.conversation
    assert created.created and channel.membership.user_id == "alice"
    assert channel.membership.role == conv_res.Member.ROLE_OWNER
    await alice.send(channel.name, "members only")
    await client.conversations.JoinConversation(
        conv_pb.JoinConversationRequest(name=channel.name), metadata=bob.auth)

    # Carol is outside: the channel's public fields, nothing that comes from messages.
    outside = await get(client, channel.name, carol.auth)
    assert (outside.title, outside.member_count, outside.creator_id) == ("News", 2, "alice")
    assert outside.kind == CHANNEL and outside.HasField("create_time")
    assert not set_fields(outside) & (FROM_MESSAGES | {"membership"}), outside
    assert await channel_listed(client, app.app_id, channel.name, carol.auth) == outside

    # Bob is a member: the last message and his membership, in both answers.
    inside = await get(client, channel.name, bob.auth)
    assert inside.last_sequence == 1 and inside.HasField("last_activity_time")
    assert (inside.last_message.text, inside.last_message.sender_id) == ("members only",
                                                                        "alice")
    assert inside.membership.user_id == "bob"
    assert await channel_listed(client, app.app_id, channel.name, bob.auth) == inside
    [listed] = [c for c in (await bob.inbox()).conversations if c.name == channel.name]
    assert listed == inside

    # The app's backend and the operator read everything, and are nobody's member.
    for md in (app.auth, operator):
        for seen in (await get(client, channel.name, md),
                     await channel_listed(client, app.app_id, channel.name, md)):
            assert seen.last_message.text == "members only" and seen.last_sequence == 1
            assert not seen.HasField("membership")

    # Joining shows the messages, with the joiner's own membership; leaving hides them.
    joined = await client.conversations.JoinConversation(
        conv_pb.JoinConversationRequest(name=channel.name), metadata=carol.auth)
    assert (joined.member.user_id, joined.member.read_sequence) == ("carol", 1)
    assert (await get(client, channel.name, carol.auth)).last_message.text == "members only"
    await client.conversations.LeaveConversation(
        conv_pb.LeaveConversationRequest(name=channel.name), metadata=carol.auth)
    assert not set_fields(await get(client, channel.name, carol.auth)) & FROM_MESSAGES

    # Updates answer with what the updater may read: owners and the backend read all.
    for md, membership in ((alice.auth, True), (app.auth, False)):
        updated = (await client.conversations.UpdateConversation(
            conv_pb.UpdateConversationRequest(
                conversation=conv_res.Conversation(name=channel.name, title="Daily"),
                update_mask=field_mask_pb2.FieldMask(paths=["title"])), metadata=md)
        ).conversation
        assert (updated.title, updated.last_message.text) == ("Daily", "members only")
        assert updated.HasField("membership") is membership


# -- members: settings, positions and unread counts are the member's own -------------


async def get_member(client: Client, conversation: str, user_id: str, md: Md
                     ) -> conv_res.Member:
    response = await client.conversations.GetMember(
        conv_pb.GetMemberRequest(name=f"{conversation}/members/{user_id}"), metadata=md)
    return response.member


async def members(client: Client, conversation: str, md: Md) -> dict[str, conv_res.Member]:
    response = await client.conversations.ListMembers(
        conv_pb.ListMembersRequest(parent=conversation), metadata=md)
    return {m.user_id: m for m in response.members}


async def update_member(client: Client, member: conv_res.Member, paths: list[str], md: Md
                        ) -> conv_res.Member:
    response = await client.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
        member=member, update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=md)
    return response.member


async def test_a_member_sees_only_their_own_settings(
        client: Client, app: AppHandle, operator: Md, alice: Person, bob: Person,
        carol: Person) -> None:
    group = (await alice.create(GROUP, ("bob",))).name
    await alice.send(group, "one")
    await bob.mark_read(group)
    await alice.send(group, "two")
    own = await update_member(client, conv_res.Member(
        name=f"{group}/members/bob", muted=True, archived=True, pinned=True),
        ["muted", "archived", "pinned"], bob.auth)
    # Bob sees his own membership whole, and so do the app's backend and the operator.
    assert (own.muted, own.archived, own.pinned) == (True, True, True)
    assert (own.read_sequence, own.unread_count) == (1, 1) and own.delivered_sequence >= 1
    assert own.HasField("read_time")
    assert await get_member(client, group, "bob", bob.auth) == own
    for md in (app.auth, operator):
        assert await get_member(client, group, "bob", md) == own
        assert (await members(client, group, md))["bob"] == own

    # Alice, another member, sees who, which role and since when: no more.
    public = await get_member(client, group, "bob", alice.auth)
    assert set_fields(public) == PUBLIC_MEMBER
    assert (public.name, public.role, public.join_time) == (own.name, own.role, own.join_time)
    listed = await members(client, group, alice.auth)
    assert listed["bob"] == public
    assert listed["alice"] == await get_member(client, group, "alice", app.auth)  # her own
    assert listed["alice"].read_sequence == 2

    # Answers to changes follow the same rule.
    stream = await subscribed(alice)
    promoted = await update_member(client, conv_res.Member(
        name=f"{group}/members/bob", role=conv_res.Member.ROLE_ADMIN), ["role"], alice.auth)
    assert set_fields(promoted) == PUBLIC_MEMBER and promoted.role == conv_res.Member.ROLE_ADMIN
    by_backend = await update_member(client, conv_res.Member(
        name=f"{group}/members/bob", role=conv_res.Member.ROLE_MODERATOR), ["role"], app.auth)
    assert by_backend.muted and by_backend.unread_count == 1
    added = await client.conversations.AddMembers(conv_pb.AddMembersRequest(
        conversation=group, user_ids=["carol"]), metadata=alice.auth)
    assert [set_fields(m) for m in added.members] == [PUBLIC_MEMBER]
    await person(client, app.app_id, app.api_key, "dave")
    added = await client.conversations.AddMembers(conv_pb.AddMembersRequest(
        conversation=group, user_ids=["dave"]), metadata=app.auth)
    assert added.members[0].read_sequence == 2  # joins with everything read
    # The stream shows the others the same fields (its own privacy, unchanged).
    seen = [await stream.event() for _ in range(4)]
    assert [e.type for e in seen] == ["member.updated"] * 2 + ["member.added"] * 2
    for event, user_id in zip(seen, ("bob", "bob", "carol", "dave"), strict=True):
        member = getattr(event, event.type.replace(".", "_"))
        assert member.user_id == user_id and set_fields(member) == PUBLIC_MEMBER
    await stream.close()
    await carol.mark_read(group)
    assert set_fields(await get_member(client, group, "carol", bob.auth)) == PUBLIC_MEMBER


# -- presence: only between conversation partners -------------------------------------


async def presences(client: Client, app_id: str, user_ids: list[str], md: Md
                    ) -> list[rt_pb.Presence]:
    response = await client.realtime.BatchGetPresences(rt_pb.BatchGetPresencesRequest(
        parent=f"apps/{app_id}", names=[f"apps/{app_id}/users/{u}/presence" for u in user_ids]),
        metadata=md)
    return list(response.presences)


def unknown(app_id: str, user_id: str) -> rt_pb.Presence:
    """What anyone is told of a user never seen: offline, no last-seen time."""
    return rt_pb.Presence(name=f"apps/{app_id}/users/{user_id}/presence", user_id=user_id,
                          status=OFFLINE)


async def test_presence_is_shown_to_conversation_partners_only(
        client: Client, app: AppHandle, operator: Md, alice: Person, bob: Person,
        carol: Person) -> None:
    await alice.create(GROUP, ("bob",))
    channel = (await alice.create(CHANNEL)).name
    await client.conversations.JoinConversation(  # a channel makes no partners
        conv_pb.JoinConversationRequest(name=channel), metadata=carol.auth)
    watcher = await subscribed(bob)
    phone = await subscribed(alice, device_id="phone")
    assert (await watcher.next("presence")).presence.status == ONLINE
    own = await subscribed(carol)
    app_id = app.app_id

    # Carol shares no direct or group conversation with Alice: told what a stranger is.
    got = await presences(client, app_id, ["alice", "carol", "nobody"], carol.auth)
    assert got == [unknown(app_id, "alice"),
                   rt_pb.Presence(name=f"apps/{app_id}/users/carol/presence",
                                  user_id="carol", status=ONLINE),
                   unknown(app_id, "nobody")]
    away = await client.realtime.SetPresence(rt_pb.SetPresenceRequest(
        name=carol.name, status=AWAY), metadata=carol.auth)
    assert away.presence.status == AWAY  # her own, always
    assert [p.status for p in await presences(client, app_id, ["carol"], carol.auth)] == [AWAY]
    # Bob, her group's member, the app's backend and the operator see Alice online.
    for md in (bob.auth, app.auth, operator):
        assert [p.status for p in await presences(client, app_id, ["alice"], md)] == [ONLINE]

    await phone.close()
    gone = (await watcher.next("presence")).presence
    assert gone.status == OFFLINE and gone.HasField("last_seen_time")
    assert await presences(client, app_id, ["alice"], bob.auth) == [gone]
    assert await presences(client, app_id, ["alice"], app.auth) == [gone]
    assert await presences(client, app_id, ["alice"], carol.auth) == [unknown(app_id, "alice")]
    # A direct conversation makes them partners.
    await carol.create(DIRECT, ("alice",))
    assert await presences(client, app_id, ["alice"], carol.auth) == [gone]
    for stream in (watcher, own):
        await stream.close()


# -- creating: ids are the app's backend's to choose -------------------------------------


async def refusal(call: Awaitable[Any]) -> tuple[Any, ...]:
    """Everything a refused call tells its caller but what differs from call to call
    (its request id, the rate-limit headers)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    trailers = {key: value for key, value in error.trailing_metadata() or ()
                if key != "x-request-id" and not key.startswith("x-ratelimit")}
    return error.code(), error.details(), trailers


async def test_a_user_cannot_tell_a_hidden_conversation_by_its_id(
        client: Client, app: AppHandle, operator: Md, alice: Person, bob: Person,
        carol: Person) -> None:
    hidden, free = f"hidden-{uuid.uuid4().hex[:8]}", f"free-{uuid.uuid4().hex[:8]}"

    def create(md: Md, conversation_id: str, kind: int = GROUP, members: tuple[str, ...] = ()
               ) -> Awaitable[conv_pb.CreateConversationResponse]:
        return client.conversations.CreateConversation(conv_pb.CreateConversationRequest(
            parent=app.name, conversation_id=conversation_id, member_ids=list(members),
            conversation=conv_res.Conversation(kind=kind)),  # type: ignore[arg-type]
            metadata=md)

    made = await create(app.auth, hidden, members=("alice", "bob"))
    assert made.conversation.name == alice.conversation(hidden) and made.created
    assert not made.conversation.HasField("membership")  # the backend is no member

    # For Carol the hidden group's id and a free one get the very same refusal, and
    # nothing is created.
    taken = await refusal(create(carol.auth, hidden))
    assert taken == await refusal(create(carol.auth, free))
    assert taken == await refusal(create(carol.auth, hidden, CHANNEL))
    assert taken == await refusal(create(carol.auth, free, CHANNEL))
    assert taken[0] == grpc.StatusCode.PERMISSION_DENIED
    await expect_error(create(carol.auth, free), grpc.StatusCode.PERMISSION_DENIED,
                       "PRINCIPAL_NOT_ALLOWED")
    await expect_error(get(client, alice.conversation(free), app.auth),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    # An id a user can see is ALREADY_EXISTS, as GetConversation would tell them.
    channel = (await alice.create(CHANNEL)).name.rsplit("/", 1)[1]
    for md, conversation_id in ((alice.auth, hidden), (carol.auth, channel)):
        await expect_error(create(md, conversation_id), grpc.StatusCode.ALREADY_EXISTS,
                           "RESOURCE_ALREADY_EXISTS")
    # Direct conversations ignore the id, for users as before.
    direct = await create(carol.auth, hidden, DIRECT, ("alice",))
    assert direct.created and direct.conversation.name != alice.conversation(hidden)
    assert direct.conversation.membership.user_id == "carol"
    # The app's backend and the operator choose ids, and see what is taken.
    await expect_error(create(operator, hidden), grpc.StatusCode.ALREADY_EXISTS,
                       "RESOURCE_ALREADY_EXISTS")
    made = await create(operator, free, CHANNEL)
    assert made.created and made.conversation.name == alice.conversation(free)


# -- every answer that shows a conversation, a member or a presence is checked ---------

SHOWN = {"CreateConversation", "GetConversation", "UpdateConversation", "ListConversations",
         "ListChannels", "JoinConversation", "AddMembers", "GetMember", "ListMembers",
         "UpdateMember", "SetPresence", "BatchGetPresences", "Subscribe"}
SHOWN_TYPES = {conv_res.Conversation.DESCRIPTOR.full_name, conv_res.Member.DESCRIPTOR.full_name,
               rt_pb.Presence.DESCRIPTOR.full_name}


def shows(message: Descriptor, seen: set[str] | None = None) -> bool:
    seen = set() if seen is None else seen
    if message.full_name in SHOWN_TYPES:
        return True
    seen.add(message.full_name)
    return any(shows(f.message_type, seen) for f in message.fields
               if f.message_type is not None and f.message_type.full_name not in seen)


def test_every_answer_showing_a_conversation_member_or_presence_is_checked() -> None:
    rpcs = {method.name for module, name in (
        (user_pb, "UsersService"), (conv_pb, "ConversationsService"),
        (msg_pb, "MessagesService"), (rt_pb, "RealtimeService"))
        for method in module.DESCRIPTOR.services_by_name[name].methods
        if shows(method.output_type)}
    assert rpcs == SHOWN
