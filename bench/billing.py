"""What billing costs the send path: server CPU per send with billing on (the hard-cap
check before every CreateMessage, the billing cycle in the background) against off
(`CAAS_BILLING_ENABLED=false`), paired in one run. The counts billing reads are the
usage analytics', on in both (bench/analytics.py measures them).

Starts two `caas serve` (embedded defaults, each in a temporary directory of its own).
Then, ROUNDS times, in an order swapped each round, SENDERS members of a group of 10
send at `--rate` sends/s in all (equal load on both) for SECONDS into a new app of
each server (on the free plan, whose 10,000 messages a period this stays under):
server CPU per send. A first round warms both up and is not counted. Prints the
medians and the median of the per-round ratios of "on" to "off". On a VM whose pace
drifts by 10-20 % between rounds that ratio is only as good as the drift, so first
the one thing billing adds to a send is timed directly, in this process: the hard-cap
check the gateway makes before CreateMessage (`--gate-only`: that alone).

    .venv/bin/python bench/billing.py [--rounds 5] [--seconds 8] [--rate 300] [--gate-only]

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.send_messages import measure
from bench.servers import bench_server, machine_pace
from services.core.principal import Operator, User
from services.core.settings import load_settings
from services.organizations.models import Member, Organization, Role
from services.runtime import build_runtime

CONFIGS = {"off": {"CAAS_BILLING_ENABLED": "false"}, "on": {"CAAS_BILLING_ENABLED": "true"}}
SEND = "caas.messages.v1.MessagesService/CreateMessage"
CALLS = 200_000


async def gate_cost() -> None:
    """Microseconds per hard-cap check: an app without caps, and one on the free plan
    (an organization's app, checked against its counts)."""
    with tempfile.TemporaryDirectory() as tmp:
        runtime = await build_runtime(load_settings(data_dir=Path(tmp),
                                                    operator_token="caaso_" + "t" * 40))
        await runtime.apps.do_create_app(Operator(), "own", "Own", "")
        await runtime.stores.organizations.create_organization(
            Organization("acme", "Acme", False, runtime.clock.now()),
            Member("acme", "owner", Role.OWNER, runtime.clock.now()))
        await runtime.apps.do_create_app(Operator(), "customer", "Customer", "",
                                         organization="organizations/acme")
        gate = runtime.billing.gate
        for app_id, what in (("own", "no caps (internal plan)"),
                             ("customer", "capped (free plan)")):
            user = User(app_id, "alice", "s1")
            await gate.admit(SEND, user, None)  # its terms, cached
            started = time.perf_counter()
            for _ in range(CALLS):
                await gate.admit(SEND, user, None)
            cost = (time.perf_counter() - started) / CALLS
            print(f"hard-cap check before CreateMessage, {what}: {cost * 1e6:.2f} us",
                  flush=True)
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--gate-only", action="store_true")
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    asyncio.run(gate_cost())
    if args.gate_only:
        return
    figures: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        servers = {}
        for name, env in CONFIGS.items():
            (Path(tmp) / name).mkdir()
            servers[name] = stack.enter_context(bench_server(Path(tmp) / name, env=env))
        names = list(servers)
        for round_number in range(args.rounds + 1):  # the first round warms up
            for name in names if round_number % 2 else names[::-1]:
                server = servers[name]
                sends = asyncio.run(measure(server.address, server.operator_token,
                                            server.process.pid, 10, args.senders,
                                            args.seconds, 8, rate=args.rate))
                print(f"round {round_number or 'warm-up'} {name:>3}: "
                      f"{sends.cpu_per_send * 1e6:6.0f} us/send "
                      f"({len(sends.latencies) / sends.elapsed:,.0f} sends/s)", flush=True)
                if round_number:
                    figures[name].append(sends.cpu_per_send)
    on, off = figures["on"], figures["off"]
    ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
    print(f"\nserver CPU per send, medians over {args.rounds} rounds: off "
          f"{statistics.median(off) * 1e6:.1f} us, on {statistics.median(on) * 1e6:.1f} us; "
          f"median ratio on/off {ratio:.3f} ({ratio - 1:+.1%})")


if __name__ == "__main__":
    main()
