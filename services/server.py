"""The gRPC server process: every domain service, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Sequence
from typing import Any

import grpc
from caas.accounts.v1 import accounts_service_pb2
from caas.analytics.v1 import analytics_service_pb2
from caas.apps.v1 import apps_service_pb2
from caas.audit.v1 import audit_service_pb2
from caas.auth.v1 import auth_service_pb2
from caas.billing.v1 import billing_service_pb2
from caas.calls.v1 import calls_service_pb2
from caas.compliance.v1 import compliance_service_pb2
from caas.conversations.v1 import conversations_service_pb2
from caas.e2ee.v1 import e2ee_service_pb2
from caas.media.v1 import media_service_pb2
from caas.messages.v1 import messages_service_pb2
from caas.moderation.v1 import moderation_service_pb2
from caas.organizations.v1 import organizations_service_pb2
from caas.push.v1 import push_service_pb2
from caas.realtime.v1 import realtime_service_pb2
from caas.search.v1 import search_service_pb2
from caas.users.v1 import users_service_pb2
from caas.webhooks.v1 import webhooks_service_pb2
from google.protobuf import descriptor as pb_descriptor
from grpc_health.v1 import health_pb2

from services.accounts.servicer import AccountsServicer
from services.analytics.servicer import AnalyticsServicer
from services.apps.servicer import AppsServicer
from services.audit.servicer import AuditServicer
from services.auth.servicer import AuthServicer
from services.billing.servicer import BillingServicer
from services.calls.servicer import CallsServicer
from services.compliance.servicer import ComplianceServicer
from services.conversations.servicer import ConversationsServicer
from services.core.health import SERVING, Health
from services.core.health_http import HealthRoutes
from services.core.metrics import MetricsEndpoint, served
from services.core.settings import Settings
from services.core.tls import ServerContext, grpc_credentials, served_files, with_self_signed
from services.e2ee.servicer import E2eeServicer
from services.edge.envoy import SYSTEM_CA, EdgeTls, Envoy, edge_config, running_envoy
from services.media.servicer import MediaServicer
from services.messages.servicer import MessagesServicer
from services.moderation.servicer import ModerationServicer
from services.organizations.servicer import OrganizationsServicer
from services.push.servicer import PushServicer
from services.realtime.servicer import RealtimeServicer
from services.runtime import Runtime, build_runtime, operator_token_path
from services.search.servicer import SearchServicer
from services.standard import MethodTable, add_standard_services
from services.users.servicer import UsersServicer
from services.webhooks.servicer import WebhooksServicer

log = logging.getLogger("caas.server")


def services(runtime: Runtime) -> list[tuple[pb_descriptor.ServiceDescriptor, object]]:
    """Every CAAS service with its servicer."""
    return [
        (apps_service_pb2.DESCRIPTOR.services_by_name["AppsService"],
         AppsServicer(runtime.apps, runtime.clock, runtime.user_data, runtime.media_urls)),
        (auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"],
         AuthServicer(runtime.auth, runtime.clock)),
        (users_service_pb2.DESCRIPTOR.services_by_name["UsersService"],
         UsersServicer(runtime.users)),
        (conversations_service_pb2.DESCRIPTOR.services_by_name["ConversationsService"],
         ConversationsServicer(runtime.conversations)),
        (messages_service_pb2.DESCRIPTOR.services_by_name["MessagesService"],
         MessagesServicer(runtime.messages, runtime.media_urls)),
        (realtime_service_pb2.DESCRIPTOR.services_by_name["RealtimeService"],
         RealtimeServicer(runtime.realtime)),
        (webhooks_service_pb2.DESCRIPTOR.services_by_name["WebhooksService"],
         WebhooksServicer(runtime.webhooks)),
        (media_service_pb2.DESCRIPTOR.services_by_name["MediaService"],
         MediaServicer(runtime.media, runtime.media_urls)),
        (search_service_pb2.DESCRIPTOR.services_by_name["SearchService"],
         SearchServicer(runtime.search, runtime.media_urls)),
        (moderation_service_pb2.DESCRIPTOR.services_by_name["ModerationService"],
         ModerationServicer(runtime.moderation, runtime.flags, runtime.filters,
                            runtime.send_hooks, runtime.permissions)),
        (audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"],
         AuditServicer(runtime.audit)),
        (compliance_service_pb2.DESCRIPTOR.services_by_name["ComplianceService"],
         ComplianceServicer(runtime.retention, runtime.user_data, runtime.media_urls)),
        (accounts_service_pb2.DESCRIPTOR.services_by_name["AccountsService"],
         AccountsServicer(runtime.accounts)),
        (organizations_service_pb2.DESCRIPTOR.services_by_name["OrganizationsService"],
         OrganizationsServicer(runtime.organizations)),
        (analytics_service_pb2.DESCRIPTOR.services_by_name["AnalyticsService"],
         AnalyticsServicer(runtime.analytics)),
        (billing_service_pb2.DESCRIPTOR.services_by_name["BillingService"],
         BillingServicer(runtime.billing.actions, runtime.billing.links)),
        (e2ee_service_pb2.DESCRIPTOR.services_by_name["E2eeService"],
         E2eeServicer(runtime.e2ee)),
        (calls_service_pb2.DESCRIPTOR.services_by_name["CallsService"],
         CallsServicer(runtime.calls)),
        (push_service_pb2.DESCRIPTOR.services_by_name["PushService"],
         PushServicer(runtime.push)),
    ]


SERVICE_MODULES = (apps_service_pb2, auth_service_pb2, users_service_pb2,
                   conversations_service_pb2, messages_service_pb2, realtime_service_pb2,
                   webhooks_service_pb2, media_service_pb2, search_service_pb2,
                   moderation_service_pb2, audit_service_pb2, compliance_service_pb2,
                   accounts_service_pb2, organizations_service_pb2, analytics_service_pb2,
                   billing_service_pb2, e2ee_service_pb2, calls_service_pb2, push_service_pb2)


def contract_services() -> list[pb_descriptor.ServiceDescriptor]:
    """The descriptors of every CAAS service (what `services` serves)."""
    return [service for module in SERVICE_MODULES
            for service in module.DESCRIPTOR.services_by_name.values()]


def edge(settings: Settings, upstream: str, media_upstream: str
         ) -> contextlib.AbstractAsyncContextManager[Envoy | None]:
    """Envoy in front of the gRPC server at `upstream` and the media HTTP server at
    `media_upstream`, unless `http_listen` is empty."""
    if not settings.http_listen:
        return contextlib.nullcontext()
    services = contract_services()
    return running_envoy(settings.envoy_binary, edge_config(
        services, listen=settings.http_listen, upstream=upstream, descriptor_path="",
        cors_origins=settings.cors_origins, max_request_bytes=settings.max_request_bytes,
        max_connections=settings.http_max_connections, media_upstream=media_upstream,
        tls=edge_tls(settings)), services)


def edge_tls(settings: Settings) -> EdgeTls | None:
    """Envoy's TLS: the server's certificate, and its trust in the server's ports."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return EdgeTls(cert=str(settings.tls_cert_file.absolute()),
                   key=str(settings.tls_key_file.absolute()),
                   trusted_ca=str(settings.tls_ca_file.absolute()) if settings.tls_ca_file
                   else SYSTEM_CA,
                   client_cert=settings.tls_client_ca_file is not None)


def public_url(settings: Settings, envoy: Envoy) -> str:
    """Where clients reach Envoy: the configured public URL, else its own address."""
    if settings.media_public_url:
        return settings.media_public_url
    host = settings.http_listen.rpartition(":")[0].strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1"
    scheme = "https" if settings.tls_enabled else "http"
    return f"{scheme}://{host}:{envoy.port}"


PURGE_EVERY_SECONDS = 3600
STREAM_END_SECONDS = 1.0  # for ended streams to send their status
GC_THRESHOLD = 50_000  # allocations between young-generation collections (default 700)


async def purge_events(runtime: Runtime) -> None:
    """Drop events, webhook attempts and dead letters older than the retention (webhook
    deliveries that old become dead letters), now and every hour (every process does
    it; purging is idempotent)."""
    while True:
        try:
            now = runtime.clock.now()
            cutoff = now - runtime.settings.event_retention
            gone = await runtime.stores.events.purge(cutoff)
            records = await runtime.stores.webhooks.purge(cutoff, now)
            if gone or records:
                log.info("purged events", extra={"events": gone, "webhook_records": records})
        except Exception:
            log.warning("purging events failed", exc_info=True)
        await asyncio.sleep(PURGE_EVERY_SECONDS)


class _HealthReport:
    """Components' states into the gRPC health service: each as `caas.component.<name>`,
    and the overall status ("" and every CAAS service) NOT_SERVING while a component
    that readiness depends on is down."""

    def __init__(self, health: Health, servicer: Any, services: Sequence[str]) -> None:
        self._health = health
        self._servicer = servicer
        self._services = ["", *services]
        self._pending: set[asyncio.Task[None]] = set()

    def __call__(self, name: str, ok: bool, readiness: bool) -> None:
        serving = health_pb2.HealthCheckResponse.SERVING
        down = health_pb2.HealthCheckResponse.NOT_SERVING
        changes = [(f"caas.component.{name}", serving if ok else down)]
        if readiness:
            overall = serving if self._health.ready() else down
            changes += [(service, overall) for service in self._services]
        task = asyncio.get_running_loop().create_task(self._set(changes))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _set(self, changes: list[tuple[str, Any]]) -> None:
        for service, status in changes:
            await self._servicer.set(service, status)


class Server:
    """A started gRPC server over a runtime. Use `await Server.start(settings)`."""

    def __init__(self, runtime: Runtime, server: grpc.aio.Server,
                 health_servicer: Any, names: Sequence[str],
                 port: int, media_port: int, metrics: MetricsEndpoint,
                 tls: ServerContext | None) -> None:
        self.runtime = runtime
        self._metrics = metrics  # its endpoint, when CAAS_METRICS_LISTEN is set
        self.port = port
        self.media_port = media_port  # the media HTTP server's (for Envoy)
        self._stopped = False
        self._server = server
        self._health = health_servicer
        self._names = names
        self._purging = asyncio.create_task(purge_events(runtime), name="purge events")
        self._sweeping = asyncio.create_task(runtime.sweeper.run(), name="retention")
        self._operating = asyncio.create_task(runtime.operations.run(), name="operations")
        self._tls = tls
        if tls is not None:
            tls.watch()

    @classmethod
    async def start(cls, settings: Settings, runtime: Runtime | None = None) -> Server:
        settings = with_self_signed(settings)
        tls_files = served_files(settings)
        try:
            # The aiohttp ports' (media, metrics); the gRPC port has its own credentials.
            tls = ServerContext(tls_files) if tls_files is not None else None
        except (OSError, ValueError) as exc:
            raise SystemExit(f"caas: cannot use the TLS files (CAAS_TLS_CERT_FILE, "
                             f"CAAS_TLS_KEY_FILE, CAAS_TLS_CLIENT_CA_FILE): {exc}") from exc
        runtime = runtime or await build_runtime(settings)
        # No interceptor: the gateway makes the RPCs' spans when tracing is on (one
        # interceptor would slow every call; see _traced in services/gateway/gateway.py).
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", int(settings.reuse_port)),
            # Let clients keep idle connections open with pings.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            # Ping idle clients too: a peer gone without a goodbye (a phone losing its
            # network) is found within 40 s and its streams end, freeing their queues.
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            # No channelz (nothing here serves it): ~0.5 KiB less per connection.
            ("grpc.enable_channelz", 0),
        ])
        names = []
        table = MethodTable()
        for descriptor, servicer in services(runtime):
            table.add(descriptor.full_name, runtime.gateway.handlers(descriptor, servicer))
            names.append(descriptor.full_name)
        health_servicer = add_standard_services(table, names)
        server.add_generic_rpc_handlers((table,))
        try:
            port = (server.add_insecure_port(settings.listen) if tls_files is None
                    else server.add_secure_port(settings.listen, grpc_credentials(tls_files)))
        except RuntimeError as exc:
            await runtime.close()
            raise SystemExit(f"cannot listen on {settings.listen}: {exc}") from exc
        try:
            media_port = await runtime.media_http.start(
                settings.media_listen, settings.reuse_port, tls.context if tls else None)
        except OSError as exc:
            await server.stop(None)
            await runtime.close()
            raise SystemExit(f"cannot listen on {settings.media_listen} (CAAS_MEDIA_LISTEN): "
                             f"{exc}") from exc
        metrics = MetricsEndpoint(runtime.metrics.registry, HealthRoutes(runtime.health),
                                  runtime.metrics.flush)
        if served(settings.metrics_listen):
            runtime.sampler.start()  # the metrics read rather than counted
        if settings.metrics_listen:
            try:
                metrics_port = await metrics.start(settings.metrics_listen,
                                                   tls.context if tls else None)
            except OSError as exc:
                await server.stop(None)
                await runtime.media_http.close()
                await runtime.close()
                raise SystemExit(f"cannot listen on {settings.metrics_listen}"
                                 f" (CAAS_METRICS_LISTEN): {exc}") from exc
            log.info("metrics serving", extra={"metrics_port": metrics_port})
        await server.start()
        for name in ["", *names]:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        runtime.health.listen(_HealthReport(runtime.health, health_servicer, names))
        log.info("serving", extra={"port": port, "listen": settings.listen,
                                   "media_port": media_port, "store": settings.store,
                                   "tls": tls_files is not None,
                                   "mutual_tls": settings.tls_client_ca_file is not None,
                                   "services": names})
        return cls(runtime, server, health_servicer, names, port, media_port, metrics, tls)

    async def stop(self) -> None:
        """Drain, then close the stores: refuse new calls with UNAVAILABLE (health
        NOT_SERVING), let the unary calls in flight finish within the grace period,
        then end the streams with UNAVAILABLE and stop; what still runs at the end of
        the grace is cancelled."""
        if self._stopped:
            return
        self._stopped = True
        gateway = self.runtime.gateway
        grace = self.runtime.settings.shutdown_grace.total_seconds()
        deadline = asyncio.get_running_loop().time() + grace
        gateway.start_draining()
        self.runtime.health.down(SERVING, "draining")
        self._purging.cancel()
        self._sweeping.cancel()
        self._operating.cancel()
        if self._tls is not None:
            self._tls.close()
        await self._health.enter_graceful_shutdown()
        log.info("shutting down", extra={"grace_seconds": grace})
        if not await gateway.unary_calls_done(deadline):
            log.warning("calls still running at the end of the shutdown grace are cancelled")
        gateway.end_streams()
        await self._server.stop(max(STREAM_END_SECONDS,
                                    deadline - asyncio.get_running_loop().time()))
        await self.runtime.media_http.close()
        await self._metrics.close()
        await self.runtime.close()
        log.info("stopped")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    settings = with_self_signed(settings)
    if settings.operator_token is None:
        log.info("operator token", extra={"file": str(operator_token_path(settings))})
    # Signals first: a SIGTERM arriving as the server starts drains it, once started.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    server = await Server.start(settings)
    # Everything built so far lives as long as the process: keep it out of the
    # collector's generations, and collect less often (fewer pauses on hot paths).
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    try:
        host = settings.listen.rpartition(":")[0]
        media_host = settings.media_listen.rpartition(":")[0]
        async with edge(settings, f"{host}:{server.port}",
                        f"{media_host}:{server.media_port}") as envoy:
            if envoy is not None:
                server.runtime.media_urls.base_url = public_url(settings, envoy)
                server.runtime.portal.serving(public_url(settings, envoy))
            if not server.runtime.media_urls.base_url:
                log.warning("media URLs have no address: set CAAS_MEDIA_PUBLIC_URL to where "
                            "Envoy (or a CDN) serves /media/v1/")
            await stopping.wait()
            if envoy is not None:
                await envoy.fail_health()  # load balancers stop sending new clients
            # Drain first, with Envoy still relaying: streams end with UNAVAILABLE
            # (reconnect) rather than a cut connection.
            await server.stop()
    finally:
        await server.stop()  # when Envoy failed; a no-op after the drain above
