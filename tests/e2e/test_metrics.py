"""Prometheus metrics from running servers: one process, and `--workers 2`, whose counts
must add up to the calls made through both workers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.webhooks.v1 import resources_pb2 as wh_res
from caas.webhooks.v1 import webhooks_service_pb2 as wh_pb

from tests.conftest import TEST_CONFIG, create_app
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer
from tests.support.metrics import Samples, metrics_port, samples, value
from tests.support.processes import free_port
from tests.support.servers import CaasServer, ExternalServer, start_caas, wait_for_workers
from tests.support.stream import subscribed
from tests.support.waiting import eventually
from tests.support.webhook_receiver import running_receiver

APPS = "caas.apps.v1.AppsService"


def get_app_counts(found: Samples) -> tuple[float, float, float]:
    """GetApp's calls answered OK and NOT_FOUND, and the latencies observed."""
    return (value(found, "caas_rpc_requests_total", service=APPS, method="GetApp",
                  code="OK"),
            value(found, "caas_rpc_requests_total", service=APPS, method="GetApp",
                  code="NOT_FOUND"),
            value(found, "caas_rpc_duration_seconds_count", service=APPS, method="GetApp"))


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


LIMITED = "caas.apps.v1.AppsService/ListApiKeys"  # 2 calls per window on the free plan


@pytest.fixture
def single(tmp_path: Path) -> Iterator[CaasServer]:
    server = start_caas(tmp_path, env={
        "CAAS_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        f"CAAS_PLANS__FREE__METHODS__{LIMITED}__PER_APP": "2",
        f"CAAS_PLANS__FREE__METHODS__{LIMITED}__PER_USER": "2"}, config=TEST_CONFIG)
    yield server
    assert server.process.stop() == 0


async def test_rpcs_are_counted_by_method_and_code(single: CaasServer) -> None:
    port = metrics_port(single)
    await create(single.address, single.operator_token)
    await calls(single.address, single.operator_token, ok=3, missing=2)
    found = samples(port)
    assert get_app_counts(found) == (3, 2, 5)
    assert value(found, "caas_rpc_in_flight", service=APPS, method="GetApp") == 0
    assert value(found, "process_resident_memory_bytes") > 0
    # Bounded labels: no app, user or request id ever becomes one.
    assert not any(dict(labels).keys() - BOUNDED_LABELS
                   for name, labels in found if name.startswith("caas_"))
    assert not any("metered" in label for _, labels in found for _, label in labels)


BOUNDED_LABELS = {"service", "method", "code", "le", "consumer", "engine", "operation",
                  "outcome", "plan", "component", "provider"}


async def test_streams_deliveries_the_log_and_the_store_are_measured(
        single: CaasServer) -> None:
    port = metrics_port(single)
    client = Client(single.address)
    try:
        app = await create_app(client, single.operator_token)
        alice = await person(client, app.app_id, app.api_key, "alice")
        bob = await person(client, app.app_id, app.api_key, "bob")
        group = await alice.create(GROUP, members=("bob",))
        stream = await subscribed(bob)
        for n in range(3):
            await alice.send(group.name, f"hello {n}")
        assert len(await stream.events(3)) == 3

        async def measured() -> bool:
            found = samples(port)
            return (value(found, "caas_streams_open") == 1
                    and value(found, "caas_events_delivered_total") >= 3
                    # conversation.created (with its members) and 3 messages
                    and value(found, "caas_event_log_head") >= 4)

        await eventually(measured, within=15, every=0.2)
        await stream.close()

        async def closed() -> bool:
            return value(samples(port), "caas_streams_open") == 0

        await eventually(closed, within=15, every=0.2)
    finally:
        await client.close()
    found = samples(port)
    assert value(found, "caas_stream_queued_events") == 0
    assert value(found, "caas_streams_lagged_total") == 0
    operations = {dict(labels)["operation"]: count for (name, labels), count in found.items()
                  if name == "caas_store_operation_duration_seconds_count"}
    assert operations["ping"] >= 1  # the readiness probe
    assert any(name.startswith("message.") and count >= 3
               for name, count in operations.items())
    assert all(dict(labels)["engine"] == "sqlite" for name, labels in found
               if name == "caas_store_operation_duration_seconds_count")
    assert value(found, "caas_ready") == 1
    assert value(found, "caas_component_up", component="store") == 1


async def test_rate_limit_refusals_are_counted_by_plan(single: CaasServer) -> None:
    port = metrics_port(single)
    client = Client(single.address)
    try:
        app = await create_app(client, single.operator_token)  # the free plan
        refused = calls = 0
        # Until three refusals: the windows are fixed, so the calls may straddle two
        # (the new window's calls are allowed, and not counted).
        while refused < 3 and calls < 20:
            calls += 1
            try:
                await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                              metadata=app.auth)
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                refused += 1
    finally:
        await client.close()
    assert refused == 3 and calls >= 5
    found = samples(port)
    assert value(found, "caas_rate_limited_total", plan="free") == 3
    assert value(found, "caas_rpc_requests_total", service=APPS, method="ListApiKeys",
                 code="RESOURCE_EXHAUSTED") == 3


async def test_webhook_attempts_are_counted_by_outcome(single: CaasServer) -> None:
    port = metrics_port(single)
    client = Client(single.address)
    try:
        app = await create_app(client, single.operator_token)
        with running_receiver() as receiver:
            # Delivered; refused by the receiver (500, three times: a dead letter); and
            # nobody listening (three times: a dead letter).
            urls = [receiver.url("ok"), receiver.url("fail"),
                    f"http://127.0.0.1:{free_port()}/gone"]
            for url in urls:
                await client.webhooks.CreateWebhook(wh_pb.CreateWebhookRequest(
                    parent=app.name, webhook=wh_res.Webhook(
                        url=url, event_types=["conversation.created"])), metadata=app.auth)
            alice = await person(client, app.app_id, app.api_key, "alice")
            await alice.create(GROUP)

            async def attempted() -> bool:
                found = samples(port)
                return (value(found, "caas_webhook_dead_letters_total") == 2
                        and value(found, "caas_webhook_attempts_total",
                                  outcome="delivered") == 1)

            await eventually(attempted, within=30, every=0.2)
    finally:
        await client.close()
    found = samples(port)
    assert value(found, "caas_webhook_attempts_total", outcome="rejected") == 3
    assert value(found, "caas_webhook_attempts_total", outcome="unreachable") == 3


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

        async def flushed() -> bool:  # each worker flushes its tallies every second
            return value(samples(port), "caas_rpc_duration_seconds_count", service=APPS,
                         method="GetApp") >= 30

        await eventually(flushed, within=15, every=0.1)
        found = samples(port)
        assert get_app_counts(found) == (20, 10, 30)
        # The process metrics are the supervisor's and its workers' together: more
        # memory than any one of them holds.
        rss = family_rss(server.process.pid)
        assert len(rss) == 3  # the supervisor and its two workers (Envoy: not started)
        assert value(found, "process_resident_memory_bytes") > max(rss.values())
        assert value(found, "process_cpu_seconds_total") > 0
    finally:
        assert server.process.stop() == 0
    served_by = {json.loads(line)["pid"] for line in server.process.lines
                 if "AppsService/GetApp" in line and '"message": "rpc"' in line}
    assert len(served_by) == 2  # both workers counted some


def family_rss(pid: int) -> dict[int, int]:
    """Resident bytes of process `pid` and of each of its children, by pid (Linux)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            found[int(stat.parent.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return found


async def create(address: str, operator: str) -> None:
    client = Client(address)
    try:
        await client.apps.CreateApp(apps_pb.CreateAppRequest(
            app_id="metered", app=apps_res.App(display_name="Metered")),
            metadata=bearer(operator))
    finally:
        await client.close()


async def test_the_access_log_keeps_every_failure_and_a_sample_of_the_rest(
        tmp_path: Path) -> None:
    server = start_caas(tmp_path, env={"CAAS_ACCESS_LOG_SAMPLE": "0"}, config=TEST_CONFIG)
    try:
        await create(server.address, server.operator_token)
        await calls(server.address, server.operator_token, ok=4, missing=3)
    finally:
        assert server.process.stop() == 0
    logged = [entry["code"] for entry in server.logs()
              if entry.get("message") == "rpc"
              and str(entry.get("method")).endswith("AppsService/GetApp")]
    assert logged == ["NOT_FOUND"] * 3
