"""Traces (OpenTelemetry), off unless the standard `OTEL_*` environment turns them on.

On when an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or `OTEL_TRACES_EXPORTER=otlp`, unless
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The SDK reads the rest itself:
the exporter's endpoint, headers, timeout and TLS (`OTEL_EXPORTER_OTLP_*`; OTLP over
gRPC only), the sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`; default: the
caller's decision, else every trace), the batch processor (`OTEL_BSP_*`) and the
resource (`OTEL_SERVICE_NAME`, default `caas`; `OTEL_RESOURCE_ATTRIBUTES`).

One `Tracing` per process, built by the composition root with a provider of its own
(nothing is installed globally) and handed to the parts that trace. Off, it hands them
no tracer (`tracer()` is None): they skip every tracing call, so tracing off costs
nothing on hot paths. The RPCs' server spans are the gateway's (services/gateway/
gateway.py, `_traced`), not an interceptor's.

Context crosses process boundaries as W3C trace context (`traceparent`, `tracestate`):
in gRPC metadata and HTTP headers (the browser's call through Envoy), in the event log
(each event keeps the context of the request that recorded it, so the relays that read
it later continue that trace), in Kafka record headers, and in webhook requests.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("caas.tracing")

DEFAULT_SERVICE_NAME = "caas"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_W3C = TraceContextTextMapPropagator()


@dataclass(frozen=True, slots=True)
class TraceHeaders:
    """A span's W3C trace context, as carried in headers and records ("" when none)."""

    traceparent: str = ""
    tracestate: str = ""

    @classmethod
    def of(cls, traceparent: str | None, tracestate: str | None = None) -> TraceHeaders:
        """Stored or received values (None or "" when absent); NO_TRACE without a
        traceparent."""
        return cls(traceparent, tracestate or "") if traceparent else NO_TRACE

    @classmethod
    def found_in(cls, pairs: Iterable[tuple[str, Any]]) -> TraceHeaders:
        """The trace headers among `pairs`: gRPC metadata (str values) or Kafka record
        headers (bytes)."""
        found: dict[str, str] = {}
        for key, value in pairs:
            if key not in (TRACEPARENT, TRACESTATE):
                continue
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            if isinstance(text, str):
                found[key] = text
        return cls.of(found.get(TRACEPARENT), found.get(TRACESTATE))

    def __bool__(self) -> bool:
        return bool(self.traceparent)

    def items(self) -> list[tuple[str, str]]:
        """The headers to send: `traceparent`, and `tracestate` if any."""
        if not self.traceparent:
            return []
        if not self.tracestate:
            return [(TRACEPARENT, self.traceparent)]
        return [(TRACEPARENT, self.traceparent), (TRACESTATE, self.tracestate)]

    def context(self) -> Context | None:
        """The remote span these headers name, as a parent for new spans (None when
        there is none, or the headers do not parse)."""
        if not self.traceparent:
            return None
        carrier = {TRACEPARENT: self.traceparent}
        if self.tracestate:
            carrier[TRACESTATE] = self.tracestate
        context = _W3C.extract(carrier)
        if not trace.get_current_span(context).get_span_context().is_valid:
            return None
        return context


NO_TRACE = TraceHeaders()


def current_headers(span: Span | None = None) -> TraceHeaders:
    """The W3C context of `span` (default: the current span); NO_TRACE without one.
    (Formatted here as the W3C propagator formats it, without its carrier: this runs
    for every write of a traced process, sampled or not.)"""
    found = (span or trace.get_current_span()).get_span_context()
    if not found.is_valid:
        return NO_TRACE
    state = found.trace_state.to_header() if found.trace_state else ""
    return TraceHeaders(
        f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}", state)


def from_metadata(metadata: Any) -> Context | None:
    """The caller's context from gRPC metadata (`traceparent`, `tracestate`), if any."""
    return TraceHeaders.found_in(metadata or ()).context()


def enabled_by(environ: Mapping[str, str]) -> bool:
    """Whether `environ` turns tracing on (see the module's docstring); unsupported
    choices (an exporter other than OTLP, OTLP over HTTP) are logged and leave it off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
                 if e.strip()}
    if "none" in exporters:
        return False
    if exporters - {"otlp"}:
        log.warning("traces stay off: only the otlp exporter is supported",
                    extra={"OTEL_TRACES_EXPORTER": ",".join(sorted(exporters))})
        return False
    endpoint = (environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if not exporters and not endpoint:
        return False
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc")
    if protocol.strip().lower() != "grpc":
        log.warning("traces stay off: only OTLP over gRPC is supported",
                    extra={"OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
        return False
    return True


class Tracing:
    """The process's tracer provider, or none (tracing off). Build it with
    `from_environment`; `shutdown` at the process's end sends what is still queued."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Tracing:
        """Tracing as the `OTEL_*` variables say: off unless they name an OTLP
        endpoint (or exporter). The SDK reads its other variables from os.environ."""
        environ = os.environ if environ is None else environ
        if not enabled_by(environ):
            return cls()
        # Imported only when on: tracing off does not even load the SDK (~0.3 s).
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("traces on", extra={
            "service_name": resource.attributes.get(SERVICE_NAME),
            "endpoint": environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")})
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    def tracer(self, name: str) -> Tracer | None:
        """A tracer for the spans of the part `name` (`caas.kafka`, …); None when
        tracing is off, for the part to skip its spans."""
        if self._provider is None:
            return None
        return self._provider.get_tracer(name)

    async def shutdown(self) -> None:
        """Send the spans still queued (within the exporter's timeout), then stop."""
        if self._provider is not None:
            await asyncio.to_thread(self._provider.shutdown)
            self._provider = None
