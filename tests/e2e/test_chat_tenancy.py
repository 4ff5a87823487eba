"""Every chat RPC naming another app's resources is refused, and changes nothing there."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res
from caas.realtime.v1 import realtime_service_pb2 as rt_pb
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import field_mask_pb2

from tests.conftest import AppHandle, expect_error
from tests.support.chat import CHANNEL, GROUP, Person, person
from tests.support.client import Client


@dataclass
class Victim:
    app: AppHandle
    alice: Person
    group: str  # a group of alice and bob
    channel: str
    message: str  # a message of alice in the group
    restriction: str  # bob's mute in the group
    flag: str  # bob's report of alice's message
    filter: str  # a content filter of the app


Md = tuple[tuple[str, str], ...]


async def first_item(call: Any) -> Any:
    """A stream's first item (a refused stream raises its status here)."""
    async for item in call:
        return item
    return None


Attempt = Callable[[Client, Victim, Md], Awaitable[Any]]
mask = field_mask_pb2.FieldMask

ATTEMPTS: dict[str, Attempt] = {
    "CreateUser": lambda c, v, md: c.users.CreateUser(user_pb.CreateUserRequest(
        parent=v.app.name, user_id="intruder"), metadata=md),
    "GetUser": lambda c, v, md: c.users.GetUser(user_pb.GetUserRequest(name=v.alice.name),
                                                metadata=md),
    "ListUsers": lambda c, v, md: c.users.ListUsers(user_pb.ListUsersRequest(
        parent=v.app.name), metadata=md),
    "UpdateUser": lambda c, v, md: c.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=v.alice.name, display_name="pwned"),
        update_mask=mask(paths=["display_name"]), allow_missing=True), metadata=md),
    "DeleteUser": lambda c, v, md: c.users.DeleteUser(user_pb.DeleteUserRequest(
        name=v.alice.name), metadata=md),
    "CreateBlock": lambda c, v, md: c.users.CreateBlock(user_pb.CreateBlockRequest(
        parent=v.alice.name, block=user_res.Block(blocked_user_id="bob")), metadata=md),
    "DeleteBlock": lambda c, v, md: c.users.DeleteBlock(user_pb.DeleteBlockRequest(
        name=f"{v.alice.name}/blocks/bob"), metadata=md),
    "ListBlocks": lambda c, v, md: c.users.ListBlocks(user_pb.ListBlocksRequest(
        parent=v.alice.name), metadata=md),
    "CreateConversation": lambda c, v, md: c.conversations.CreateConversation(
        conv_pb.CreateConversationRequest(parent=v.app.name, conversation=conv_res.Conversation(
            kind=GROUP), member_ids=["alice"]), metadata=md),
    "GetConversation": lambda c, v, md: c.conversations.GetConversation(
        conv_pb.GetConversationRequest(name=v.group), metadata=md),
    "UpdateConversation": lambda c, v, md: c.conversations.UpdateConversation(
        conv_pb.UpdateConversationRequest(conversation=conv_res.Conversation(
            name=v.group, title="pwned"), update_mask=mask(paths=["title"])), metadata=md),
    "DeleteConversation": lambda c, v, md: c.conversations.DeleteConversation(
        conv_pb.DeleteConversationRequest(name=v.group), metadata=md),
    "ListConversations": lambda c, v, md: c.conversations.ListConversations(
        conv_pb.ListConversationsRequest(parent=v.alice.name), metadata=md),
    "ListChannels": lambda c, v, md: c.conversations.ListChannels(
        conv_pb.ListChannelsRequest(parent=v.app.name), metadata=md),
    "JoinConversation": lambda c, v, md: c.conversations.JoinConversation(
        conv_pb.JoinConversationRequest(name=v.channel), metadata=md),
    "LeaveConversation": lambda c, v, md: c.conversations.LeaveConversation(
        conv_pb.LeaveConversationRequest(name=v.group), metadata=md),
    "AddMembers": lambda c, v, md: c.conversations.AddMembers(conv_pb.AddMembersRequest(
        conversation=v.group, user_ids=["carol"]), metadata=md),
    "RemoveMember": lambda c, v, md: c.conversations.RemoveMember(conv_pb.RemoveMemberRequest(
        name=f"{v.group}/members/bob"), metadata=md),
    "GetMember": lambda c, v, md: c.conversations.GetMember(conv_pb.GetMemberRequest(
        name=f"{v.group}/members/bob"), metadata=md),
    "ListMembers": lambda c, v, md: c.conversations.ListMembers(conv_pb.ListMembersRequest(
        parent=v.group), metadata=md),
    "UpdateMember": lambda c, v, md: c.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{v.group}/members/bob", role=conv_res.Member.ROLE_ADMIN),
        update_mask=mask(paths=["role"])), metadata=md),
    "CreateMessage": lambda c, v, md: c.messages.CreateMessage(msg_pb.CreateMessageRequest(
        parent=v.group, message=msg_res.Message(text="pwned", sender_id="alice"),
        request_id="x"), metadata=md),
    "GetMessage": lambda c, v, md: c.messages.GetMessage(msg_pb.GetMessageRequest(
        name=v.message), metadata=md),
    "ListMessages": lambda c, v, md: c.messages.ListMessages(msg_pb.ListMessagesRequest(
        parent=v.group), metadata=md),
    "UpdateMessage": lambda c, v, md: c.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=v.message, text="pwned"), update_mask=mask(paths=["text"])),
        metadata=md),
    "DeleteMessage": lambda c, v, md: c.messages.DeleteMessage(msg_pb.DeleteMessageRequest(
        name=v.message), metadata=md),
    "ListMessageRevisions": lambda c, v, md: c.messages.ListMessageRevisions(
        msg_pb.ListMessageRevisionsRequest(name=v.message), metadata=md),
    "AddReaction": lambda c, v, md: c.messages.AddReaction(msg_pb.AddReactionRequest(
        name=v.message, emoji="x"), metadata=md),
    "RemoveReaction": lambda c, v, md: c.messages.RemoveReaction(msg_pb.RemoveReactionRequest(
        name=v.message, emoji="x"), metadata=md),
    "ListReactions": lambda c, v, md: c.messages.ListReactions(msg_pb.ListReactionsRequest(
        parent=v.message), metadata=md),
    "MarkRead": lambda c, v, md: c.messages.MarkRead(msg_pb.MarkReadRequest(
        conversation=v.group), metadata=md),
    "MarkDelivered": lambda c, v, md: c.messages.MarkDelivered(msg_pb.MarkDeliveredRequest(
        conversation=v.group), metadata=md),
    "ListReceipts": lambda c, v, md: c.messages.ListReceipts(msg_pb.ListReceiptsRequest(
        parent=v.message), metadata=md),
    "GetUnreadCount": lambda c, v, md: c.messages.GetUnreadCount(msg_pb.GetUnreadCountRequest(
        name=f"{v.alice.name}/unreadCount"), metadata=md),
    "Subscribe": lambda c, v, md: first_item(c.realtime.Subscribe(rt_pb.SubscribeRequest(
        name=v.alice.name), metadata=md)),
    "SendTyping": lambda c, v, md: c.realtime.SendTyping(rt_pb.SendTypingRequest(
        conversation=v.group, typing=True), metadata=md),
    "SetPresence": lambda c, v, md: c.realtime.SetPresence(rt_pb.SetPresenceRequest(
        name=v.alice.name, status=rt_pb.Presence.STATUS_AWAY), metadata=md),
    "BatchGetPresences": lambda c, v, md: c.realtime.BatchGetPresences(
        rt_pb.BatchGetPresencesRequest(parent=v.app.name,
                                       names=[f"{v.alice.name}/presence"]), metadata=md),
    "CreateRestriction": lambda c, v, md: c.moderation.CreateRestriction(
        mod_pb.CreateRestrictionRequest(parent=v.app.name, restriction=mod_res.Restriction(
            user_id="alice", conversation=v.group, type=mod_res.Restriction.TYPE_BAN)),
        metadata=md),
    "GetRestriction": lambda c, v, md: c.moderation.GetRestriction(
        mod_pb.GetRestrictionRequest(name=v.restriction), metadata=md),
    "ListRestrictions": lambda c, v, md: c.moderation.ListRestrictions(
        mod_pb.ListRestrictionsRequest(parent=v.app.name, conversation=v.group), metadata=md),
    "DeleteRestriction": lambda c, v, md: c.moderation.DeleteRestriction(
        mod_pb.DeleteRestrictionRequest(name=v.restriction), metadata=md),
    "CreateFlag": lambda c, v, md: c.moderation.CreateFlag(mod_pb.CreateFlagRequest(
        parent=v.app.name, message=v.message, reason=mod_res.Report.REASON_SPAM), metadata=md),
    "GetFlag": lambda c, v, md: c.moderation.GetFlag(mod_pb.GetFlagRequest(name=v.flag),
                                                     metadata=md),
    "ListFlags": lambda c, v, md: c.moderation.ListFlags(mod_pb.ListFlagsRequest(
        parent=v.app.name, conversation=v.group), metadata=md),
    "ClaimFlag": lambda c, v, md: c.moderation.ClaimFlag(mod_pb.ClaimFlagRequest(name=v.flag),
                                                         metadata=md),
    "ResolveFlag": lambda c, v, md: c.moderation.ResolveFlag(mod_pb.ResolveFlagRequest(
        name=v.flag, note="x", delete_message=True), metadata=md),
    "CreateFilter": lambda c, v, md: c.moderation.CreateFilter(mod_pb.CreateFilterRequest(
        parent=v.app.name, filter_id="intruder", filter=mod_res.Filter(
            words=["private"], action=mod_res.Filter.ACTION_BLOCK)), metadata=md),
    "GetFilter": lambda c, v, md: c.moderation.GetFilter(mod_pb.GetFilterRequest(
        name=v.filter), metadata=md),
    "ListFilters": lambda c, v, md: c.moderation.ListFilters(mod_pb.ListFiltersRequest(
        parent=v.app.name), metadata=md),
    "UpdateFilter": lambda c, v, md: c.moderation.UpdateFilter(mod_pb.UpdateFilterRequest(
        filter=mod_res.Filter(name=v.filter, words=["hello"]),
        update_mask=mask(paths=["words"])), metadata=md),
    "DeleteFilter": lambda c, v, md: c.moderation.DeleteFilter(mod_pb.DeleteFilterRequest(
        name=v.filter), metadata=md),
    "GetSendHook": lambda c, v, md: c.moderation.GetSendHook(mod_pb.GetSendHookRequest(
        name=f"{v.app.name}/sendHook"), metadata=md),
    "UpdateSendHook": lambda c, v, md: c.moderation.UpdateSendHook(
        mod_pb.UpdateSendHookRequest(send_hook=mod_res.SendHook(
            name=f"{v.app.name}/sendHook", url="https://intruder.example/hook"),
            update_mask=mask(paths=["url"]), allow_missing=True), metadata=md),
    "DeleteSendHook": lambda c, v, md: c.moderation.DeleteSendHook(
        mod_pb.DeleteSendHookRequest(name=f"{v.app.name}/sendHook"), metadata=md),
    "GetPermissionPolicy": lambda c, v, md: c.moderation.GetPermissionPolicy(
        mod_pb.GetPermissionPolicyRequest(name=f"{v.app.name}/permissionPolicy"), metadata=md),
    "UpdatePermissionPolicy": lambda c, v, md: c.moderation.UpdatePermissionPolicy(
        mod_pb.UpdatePermissionPolicyRequest(policy=mod_res.PermissionPolicy(
            name=f"{v.app.name}/permissionPolicy", custom_roles=["intruder"])), metadata=md),
}
USER_ONLY = {"JoinConversation", "LeaveConversation", "AddReaction", "RemoveReaction",
             "MarkRead", "MarkDelivered", "Subscribe", "SendTyping", "SetPresence"}
# API key and operator only.
USER_REFUSED = {"CreateUser", "ListUsers", "DeleteUser", "CreateFilter", "GetFilter",
                "ListFilters", "UpdateFilter", "DeleteFilter", "GetSendHook", "UpdateSendHook",
                "DeleteSendHook", "GetPermissionPolicy", "UpdatePermissionPolicy"}


@pytest.fixture
async def victim(client: Client, app: AppHandle) -> Victim:
    alice = await person(client, app.app_id, app.api_key, "alice")
    bob = await person(client, app.app_id, app.api_key, "bob")
    await person(client, app.app_id, app.api_key, "carol")
    group = await alice.create(GROUP, ("bob",))
    channel = await alice.create(CHANNEL)
    message = (await alice.send(group.name, "private")).message.name
    restriction = (await client.moderation.CreateRestriction(mod_pb.CreateRestrictionRequest(
        parent=app.name, restriction=mod_res.Restriction(
            user_id="bob", conversation=group.name, type=mod_res.Restriction.TYPE_MUTE)),
        metadata=app.auth)).restriction.name
    flag = (await client.moderation.CreateFlag(mod_pb.CreateFlagRequest(
        parent=app.name, message=message, reason=mod_res.Report.REASON_SPAM),
        metadata=bob.auth)).flag.name
    content_filter = (await client.moderation.CreateFilter(mod_pb.CreateFilterRequest(
        parent=app.name, filter_id="words", filter=mod_res.Filter(
            words=["darn"], action=mod_res.Filter.ACTION_MASK)), metadata=app.auth)).filter.name
    return Victim(app, alice, group.name, channel.name, message, restriction, flag,
                  content_filter)


async def snapshot(client: Client, v: Victim) -> tuple[bytes, ...]:
    """Everything an attempt could have changed, as the app's backend sees it."""
    md = v.app.auth
    calls = [
        client.users.ListUsers(user_pb.ListUsersRequest(parent=v.app.name), metadata=md),
        client.users.ListBlocks(user_pb.ListBlocksRequest(parent=v.alice.name), metadata=md),
        client.conversations.GetConversation(conv_pb.GetConversationRequest(name=v.group),
                                             metadata=md),
        client.conversations.ListMembers(conv_pb.ListMembersRequest(parent=v.group),
                                         metadata=md),
        client.conversations.ListMembers(conv_pb.ListMembersRequest(parent=v.channel),
                                         metadata=md),
        client.messages.ListMessages(msg_pb.ListMessagesRequest(parent=v.group), metadata=md),
        client.conversations.ListConversations(conv_pb.ListConversationsRequest(
            parent=v.alice.name), metadata=md),
        client.moderation.ListRestrictions(mod_pb.ListRestrictionsRequest(parent=v.app.name),
                                           metadata=md),
        client.moderation.ListFlags(mod_pb.ListFlagsRequest(parent=v.app.name), metadata=md),
        client.moderation.ListFilters(mod_pb.ListFiltersRequest(parent=v.app.name),
                                      metadata=md),
        client.moderation.GetPermissionPolicy(mod_pb.GetPermissionPolicyRequest(
            name=f"{v.app.name}/permissionPolicy"), metadata=md),
    ]
    return tuple([(await call).SerializeToString(deterministic=True) for call in calls])


def test_every_chat_rpc_is_attempted() -> None:
    rpcs = {method.name for module, name in (
        (user_pb, "UsersService"), (conv_pb, "ConversationsService"),
        (msg_pb, "MessagesService"), (rt_pb, "RealtimeService"),
        (mod_pb, "ModerationService"))
        for method in module.DESCRIPTOR.services_by_name[name].methods}
    assert set(ATTEMPTS) == rpcs


@pytest.mark.parametrize("rpc", sorted(set(ATTEMPTS) - USER_ONLY))
async def test_api_key_of_another_app(client: Client, victim: Victim, other_app: AppHandle,
                                      rpc: str) -> None:
    before = await snapshot(client, victim)
    await expect_error(ATTEMPTS[rpc](client, victim, other_app.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    assert await snapshot(client, victim) == before


@pytest.mark.parametrize("rpc", sorted(set(ATTEMPTS) - USER_REFUSED))
async def test_user_of_another_app(client: Client, victim: Victim, other_app: AppHandle,
                                   rpc: str) -> None:
    # Same user id as the victim: ids are per app, so this is someone else entirely.
    intruder = await person(client, other_app.app_id, other_app.api_key, "alice")
    before = await snapshot(client, victim)
    await expect_error(ATTEMPTS[rpc](client, victim, intruder.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    assert await snapshot(client, victim) == before
