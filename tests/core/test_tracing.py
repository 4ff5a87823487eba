"""Tracing's switch (the standard OTEL_* variables) and W3C trace context as CAAS carries
it in records and headers."""

from __future__ import annotations

import pytest

from services.core.tracing import NO_TRACE, TraceHeaders, Tracing, current_headers, enabled_by

ENDPOINT = "http://127.0.0.1:4317"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(("environ", "on"), [
    ({}, False),  # off by default
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),  # the SDK's default endpoint
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "false"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "zipkin"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, True),
])
def test_traces_are_on_only_when_an_otlp_endpoint_is_configured(
        environ: dict[str, str], on: bool) -> None:
    assert enabled_by(environ) is on


async def test_off_hands_out_no_tracer() -> None:
    tracing = Tracing.from_environment({})
    assert not tracing.enabled
    assert tracing.tracer("caas.kafka") is None
    await tracing.shutdown()


async def test_on_builds_a_provider_named_caas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    # The SDK reads its own variables: sample nothing, so that nothing is exported.
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    tracing = Tracing.from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT})
    try:
        tracer = tracing.tracer("caas.test")
        assert tracing.enabled and tracer is not None
        assert tracer.resource.attributes["service.name"] == "caas"  # type: ignore[attr-defined]
        with tracer.start_as_current_span("work") as span:
            headers = current_headers()
            assert headers == current_headers(span)
            flags = int(headers.traceparent.rsplit("-", 1)[1], 16)
            assert not flags & 1  # not sampled, still propagated
    finally:
        await tracing.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chat-eu")
    named = Tracing.from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT})
    try:
        tracer = named.tracer("caas.test")
        assert tracer.resource.attributes["service.name"] == "chat-eu"  # type: ignore
    finally:
        await named.shutdown()


def test_trace_headers_round_trip() -> None:
    headers = TraceHeaders(TRACEPARENT, "vendor=abc")
    assert headers.items() == [("traceparent", TRACEPARENT), ("tracestate", "vendor=abc")]
    assert TraceHeaders(TRACEPARENT).items() == [("traceparent", TRACEPARENT)]
    assert NO_TRACE.items() == [] and not NO_TRACE and headers
    assert headers.context() is not None
    assert NO_TRACE.context() is None
    assert TraceHeaders("00-not-a-traceparent-01").context() is None
    assert TraceHeaders("00-" + "0" * 32 + "-b7ad6b7169203331-01").context() is None
    assert current_headers() == NO_TRACE  # no span is current
