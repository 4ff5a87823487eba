"""Calls with real media: two aiortc devices (tests/support/webrtc.py) place a call
through a running server, signal over their Subscribe streams and exchange audio, peer
to peer and forced through a real coturn (tests/support/turn.py) that checks the TURN
credentials the server issues; and a device whose stream is cut mid-call gets the
signals it missed when it resumes. One store (SQLite): the media path does not depend
on it (tests/e2e/test_calls.py covers the call records on both)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aioice import stun, turn
from caas.calls.v1 import calls_service_pb2 as calls_pb
from caas.calls.v1 import resources_pb2 as calls_res

from services.calls.turn import turn_credentials
from tests.conftest import TEST_CONFIG, create_app
from tests.support import turn as coturn
from tests.support.chat import DIRECT, Person, person
from tests.support.client import Client
from tests.support.servers import CaasServer, start_caas
from tests.support.turn import REALM, TurnServer
from tests.support.webrtc import CallDevice, loopback_ice, selected_pair

FRAMES = 25  # audio frames each way: half a second of sound
GRACE = 5  # seconds a device in a call may go without a stream (CAAS_CALL_RECONNECT_GRACE)

turn_server = coturn.turn_server  # the session's coturn (a fixture of tests/support/turn.py)
CALL = calls_res.Call
PARTICIPANT = calls_res.Participant


@pytest.fixture(scope="module")
def calls_server(turn_server: TurnServer, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[CaasServer]:
    """A server handing out the test coturn for STUN and TURN, with its secret; a
    device without a stream leaves its call after GRACE seconds."""
    env = {"CAAS_TURN_URLS": f'["{turn_server.url}"]',
           "CAAS_STUN_URLS": f'["{turn_server.stun_url}"]',
           "CAAS_TURN_SECRET": turn_server.secret, "CAAS_CALL_RECONNECT_GRACE": str(GRACE)}
    caas = start_caas(tmp_path_factory.mktemp("caas-calls"), env=env, config=TEST_CONFIG)
    yield caas
    assert caas.process.stop() == 0


@pytest.fixture(scope="module")
async def calls_client(calls_server: CaasServer) -> AsyncIterator[Client]:
    client = Client(calls_server.address)
    yield client
    await client.close()


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    with loopback_ice():
        yield


@pytest.fixture
async def people(calls_client: Client, calls_server: CaasServer
                 ) -> tuple[Person, Person, str]:
    """alice and bob of a fresh app, and their direct conversation."""
    app = await create_app(calls_client, calls_server.operator_token)
    alice = await person(calls_client, app.app_id, app.api_key, "alice")
    bob = await person(calls_client, app.app_id, app.api_key, "bob")
    direct = await alice.create(DIRECT, ("bob",))
    return alice, bob, direct.name


@pytest.fixture
async def devices(people: tuple[Person, Person, str]
                  ) -> AsyncIterator[list[CallDevice]]:
    """Devices the test makes (append them): closed at the end."""
    made: list[CallDevice] = []
    yield made
    for device in made:
        await device.close()


async def call_connected(alice: CallDevice, bob: CallDevice, conversation: str
                         ) -> CALL:
    """alice calls bob, bob answers (and offers): both connections connected."""
    for device in (alice, bob):
        await device.connect()
    call = await alice.start_call(conversation)
    assert call.state == CALL.STATE_RINGING and call.caller_id == "alice"
    ringing = await bob.event("call.started")
    assert ringing.call_started.name == call.name
    accepted = await bob.accept(call.name)
    assert accepted.state == CALL.STATE_ACTIVE
    assert [(p.user_id, p.state, p.device_id) for p in accepted.participants] == [
        ("alice", PARTICIPANT.STATE_JOINED, alice.device_id),
        ("bob", PARTICIPANT.STATE_JOINED, bob.device_id)]
    await asyncio.gather(alice.wait_connected(), bob.wait_connected())
    return accepted


async def audio_both_ways(alice: CallDevice, bob: CallDevice) -> None:
    heard_by_alice = await alice.peer("bob").wait_frames(FRAMES)
    heard_by_bob = await bob.peer("alice").wait_frames(FRAMES)
    assert heard_by_alice >= FRAMES and heard_by_bob >= FRAMES
    # The tone itself came through (amplitude 8,000 sent; silence decodes to ~0).
    assert alice.peer("bob").peak > 2000 and bob.peer("alice").peak > 2000


async def hang_up_and_check_record(caller: CallDevice, callee: CallDevice,
                                   hanging_up: CallDevice, conversation: str) -> CALL:
    """`hanging_up` leaves: the 1:1 call ends COMPLETED, with both devices and their
    time in it; the conversation records it as a message."""
    other = callee if hanging_up is caller else caller
    left = await hanging_up.leave()
    assert left.state == CALL.STATE_ENDED and left.outcome == CALL.OUTCOME_COMPLETED
    ended = (await other.event("call.ended")).call_ended
    assert ended.name == left.name and ended.outcome == CALL.OUTCOME_COMPLETED
    got = await caller.get_call()
    assert got.state == CALL.STATE_ENDED and got.outcome == CALL.OUTCOME_COMPLETED
    duration = got.duration.ToTimedelta()
    # FRAMES frames of 20 ms each way were heard while it lasted.
    assert duration >= timedelta(milliseconds=20 * FRAMES), duration
    assert got.HasField("answer_time") and got.HasField("end_time")
    by_user = {p.user_id: p for p in got.participants}
    assert by_user.keys() == {"alice", "bob"}
    for device in (caller, callee):
        taken = by_user[device.user_id]
        assert taken.state == PARTICIPANT.STATE_LEFT, taken
        assert taken.device_id == device.device_id
        assert taken.HasField("join_time") and taken.HasField("leave_time")
        assert timedelta(0) < taken.time_in_call.ToTimedelta() <= duration + timedelta(
            seconds=1), taken
    assert by_user[hanging_up.user_id].leave_reason == PARTICIPANT.LEAVE_REASON_HUNG_UP
    assert by_user[other.user_id].leave_reason == PARTICIPANT.LEAVE_REASON_CALL_ENDED
    # The record: a message of the conversation carrying the ended call.
    assert got.record_sequence > 0
    listed = await caller.person.messages(conversation)
    records = [m for m in listed.messages if m.HasField("call")]
    assert len(records) == 1, records
    record = records[0]
    assert record.sequence == got.record_sequence
    assert record.call.name == got.name and record.call.outcome == CALL.OUTCOME_COMPLETED
    assert record.call.duration == got.duration
    assert [(p.user_id, p.device_id) for p in record.call.participants] == [
        (p.user_id, p.device_id) for p in got.participants]
    return got


async def test_a_call_carries_audio_both_ways_peer_to_peer(
        people: tuple[Person, Person, str], devices: list[CallDevice],
        turn_server: TurnServer) -> None:
    alice_person, bob_person, direct = people
    # TURN left out: aioice nominates the first pair that works, which may be a relayed
    # one (tests/support/webrtc.py).
    alice = CallDevice(alice_person, "alice-laptop", use_turn=False)
    bob = CallDevice(bob_person, "bob-phone", use_turn=False)
    tablet = CallDevice(bob_person, "bob-tablet", negotiate=False)  # rings, not answered
    devices += [alice, bob, tablet]
    await tablet.connect()
    await call_connected(alice, bob, direct)
    # The server handed both STUN and TURN (with credentials) to each device.
    for device in (alice, bob):
        urls = [list(server.urls) for server in device.ice_servers]
        assert urls == [[turn_server.stun_url], [turn_server.url]], urls
        assert device.ice_servers[1].username.endswith(f"/{device.user_id}/{device.device_id}")
    # Peer to peer: a direct pair between the devices' own sockets.
    for device, other in ((alice, "bob"), (bob, "alice")):
        local, remote = selected_pair(device.peer(other).pc)
        assert (local.type, remote.type) == ("host", "host"), (local, remote)
        assert local.host == remote.host == "127.0.0.1"
        # The candidates went as their own signals (trickled), not inside the SDP.
        assert device.peer(other).candidates_received > 0
    await audio_both_ways(alice, bob)
    ended = await hang_up_and_check_record(alice, bob, alice, direct)
    # bob's other device rang, saw him answer elsewhere and the end, and got none of the
    # signals addressed to his phone.
    assert (await tablet.event("call.started")).call_started.name == ended.name
    answered = (await tablet.event("call.updated")).call_updated
    assert answered.state == CALL.STATE_ACTIVE
    assert (await tablet.event("call.ended")).call_ended.name == ended.name
    assert bob.signals and tablet.signals == []
    assert alice.errors == [] and bob.errors == []


async def test_relay_only_media_goes_through_turn(
        people: tuple[Person, Person, str], devices: list[CallDevice],
        turn_server: TurnServer) -> None:
    alice_person, bob_person, direct = people
    alice = CallDevice(alice_person, "alice-laptop", relay_only=True)
    bob = CallDevice(bob_person, "bob-phone", relay_only=True)
    devices += [alice, bob]
    log_start = len(turn_server.log())
    await call_connected(alice, bob, direct)
    # Only relayed candidates were gathered and sent, and the nominated pair joins two
    # relayed addresses of coturn: every packet goes device → coturn → device.
    for device, other in ((alice, "bob"), (bob, "alice")):
        local, remote = selected_pair(device.peer(other).pc)
        assert (local.type, remote.type) == ("relay", "relay"), (local, remote)
        for candidate in (local, remote):
            assert candidate.host == turn_server.host
            assert turn_server.min_port <= candidate.port <= turn_server.max_port
        assert all(" typ relay" in line
                   for line in device.peer(other).pc.localDescription.sdp.splitlines()
                   if line.startswith("a=candidate:"))
    await audio_both_ways(alice, bob)
    relays = {device.user_id: selected_pair(device.peer(other).pc)[0]
              for device, other in ((alice, "bob"), (bob, "alice"))}
    frames = {"alice": alice.peer("bob").frames, "bob": bob.peer("alice").frames}
    await hang_up_and_check_record(alice, bob, alice, direct)
    # coturn's own account: each device's credentials (the server's, per device) made
    # an allocation — the relayed address its pair used — bound a channel to the
    # other's relayed address, and relayed the media. The usage line comes when the
    # allocation is released (the connections closed).
    for device, other in ((alice, "bob"), (bob, "alice")):
        username = device.ice_servers[1].username

        def released(line: str, name: str = username) -> bool:
            return "peer usage:" in line and f"<{name}>" in line

        await asyncio.to_thread(turn_server.process.wait_for_line, released, 20, log_start)
        log = turn_server.log(log_start)
        (session,) = {match.group(1) for line in log if (match := re.search(
            rf"session (\d+): new, realm=<{REALM}>, username=<{re.escape(username)}>", line))}
        own, theirs = relays[device.user_id], relays[other]
        expected = [f"session {session}: realm <{REALM}> user <{username}>: incoming packet "
                    f"{step} processed, success" for step in ("ALLOCATE", "CHANNEL_BIND")]
        text = "\n".join(log)  # each line after coturn's "<uptime>: : " prefix
        assert all(line in text for line in expected), expected
        assert f"Local relay addr: {own.host}:{own.port}\n" in text
        assert f"session {session}: peer {theirs.host}:{theirs.port} lifetime updated" in text
        (usage,) = turn_server.usage(username, log_start)
        # Packets from and to the other's relay: at least the audio frames heard (one
        # RTP packet each), besides ICE checks and the DTLS handshake.
        assert usage["rp"] >= frames[device.user_id] and usage["sp"] >= FRAMES, usage
        assert usage["rb"] > 0 and usage["sb"] > 0, usage
    assert alice.errors == [] and bob.errors == []


async def test_turn_refuses_expired_credentials(
        people: tuple[Person, Person, str], devices: list[CallDevice],
        turn_server: TurnServer) -> None:
    alice_person, _, direct = people
    alice = CallDevice(alice_person, "alice-laptop")
    devices.append(alice)
    await alice.connect()
    call = await alice.start_call(direct)
    before = datetime.now(UTC)
    issued = await alice.calls.GetIceServers(calls_pb.GetIceServersRequest(
        call=call.name, device_id=alice.device_id), metadata=alice.auth)
    turn_entry = issued.ice_servers[-1]
    assert list(turn_entry.urls) == [turn_server.url]
    # TURN REST API form: "<expiry>:<who>", valid for CAAS_TURN_CREDENTIAL_TTL (1 h).
    expiry = int(turn_entry.username.split(":", 1)[0])
    assert expiry == issued.expire_time.seconds
    assert timedelta(minutes=59) < issued.expire_time.ToDatetime(UTC) - before <= timedelta(
        hours=1, seconds=5)
    server = (turn_server.host, turn_server.port)

    async def allocate(username: str, password: str) -> tuple[str, int]:
        transport, _ = await turn.create_turn_endpoint(
            asyncio.DatagramProtocol, server, username, password)
        relayed: tuple[str, int] = transport.get_extra_info("sockname")
        transport.close()
        return relayed

    # The server's credentials allocate a relay (the positive control).
    host, port = await allocate(turn_entry.username, turn_entry.credential)
    assert host == turn_server.host and turn_server.min_port <= port <= turn_server.max_port
    # Expired ones, signed with the right secret, are refused; so are ones signed with
    # another secret.
    who = f"{alice_person.app_id}/{call.name.rsplit('/', 1)[1]}/alice/{alice.device_id}"
    expired = turn_credentials(turn_server.secret, who, datetime.now(UTC) - timedelta(minutes=1))
    forged = turn_credentials("not-the-secret", who, datetime.now(UTC) + timedelta(minutes=5))
    for username, password in (expired, forged):
        with pytest.raises(stun.TransactionFailed) as refused:
            await allocate(username, password)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 401
    await alice.leave()


async def test_signals_missed_while_a_stream_is_cut_arrive_on_resume(
        people: tuple[Person, Person, str], devices: list[CallDevice]) -> None:
    alice_person, bob_person, direct = people
    alice = CallDevice(alice_person, "alice-laptop")
    bob = CallDevice(bob_person, "bob-phone")
    devices += [alice, bob]
    await call_connected(alice, bob, direct)
    await audio_both_ways(alice, bob)
    seen = len(bob.signals)
    token = await bob.disconnect()
    assert token
    # While bob's stream is down alice trickles more (a candidate she found late, and
    # the end of candidates again): the media connection itself goes on meanwhile.
    to_bob = ("bob", bob.device_id)
    line = next(line[2:] for line in alice.peer("bob").pc.localDescription.sdp.splitlines()
                if line.startswith("a=candidate:"))
    sent = [
        await alice.send_signal(to_bob, candidate=calls_res.IceCandidate(
            candidate=line, sdp_mid="0", sdp_m_line_index=0)),
        await alice.send_signal(to_bob, candidate=calls_res.IceCandidate(sdp_mid="0"))]
    frames = bob.peer("alice").frames
    await bob.connect(token)
    # Then one more, live: it must come right after the two, with nothing repeated.
    sent.append(await alice.send_signal(to_bob, candidate=calls_res.IceCandidate(
        candidate=line, sdp_mid="0", sdp_m_line_index=0)))
    got = await bob.wait_signals(seen + 3)
    assert got[seen:] == sent, got[seen:]
    # The call goes on, bob still in it on the same device, the media still flowing.
    await bob.peer("alice").wait_frames(frames + FRAMES)
    current = await bob.get_call()
    assert current.state == CALL.STATE_ACTIVE
    assert [(p.user_id, p.state, p.device_id) for p in current.participants] == [
        ("alice", PARTICIPANT.STATE_JOINED, alice.device_id),
        ("bob", PARTICIPANT.STATE_JOINED, bob.device_id)]
    await hang_up_and_check_record(alice, bob, bob, direct)
    assert len(bob.signals) == seen + 3  # nothing else came, before or after
    assert alice.errors == [] and bob.errors == []


async def test_a_stream_cut_past_the_grace_drops_the_device(
        people: tuple[Person, Person, str], devices: list[CallDevice]) -> None:
    alice_person, bob_person, direct = people
    alice = CallDevice(alice_person, "alice-laptop", negotiate=False)
    bob = CallDevice(bob_person, "bob-phone", negotiate=False)
    devices += [alice, bob]
    for device in (alice, bob):
        await device.connect()
    call = await alice.start_call(direct)
    await bob.accept(call.name)
    await bob.disconnect()
    # bob's device never comes back: after the grace it is out, which ends the 1:1 call.
    ended = (await alice.event("call.ended", within=GRACE + 20)).call_ended
    assert ended.name == call.name and ended.outcome == CALL.OUTCOME_COMPLETED
    by_user = {p.user_id: p for p in ended.participants}
    assert by_user["bob"].state == PARTICIPANT.STATE_LEFT
    assert by_user["bob"].leave_reason == PARTICIPANT.LEAVE_REASON_CONNECTION_LOST
    assert by_user["bob"].device_id == bob.device_id
    # Not before the grace: the drop came GRACE seconds after bob's answer at the
    # earliest (less a margin for the clocks' rounding).
    dropped = by_user["bob"].leave_time.ToDatetime() - by_user["bob"].join_time.ToDatetime()
    assert dropped >= timedelta(seconds=GRACE - 0.25), dropped
    assert by_user["alice"].leave_reason == PARTICIPANT.LEAVE_REASON_CALL_ENDED

