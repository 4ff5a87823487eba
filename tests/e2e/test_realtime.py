"""Real-time streams end to end, on a running server (both store engines)."""

from __future__ import annotations

import grpc
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.realtime.v1 import realtime_service_pb2 as rt_pb

from tests.conftest import AppHandle, expect_error
from tests.support.chat import GROUP, Person
from tests.support.client import details
from tests.support.stream import Stream, subscribed


async def marker(p: Person) -> str:
    """Something only `p` sees: a conversation of their own; its name."""
    alone = await p.create(GROUP)
    return alone.name


async def test_members_receive_every_change_in_order(alice: Person, bob: Person,
                                                     carol: Person) -> None:
    streams = [await subscribed(p) for p in (alice, bob, carol)]
    group = await alice.create(GROUP, ("bob",), title="Plans")
    sent = await alice.send(group.name, "hello")
    await bob.client.messages.AddReaction(
        msg_pb.AddReactionRequest(name=sent.message.name, emoji="👍"), metadata=bob.auth)
    await alice.client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message=sent.message.__class__(name=sent.message.name, text="hello!"),
        update_mask={"paths": ["text"]}), metadata=alice.auth)
    await bob.mark_read(group.name)
    expected = ["conversation.created", "message.created", "reaction.added",
                "message.updated", "read.updated"]
    for stream in streams[:2]:
        got = await stream.events(5)
        assert [e.type for e in got] == expected
        assert got[1].message_created.text == "hello"
        assert got[2].reaction_added.emoji == "👍" and got[2].user_id == "bob"
        assert got[3].message_updated.text == "hello!"
        assert got[4].read_updated.sequence == 1
        assert all(e.conversation == group.name for e in got)
        positions = [int(e.name.rsplit("/", 1)[1]) for e in got]
        assert positions == sorted(positions)
    own = await marker(carol)
    first = await streams[2].event()  # carol saw nothing of alice and bob's group
    assert (first.type, first.conversation) == ("conversation.created", own)
    for stream in streams:
        await stream.close()


async def test_resuming_delivers_exactly_what_was_missed(alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    stream = await subscribed(bob)
    for text in ("one", "two"):
        await alice.send(group.name, text)
    seen = await stream.events(2)
    token = stream.token
    await stream.close()
    for text in ("three", "four", "five"):
        await alice.send(group.name, text)
    await alice.client.messages.DeleteMessage(
        msg_pb.DeleteMessageRequest(name=f"{group.name}/messages/3"), metadata=alice.auth)
    resumed = Stream(bob, token)
    missed = await resumed.ready()
    assert [(e.type, e.message_created.text or e.message_deleted.name) for e in missed] == [
        ("message.created", "three"), ("message.created", "four"),
        ("message.created", "five"), ("message.deleted", f"{group.name}/messages/3")]
    assert {e.name for e in missed}.isdisjoint(e.name for e in seen)
    await alice.send(group.name, "live")
    live = await resumed.event()
    assert live.message_created.text == "live"  # no gap, no repeat between replay and live
    # Resuming from the very same token again replays the same events, in the same order.
    again = Stream(bob, token)
    assert [e.name for e in await again.ready()] == [e.name for e in [*missed, live]]
    await resumed.close()
    await again.close()


async def test_membership_changes_what_the_stream_carries_at_once(
        alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ())
    stream = await subscribed(bob)
    await alice.send(group.name, "before bob")
    await alice.client.conversations.AddMembers(
        conv_pb.AddMembersRequest(conversation=group.name, user_ids=["bob"]),
        metadata=alice.auth)
    await alice.send(group.name, "for bob")
    added = await stream.event()
    assert (added.type, added.member_added.user_id) == ("member.added", "bob")
    assert (await stream.event()).message_created.text == "for bob"
    await alice.client.conversations.RemoveMember(
        conv_pb.RemoveMemberRequest(name=f"{group.name}/members/bob"), metadata=alice.auth)
    removed = await stream.event()
    assert (removed.type, removed.member_removed.user_id) == ("member.removed", "bob")
    await alice.send(group.name, "after bob")
    own = await marker(bob)
    assert (await stream.event()).conversation == own  # nothing of the group came between
    token = stream.token
    await stream.close()
    # A replay from before the removal shows what bob saw then, and nothing after it.
    replay = Stream(bob, token)
    assert await replay.ready() == []
    await replay.close()


async def test_own_settings_reach_only_the_member(alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    streams = {p.user_id: await subscribed(p) for p in (alice, bob)}
    await bob.client.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{group.name}/members/bob", muted=True),
        update_mask={"paths": ["muted"]}), metadata=bob.auth)
    mine = await streams["bob"].event()
    assert (mine.type, mine.member_updated.muted) == ("member.updated", True)
    own = await marker(alice)
    assert (await streams["alice"].event()).conversation == own
    for stream in streams.values():
        await stream.close()


async def first_item(person: Person, name: str, metadata: object = None) -> None:
    call = person.client.realtime.Subscribe(rt_pb.SubscribeRequest(name=name),
                                            metadata=metadata or person.auth)
    async for _ in call:
        return


async def test_a_stream_is_for_its_user_only(alice: Person, bob: Person, mallory: Person,
                                             app: AppHandle) -> None:
    await expect_error(first_item(alice, bob.name), grpc.StatusCode.PERMISSION_DENIED,
                       "USER_MISMATCH")
    await expect_error(first_item(mallory, bob.name), grpc.StatusCode.PERMISSION_DENIED,
                       "APP_MISMATCH")
    await expect_error(first_item(alice, alice.name, app.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    await expect_error(alice.client.realtime.SetPresence(
        rt_pb.SetPresenceRequest(name=bob.name, status=rt_pb.Presence.STATUS_AWAY),
        metadata=alice.auth), grpc.StatusCode.PERMISSION_DENIED, "USER_MISMATCH")


async def test_bad_tokens_get_clear_statuses(alice: Person, mallory: Person) -> None:
    stream = await subscribed(alice)
    await alice.create(GROUP)
    await stream.event()
    token = stream.token
    await stream.close()
    error = await Stream(alice, "not-a-token").error()
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A token of another app's log, or past the end of this one: each says so; resync.
    ahead = token.rsplit(".", 1)[0] + ".999999"
    for owner, bad, code, reason in (
            (mallory, token, grpc.StatusCode.INVALID_ARGUMENT, "RESUME_TOKEN_FOREIGN"),
            (alice, ahead, grpc.StatusCode.OUT_OF_RANGE, "RESUME_TOKEN_AHEAD")):
        got = details(await Stream(owner, bad).error())
        assert (got.code, got.reason) == (code, reason)
        assert "resync" in got.message


async def test_typing_reaches_the_other_members(alice: Person, bob: Person,
                                                carol: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    stream = await subscribed(bob)
    sent = await alice.client.realtime.SendTyping(
        rt_pb.SendTypingRequest(conversation=group.name, typing=True), metadata=alice.auth)
    typing = (await stream.next("typing")).typing
    assert (typing.user_id, typing.typing, typing.conversation) == ("alice", True, group.name)
    assert typing.expire_time == sent.expire_time
    await expect_error(carol.client.realtime.SendTyping(
        rt_pb.SendTypingRequest(conversation=group.name, typing=True), metadata=carol.auth),
        grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    await stream.close()


async def test_presence_follows_devices(alice: Person, bob: Person) -> None:
    await alice.create(GROUP, ("bob",))
    watcher = await subscribed(bob)
    phone = await subscribed(alice, device_id="phone")
    online = (await watcher.next("presence")).presence
    assert (online.user_id, online.status) == ("alice", rt_pb.Presence.STATUS_ONLINE)
    answer = await alice.client.realtime.SetPresence(
        rt_pb.SetPresenceRequest(name=alice.name, status=rt_pb.Presence.STATUS_AWAY),
        metadata=alice.auth)
    assert answer.presence.status == rt_pb.Presence.STATUS_AWAY
    assert (await watcher.next("presence")).presence.status == rt_pb.Presence.STATUS_AWAY
    laptop = await subscribed(alice, device_id="laptop")  # a new device comes online
    assert (await watcher.next("presence")).presence.status == rt_pb.Presence.STATUS_ONLINE
    await laptop.close()
    assert (await watcher.next("presence")).presence.status == rt_pb.Presence.STATUS_AWAY
    got = await bob.client.realtime.BatchGetPresences(rt_pb.BatchGetPresencesRequest(
        parent=f"apps/{bob.app_id}", names=[f"{alice.name}/presence", f"{bob.name}/presence",
                                            f"apps/{bob.app_id}/users/nobody/presence"]),
        metadata=bob.auth)
    assert [(p.user_id, p.status) for p in got.presences] == [
        ("alice", rt_pb.Presence.STATUS_AWAY), ("bob", rt_pb.Presence.STATUS_ONLINE),
        ("nobody", rt_pb.Presence.STATUS_OFFLINE)]
    await phone.close()
    gone = (await watcher.next("presence")).presence
    assert gone.status == rt_pb.Presence.STATUS_OFFLINE and gone.HasField("last_seen_time")
    got = await bob.client.realtime.BatchGetPresences(rt_pb.BatchGetPresencesRequest(
        parent=f"apps/{bob.app_id}", names=[f"{alice.name}/presence"]), metadata=bob.auth)
    assert got.presences[0].last_seen_time == gone.last_seen_time
    await expect_error(bob.client.realtime.BatchGetPresences(rt_pb.BatchGetPresencesRequest(
        parent=f"apps/{bob.app_id}", names=["apps/other-app/users/x/presence"]),
        metadata=bob.auth), grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    await watcher.close()


async def test_idle_streams_get_heartbeats_with_a_usable_token(alice: Person,
                                                               bob: Person) -> None:
    stream = await subscribed(alice)
    await bob.create(GROUP)  # events of others move the app's log on
    beat = await stream.next("heartbeat")
    assert beat.heartbeat.HasField("time") and beat.resume_token
    await stream.close()
    resumed = Stream(alice, beat.resume_token)
    assert await resumed.ready() == []
    await resumed.close()


async def test_missed_events_come_as_one_batch_with_the_last_token(
        alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    stream = await subscribed(bob)
    await alice.send(group.name, "seen")
    await stream.event()
    token = stream.token
    await stream.close()
    for text in ("a", "b", "c"):
        await alice.send(group.name, text)
    call = bob.client.realtime.Subscribe(rt_pb.SubscribeRequest(name=bob.name,
                                                                resume_token=token),
                                         metadata=bob.auth)
    batch = await call.read()
    assert batch.WhichOneof("item") == "events"
    assert [e.message_created.text for e in batch.events.events] == ["a", "b", "c"]
    last = int(batch.events.events[-1].name.rsplit("/", 1)[1])
    assert batch.resume_token.endswith(f".{last}")
    assert (await call.read()).WhichOneof("item") == "ready"
    call.cancel()


async def test_open_streams_per_user_are_limited(alice: Person, bob: Person) -> None:
    streams = [await subscribed(alice) for _ in range(20)]  # the default limit
    refused = await Stream(alice).error()
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "20 open streams per user" in (refused.details() or "")
    other = await subscribed(bob)  # another user's budget is their own
    for stream in [*streams, other]:
        await stream.close()
