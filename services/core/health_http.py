"""Liveness and readiness over plain HTTP, for load balancers and orchestrators that
speak only HTTP: `GET /healthz` and `GET /readyz`.

- `/healthz` (liveness): 200 whenever the process answers. The answer comes from the
  event loop, so a loop that is stuck (or a process that is gone) is what makes it
  fail: restart the process then. A dependency being down never fails it (restarting
  would not bring the dependency back).
- `/readyz` (readiness): 200 while every component readiness needs works (the store,
  Redis and Kafka when configured, and not draining), else 503 naming the components
  that are down: send no new calls here for now. The reasons are not given (they can
  name internal addresses); the server's log and `caas_component_up` hold them.

Both are served on the server's HTTP port (which Envoy routes `/healthz` and `/readyz`
to) and on the metrics port.
"""

from __future__ import annotations

from aiohttp import web

from services.core.health import Health

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
PATHS = frozenset({LIVENESS_PATH, READINESS_PATH})
_NO_STORE = {"cache-control": "no-store"}


class HealthRoutes:
    def __init__(self, health: Health) -> None:
        self._health = health

    def add_to(self, app: web.Application) -> None:
        app.router.add_get(LIVENESS_PATH, self._live)
        app.router.add_get(READINESS_PATH, self._ready)

    async def _live(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"}, headers=_NO_STORE)

    async def _ready(self, _: web.Request) -> web.Response:
        down = self._health.not_ready()
        if down:
            return web.json_response({"status": "not ready", "down": down}, status=503,
                                     headers=_NO_STORE)
        return web.json_response({"status": "ready"}, headers=_NO_STORE)
