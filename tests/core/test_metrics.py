"""The hot paths' tallies land in Prometheus as prometheus_client's own recording would
put them: the same buckets, sums and counts."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from services.core.metrics import RPC_BUCKETS, STORE_BUCKETS, Metrics, Tally


def test_a_tally_flushes_to_the_same_histogram_as_direct_observations() -> None:
    registry = CollectorRegistry()
    tallied = Histogram("tallied", "", buckets=STORE_BUCKETS, registry=registry)
    direct = Histogram("direct", "", buckets=STORE_BUCKETS, registry=registry)
    tally = Tally(tallied, STORE_BUCKETS)
    rng = random.Random(3)
    values = [rng.expovariate(1 / 0.002) for _ in range(5_000)]
    values += [*STORE_BUCKETS, 0.0, 99.0]  # on each bound (inclusive), and past all
    for number, value in enumerate(values):
        tally.observe(value)
        direct.observe(value)
        if number % 1_000 == 0:
            tally.flush()
    tally.flush()
    tally.flush()  # nothing new: nothing added
    text = generate_latest(registry).decode()

    def lines(name: str) -> list[str]:
        return sorted(line.replace(name, "x") for line in text.splitlines()
                      if line.startswith(name) and "_created" not in line
                      and "_sum" not in line)

    assert lines("tallied") == lines("direct")
    assert 'x_bucket{le="+Inf"} 5014.0' in lines("tallied")
    assert registry.get_sample_value("tallied_sum") == pytest.approx(
        registry.get_sample_value("direct_sum"))  # added up in another order


def test_rpcs_are_counted_once_flushed() -> None:
    metrics = Metrics()
    method = "/caas.apps.v1.AppsService/GetApp"
    for code in ("OK", "OK", "NOT_FOUND"):
        metrics.started(method)
        metrics.finished(method, code, 0.003)
    metrics.started(method)  # still running
    labels = {"service": "caas.apps.v1.AppsService", "method": "GetApp"}

    def sample(name: str, **extra: str) -> float | None:
        return metrics.registry.get_sample_value(name, {**labels, **extra})

    assert sample("caas_rpc_requests_total", code="OK") is None  # not flushed yet
    metrics.flush()
    assert sample("caas_rpc_requests_total", code="OK") == 2
    assert sample("caas_rpc_requests_total", code="NOT_FOUND") == 1
    assert sample("caas_rpc_in_flight") == 1
    assert sample("caas_rpc_duration_seconds_count") == 3
    assert sample("caas_rpc_duration_seconds_bucket", le=str(RPC_BUCKETS[1])) == 0
    assert sample("caas_rpc_duration_seconds_bucket", le=str(RPC_BUCKETS[2])) == 3
    metrics.finished(method, "OK", 0.2)
    metrics.flush()
    assert sample("caas_rpc_requests_total", code="OK") == 3
    assert sample("caas_rpc_in_flight") == 0
