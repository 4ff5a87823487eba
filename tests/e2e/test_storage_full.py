"""A full disk (issue 13, item 5), for real: `caas serve` on a small tmpfs of its own.

While the disk is full, writes answer UNAVAILABLE with the reason STORAGE_FULL and a
RetryInfo (no INTERNAL, no stack in the log), reads go on, and the process is not
ready (gRPC health NOT_SERVING); once space is freed it is ready again by itself and
writes work, with everything acknowledged before still there and nothing of what
failed. A data directory that cannot be written stops `caas serve` at once: one
line, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from tests.conftest import create_app, expect_error
from tests.support.chat import GROUP, person
from tests.support.client import Client, details
from tests.support.servers import BIN, OPERATOR_TOKEN, CaasServer, start_caas
from tests.support.tmpfs import fill, on_tmpfs, seen_by, tmpfs_unavailable
from tests.support.waiting import eventually

UNAVAILABLE_HERE = tmpfs_unavailable()
needs_tmpfs = pytest.mark.skipif(bool(UNAVAILABLE_HERE), reason=UNAVAILABLE_HERE)
needs_setpriv = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                   reason="dropping root's capabilities needs root and setpriv")
TEXT = "x" * 3000
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[CaasServer]:
    wrapper, env = on_tmpfs("size=8m")
    server = start_caas(tmp_path / "data", env=env, wrapper=wrapper)
    yield server
    server.process.stop()


async def health(client: Client, service: str = "") -> int:
    response = await client.health.Check(health_pb2.HealthCheckRequest(service=service))
    return int(response.status)


async def ready_is(client: Client, status: int) -> bool:
    return (await health(client) == status
            and await health(client, "caas.component.store-writes") == status)


@needs_tmpfs
async def test_a_full_disk_refuses_writes_cleanly_and_recovers_by_itself(
        small_disk: CaasServer) -> None:
    server = small_disk
    client = Client(server.address)
    try:
        app = await create_app(client, server.operator_token)
        alice = await person(client, app.app_id, app.api_key, "alice")
        group = await alice.create(GROUP)
        acknowledged = []
        for n in range(3):
            await alice.send(group.name, f"before {n}")
            acknowledged.append(f"before {n}")
        assert await health(client) == SERVING

        filler = fill(seen_by(server.process.pid, server.data_dir))
        failed: list[str] = []  # request ids of the sends refused
        for n in range(100):  # the first send that needs a new page fails
            try:
                await alice.send(group.name, f"{n} {TEXT}", request_id=f"full-{n}")
                acknowledged.append(f"{n} {TEXT}")
            except grpc.aio.AioRpcError as error:
                got = details(error)
                assert (got.code, got.reason, got.retry_seconds) == (
                    grpc.StatusCode.UNAVAILABLE, "STORAGE_FULL", 5), got
                failed.append(f"full-{n}")
                break
        assert failed, "the disk never filled up"
        refused = await expect_error(
            alice.send(group.name, "still full", request_id="still-full"),
            grpc.StatusCode.UNAVAILABLE, "STORAGE_FULL")
        assert refused.retry_seconds == 5
        failed.append("still-full")
        await eventually(lambda: ready_is(client, NOT_SERVING))
        listed = await alice.messages(group.name)  # reads go on
        assert [m.text for m in listed.messages] == acknowledged

        filler.unlink()  # space is back: the process finds out by itself
        await eventually(lambda: ready_is(client, SERVING))
        for request_id in failed:  # what failed left nothing: sent again, it is new
            again = await alice.send(group.name, f"again {request_id}", request_id=request_id)
            assert again.created
            acknowledged.append(f"again {request_id}")
        listed = await alice.messages(group.name)
        assert [m.text for m in listed.messages] == acknowledged
    finally:
        await client.close()
    assert server.process.stop() == 0
    logs = server.logs()
    assert not [r for r in logs if r.get("level") in ("ERROR", "CRITICAL")]
    assert not [line for line in server.process.lines if "Traceback" in line]
    changes = [str(r["message"]) for r in logs if r.get("component") == "store-writes"]
    assert len(changes) == 2, changes  # once down, once back: however many writes failed
    assert changes[0].startswith("store-writes is down: the disk is full")
    assert changes[1] == "store-writes is back"
    full = [r for r in logs if r.get("reason") == "STORAGE_FULL"]
    assert full and all(r["level"] == "WARNING" and "exception" not in r
                        and "database or disk is full" in str(r["message"]) for r in full)
    calls = [r for r in logs if r.get("message") == "rpc"
             and r.get("method") == "caas.messages.v1.MessagesService/CreateMessage"]
    assert {r["code"] for r in calls} == {"OK", "UNAVAILABLE"}  # never INTERNAL


def refused_start(tmp_path: Path, wrapper: list[str], env: dict[str, str],
                  data_dir: Path) -> tuple[int, list[str]]:
    """Run `caas serve` on `data_dir`; its exit code and output lines."""
    done = subprocess.run(
        [*wrapper, str(BIN / "caas"), "serve"], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
        env={**os.environ, **env, "CAAS_DATA_DIR": str(data_dir),
             "CAAS_OPERATOR_TOKEN": OPERATOR_TOKEN, "CAAS_LISTEN": "127.0.0.1:0",
             "CAAS_HTTP_LISTEN": ""})
    return done.returncode, (done.stdout + done.stderr).splitlines()


@needs_tmpfs
@pytest.mark.parametrize(("options", "then", "why"), [
    ("ro,size=1m", "", "Read-only file system"),
    ("size=256k", 'cat /dev/zero > "$CAAS_DATA_DIR/filler" 2>/dev/null', "No space left on device"),
], ids=["read-only", "full"])
def test_an_unwritable_data_directory_stops_the_start_with_one_line(
        tmp_path: Path, options: str, then: str, why: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    wrapper, env = on_tmpfs(options, then)
    code, lines = refused_start(tmp_path, wrapper, env, data)
    assert (code, lines) == (2, [f"caas: cannot write to the data directory {data}: {why}"])


@needs_setpriv
def test_a_data_directory_without_permission_stops_the_start_with_one_line(
        tmp_path: Path) -> None:
    """A directory of another user, for root without the capability to override file
    permissions (as for any service user)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chown(data, 65534, 65534)
    wrapper = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    code, lines = refused_start(tmp_path, wrapper, {}, data)
    assert (code, lines) == (
        2, [f"caas: cannot write to the data directory {data}: Permission denied"])


def test_a_data_directory_that_is_a_file_stops_the_start_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("not a directory")
    code, lines = refused_start(tmp_path, [], {}, data)
    assert (code, lines) == (2, [f"caas: cannot write to the data directory {data}: "
                                 "not a directory"])
