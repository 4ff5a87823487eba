"""The chat core end to end: two users of one app, one of another, a running server."""

from __future__ import annotations

import asyncio

import grpc
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import field_mask_pb2

from tests.conftest import AppHandle, expect_error
from tests.support.chat import CHANNEL, DIRECT, GROUP, Person, inbox_order, person
from tests.support.client import Client

NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


async def test_a_conversation_from_first_message_to_read(alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",), title="Lunch")
    assert group.membership.role == conv_res.Member.ROLE_OWNER
    assert group.member_count == 2 and group.creator_id == "alice"
    sent = await alice.send(group.name, "Pizza at noon?")
    assert sent.created and sent.message.sequence == 1
    assert sent.message.sender_id == "alice"

    inbox = await bob.inbox()
    assert [c.name for c in inbox.conversations] == [group.name]
    mine = inbox.conversations[0]
    assert mine.membership.unread_count == 1 and mine.membership.role == conv_res.Member.ROLE_MEMBER
    assert mine.last_message.text == "Pizza at noon?"
    assert mine.last_message.sender_id == "alice"
    assert await bob.unread() == (1, 1)

    listed = await bob.messages(group.name)
    assert [m.text for m in listed.messages] == ["Pizza at noon?"]
    assert not listed.has_more_before and not listed.has_more_after
    read = await bob.mark_read(group.name)
    assert (read.read_sequence, read.unread_count) == (1, 0)
    assert await bob.unread() == (0, 0)

    receipts = await alice.client.messages.ListReceipts(
        msg_pb.ListReceiptsRequest(parent=sent.message.name), metadata=alice.auth)
    assert [(r.user_id, r.read, r.delivered) for r in receipts.receipts] == [("bob", True, True)]
    assert (receipts.read_count, receipts.delivered_count) == (1, 1)

    reply = await bob.send(group.name, "Yes!")
    assert reply.message.sequence == 2
    assert await alice.unread() == (1, 1)


async def test_retrying_a_send_returns_the_first_message(alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    first = await alice.send(group.name, "once", request_id="send-1")
    again = await alice.send(group.name, "once (retried)", request_id="send-1")
    assert first.created and not again.created
    assert again.message == first.message
    assert (await bob.send(group.name, "mine", request_id="send-1")).message.sequence == 2
    assert [m.sequence for m in (await bob.messages(group.name)).messages] == [1, 2]
    assert await bob.unread() == (0, 0)  # Bob's send read Alice's message


async def test_fifty_concurrent_senders_get_one_to_fifty(
        client: Client, app: AppHandle, alice: Person) -> None:
    channel = await alice.create(CHANNEL)
    senders = await asyncio.gather(*[person(client, app.app_id, app.api_key, f"s{i}")
                                     for i in range(50)])
    for sender in senders:
        await client.conversations.JoinConversation(
            conv_pb.JoinConversationRequest(name=channel.name), metadata=sender.auth)
    sent = await asyncio.gather(*[s.send(channel.name, f"from {s.user_id}") for s in senders])
    assert sorted(r.message.sequence for r in sent) == list(range(1, 51))
    listed = await alice.messages(channel.name, page_size=200)
    assert [m.sequence for m in listed.messages] == list(range(1, 51))
    assert (await alice.unread())[0] == 50


async def test_edit_history_reactions_and_threads(alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    root = (await alice.send(group.name, "Draft")).message
    edited = await alice.client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=root.name, text="Final"),
        update_mask=field_mask_pb2.FieldMask(paths=["text"])), metadata=alice.auth)
    assert edited.message.text == "Final" and edited.message.HasField("edit_time")
    revisions = await bob.client.messages.ListMessageRevisions(
        msg_pb.ListMessageRevisionsRequest(name=root.name), metadata=bob.auth)
    assert [r.text for r in revisions.revisions] == ["Draft", "Final"]
    await expect_error(bob.client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=root.name, text="Hijack"),
        update_mask=field_mask_pb2.FieldMask(paths=["text"])), metadata=bob.auth),
        DENIED, "NOT_AUTHOR")

    reacted = await bob.client.messages.AddReaction(
        msg_pb.AddReactionRequest(name=root.name, emoji="👍"), metadata=bob.auth)
    assert [(r.emoji, r.count, r.reacted_by_me) for r in reacted.message.reactions] == [
        ("👍", 1, True)]
    as_alice = await alice.client.messages.GetMessage(msg_pb.GetMessageRequest(name=root.name),
                                                      metadata=alice.auth)
    assert [(r.emoji, r.count, r.reacted_by_me) for r in as_alice.message.reactions] == [
        ("👍", 1, False)]
    who = await alice.client.messages.ListReactions(
        msg_pb.ListReactionsRequest(parent=root.name), metadata=alice.auth)
    assert [(r.user_id, r.emoji) for r in who.reactions] == [("bob", "👍")]
    removed = await bob.client.messages.RemoveReaction(
        msg_pb.RemoveReactionRequest(name=root.name, emoji="👍"), metadata=bob.auth)
    assert list(removed.message.reactions) == []

    reply = await bob.send(group.name, "In thread", thread_root_sequence=root.sequence)
    assert reply.message.thread_root_sequence == root.sequence
    top = await alice.messages(group.name)
    assert [m.text for m in top.messages] == ["Final"]
    assert top.messages[0].reply_count == 1
    thread = await alice.messages(group.name, thread_root_sequence=root.sequence)
    assert [m.text for m in thread.messages] == ["In thread"]
    await expect_error(
        alice.send(group.name, "nested", thread_root_sequence=reply.message.sequence),
        grpc.StatusCode.INVALID_ARGUMENT, "THREAD_ROOT_INVALID")


async def test_mentions_resolve_to_users(alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    sent = await alice.send(group.name, "@bob look", mention_ids=["bob"])
    assert [(m.user_id, m.display_name) for m in sent.message.mentions] == [("bob", "Bob B.")]
    got = await expect_error(alice.send(group.name, "@ghost", mention_ids=["ghost"]),
                             grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    assert "message.mention_ids" in got.field_violations


async def test_deleting_leaves_a_tombstone_and_fixes_unread(
        alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    for text in ("one", "two", "three"):
        await alice.send(group.name, text)
    await alice.client.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{group.name}/members/carol",
                               role=conv_res.Member.ROLE_MODERATOR),
        update_mask=field_mask_pb2.FieldMask(paths=["role"])), metadata=alice.auth)
    second = f"{group.name}/messages/2"
    await expect_error(bob.client.messages.DeleteMessage(
        msg_pb.DeleteMessageRequest(name=second), metadata=bob.auth), DENIED, "PERMISSION_MISSING")
    deleted = await carol.client.messages.DeleteMessage(  # moderators may
        msg_pb.DeleteMessageRequest(name=second), metadata=carol.auth)
    assert deleted.message.state == msg_res.Message.STATE_DELETED
    assert deleted.message.text == "" and deleted.message.HasField("delete_time")
    listed = await bob.messages(group.name)
    assert [(m.sequence, m.state) for m in listed.messages] == [
        (1, msg_res.Message.STATE_ACTIVE), (2, msg_res.Message.STATE_DELETED),
        (3, msg_res.Message.STATE_ACTIVE)]
    assert (await bob.unread())[0] == 2
    await expect_error(bob.client.messages.AddReaction(
        msg_pb.AddReactionRequest(name=second, emoji="👍"), metadata=bob.auth),
        PRECONDITION, "MESSAGE_DELETED")
    own = await alice.client.messages.DeleteMessage(  # authors may delete their own
        msg_pb.DeleteMessageRequest(name=f"{group.name}/messages/3"), metadata=alice.auth)
    assert own.message.state == msg_res.Message.STATE_DELETED
    inbox = await bob.inbox()
    assert inbox.conversations[0].last_message.deleted


async def test_direct_conversations_are_unique_and_respect_blocks(
        alice: Person, bob: Person) -> None:
    first = await alice.create(DIRECT, ("bob",))
    again = await bob.client.conversations.CreateConversation(conv_pb.CreateConversationRequest(
        parent=f"apps/{bob.app_id}", conversation=conv_res.Conversation(kind=DIRECT),
        member_ids=["alice"]), metadata=bob.auth)
    assert again.conversation.name == first.name and not again.created
    await alice.send(first.name, "hi")
    await bob.client.users.CreateBlock(user_pb.CreateBlockRequest(
        parent=bob.name, block=user_res.Block(blocked_user_id="alice")), metadata=bob.auth)
    await expect_error(alice.send(first.name, "hello?"), DENIED, "USER_BLOCKED")
    await expect_error(bob.send(first.name, "bye"), DENIED, "USER_BLOCKED")
    blocks = await bob.client.users.ListBlocks(user_pb.ListBlocksRequest(parent=bob.name),
                                               metadata=bob.auth)
    assert [b.blocked_user_id for b in blocks.blocks] == ["alice"]
    await bob.client.users.DeleteBlock(user_pb.DeleteBlockRequest(
        name=f"{bob.name}/blocks/alice"), metadata=bob.auth)
    assert (await alice.send(first.name, "hello again")).message.sequence == 2
    await expect_error(alice.client.conversations.LeaveConversation(
        conv_pb.LeaveConversationRequest(name=first.name), metadata=alice.auth),
        PRECONDITION, "WRONG_CONVERSATION_KIND")


async def test_private_conversations_do_not_leak(
        alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    missing = alice.conversation("does-not-exist")
    for target in (group.name, missing):  # the same answer, existing or not
        await expect_error(carol.client.conversations.GetConversation(
            conv_pb.GetConversationRequest(name=target), metadata=carol.auth),
            NOT_FOUND, "RESOURCE_NOT_FOUND")
        await expect_error(carol.messages(target), NOT_FOUND, "RESOURCE_NOT_FOUND")
        await expect_error(carol.send(target, "let me in"), NOT_FOUND, "RESOURCE_NOT_FOUND")
        await expect_error(carol.client.conversations.JoinConversation(
            conv_pb.JoinConversationRequest(name=target), metadata=carol.auth),
            NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert [c.name for c in (await carol.inbox()).conversations] == []


async def test_users_of_another_app_get_nothing(alice: Person, mallory: Person) -> None:
    group = await alice.create(GROUP)
    for call in (
        mallory.client.conversations.GetConversation(
            conv_pb.GetConversationRequest(name=group.name), metadata=mallory.auth),
        mallory.messages(group.name),
        mallory.send(group.name, "hi"),
        mallory.client.conversations.ListConversations(
            conv_pb.ListConversationsRequest(parent=alice.name), metadata=mallory.auth),
        mallory.client.users.GetUser(user_pb.GetUserRequest(name=alice.name),
                                     metadata=mallory.auth),
    ):
        await expect_error(call, DENIED, "APP_MISMATCH")


async def test_channels_are_public_but_members_only_inside(
        alice: Person, bob: Person) -> None:
    channel = await alice.create(CHANNEL, title="News")
    await alice.send(channel.name, "Welcome")
    seen = await bob.client.conversations.GetConversation(
        conv_pb.GetConversationRequest(name=channel.name), metadata=bob.auth)
    assert not seen.conversation.HasField("membership")
    listed = await bob.client.conversations.ListChannels(
        conv_pb.ListChannelsRequest(parent=f"apps/{bob.app_id}"), metadata=bob.auth)
    assert channel.name in [c.name for c in listed.conversations]
    await expect_error(bob.messages(channel.name), DENIED, "NOT_A_MEMBER")
    await expect_error(bob.send(channel.name, "hi"), DENIED, "NOT_A_MEMBER")
    joined = await bob.client.conversations.JoinConversation(
        conv_pb.JoinConversationRequest(name=channel.name), metadata=bob.auth)
    assert joined.member.read_sequence == 1 and joined.member.unread_count == 0
    assert [m.text for m in (await bob.messages(channel.name)).messages] == ["Welcome"]
    await bob.client.conversations.LeaveConversation(
        conv_pb.LeaveConversationRequest(name=channel.name), metadata=bob.auth)
    await expect_error(bob.messages(channel.name), DENIED, "NOT_A_MEMBER")


async def test_roles_freeze_and_membership_rules(
        alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    add_carol = conv_pb.AddMembersRequest(conversation=group.name, user_ids=["carol"])
    await expect_error(bob.client.conversations.AddMembers(add_carol, metadata=bob.auth),
                       DENIED, "PERMISSION_MISSING")
    promote = conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{group.name}/members/bob",
                               role=conv_res.Member.ROLE_ADMIN),
        update_mask=field_mask_pb2.FieldMask(paths=["role"]))
    await alice.client.conversations.UpdateMember(promote, metadata=alice.auth)
    added = await bob.client.conversations.AddMembers(add_carol, metadata=bob.auth)
    assert [m.user_id for m in added.members] == ["carol"]
    await expect_error(bob.client.conversations.RemoveMember(
        conv_pb.RemoveMemberRequest(name=f"{group.name}/members/alice"), metadata=bob.auth),
        DENIED, "ROLE_REQUIRED")
    await expect_error(carol.client.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{group.name}/members/bob", muted=True),
        update_mask=field_mask_pb2.FieldMask(paths=["muted"])), metadata=carol.auth),
        DENIED, "USER_MISMATCH")

    freeze = conv_pb.UpdateConversationRequest(
        conversation=conv_res.Conversation(name=group.name, frozen=True),
        update_mask=field_mask_pb2.FieldMask(paths=["frozen"]))
    await expect_error(carol.client.conversations.UpdateConversation(freeze,
                                                                     metadata=carol.auth),
                       DENIED, "PERMISSION_MISSING")
    frozen = await bob.client.conversations.UpdateConversation(freeze, metadata=bob.auth)
    assert frozen.conversation.frozen
    await expect_error(carol.send(group.name, "hello?"), PRECONDITION, "CONVERSATION_FROZEN")
    assert (await bob.send(group.name, "admins may")).created

    await alice.client.conversations.LeaveConversation(
        conv_pb.LeaveConversationRequest(name=group.name), metadata=alice.auth)
    heir = await bob.client.conversations.GetMember(
        conv_pb.GetMemberRequest(name=f"{group.name}/members/bob"), metadata=bob.auth)
    assert heir.member.role == conv_res.Member.ROLE_OWNER
    await expect_error(alice.messages(group.name), NOT_FOUND, "RESOURCE_NOT_FOUND")

    await bob.client.conversations.DeleteConversation(
        conv_pb.DeleteConversationRequest(name=group.name), metadata=bob.auth)
    await expect_error(carol.messages(group.name), NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert [c.name for c in (await carol.inbox()).conversations] == []


async def test_member_settings_shape_the_inbox(alice: Person, bob: Person) -> None:
    first = await alice.create(GROUP, ("bob",))
    second = await alice.create(GROUP, ("bob",))
    third = await alice.create(GROUP, ("bob",))
    for conversation in (first, second, third):
        await alice.send(conversation.name, "ping")

    async def setting(conversation: conv_res.Conversation, **flags: bool) -> None:
        await bob.client.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
            member=conv_res.Member(name=f"{conversation.name}/members/bob", **flags),
            update_mask=field_mask_pb2.FieldMask(paths=list(flags))), metadata=bob.auth)

    await setting(first, pinned=True)
    await setting(second, archived=True)
    await setting(third, muted=True)
    assert [c.name for c in (await bob.inbox()).conversations] == [first.name, third.name]
    everything = (await bob.inbox(include_archived=True)).conversations
    assert [c.name for c in everything] == inbox_order(everything)
    assert everything[0].name == first.name  # pinned
    assert {c.name for c in everything} == {first.name, second.name, third.name}
    assert await bob.unread() == (2, 2)  # the muted one is not counted


async def test_deleted_users_leave_their_messages(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    await bob.send(group.name, "soon gone")
    deleted = await client.users.DeleteUser(user_pb.DeleteUserRequest(name=bob.name),
                                            metadata=app.auth)
    assert deleted.user.state == user_res.User.STATE_DELETED
    listed = await alice.messages(group.name)
    assert listed.messages[0].sender_deleted and listed.messages[0].text == "soon gone"
    await expect_error(bob.inbox(), grpc.StatusCode.UNAUTHENTICATED, "SESSION_REVOKED")
    await expect_error(person(client, app.app_id, app.api_key, "bob"),
                       PRECONDITION, "USER_DELETED")


async def test_message_list_positions_over_the_wire(alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    for n in range(1, 8):
        await alice.send(group.name, f"m{n}")

    async def sequences(**position: int) -> tuple[list[int], bool, bool]:
        page = await bob.messages(group.name, page_size=3, **position)
        return [m.sequence for m in page.messages], page.has_more_before, page.has_more_after

    assert await sequences() == ([5, 6, 7], True, False)
    assert await sequences(before_sequence=5) == ([2, 3, 4], True, True)
    assert await sequences(after_sequence=0) == ([1, 2, 3], False, True)
    assert await sequences(around_sequence=4) == ([3, 4, 5], True, True)
    empty = await alice.create(GROUP)
    page = await alice.messages(empty.name)
    assert (list(page.messages), page.has_more_before, page.has_more_after) == ([], False,
                                                                                 False)


async def test_inbox_pages_exactly(alice: Person, bob: Person) -> None:
    names = []
    for _ in range(4):
        conversation = await alice.create(GROUP, ("bob",))
        names.append(conversation.name)
        await alice.send(conversation.name, "hi")
    seen: list[conv_res.Conversation] = []
    token = ""
    while True:
        page = await bob.inbox(page_size=2, page_token=token)
        seen += page.conversations
        token = page.next_page_token
        if not token:
            break
    assert sorted(c.name for c in seen) == sorted(names)  # each once
    assert [c.name for c in seen] == inbox_order(seen)  # most recent activity first


async def test_delivery_shows_before_reading(alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    sent = (await alice.send(group.name, "did you get this?")).message
    await bob.client.messages.MarkDelivered(msg_pb.MarkDeliveredRequest(
        conversation=group.name), metadata=bob.auth)
    receipts = await alice.client.messages.ListReceipts(
        msg_pb.ListReceiptsRequest(parent=sent.name), metadata=alice.auth)
    assert [(r.user_id, r.delivered, r.read) for r in receipts.receipts] == [
        ("bob", True, False), ("carol", False, False)]
    assert (receipts.read_count, receipts.delivered_count) == (0, 1)


async def test_reaction_limits(alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    sent = (await alice.send(group.name, "react")).message
    for n in range(10):
        await bob.client.messages.AddReaction(
            msg_pb.AddReactionRequest(name=sent.name, emoji=f":e{n}:"), metadata=bob.auth)
    got = await expect_error(bob.client.messages.AddReaction(
        msg_pb.AddReactionRequest(name=sent.name, emoji=":one-too-many:"), metadata=bob.auth),
        PRECONDITION, "LIMIT_EXCEEDED")
    assert got.metadata["maximum"] == "10"
    message = await alice.client.messages.GetMessage(msg_pb.GetMessageRequest(name=sent.name),
                                                     metadata=alice.auth)
    assert len(message.message.reactions) == 10


async def test_users_are_listed_and_upserted_idempotently(
        client: Client, app: AppHandle) -> None:
    upsert = user_pb.UpdateUserRequest(
        user=user_res.User(name=f"{app.name}/users/zed", display_name="Zed"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]), allow_missing=True)
    first = await client.users.UpdateUser(upsert, metadata=app.auth)
    again = await client.users.UpdateUser(upsert, metadata=app.auth)
    assert first.user.create_time == again.user.create_time
    await expect_error(client.users.CreateUser(user_pb.CreateUserRequest(
        parent=app.name, user_id="zed"), metadata=app.auth),
        grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")
    for user_id in ("yan", "xia"):
        await client.users.CreateUser(user_pb.CreateUserRequest(parent=app.name,
                                                                user_id=user_id),
                                      metadata=app.auth)
    page = await client.users.ListUsers(user_pb.ListUsersRequest(parent=app.name, page_size=2),
                                        metadata=app.auth)
    rest = await client.users.ListUsers(user_pb.ListUsersRequest(
        parent=app.name, page_size=2, page_token=page.next_page_token), metadata=app.auth)
    listed = [*page.users, *rest.users]
    assert sorted(u.name.rsplit("/", 1)[1] for u in listed) == ["xia", "yan", "zed"]
    order = [(u.create_time.ToMilliseconds(), u.name) for u in listed]
    assert order == sorted(order) and rest.next_page_token == ""  # oldest first
    await expect_error(client.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=f"{app.name}/users/nobody", display_name="N"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), metadata=app.auth),
        NOT_FOUND, "RESOURCE_NOT_FOUND")
