"""Prometheus metrics from running servers: one process, and `--workers 2`, whose counts
must add up to the calls made through both workers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_CONFIG
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer
from tests.support.processes import free_port
from tests.support.servers import CaasServer, ExternalServer, start_caas, wait_for_workers
from tests.support.waiting import eventually

APPS = "caas.apps.v1.AppsService"


def samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the endpoint: (name, labels) → value."""
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def metrics_port(server: CaasServer) -> int:
    line = server.process.wait_for_line(lambda text: '"message": "metrics serving"' in text)
    return int(json.loads(line)["metrics_port"])


async def calls(address: str, operator: str, ok: int, missing: int, connections: int = 1
                ) -> None:
    """`ok` GetApp calls that succeed and `missing` that are NOT_FOUND, spread over
    `connections` connections (so that workers share them)."""
    clients = [Client(address, [("grpc.use_local_subchannel_pool", 1)])
               for _ in range(connections)]
    try:
        for n in range(ok + missing):
            client = clients[n % connections]
            name = "apps/metered" if n < ok else "apps/nowhere"
            try:
                await client.apps.GetApp(apps_pb.GetAppRequest(name=name),
                                         metadata=bearer(operator))
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
def single(tmp_path: Path) -> Iterator[CaasServer]:
    server = start_caas(tmp_path, env={"CAAS_METRICS_LISTEN": f"127.0.0.1:{free_port()}"},
                        config=TEST_CONFIG)
    yield server
    assert server.process.stop() == 0


async def test_rpcs_are_counted_by_method_and_code(single: CaasServer) -> None:
    port = metrics_port(single)
    await create(single.address, single.operator_token)
    await calls(single.address, single.operator_token, ok=3, missing=2)
    found = samples(port)
    assert value(found, "caas_rpc_requests_total", service=APPS, method="GetApp",
                 code="OK") == 3
    assert value(found, "caas_rpc_requests_total", service=APPS, method="GetApp",
                 code="NOT_FOUND") == 2
    assert value(found, "caas_rpc_duration_seconds_count", service=APPS,
                 method="GetApp") == 5
    assert value(found, "caas_rpc_in_flight", service=APPS, method="GetApp") == 0
    assert value(found, "process_resident_memory_bytes") > 0
    # Bounded labels: no app, user or request id ever becomes one.
    assert not any(dict(labels).keys() - {"service", "method", "code", "le", "consumer"}
                   for name, labels in found if name.startswith("caas_"))


async def test_log_consumers_report_what_they_took_and_their_lag(single: CaasServer) -> None:
    port = metrics_port(single)
    client = Client(single.address)
    try:
        app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
            app_id="relayed", app=apps_res.App(display_name="Relayed")),
            metadata=bearer(single.operator_token))
        alice = await person(client, "relayed", app.api_key_secret, "alice")
        group = await alice.create(GROUP)
        for n in range(5):
            await alice.send(group.name, f"event {n}")
    finally:
        await client.close()
    # conversation.created, its member, and 5 message.created: 7 events, at least.
    async def taken() -> bool:
        found = samples(port)
        return (value(found, "caas_events_relayed_total", consumer="search") >= 6
                and value(found, "caas_event_consumer_lag", consumer="search") == 0)

    await eventually(taken, within=15, every=0.1)
    found = samples(port)
    assert value(found, "caas_events_relayed_total", consumer="webhooks") == 0  # none wanted
    assert ("caas_event_consumer_lag", frozenset({("consumer", "webhooks")})) in found


async def test_the_workers_counts_add_up(tmp_path: Path,
                                         redis_server: ExternalServer) -> None:
    server = start_caas(tmp_path, env={"CAAS_WORKERS": "2", "CAAS_REDIS_URL": redis_server.url,
                                       "CAAS_METRICS_LISTEN": f"127.0.0.1:{free_port()}"},
                        config=TEST_CONFIG)
    try:
        port = metrics_port(server)
        wait_for_workers(server)
        await create(server.address, server.operator_token)
        await calls(server.address, server.operator_token, ok=20, missing=10, connections=16)
        found = samples(port)
        assert value(found, "caas_rpc_requests_total", service=APPS, method="GetApp",
                     code="OK") == 20
        assert value(found, "caas_rpc_requests_total", service=APPS, method="GetApp",
                     code="NOT_FOUND") == 10
        assert value(found, "caas_rpc_duration_seconds_count", service=APPS,
                     method="GetApp") == 30
    finally:
        assert server.process.stop() == 0
    served_by = {json.loads(line)["pid"] for line in server.process.lines
                 if "AppsService/GetApp" in line and '"message": "rpc"' in line}
    assert len(served_by) == 2  # both workers counted some


async def create(address: str, operator: str) -> None:
    client = Client(address)
    try:
        await client.apps.CreateApp(apps_pb.CreateAppRequest(
            app_id="metered", app=apps_res.App(display_name="Metered")),
            metadata=bearer(operator))
    finally:
        await client.close()
