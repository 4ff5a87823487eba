"""Processes starting together on one new SQLite file all start (issue 13, item 9): none
loses its start to "database is locked" while another switches the file to WAL or
runs the migrations."""

from __future__ import annotations

import json
from pathlib import Path

from grpc_health.v1 import health_pb2

from tests.support.barrier import Barrier
from tests.support.client import Client
from tests.support.processes import Process
from tests.support.servers import BIN, OPERATOR_TOKEN

PROCESSES = 4
ROUNDS = 5


async def test_processes_starting_together_on_a_new_database_all_serve(tmp_path: Path
                                                                       ) -> None:
    for round_ in range(ROUNDS):
        data = tmp_path / f"round{round_}"
        data.mkdir()
        env = {"CAAS_DATA_DIR": str(data), "CAAS_OPERATOR_TOKEN": OPERATOR_TOKEN,
               "CAAS_LISTEN": "127.0.0.1:0", "CAAS_HTTP_LISTEN": "",
               "CAAS_ACCESS_LOG": "false"}
        # Each waits at a barrier before opening the store; they go together.
        barrier = Barrier(tmp_path / f"barrier{round_}", PROCESSES)
        processes = [Process([str(BIN / "caas"), "serve"], env=env | barrier.env(n),
                             cwd=data, name=f"caas {round_}.{n}") for n in range(PROCESSES)]
        try:
            barrier.release_when_all_arrive(lambda ps=processes: all(p.alive() for p in ps))
            for process in processes:  # raises if the process exits first
                line = process.wait_for_line(lambda line: '"message": "serving"' in line, 60)
                client = Client(f"127.0.0.1:{json.loads(line)['port']}")
                try:
                    checked = await client.health.Check(health_pb2.HealthCheckRequest())
                finally:
                    await client.close()
                assert checked.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            codes = [process.stop() for process in processes]
        assert codes == [0] * PROCESSES
        for process in processes:
            problems = [line for line in process.lines
                        if "Traceback" in line or "locked" in line
                        or _level(line) in {"ERROR", "CRITICAL"}]
            assert problems == [], process.name


def _level(line: str) -> str:
    try:
        return str(json.loads(line).get("level", ""))
    except ValueError:
        return ""
