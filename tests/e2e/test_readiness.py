"""Liveness and readiness against real dependencies that die and come back: Redis,
Kafka and the MongoDB-compatible store are stopped under a running server, which must
say it is not ready (HTTP /readyz through Envoy and on the metrics port, the gRPC
health service, `caas_ready`) within seconds while staying alive (/healthz), and
ready again once the dependency returns."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from grpc_health.v1 import health_pb2

from tests.conftest import TEST_CONFIG
from tests.support.client import Client
from tests.support.metrics import metrics_port, samples, value
from tests.support.processes import free_port
from tests.support.servers import (
    CaasServer,
    ExternalServer,
    start_caas,
    start_kafka,
    start_mongo,
    start_redis,
    wait_for_workers,
)
from tests.support.waiting import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
WITHIN = 20.0  # seconds: probes run each second and give up after two


def port_of(url: str) -> int:
    return int(url.rstrip("/").split("?")[0].rsplit(":", 1)[1].split("/")[0])


class Probes:
    """What a load balancer, an orchestrator and a scraper see of one server."""

    def __init__(self, server: CaasServer, workers: bool = False) -> None:
        self.server = server
        self.workers = workers  # the metrics port is the supervisor's (no /readyz)
        self.http = httpx.AsyncClient(base_url=server.http_url, timeout=10)
        self.client = Client(server.address)
        self.metrics = metrics_port(server)

    async def readiness(self) -> tuple[int, dict[str, object]]:
        answer = await self.http.get("/readyz")
        return answer.status_code, answer.json()

    async def grpc(self, service: str = "") -> int:
        answer = await self.client.health.Check(health_pb2.HealthCheckRequest(service=service))
        return int(answer.status)

    async def down(self, *components: str) -> None:
        """Until the server is not ready because exactly `components` are down, as
        every probe sees it (with workers, each of them may answer)."""
        async def said() -> bool:
            status, body = await self.readiness()
            found = samples(self.metrics)
            return (status == 503 and body == {"status": "not ready",
                                               "down": sorted(components)}
                    and await self.grpc() == NOT_SERVING
                    and all([await self.grpc(f"caas.component.{c}") == NOT_SERVING
                             for c in components])
                    and value(found, "caas_ready") == 0
                    and all(value(found, "caas_component_up", component=c) == 0
                            for c in components))

        await eventually(said, within=WITHIN, every=0.1)
        # Alive all along: a dead dependency is no reason to restart the process.
        assert (await self.http.get("/healthz")).json() == {"status": "alive"}
        if not self.workers:
            direct = await self.http.get(f"http://127.0.0.1:{self.metrics}/readyz")
            assert direct.status_code == 503

    async def ready(self) -> None:
        async def said() -> bool:
            return (await self.readiness() == (200, {"status": "ready"})
                    and await self.grpc() == SERVING
                    and value(samples(self.metrics), "caas_ready") == 1)

        await eventually(said, within=WITHIN, every=0.1)

    async def close(self) -> None:
        await self.http.aclose()
        await self.client.close()


def serve(data_dir: Path, **env: str) -> CaasServer:
    return start_caas(data_dir, env={"CAAS_METRICS_LISTEN": f"127.0.0.1:{free_port()}", **env},
                      config=TEST_CONFIG, http=True)


async def redis_outage(probes: Probes, redis: ExternalServer, workdir: Path
                       ) -> ExternalServer:
    """Kill Redis, watch the server say so, start it again on its port, watch the
    server come back: the new Redis."""
    redis.process.stop(signum=signal.SIGKILL)
    await probes.down("redis")
    redis = start_redis(workdir, port_of(redis.url))
    await probes.ready()
    return redis


@pytest.fixture
def kafka() -> Iterator[ExternalServer]:
    broker = start_kafka()
    yield broker
    broker.process.stop(signum=signal.SIGKILL)


async def test_readiness_follows_redis_and_kafka_down_and_back(
        tmp_path: Path, kafka: ExternalServer) -> None:
    (tmp_path / "redis").mkdir()
    redis = start_redis(tmp_path / "redis")
    server = serve(tmp_path / "data", CAAS_REDIS_URL=redis.url,
                   CAAS_KAFKA_BOOTSTRAP=kafka.url)
    probes = Probes(server)
    try:
        await probes.ready()
        redis = await redis_outage(probes, redis, tmp_path / "redis")

        kafka.process.stop(signum=signal.SIGKILL)
        await probes.down("kafka")
        kafka.process = start_kafka(port_of(f"tcp://{kafka.url}")).process
        await probes.ready()
    finally:
        await probes.close()
        assert server.process.stop() == 0
        redis.process.stop(signum=signal.SIGKILL)


async def test_every_worker_follows_redis_down_and_back(tmp_path: Path) -> None:
    """With `--workers 2`: Envoy's /readyz is answered by either worker, the gRPC health
    by the one a connection lands on, and `caas_ready` is the least of the workers'."""
    (tmp_path / "redis").mkdir()
    redis = start_redis(tmp_path / "redis")
    server = serve(tmp_path / "data", CAAS_WORKERS="2", CAAS_REDIS_URL=redis.url)
    wait_for_workers(server)
    probes = Probes(server, workers=True)
    try:
        await probes.ready()
        redis = await redis_outage(probes, redis, tmp_path / "redis")
    finally:
        await probes.close()
        assert server.process.stop() == 0
        redis.process.stop(signum=signal.SIGKILL)


async def test_readiness_follows_the_store_down_and_back(tmp_path: Path) -> None:
    mongo = start_mongo()
    server = serve(tmp_path, CAAS_STORE="mongodb", CAAS_MONGODB_URL=mongo.url,
                   CAAS_MONGODB_DATABASE="readiness")
    probes = Probes(server)
    try:
        await probes.ready()
        mongo.process.stop(signum=signal.SIGKILL)
        await probes.down("store")
        mongo = start_mongo(port_of(mongo.url))  # empty, but it answers
        await probes.ready()
    finally:
        await probes.close()
        server.process.stop(signum=signal.SIGKILL)  # its store lost everything
        mongo.process.stop(signum=signal.SIGKILL)


async def test_a_dependency_left_out_of_readiness_is_reported_but_not_required(
        tmp_path: Path, kafka: ExternalServer) -> None:
    server = serve(tmp_path, CAAS_KAFKA_BOOTSTRAP=kafka.url,
                   CAAS_READINESS_REQUIRES='["store"]')
    probes = Probes(server)
    try:
        await probes.ready()
        kafka.process.stop(signum=signal.SIGKILL)

        async def reported() -> bool:
            return value(samples(probes.metrics), "caas_component_up", component="kafka") == 0

        await eventually(reported, within=WITHIN, every=0.1)
        assert await probes.readiness() == (200, {"status": "ready"})
        assert await probes.grpc() == SERVING
        assert await probes.grpc("caas.component.kafka") == NOT_SERVING
    finally:
        await probes.close()
        assert server.process.stop() == 0
