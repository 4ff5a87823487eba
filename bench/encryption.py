"""What encryption of message content at rest costs: server CPU per send, per
ListMessages page and per stream delivery with CAAS_CONTENT_ENCRYPTION on against
off, paired in one run.

Starts two `caas serve` (embedded defaults, each in a temporary directory of its own),
one with content sealed under each sender's key (the default) and one without. Then,
ROUNDS times, in an order swapped each round, runs on each server:

- send: SENDERS members of a group of 10 send ordinary chat sentences with a metadata
  value at `--rate` sends/s in all (equal load on both: CPU per send compares at the
  same throughput) for SECONDS (bench/send_messages.py): server CPU per send;
- list: a member reads the latest 50 messages (each sealed on the "on" server) with 4
  calls in flight for SECONDS: server CPU per call;
- fanout: 5 senders at 200 messages/s into a group of 50, each member holding a stream,
  for SECONDS (bench/realtime.py): server CPU per delivery (each event's payload is
  opened once per server, whatever the number of streams).

A first round warms both servers up and is not counted. Prints each figure's median
and the median of the per-round ratios of "on" to "off" (the machine's drift between
rounds cancels out).

    .venv/bin/python bench/encryption.py [--rounds 5] [--seconds 8] [--rate 200]

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res

from bench.moderation import sentence
from bench.realtime import prepare, step
from bench.send_messages import measure
from bench.servers import bench_server, machine_pace, server_cpu
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer

CONFIGS = {"off": {"CAAS_CONTENT_ENCRYPTION": "false"},
           "on": {"CAAS_CONTENT_ENCRYPTION": "true"}}
FANOUT_MEMBERS = 50
FANOUT_RATE = 200.0
PAGE = 50
LIST_IN_FLIGHT = 4


async def list_cost(address: str, operator: str, pid: int, seconds: float) -> float:
    """Server CPU seconds per ListMessages call of PAGE messages."""
    client = Client(address)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Bench")), metadata=bearer(operator))
    alice = await person(client, app_id, app.api_key_secret, "alice")
    bob = await person(client, app_id, app.api_key_secret, "bob")
    group = await alice.create(GROUP, ("bob",))
    for n in range(PAGE):
        await (alice if n % 2 else bob).send(group.name, sentence(n),
                                             metadata={"topic": f"t{n % 5}"})
    calls = 0
    deadline = time.perf_counter() + seconds

    async def reader() -> None:
        nonlocal calls
        while time.perf_counter() < deadline:
            listed = await bob.messages(group.name, page_size=PAGE)
            assert len(listed.messages) == PAGE
            calls += 1

    for _ in range(20):  # warm up
        await bob.messages(group.name, page_size=PAGE)
    before = server_cpu(pid)
    await asyncio.gather(*[reader() for _ in range(LIST_IN_FLIGHT)])
    used = server_cpu(pid) - before
    await client.close()
    return used / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    figures: dict[str, dict[str, list[float]]] = {
        name: {"send": [], "list": [], "delivery": []} for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        servers = {}
        for name, env in CONFIGS.items():
            (Path(tmp) / name).mkdir()
            servers[name] = stack.enter_context(bench_server(Path(tmp) / name, env=env))
        setups = {name: asyncio.run(prepare(server.address, server.operator_token,
                                            FANOUT_MEMBERS))
                  for name, server in servers.items()}
        names = list(servers)
        for round_number in range(args.rounds + 1):  # the first round warms up
            order = names if round_number % 2 else names[::-1]
            for name in order:
                server = servers[name]
                pid = server.process.pid
                sends = asyncio.run(measure(server.address, server.operator_token, pid, 10,
                                            args.senders, args.seconds, 8,
                                            text=sentence, rate=args.rate,
                                            metadata={"topic": "lunch"}))
                per_list = asyncio.run(list_cost(server.address, server.operator_token, pid,
                                                 args.seconds))
                fanned = step(setups[name], pid, 5, FANOUT_RATE, args.seconds, 2)
                per_delivery = fanned["cpu_per_delivery"] / 1e6  # seconds
                print(f"round {round_number or 'warm-up'} {name:>3}: "
                      f"{sends.cpu_per_send * 1e6:6.0f} us/send "
                      f"({len(sends.latencies) / sends.elapsed:,.0f} sends/s), "
                      f"{per_list * 1e6:6.0f} us/list of {PAGE}, "
                      f"{per_delivery * 1e6:5.1f} us/delivery (lost {fanned['lost']:.0f})",
                      flush=True)
                if round_number:
                    figures[name]["send"].append(sends.cpu_per_send)
                    figures[name]["list"].append(per_list)
                    figures[name]["delivery"].append(per_delivery)
    print(f"\nmedians over {args.rounds} rounds (server CPU; 'on' against 'off' is the "
          "median of each round's ratio):")
    for what in ("send", "list", "delivery"):
        on, off = figures["on"][what], figures["off"][what]
        ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
        print(f"{what:>8}: off {statistics.median(off) * 1e6:7.1f} us, "
              f"on {statistics.median(on) * 1e6:7.1f} us ({ratio - 1:+.1%})")


if __name__ == "__main__":
    main()
