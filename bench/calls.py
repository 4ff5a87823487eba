"""Calls (services/calls): how long a call takes to set up between two real WebRTC
peers, and how many signaling messages one server process relays.

Starts its own `caas serve` (embedded defaults, SQLite, in a temporary directory; no
STUN or TURN configured, so the peers connect directly on loopback) and runs:

- setup: CALLS sequential 1:1 calls in one direct conversation between two aiortc
  devices (tests/support/webrtc.py) on connections of their own, after a warm-up call.
  Each: alice's StartCall → bob's stream shows `call.started` → bob's AcceptCall → bob
  offers, alice answers, each trickles its ICE candidates and the end of candidates as
  signals → both RTCPeerConnections "connected" (ICE and the DTLS handshake done).
  Then alice hangs up and bob's stream shows `call.ended`. Times from StartCall sent
  to both connected: p50/p99/max, with the phases (StartCall's answer, the ring
  reaching bob, AcceptCall's answer, then ICE + DTLS to connected).
- signals: alice and bob joined in a call (no media), SENDERS tasks on alice's
  connection each send SIGNALS / SENDERS SendSignal ICE-candidate messages to bob's
  device, one after the other, as fast as the answers come; bob's stream reads them.
  Measured until bob's stream got every one: sends/s (answered SendSignal calls over
  the sending time), delivered/s (first send to last arrival), SendSignal latency
  p50/p99, send → arrival p50/p99, lost, duplicated and out of each sender's order,
  and server CPU per signal.

The load generator (both peers, aiortc's ICE/DTLS/Opus, the gRPC clients) runs on the
same cores as the server.

    .venv/bin/python bench/calls.py [--calls 50] [--signals 20000] [--senders 8]
                                    [--batch-window SECONDS]

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.calls.v1 import resources_pb2 as calls_res

from bench.realtime import SEPARATE
from bench.servers import bench_server, machine_pace, server_cpu
from tests.support.chat import DIRECT, Person, person
from tests.support.client import Client, bearer
from tests.support.webrtc import CallDevice, loopback_ice


def quantile(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def ms(values: list[float]) -> str:
    return (f"p50 {quantile(values, 50) * 1e3:7.1f} ms, p99 {quantile(values, 99) * 1e3:7.1f}"
            f" ms, max {max(values) * 1e3:7.1f} ms")


async def pair(address: str, operator: str) -> tuple[Person, Person, str]:
    """alice and bob of a new app, each on a connection of their own, and their
    direct conversation."""
    client = Client(address)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Bench")), metadata=bearer(operator))
    alice = await person(client, app_id, app.api_key_secret, "alice")
    bob = await person(client, app_id, app.api_key_secret, "bob")
    alice = replace(alice, client=Client(address, SEPARATE))
    bob = replace(bob, client=Client(address, SEPARATE))
    direct = await alice.create(DIRECT, ("bob",))
    return alice, bob, direct.name


async def one_call(alice: CallDevice, bob: CallDevice, conversation: str
                   ) -> dict[str, float]:
    began = time.perf_counter()
    call = await alice.start_call(conversation)
    started = time.perf_counter()
    while (await bob.event("call.started")).call_started.name != call.name:
        pass
    rung = time.perf_counter()
    await bob.accept(call.name)  # sends bob's offer and candidates before it returns
    accepted = time.perf_counter()
    await asyncio.gather(alice.wait_connected(), bob.wait_connected())
    connected = max(alice.peer("bob").connected_at, bob.peer("alice").connected_at)
    await alice.leave()
    while (await bob.event("call.ended")).call_ended.name != call.name:
        pass
    return {"setup": connected - began, "start": started - began, "ring": rung - started,
            "accept": accepted - rung, "connect": connected - accepted}


async def setup_times(address: str, operator: str, calls: int) -> None:
    alice_person, bob_person, direct = await pair(address, operator)
    alice = CallDevice(alice_person, "alice-laptop")
    bob = CallDevice(bob_person, "bob-phone")
    await alice.connect()
    await bob.connect()
    await one_call(alice, bob, direct)  # warm-up: codecs, certificates, first imports
    signals = len(alice.signals) + len(bob.signals)
    phases: dict[str, list[float]] = {}
    for _ in range(calls):
        for phase, seconds in (await one_call(alice, bob, direct)).items():
            phases.setdefault(phase, []).append(seconds)
    per_call = (len(alice.signals) + len(bob.signals) - signals) / calls
    print(f"setup: {calls} sequential calls, StartCall sent → both peers connected "
          f"(aiortc, peer to peer on loopback; {per_call:g} signals a call)")
    print(f"  {'total':>8}: {ms(phases['setup'])}")
    for phase, label in (("start", "StartCall answered"), ("ring", "call.started at bob"),
                         ("accept", "AcceptCall + offer and candidates sent"),
                         ("connect", "then ICE + DTLS to both connected")):
        print(f"  {phase:>8}: {ms(phases[phase])}  ({label})")
    for device in (alice, bob):
        await device.close()


async def signal_rate(address: str, operator: str, pid: int, total: int, senders: int
                      ) -> None:
    alice_person, bob_person, direct = await pair(address, operator)
    alice = CallDevice(alice_person, "alice-laptop", negotiate=False)
    bob = CallDevice(bob_person, "bob-phone", negotiate=False)
    await alice.connect()
    await bob.connect()
    call = await alice.start_call(direct)
    await bob.accept(call.name)
    to_bob = ("bob", bob.device_id)
    await alice.send_signal(to_bob, candidate=calls_res.IceCandidate(sdp_mid="0"))  # warm
    await bob.wait_signals(1)
    base = len(bob.signals)
    each = total // senders
    total = each * senders
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    async def sender(task: int) -> None:
        for number in range(each):
            foundation = f"{task:03d}{number:07d}"
            line = (f"candidate:{foundation} 1 udp 2130706431 127.0.0.1 {40000 + task} "
                    "typ host")
            began = time.perf_counter()
            sent_at[foundation] = began
            await alice.send_signal(to_bob, candidate=calls_res.IceCandidate(
                candidate=line, sdp_mid="0", sdp_m_line_index=0))
            latencies.append(time.perf_counter() - began)

    cpu = server_cpu(pid)
    began = time.perf_counter()
    await asyncio.gather(*(sender(task) for task in range(senders)))
    sent = time.perf_counter()
    with contextlib.suppress(TimeoutError):  # what did not come is counted as lost
        await bob.wait_signals(base + total, within=60)
    done = time.perf_counter()
    used = server_cpu(pid) - cpu
    arrived = bob.signals[base:]
    times = bob.signal_times[base:]
    foundations = [s.candidate.candidate.split()[0].removeprefix("candidate:")
                   for s in arrived]
    delays = [at - sent_at[f] for f, at in zip(foundations, times, strict=True)]
    last: dict[str, int] = {}
    out_of_order = 0
    for foundation in foundations:
        task, number = foundation[:3], int(foundation[3:])
        out_of_order += number < last.get(task, -1)
        last[task] = number
    unique = len(set(foundations))
    print(f"signals: {total:,} SendSignal candidates from alice's device to bob's, "
          f"{senders} senders one after the other each, one connection")
    print(f"  sent: {total / (sent - began):7,.0f}/s over {sent - began:.1f} s; SendSignal "
          f"{ms(latencies)}")
    print(f"  delivered: {len(arrived) / (done - began):7,.0f}/s (first send → last "
          f"arrival, {done - began:.1f} s); send → arrival {ms(delays)}")
    print(f"  lost {total - unique}, duplicated {len(arrived) - unique}, out of a sender's "
          f"order {out_of_order}; server CPU {used / total * 1e6:,.0f} us per signal "
          f"({used / (done - began):.0%} of a core)")
    await alice.leave()
    for device in (alice, bob):
        await device.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--signals", type=int, default=20000)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--batch-window", type=float, default=None,
                        help="CAAS_STREAM_BATCH_WINDOW for the server, in seconds "
                             "(default: the setting's own, 25 ms)")
    args = parser.parse_args()
    env = ({} if args.batch_window is None
           else {"CAAS_STREAM_BATCH_WINDOW": str(args.batch_window)})
    print(machine_pace(), flush=True)
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp), env=env) as server, \
            loopback_ice():
        asyncio.run(setup_times(server.address, server.operator_token, args.calls))
        asyncio.run(signal_rate(server.address, server.operator_token, server.process.pid,
                                args.signals, args.senders))


if __name__ == "__main__":
    main()
