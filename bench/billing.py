"""What billing costs the send path: server CPU per send with billing on (the hard-cap
check before every CreateMessage, the billing cycle in the background) against off
(`CAAS_BILLING_ENABLED=false`), paired in one run. The counts billing reads are the
usage analytics', on in both (bench/analytics.py measures them).

Starts two `caas serve` (embedded defaults, each in a temporary directory of its own).
Then, ROUNDS times, in an order swapped each round, SENDERS members of a group of 10
send at `--rate` sends/s in all (equal load on both) for SECONDS into a new app of
each server (on the free plan, whose 10,000 messages a period this stays under):
server CPU per send. A first round warms both up and is not counted. Prints the
medians and the median of the per-round ratios of "on" to "off".

    .venv/bin/python bench/billing.py [--rounds 5] [--seconds 8] [--rate 300]

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.send_messages import measure
from bench.servers import bench_server, machine_pace

CONFIGS = {"off": {"CAAS_BILLING_ENABLED": "false"}, "on": {"CAAS_BILLING_ENABLED": "true"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--rate", type=float, default=300.0)
    args = parser.parse_args()
    print(machine_pace(), flush=True)
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
