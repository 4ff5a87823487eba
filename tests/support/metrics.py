"""Reading a running server's Prometheus endpoint, and its health over HTTP."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import CaasServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(port: int) -> Samples:
    """Every sample of the endpoint: (name, labels) → value."""
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def metrics_port(server: CaasServer) -> int:
    line = server.process.wait_for_line(lambda text: '"message": "metrics serving"' in text)
    return int(json.loads(line)["metrics_port"])
