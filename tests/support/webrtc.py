"""A CAAS call client with real WebRTC media (aiortc), for the call tests and the bench.

`CallDevice` is one device of a person: its Subscribe stream (opened with its
`device_id`, read in a task), its CallsService stub, and one RTCPeerConnection per other
device in the call. It follows the signaling protocol of caas.calls.v1.CallsService:

- the device that joins (AcceptCall) offers to every device already in the call;
- an OFFER arriving on the stream (`call.signal`) is answered, an ANSWER applied;
- ICE candidates trickle as their own signals: descriptions go out without their
  `a=candidate` lines, then one `candidate` signal per candidate, then the end of
  candidates (an empty `candidate`). aiortc gathers every candidate before it returns a
  description, so they are split off it; received ones go to addIceCandidate.

aioice nominates the first pair whose check succeeds, not the best one: with TURN given,
a relayed pair may win over a direct one on loopback. `use_turn=False` leaves the TURN
servers out, so that a connection is peer to peer for sure.

Each connection sends a 400 Hz tone (ToneTrack) and counts the audio frames it receives
on the remote track. `relay_only` sets RTCConfiguration.iceTransportPolicy = RELAY
(aiortc ≥ 1.10 passes it to aioice, which then gathers relayed candidates only and pairs
nothing else): media can then only flow through the TURN server. `selected_pair` reads
which candidate pair ICE nominated.

Host candidates: aioice offers every address of every interface but 127.0.0.1; the
tests and the bench must reach no address off this machine's loopback, so
`loopback_ice()` makes 127.0.0.1 the only host address while it is active.

Waiting is on events with timeouts that only bound a failure; nothing sleeps to
synchronize (ToneTrack sleeps to pace audio in real time, as a microphone would)."""

from __future__ import annotations

import array
import asyncio
import contextlib
import fractions
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import av
import grpc
from aioice import Candidate
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp
from caas.calls.v1 import calls_service_pb2 as calls_pb
from caas.calls.v1 import calls_service_pb2_grpc as calls_grpc
from caas.calls.v1 import resources_pb2 as calls_res
from caas.events.v1 import events_pb2
from caas.realtime.v1 import realtime_service_pb2 as rt_pb

from tests.support.chat import Person
from tests.support.stream import expand

WAIT = 20.0  # seconds before a missing event or connection fails the caller

AUDIO = calls_res.Call.MEDIA_AUDIO
JOINED = calls_res.Participant.STATE_JOINED
OFFER = calls_res.SessionDescription.TYPE_OFFER
ANSWER = calls_res.SessionDescription.TYPE_ANSWER
SDP_TYPES = {OFFER: "offer", ANSWER: "answer"}

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
TONE_HZ = 400  # 120 samples a period: a 20 ms frame holds exactly 8
_TONE = array.array("h", (int(8000 * math.sin(2 * math.pi * TONE_HZ * n / SAMPLE_RATE))
                          for n in range(FRAME_SAMPLES))).tobytes()


@contextlib.contextmanager
def loopback_ice() -> Iterator[None]:
    """While active, ICE gathers host candidates on 127.0.0.1 only (see the module)."""
    with mock.patch("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: (
            ["127.0.0.1"] if use_ipv4 else [])):
        yield


class ToneTrack(MediaStreamTrack):
    """A microphone playing a 400 Hz tone: 20 ms mono frames at 48 kHz, in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME_SAMPLES
            ahead = self._start + self._pts / SAMPLE_RATE - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)  # real-time pacing, as a sound card's clock
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(_TONE)
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


@dataclass
class Peer:
    """The connection to one other device in the call."""

    user_id: str
    device_id: str
    pc: RTCPeerConnection
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # connected or failed
    connected_at: float = 0.0  # time.perf_counter() when it connected
    frames: int = 0  # audio frames received (decoded) on the remote track
    peak: int = 0  # the largest sample among them
    candidates_sent: int = 0
    candidates_received: int = 0
    _frames_changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_connected(self, within: float = WAIT) -> None:
        """Until connectionState is "connected"; raises if it fails, TimeoutError after
        `within` seconds."""
        async with asyncio.timeout(within):
            await self.settled.wait()
        if not self.connected.is_set():
            raise ConnectionError(f"connection to {self.user_id}/{self.device_id} failed")

    async def wait_frames(self, count: int, within: float = WAIT) -> int:
        """Until at least `count` audio frames were received; how many were."""
        async with asyncio.timeout(within), self._frames_changed:
            await self._frames_changed.wait_for(lambda: self.frames >= count)
        return self.frames

    async def _count(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.AudioFrame)
            samples = array.array("h", bytes(frame.planes[0]))
            async with self._frames_changed:
                self.frames += 1
                self.peak = max(self.peak, max(samples, default=0))
                self._frames_changed.notify_all()


def selected_pair(pc: RTCPeerConnection) -> tuple[Candidate, Candidate]:
    """The (local, remote) candidates of the pair ICE nominated for the connection's
    first transceiver (all media are bundled on it). Reads aiortc's and aioice's
    internals: RTCIceTransport._connection is the aioice Connection, whose _nominated
    maps each component to its nominated CandidatePair."""
    transceiver = pc.getTransceivers()[0]
    dtls = transceiver.sender.transport
    assert dtls is not None, "no transport: not negotiated"
    connection = dtls.transport._connection
    pair = connection._nominated.get(1)
    assert pair is not None, "no pair nominated"
    return pair.local_candidate, pair.remote_candidate


def _split_candidates(sdp: str) -> tuple[str, list[tuple[str, int, str]]]:
    """The description without its candidates, and its candidates as (mid, m-line
    index, `candidate:…`)."""
    lines = []
    candidates = []
    mid, index = "", -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
            mid = str(index)
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:"):]
        if line.startswith("a=candidate:"):
            candidates.append((mid, index, line[len("a="):]))
        elif line != "a=end-of-candidates":
            lines.append(line)
    return "\r\n".join(lines) + "\r\n", candidates


def _servers(ice: list[calls_res.IceServer]) -> list[RTCIceServer]:
    return [RTCIceServer(urls=list(server.urls), username=server.username or None,
                         credential=server.credential or None) for server in ice]


class CallDevice:
    """One device of `person` taking part in calls (see the module). Open its stream
    with `connect()` before starting or accepting; `close()` at the end."""

    def __init__(self, person: Person, device_id: str = "", *, relay_only: bool = False,
                 use_turn: bool = True, negotiate: bool = True) -> None:
        self.person = person
        self.user_id = person.user_id
        self.device_id = device_id or f"d{uuid.uuid4().hex[:12]}"
        self.relay_only = relay_only
        self.use_turn = use_turn  # False: leave the TURN servers out (peer to peer only)
        self.negotiate = negotiate  # False: record signals, run no WebRTC
        self.calls = calls_grpc.CallsServiceStub(person.client.channel)
        self.call: calls_res.Call | None = None
        self.ice_servers: list[calls_res.IceServer] = []
        self.peers: dict[tuple[str, str], Peer] = {}
        self.signals: list[calls_res.Signal] = []  # every signal received, in order
        self.signal_times: list[float] = []  # time.perf_counter() of each arrival
        self.events: asyncio.Queue[events_pb2.Event] = asyncio.Queue()  # all others
        self.errors: list[BaseException] = []  # what handling a signal raised
        self.resume_token = ""
        self._stream: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Event = asyncio.Event()
        self._inbox: asyncio.Queue[calls_res.Signal] = asyncio.Queue()
        self._handler = asyncio.create_task(self._handle())
        self._signals_changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return self.person.auth

    # The stream.

    async def connect(self, resume_token: str = "") -> None:
        """Open the Subscribe stream (from `resume_token`: what was missed since is
        replayed and handled) and wait for `ready`."""
        assert self._reader is None or self._reader.done(), "already connected"
        self._ready = asyncio.Event()
        self._stream = self.person.client.realtime.Subscribe(
            rt_pb.SubscribeRequest(name=self.person.name, resume_token=resume_token,
                                   device_id=self.device_id), metadata=self.auth)
        self._reader = asyncio.create_task(self._read(self._stream))
        async with asyncio.timeout(WAIT):
            await self._ready.wait()  # set by `ready`, or when the stream ends first
        if self._reader.done():
            self._reader.result()  # raises what ended the stream
            raise ConnectionError("the stream ended before ready")

    async def disconnect(self) -> str:
        """Cut the stream (as a lost network would); the last resume token."""
        if self._stream is not None:
            self._stream.cancel()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        return self.resume_token

    async def _read(self, stream: Any) -> None:
        try:
            async for batch in stream:
                for item in expand(batch):
                    if item.resume_token:
                        self.resume_token = item.resume_token
                    kind = item.WhichOneof("item")
                    if kind == "ready":
                        self._ready.set()
                    elif kind == "event":
                        await self._dispatch(item.event)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                raise
        finally:
            self._ready.set()  # connect() waits no longer

    async def _dispatch(self, event: events_pb2.Event) -> None:
        if event.WhichOneof("payload") == "call_signal":
            signal = event.call_signal
            async with self._signals_changed:
                self.signals.append(signal)
                self.signal_times.append(time.perf_counter())
                self._signals_changed.notify_all()
            if self.negotiate:
                self._inbox.put_nowait(signal)
            return
        if event.WhichOneof("payload") in ("call_updated", "call_ended"):
            call = event.call_updated if event.HasField("call_updated") else event.call_ended
            if self.call is not None and call.name == self.call.name:
                self.call = call
                await self._drop_gone(call)
        self.events.put_nowait(event)

    async def event(self, event_type: str, within: float = WAIT) -> events_pb2.Event:
        """The next event of `event_type` (`call.started`, …; earlier others are
        dropped)."""
        async with asyncio.timeout(within):
            while True:
                event = await self.events.get()
                if event.type == event_type:
                    return event

    async def wait_signals(self, count: int, within: float = WAIT) -> list[calls_res.Signal]:
        """Until at least `count` signals arrived in all; all of them."""
        async with asyncio.timeout(within), self._signals_changed:
            await self._signals_changed.wait_for(lambda: len(self.signals) >= count)
        return list(self.signals)

    # Calls.

    async def start_call(self, conversation: str, media: int = AUDIO,
                         request_id: str = "") -> calls_res.Call:
        """StartCall from this device: in the call at once, ringing the others."""
        await self._close_peers()
        response = await self.calls.StartCall(calls_pb.StartCallRequest(
            parent=conversation, media=media,  # type: ignore[arg-type]
            device_id=self.device_id, request_id=request_id or uuid.uuid4().hex),
            metadata=self.auth)
        self.call, self.ice_servers = response.call, list(response.ice_servers)
        return response.call

    async def accept(self, call: str) -> calls_res.Call:
        """AcceptCall on this device, then offer to every other device in the call."""
        await self._close_peers()
        response = await self.calls.AcceptCall(
            calls_pb.AcceptCallRequest(name=call, device_id=self.device_id),
            metadata=self.auth)
        self.call, self.ice_servers = response.call, list(response.ice_servers)
        if self.negotiate:
            for participant in response.call.participants:
                key = (participant.user_id, participant.device_id)
                if participant.state == JOINED and key != (self.user_id, self.device_id):
                    await self._offer(self._peer(*key))
        return response.call

    async def leave(self) -> calls_res.Call:
        """LeaveCall (hang up), then close every connection."""
        assert self.call is not None
        response = await self.calls.LeaveCall(
            calls_pb.LeaveCallRequest(name=self.call.name), metadata=self.auth)
        self.call = response.call
        await self._close_peers()
        return response.call

    async def send_signal(self, to: tuple[str, str], *,
                          description: calls_res.SessionDescription | None = None,
                          candidate: calls_res.IceCandidate | None = None
                          ) -> calls_res.Signal:
        assert self.call is not None
        response = await self.calls.SendSignal(calls_pb.SendSignalRequest(
            call=self.call.name, device_id=self.device_id, to_user_id=to[0],
            to_device_id=to[1], description=description, candidate=candidate),
            metadata=self.auth)
        return response.signal

    async def get_call(self) -> calls_res.Call:
        assert self.call is not None
        response = await self.calls.GetCall(calls_pb.GetCallRequest(name=self.call.name),
                                            metadata=self.auth)
        return response.call

    # Media.

    def peer(self, user_id: str, device_id: str = "") -> Peer:
        """The connection to `user_id`'s device (their only one unless named)."""
        found = [peer for (user, device), peer in self.peers.items()
                 if user == user_id and device_id in ("", device)]
        assert len(found) == 1, f"{len(found)} connections to {user_id}"
        return found[0]

    async def wait_connected(self, within: float = WAIT) -> None:
        """Until every connection is "connected"."""
        async with asyncio.timeout(within):
            await asyncio.gather(*(peer.wait_connected(within) for peer in self.peers.values()))

    def _peer(self, user_id: str, device_id: str) -> Peer:
        key = (user_id, device_id)
        if key not in self.peers:
            policy = (RTCIceTransportPolicy.RELAY if self.relay_only
                      else RTCIceTransportPolicy.ALL)
            servers = [server for server in self.ice_servers if self.use_turn
                       or not any(url.startswith("turn") for url in server.urls)]
            pc = RTCPeerConnection(RTCConfiguration(
                # Never None: aiortc would then use a public STUN server of its own.
                iceServers=_servers(servers), iceTransportPolicy=policy))
            peer = Peer(user_id, device_id, pc)

            @pc.on("connectionstatechange")
            def changed() -> None:
                if pc.connectionState == "connected":
                    peer.connected_at = time.perf_counter()
                    peer.connected.set()
                    peer.settled.set()
                elif pc.connectionState == "failed":
                    peer.settled.set()

            @pc.on("track")
            def track(remote: MediaStreamTrack) -> None:
                if remote.kind == "audio":
                    task = asyncio.create_task(peer._count(remote))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

            pc.addTrack(ToneTrack())
            self.peers[key] = peer
        return self.peers[key]

    async def _send_description(self, peer: Peer) -> None:
        local = peer.pc.localDescription
        sdp, candidates = _split_candidates(local.sdp)
        kind = OFFER if local.type == "offer" else ANSWER
        to = (peer.user_id, peer.device_id)
        await self.send_signal(to, description=calls_res.SessionDescription(type=kind,
                                                                             sdp=sdp))
        for mid, index, line in candidates:
            await self.send_signal(to, candidate=calls_res.IceCandidate(
                candidate=line, sdp_mid=mid, sdp_m_line_index=index))
            peer.candidates_sent += 1
        await self.send_signal(to, candidate=calls_res.IceCandidate(sdp_mid="0"))

    async def _offer(self, peer: Peer) -> None:
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        await self._send_description(peer)

    async def _handle(self) -> None:
        """Apply the signals received, one at a time in their order."""
        while True:
            signal = await self._inbox.get()
            try:
                await self._apply(signal)
            except Exception as error:  # kept for the test to see
                self.errors.append(error)

    async def _apply(self, signal: calls_res.Signal) -> None:
        if self.call is None or signal.call != self.call.name:
            return  # a late one of an earlier call
        key = (signal.from_user_id, signal.from_device_id)
        if signal.HasField("description"):
            description = signal.description
            peer = self._peer(*key) if description.type == OFFER else self.peers[key]
            await peer.pc.setRemoteDescription(RTCSessionDescription(
                sdp=description.sdp, type=SDP_TYPES[description.type]))
            if description.type == OFFER:
                await peer.pc.setLocalDescription(await peer.pc.createAnswer())
                await self._send_description(peer)
            return
        peer = self.peers[key]
        candidate = signal.candidate
        if not candidate.candidate:
            await peer.pc.addIceCandidate(None)
            return
        parsed = candidate_from_sdp(candidate.candidate.removeprefix("candidate:"))
        parsed.sdpMid = candidate.sdp_mid or None
        parsed.sdpMLineIndex = candidate.sdp_m_line_index
        await peer.pc.addIceCandidate(parsed)
        peer.candidates_received += 1

    async def _drop_gone(self, call: calls_res.Call) -> None:
        """Close the connections to devices no longer in the call."""
        joined = {(p.user_id, p.device_id) for p in call.participants if p.state == JOINED}
        for key in [key for key in self.peers if key not in joined]:
            await self.peers[key].pc.close()

    async def _close_peers(self) -> None:
        """Close every connection and forget them (a new call starts afresh)."""
        for peer in self.peers.values():
            await peer.pc.close()
        self.peers.clear()

    async def close(self) -> None:
        await self._close_peers()
        await self.disconnect()
        self._handler.cancel()
        tasks = [self._handler, *self._tasks]
        await asyncio.gather(*tasks, return_exceptions=True)
