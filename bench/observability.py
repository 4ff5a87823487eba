"""What observability costs: server CPU per send and per delivery with metrics and
traces off, metrics on, and traces on at 100 % and at 1 % sampling, paired in one run.

Starts one `caas serve` per configuration (embedded defaults, each in a temporary
directory of its own) and, for traces, an OpenTelemetry collector (rotel, exporting
nowhere) they send their spans to over OTLP/gRPC. Then, ROUNDS times, in an order
rotated each round, runs on each server:

- send: SENDERS members send as fast as they can into a group of 10 for SECONDS
  (bench/send_messages.py): server CPU per send;
- fanout: 5 senders at 200 messages/s into a group of 50, each member holding a stream,
  for SECONDS (bench/realtime.py): server CPU per delivery.

A first round warms every server up and is not counted. Prints each configuration's
median over the rounds, and the median of its per-round ratios to "off".

    .venv/bin/python bench/observability.py [--rounds 5] [--seconds 8] [--configs metrics]

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.realtime import prepare, step
from bench.send_messages import measure
from bench.servers import bench_server, machine_pace
from tests.support.processes import Process, free_ports, tcp_open, wait_until
from tests.support.rotel import EXECUTABLE

FANOUT_MEMBERS = 50
FANOUT_RATE = 200.0


def configurations(collector: str) -> dict[str, dict[str, str]]:
    traced = {"CAAS_METRICS_LISTEN": "127.0.0.1:0", "OTEL_EXPORTER_OTLP_ENDPOINT": collector}
    return {
        "off": {},
        "metrics": {"CAAS_METRICS_LISTEN": "127.0.0.1:0"},
        "metrics+traces 100%": {**traced, "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
        "metrics+traces 1%": {**traced, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                              "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    }


@contextlib.contextmanager
def collector(workdir: Path) -> Iterator[str]:
    """rotel taking OTLP/gRPC and dropping it (the blackhole exporter): its endpoint."""
    grpc_port, http_port = free_ports(2)
    process = Process([
        str(EXECUTABLE), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint", f"127.0.0.1:{http_port}", "--exporter", "blackhole",
        "--pid-file", str(workdir / "rotel.pid"), "--log-file", str(workdir / "rotel.log")],
        name="rotel")
    try:
        wait_until(lambda: tcp_open(grpc_port), 30, "rotel")
        yield f"http://127.0.0.1:{grpc_port}"
    finally:
        process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--configs", default="",
                        help="the configurations to run, comma-separated (off is always "
                             "run): metrics, 'metrics+traces 100%%', 'metrics+traces 1%%'")
    args = parser.parse_args()
    chosen = {"off", *filter(None, args.configs.split(","))}
    print(machine_pace(), flush=True)
    send_cpu: dict[str, list[float]] = {}
    delivery_cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(collector(Path(tmp)))
        servers = {}
        for number, (name, env) in enumerate(configurations(endpoint).items()):
            if args.configs and name not in chosen:
                continue
            (Path(tmp) / str(number)).mkdir()
            servers[name] = stack.enter_context(bench_server(Path(tmp) / str(number),
                                                             env=env))
        setups = {name: asyncio.run(prepare(server.address, server.operator_token,
                                            FANOUT_MEMBERS))
                  for name, server in servers.items()}
        names = list(servers)
        for round_number in range(args.rounds + 1):  # the first round warms up
            order = names[round_number % len(names):] + names[:round_number % len(names)]
            for name in order:
                server = servers[name]
                sends = asyncio.run(measure(server.address, server.operator_token,
                                            server.process.pid, 10, args.senders,
                                            args.seconds, 8))
                figures = step(setups[name], server.process.pid, 5, FANOUT_RATE,
                               args.seconds, 2)
                per_delivery = figures["cpu_per_delivery"] / 1e6  # seconds
                print(f"round {round_number or 'warm-up'} {name:>20}: "
                      f"{sends.cpu_per_send * 1e6:6.0f} us/send "
                      f"({len(sends.latencies) / sends.elapsed:,.0f} sends/s), "
                      f"{per_delivery * 1e6:5.1f} us/delivery "
                      f"(lost {figures['lost']:.0f})", flush=True)
                if round_number:
                    send_cpu.setdefault(name, []).append(sends.cpu_per_send)
                    delivery_cpu.setdefault(name, []).append(per_delivery)
    # Each round's ratio to the same round's "off": the machine's drift between rounds
    # cancels out.
    print(f"\nmedians over {args.rounds} rounds (server CPU; the change against 'off' is "
          "the median of each round's ratio):")
    for name in names:
        send = statistics.median(send_cpu[name])
        delivery = statistics.median(delivery_cpu[name])
        send_ratio = statistics.median(a / b for a, b in zip(send_cpu[name], send_cpu["off"],
                                                             strict=True))
        delivery_ratio = statistics.median(
            a / b for a, b in zip(delivery_cpu[name], delivery_cpu["off"], strict=True))
        print(f"{name:>20}: {send * 1e6:6.0f} us/send ({send_ratio - 1:+.1%}), "
              f"{delivery * 1e6:5.1f} us/delivery ({delivery_ratio - 1:+.1%})")


if __name__ == "__main__":
    main()
