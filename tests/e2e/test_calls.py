"""Calls against the running server, on both stores: ringing every device of the rung,
answering on one, the state machine (answered, missed, declined, busy, canceled, one
call at a time, the mesh's limit, joining late, members removed and devices dropped),
the record in the conversation, signals relayed to one device only and resumed after
a stream cut, TURN credentials, and every rule tried by someone it must refuse. The
server's ring timeout and reconnect grace are 2 s here (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import time
import uuid

import grpc
import httpx
from caas.calls.v1 import calls_service_pb2 as pb
from caas.calls.v1 import resources_pb2 as res
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.events.v1 import events_pb2
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.webhooks.v1 import resources_pb2 as hook_res
from caas.webhooks.v1 import webhooks_service_pb2 as hook_pb
from google.protobuf import field_mask_pb2

from tests.conftest import AppHandle, CaasServer, expect_error
from tests.e2e.test_http import grpc_web_frame, grpc_web_frames
from tests.e2e.test_ops import GRPCURL
from tests.support.chat import CHANNEL, DIRECT, GROUP, Person, person
from tests.support.client import Client, bearer
from tests.support.stream import Stream, subscribed

FAILED = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND
VIDEO = res.Call.MEDIA_VIDEO
AUDIO = res.Call.MEDIA_AUDIO
P = res.Participant
SECRET = "calls-test-secret"
OFFER = res.SessionDescription(type=res.SessionDescription.TYPE_OFFER,
                               sdp="v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n")
ANSWER = res.SessionDescription(type=res.SessionDescription.TYPE_ANSWER,
                                sdp="v=0\r\no=- 2 2 IN IP4 0.0.0.0\r\n")


async def people(client: Client, app: AppHandle, *names: str) -> list[Person]:
    return [await person(client, app.app_id, app.api_key, name) for name in names]


async def start(caller: Person, conversation: str, device: str = "d1", media: int = AUDIO,
                invitees: tuple[str, ...] = (), request_id: str = "") -> pb.StartCallResponse:
    response: pb.StartCallResponse = await caller.client.calls.StartCall(pb.StartCallRequest(
        parent=conversation, media=media, device_id=device,  # type: ignore[arg-type]
        request_id=request_id or uuid.uuid4().hex, invitee_ids=list(invitees)),
        metadata=caller.auth)
    return response


async def accept(who: Person, call: str, device: str = "d1") -> pb.AcceptCallResponse:
    response: pb.AcceptCallResponse = await who.client.calls.AcceptCall(
        pb.AcceptCallRequest(name=call, device_id=device), metadata=who.auth)
    return response


async def leave(who: Person, call: str) -> res.Call:
    return (await who.client.calls.LeaveCall(pb.LeaveCallRequest(name=call),
                                             metadata=who.auth)).call


async def get(who: Person, call: str) -> res.Call:
    return (await who.client.calls.GetCall(pb.GetCallRequest(name=call),
                                           metadata=who.auth)).call


async def signal(who: Person, call: str, device: str, to: Person, to_device: str,
                 **body: object) -> pb.SendSignalResponse:
    response: pb.SendSignalResponse = await who.client.calls.SendSignal(pb.SendSignalRequest(
        call=call, device_id=device, to_user_id=to.user_id, to_device_id=to_device,
        **body), metadata=who.auth)
    return response


async def until(stream: Stream, *types: str) -> events_pb2.Event:
    """The stream's next durable event of one of `types` (others are skipped)."""
    while True:
        event = await stream.event()
        if event.type in types:
            return event


def states(call: res.Call) -> dict[str, int]:
    return {p.user_id: p.state for p in call.participants}


def candidate(n: int) -> res.IceCandidate:
    return res.IceCandidate(candidate=f"candidate:{n} 1 udp 2122260223 10.0.0.{n} 5000{n} typ host",
                            sdp_mid="0", sdp_m_line_index=0, username_fragment="abcd")


async def test_a_call_rings_every_device_is_answered_on_one_and_recorded(
        client: Client, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    direct = await alice.create(DIRECT, ("bob",))
    a1 = await subscribed(alice, device_id="a1")
    b1, b2 = await subscribed(bob, device_id="b1"), await subscribed(bob, device_id="b2")
    started = await start(alice, direct.name, "a1", VIDEO)
    call = started.call
    assert started.created and call.state == res.Call.STATE_RINGING
    assert call.caller_id == "alice" and call.media == VIDEO
    assert states(call) == {"alice": P.STATE_JOINED, "bob": P.STATE_RINGING}
    assert call.topology == res.Call.TOPOLOGY_MESH and call.max_participants == 4
    # Both of bob's devices ring, and alice's stream shows her call.
    for stream in (b1, b2, a1):
        rang = await until(stream, "call.started")
        assert rang.call_started.name == call.name and rang.user_id == "alice"
    # The ICE servers: STUN, and TURN with credentials coturn can check.
    stun, turn = started.ice_servers
    assert list(stun.urls) == ["stun:127.0.0.1:3478"] and not stun.username
    expiry, who = turn.username.split(":", 1)
    assert who == f"{app.app_id}/{call.name.rsplit('/', 1)[1]}/alice/a1"
    assert 3500 < int(expiry) - time.time() <= 3600
    assert turn.credential == base64.b64encode(hmac.new(
        SECRET.encode(), turn.username.encode(), hashlib.sha1).digest()).decode()
    # Bob answers on b1: the call is active; b2 hears he answered elsewhere.
    answered = await accept(bob, call.name, "b1")
    assert answered.call.state == res.Call.STATE_ACTIVE and answered.call.answer_time.seconds
    assert answered.ice_servers[1].username.endswith("/bob/b1")
    updated = await until(b2, "call.updated")
    bob_now = {p.user_id: p for p in updated.call_updated.participants}["bob"]
    assert (bob_now.state, bob_now.device_id) == (P.STATE_JOINED, "b1")
    # Signals: bob's b1 offers to alice's a1, trickles candidates, alice answers; each
    # reaches only the device it is addressed to, in order.
    await signal(bob, call.name, "b1", alice, "a1", description=OFFER)
    for n in range(3):
        await signal(bob, call.name, "b1", alice, "a1", candidate=candidate(n))
    await signal(bob, call.name, "b1", alice, "a1", candidate=res.IceCandidate())
    await signal(alice, call.name, "a1", bob, "b1", description=ANSWER)
    got = [(await until(a1, "call.signal")).call_signal for _ in range(5)]
    assert got[0].description == OFFER and got[0].from_device_id == "b1"
    assert [s.candidate.candidate for s in got[1:4]] == [candidate(n).candidate for n in range(3)]
    assert got[4].candidate.candidate == "" and got[4].to_device_id == "a1"
    answer = await until(b1, "call.signal")
    assert answer.call_signal.description == ANSWER and answer.user_id == "bob"
    # b2 gets none of them: its next event is alice hanging up.
    ended = await leave(alice, call.name)
    assert ended.state == res.Call.STATE_ENDED and ended.outcome == res.Call.OUTCOME_COMPLETED
    assert (call.version, answered.call.version, ended.version) == (1, 2, 3)
    assert (await b2.event()).type == "call.ended"
    assert ended.duration.ToMilliseconds() > 0
    record = {p.user_id: p for p in ended.participants}
    assert record["alice"].leave_reason == P.LEAVE_REASON_HUNG_UP
    assert record["bob"].leave_reason == P.LEAVE_REASON_CALL_ENDED
    assert all(p.state == P.STATE_LEFT and p.time_in_call.ToMilliseconds() > 0
               for p in ended.participants)
    # The record: a message of the conversation, and the call history.
    created = await until(b1, "message.created")
    assert created.message_created.call.name == call.name
    messages = (await bob.messages(direct.name)).messages
    assert messages[-1].call.outcome == res.Call.OUTCOME_COMPLETED
    assert messages[-1].sender_id == "alice" and messages[-1].text == ""
    assert (await get(bob, call.name)).record_sequence == messages[-1].sequence
    # A record is no one's to rewrite, not even its sender's; the app's backend neither.
    for who in (alice.auth, bearer(app.api_key)):
        await expect_error(client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
            message=msg_res.Message(name=messages[-1].name, text="it was great"),
            update_mask=field_mask_pb2.FieldMask(paths=["text"])), metadata=who),
            FAILED, "MESSAGE_NOT_EDITABLE")
    listed = await bob.client.calls.ListCalls(pb.ListCallsRequest(parent=direct.name),
                                              metadata=bob.auth)
    assert [c.name for c in listed.calls] == [call.name]
    inbox = (await bob.inbox()).conversations[0]
    assert inbox.last_message.text == "Video call"  # the preview
    for stream in (a1, b1, b2):
        await stream.close()


async def test_one_call_at_a_time_and_a_retried_start_starts_nothing(
        client: Client, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",))
    first = await start(alice, group.name, request_id="same")
    again = await start(alice, group.name, request_id="same")
    assert (again.call.name, again.created) == (first.call.name, False)
    refused = await expect_error(start(bob, group.name), FAILED, "CALL_IN_PROGRESS")
    assert refused.metadata["call"] == first.call.name
    # Alice is in a call: she cannot start another elsewhere.
    other = await alice.create(GROUP, ("bob",))
    busy = await expect_error(start(alice, other.name, "d2"), FAILED, "CALL_ALREADY_JOINED")
    assert (busy.metadata["call"], busy.metadata["device"]) == (first.call.name, "d1")
    await leave(alice, first.call.name)  # cancels it
    canceled = await get(bob, first.call.name)
    assert canceled.outcome == res.Call.OUTCOME_CANCELED and canceled.duration.seconds == 0
    assert states(canceled) == {"alice": P.STATE_LEFT, "bob": P.STATE_MISSED}
    second = await start(bob, group.name)
    assert second.created and second.call.name != first.call.name
    await expect_error(accept(alice, first.call.name), FAILED, "CALL_ENDED")


async def test_an_unanswered_call_is_missed_and_counts_as_unread(
        client: Client, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    direct = await alice.create(DIRECT, ("bob",))
    stream = await subscribed(bob, device_id="b1")
    caller = await subscribed(alice, device_id="d1")  # else dropped after the grace
    call = (await start(alice, direct.name)).call
    ended = await until(stream, "call.ended")  # the ring timeout: 2 s
    assert ended.call_ended.outcome == res.Call.OUTCOME_MISSED
    assert states(ended.call_ended) == {"alice": P.STATE_LEFT, "bob": P.STATE_MISSED}
    recorded = await until(stream, "message.created")
    assert recorded.message_created.call.name == call.name
    inbox = (await bob.inbox()).conversations[0]
    assert inbox.last_message.text == "Missed voice call"
    assert await bob.unread() == (1, 1)  # a missed call is news
    await stream.close()
    await caller.close()


async def test_declines_and_busy_end_an_unanswered_call(client: Client, app: AppHandle) -> None:
    alice, bob, carol, dave = await people(client, app, "alice", "bob", "carol", "dave")
    group = await alice.create(GROUP, ("bob", "carol"))
    call = (await start(alice, group.name)).call
    declined = await bob.client.calls.DeclineCall(pb.DeclineCallRequest(name=call.name),
                                                  metadata=bob.auth)
    assert declined.call.state == res.Call.STATE_RINGING  # carol still rings
    again = await bob.client.calls.DeclineCall(pb.DeclineCallRequest(name=call.name),
                                               metadata=bob.auth)
    assert again.call.state == res.Call.STATE_RINGING  # declining twice changes nothing
    busy = await carol.client.calls.DeclineCall(pb.DeclineCallRequest(name=call.name, busy=True),
                                                metadata=carol.auth)
    assert busy.call.outcome == res.Call.OUTCOME_DECLINED
    assert states(busy.call) == {"alice": P.STATE_LEFT, "bob": P.STATE_DECLINED,
                                 "carol": P.STATE_BUSY}
    # Someone in a call already is marked busy when rung.
    other = await dave.create(GROUP, ("carol",))
    call2 = (await start(dave, other.name, "d9")).call
    await accept(carol, call2.name, "c9")
    rung = await start(alice, group.name)
    assert states(rung.call)["carol"] == P.STATE_BUSY
    await bob.client.calls.DeclineCall(pb.DeclineCallRequest(name=rung.call.name, busy=True),
                                       metadata=bob.auth)
    assert (await get(alice, rung.call.name)).outcome == res.Call.OUTCOME_BUSY
    # A joined participant cannot decline: they leave.
    await expect_error(carol.client.calls.DeclineCall(
        pb.DeclineCallRequest(name=call2.name), metadata=carol.auth), FAILED,
        "CALL_ALREADY_JOINED")


async def test_a_group_call_is_a_mesh_of_at_most_four_and_members_join_late(
        client: Client, app: AppHandle) -> None:
    names = ("alice", "bob", "carol", "dave", "erin")
    alice, bob, carol, dave, erin = await people(client, app, *names)
    group = await alice.create(GROUP, names[1:])
    call = (await start(alice, group.name, invitees=("bob", "carol", "dave"))).call
    assert "erin" not in states(call)
    for who in (bob, carol, dave):
        await accept(who, call.name)
    full = await expect_error(accept(erin, call.name), FAILED, "LIMIT_EXCEEDED")
    assert full.metadata["maximum"] == "4"
    # Bob leaves; erin, never rung, joins late; the call goes on.
    after = await leave(bob, call.name)
    assert after.state == res.Call.STATE_ACTIVE
    joined = (await accept(erin, call.name, "e1")).call
    late = {p.user_id: p for p in joined.participants}["erin"]
    assert (late.state, late.invited, late.device_id) == (P.STATE_JOINED, False, "e1")
    # Bob comes back on another device once there is room again.
    await expect_error(accept(bob, call.name, "b2"), FAILED, "LIMIT_EXCEEDED")
    await leave(erin, call.name)
    rejoined = (await accept(bob, call.name, "b2")).call
    assert {p.user_id: p.device_id for p in rejoined.participants}["bob"] == "b2"
    # Everyone but one leaves: the call ends, completed.
    for who in (alice, carol):
        await leave(who, call.name)
    ended = await leave(dave, call.name)
    assert ended.outcome == res.Call.OUTCOME_COMPLETED
    assert {p.user_id: p.state for p in ended.participants} == {
        n: P.STATE_LEFT for n in names}


async def test_signals_reach_only_devices_in_the_call(client: Client, app: AppHandle) -> None:
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    group = await alice.create(GROUP, ("bob", "carol"))
    call = (await start(alice, group.name, "a1")).call
    # Carol is only rung: she may neither send nor be sent signals.
    await expect_error(signal(carol, call.name, "c1", alice, "a1", description=OFFER),
                       FAILED, "CALL_NOT_JOINED")
    await accept(bob, call.name, "b1")
    refused = await expect_error(signal(alice, call.name, "a1", carol, "c1",
                                        description=OFFER), FAILED, "CALL_NOT_JOINED")
    assert (refused.metadata["user"], refused.metadata["device"]) == ("carol", "c1")
    # A device of a participant that is not their device in the call.
    await expect_error(signal(alice, call.name, "a1", bob, "b2", description=OFFER), FAILED,
                       "CALL_NOT_JOINED")
    await expect_error(signal(bob, call.name, "b2", alice, "a1", description=OFFER), FAILED,
                       "CALL_NOT_JOINED")
    await expect_error(signal(alice, call.name, "a1", alice, "a1", description=OFFER), FAILED,
                       "CALL_NOT_JOINED")
    # Neither description nor candidate: the contract refuses it.
    await expect_error(bob.client.calls.SendSignal(pb.SendSignalRequest(
        call=call.name, device_id="b1", to_user_id="alice", to_device_id="a1"),
        metadata=bob.auth), grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    await leave(bob, call.name)  # alice stays, carol still rings
    await expect_error(signal(alice, call.name, "a1", bob, "b1", description=OFFER), FAILED,
                       "CALL_NOT_JOINED")
    await leave(alice, call.name)
    await expect_error(signal(alice, call.name, "a1", bob, "b1", description=OFFER), FAILED,
                       "CALL_ENDED")


async def test_signals_sent_while_a_stream_is_cut_come_on_resume(
        client: Client, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    direct = await alice.create(DIRECT, ("bob",))
    b1 = await subscribed(bob, device_id="b1")
    call = (await start(alice, direct.name, "a1")).call
    await accept(bob, call.name, "b1")
    await until(b1, "call.updated")
    token = b1.token
    await b1.close()  # the cut
    for n in range(3):
        await signal(alice, call.name, "a1", bob, "b1", candidate=candidate(n))
    resumed = Stream(bob, token, "b1")
    replayed = await resumed.ready()
    signals = [e.call_signal.candidate.candidate for e in replayed if e.type == "call.signal"]
    assert signals == [candidate(n).candidate for n in range(3)]  # in order, once each
    # Live again: the next one comes at once, and bob is still in the call.
    await signal(alice, call.name, "a1", bob, "b1", description=OFFER)
    assert (await until(resumed, "call.signal")).call_signal.description == OFFER
    assert states(await get(alice, call.name))["bob"] == P.STATE_JOINED
    await resumed.close()


async def test_a_device_whose_stream_stays_closed_is_dropped(
        client: Client, app: AppHandle) -> None:
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    group = await alice.create(GROUP, ("bob", "carol"))
    a1 = await subscribed(alice, device_id="a1")
    b1 = await subscribed(bob, device_id="b1")
    call = (await start(alice, group.name, "a1", invitees=("bob", "carol"))).call
    await accept(bob, call.name, "b1")
    await accept(carol, call.name, "c1")  # carol never had a stream: dropped too
    await b1.close()
    dropped: dict[str, res.Participant] = {}
    while len(dropped) < 2:  # within the grace (2 s), no stream came back
        event = await until(a1, "call.updated", "call.ended")
        payload = event.call_updated if event.type == "call.updated" else event.call_ended
        dropped |= {p.user_id: p for p in payload.participants
                    if p.leave_reason == P.LEAVE_REASON_CONNECTION_LOST}
    assert set(dropped) == {"bob", "carol"}
    assert (await get(alice, call.name)).state == res.Call.STATE_ENDED  # alice alone
    await a1.close()


async def test_members_removed_leave_the_call_and_a_deleted_conversation_ends_it(
        client: Client, app: AppHandle) -> None:
    alice, bob, _ = await people(client, app, "alice", "bob", "carol")
    group = await alice.create(GROUP, ("bob", "carol"))
    a1 = await subscribed(alice, device_id="a1")
    call = (await start(alice, group.name, "a1")).call
    await accept(bob, call.name, "b1")
    await alice.client.conversations.RemoveMember(conv_pb.RemoveMemberRequest(
        name=f"{group.name}/members/carol"), metadata=alice.auth)
    while states((await until(a1, "call.updated")).call_updated)["carol"] != P.STATE_MISSED:
        pass  # bob's answer first
    await alice.client.conversations.RemoveMember(conv_pb.RemoveMemberRequest(
        name=f"{group.name}/members/bob"), metadata=alice.auth)
    ended = await until(a1, "call.ended")  # alice alone
    bob_now = {p.user_id: p for p in ended.call_ended.participants}["bob"]
    assert bob_now.leave_reason == P.LEAVE_REASON_REMOVED
    # Bob is no member: the call is not his to see any more.
    await expect_error(get(bob, call.name), NOT_FOUND, "RESOURCE_NOT_FOUND")
    # A conversation deleted for everyone ends its call (its members' streams end with
    # the conversation: the call being over shows in that they are free again).
    other = await alice.create(GROUP, ("bob",))
    second = (await start(alice, other.name, "a1")).call
    await accept(bob, second.name, "b1")
    probe = await alice.create(GROUP, ("bob",))
    await expect_error(start(bob, probe.name, "b1"), FAILED, "CALL_ALREADY_JOINED")
    await alice.client.conversations.DeleteConversation(
        conv_pb.DeleteConversationRequest(name=other.name), metadata=alice.auth)
    assert (await until(a1, "conversation.deleted")).conversation == other.name
    assert (await start(bob, probe.name, "b1")).created
    await a1.close()


async def test_nobody_rings_or_reaches_into_a_call_not_theirs(
        client: Client, app: AppHandle, other_app: AppHandle) -> None:
    alice, bob, eve = await people(client, app, "alice", "bob", "eve")
    (mallory,) = await people(client, other_app, "mallory")
    direct = await alice.create(DIRECT, ("bob",))
    # Eve, of the same app but no member: the conversation does not exist for her.
    await expect_error(start(eve, direct.name), NOT_FOUND, "RESOURCE_NOT_FOUND")
    # A channel: no calls there.
    channel = await alice.create(CHANNEL)
    await expect_error(start(alice, channel.name), FAILED, "WRONG_CONVERSATION_KIND")
    # Ringing someone who is no member.
    group = await alice.create(GROUP, ("bob",))
    refused = await expect_error(start(alice, group.name, invitees=("eve",)),
                                 grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    assert "invitee_ids[0]" in refused.field_violations
    call = (await start(alice, direct.name, "a1")).call
    await accept(bob, call.name, "b1")
    # Eve: nothing of the call, nor TURN credentials for it.
    for attempt in (get(eve, call.name), accept(eve, call.name),
                    eve.client.calls.GetIceServers(pb.GetIceServersRequest(
                        call=call.name, device_id="e1"), metadata=eve.auth),
                    signal(eve, call.name, "e1", bob, "b1", description=OFFER)):
        await expect_error(attempt, NOT_FOUND, "RESOURCE_NOT_FOUND")
    # Mallory, of another app: refused before anything is looked up.
    for attempt in (mallory.client.calls.GetIceServers(pb.GetIceServersRequest(
                        call=call.name, device_id="m1"), metadata=mallory.auth),
                    start(mallory, direct.name), get(mallory, call.name)):
        await expect_error(attempt, grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    # TURN credentials: for the caller's own device in the call, not another device.
    ice = await alice.client.calls.GetIceServers(pb.GetIceServersRequest(
        call=call.name, device_id="a1"), metadata=alice.auth)
    assert ice.ice_servers[1].username.endswith("/alice/a1") and ice.expire_time.seconds
    await expect_error(alice.client.calls.GetIceServers(pb.GetIceServersRequest(
        call=call.name, device_id="a2"), metadata=alice.auth), FAILED, "CALL_NOT_JOINED")
    # Ending for everyone: the caller, an admin, the app's backend; not another member.
    await leave(alice, call.name)
    carol_group = await alice.create(GROUP, ("bob", "eve"))
    group_call = (await start(bob, carol_group.name, "b1")).call
    await expect_error(eve.client.calls.EndCall(pb.EndCallRequest(name=group_call.name),
                                                metadata=eve.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")
    await expect_error(mallory.client.calls.EndCall(pb.EndCallRequest(name=group_call.name),
                                                    metadata=bearer(other_app.api_key)),
                       grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    ended = await client.calls.EndCall(pb.EndCallRequest(name=group_call.name),
                                       metadata=bearer(app.api_key))
    assert ended.call.outcome == res.Call.OUTCOME_CANCELED


async def test_signals_never_reach_webhooks(client: Client, app: AppHandle) -> None:
    refused = await expect_error(client.webhooks.CreateWebhook(hook_pb.CreateWebhookRequest(
        parent=app.name, webhook=hook_res.Webhook(
            url="https://hooks.example.com/caas", event_types=["call.signal"])),
        metadata=app.auth), grpc.StatusCode.INVALID_ARGUMENT, "EVENT_TYPE_UNKNOWN")
    assert "call.signal" not in refused.message.split("known: ")[1].split(", ")
    made = await client.webhooks.CreateWebhook(hook_pb.CreateWebhookRequest(
        parent=app.name, webhook=hook_res.Webhook(
            url="https://hooks.example.com/caas", event_types=["call.*"])),
        metadata=app.auth)
    assert list(made.webhook.event_types) == ["call.*"]


async def test_over_json_grpc_web_and_grpcurl(http: httpx.AsyncClient, client: Client,
                                              server: CaasServer, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    direct = await alice.create(DIRECT, ("bob",))
    b1 = await subscribed(bob, device_id="b1")
    started = await http.post(f"/v1/{direct.name}/calls:start",
                              headers={"authorization": f"Bearer {alice.token}"},
                              json={"media": "MEDIA_VIDEO", "deviceId": "a1",
                                    "requestId": uuid.uuid4().hex})
    assert started.status_code == 200, started.text
    name = started.json()["call"]["name"]
    assert started.json()["call"]["state"] == "STATE_RINGING"
    await until(b1, "call.started")
    # gRPC-Web: bob answers as a browser does.
    response = await http.post(
        "/caas.calls.v1.CallsService/AcceptCall", headers={
            "authorization": f"Bearer {bob.token}", "x-grpc-web": "1",
            "content-type": "application/grpc-web+proto"},
        content=grpc_web_frame(pb.AcceptCallRequest(name=name, device_id="b1")
                               .SerializeToString()))
    messages, trailers = grpc_web_frames(response.content)
    assert trailers["grpc-status"] == "0"
    assert pb.AcceptCallResponse.FromString(messages[0]).call.state == res.Call.STATE_ACTIVE
    sent = await http.post(f"/v1/{name}:sendSignal",
                           headers={"authorization": f"Bearer {alice.token}"},
                           json={"deviceId": "a1", "toUserId": "bob", "toDeviceId": "b1",
                                 "description": {"type": "TYPE_OFFER", "sdp": "v=0\r\n"}})
    assert sent.status_code == 200, sent.text
    assert (await until(b1, "call.signal")).call_signal.description.sdp == "v=0\r\n"
    wrong = await http.post(f"/v1/{name}:sendSignal",
                            headers={"authorization": f"Bearer {alice.token}"},
                            json={"deviceId": "a1", "toUserId": "bob", "toDeviceId": "zz",
                                  "candidate": {"candidate": ""}})
    assert wrong.status_code == 400  # FAILED_PRECONDITION
    assert wrong.json()["details"][0]["reason"] == "CALL_NOT_JOINED"
    ran = await asyncio.to_thread(
        subprocess.run,
        [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}", "-d",
         json.dumps({"name": name}), server.address, "caas.calls.v1.CallsService/GetCall"],
        capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["call"]["state"] == "STATE_ACTIVE"
    await b1.close()
