"""EventLog contract, on every engine: with tracing on, each event keeps the W3C trace
context current when its write committed (for the relays and webhook attempts that
continue the trace later); with tracing off, none, whatever is current."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer, get_current_span

from services.core.tracing import NO_TRACE, TraceHeaders, Tracing, current_headers
from services.runtime import Stores, open_stores
from tests.store.chat import make_group, send
from tests.store.conftest import engine_settings


@pytest.fixture(params=["sqlite", "mongodb"])
async def traced_stores(request: pytest.FixtureRequest, tmp_path: Path
                        ) -> AsyncIterator[Stores]:
    """Fresh stores on each engine, opened with tracing on (a provider exporting
    nowhere: only the context matters here)."""
    opened = await open_stores(engine_settings(request, tmp_path),
                               tracing=Tracing(TracerProvider()))
    yield opened
    await opened.close()


@pytest.fixture
def tracer() -> Tracer:
    return TracerProvider().get_tracer("test")


async def test_events_keep_the_context_of_the_write_that_recorded_them(
        traced_stores: Stores, tracer: Tracer) -> None:
    stores = traced_stores
    await make_group(stores, "g1", ["alice", "bob"])  # outside any span
    parent = TraceHeaders("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                          "vendor=abc")
    with tracer.start_as_current_span("CreateMessage", parent.context()):
        sent = current_headers()
        await send(stores, "g1", "alice", "traced")
    await send(stores, "g1", "bob", "after")
    created, traced, after = await stores.events.read("alpha", 0, 10)
    assert created.trace == NO_TRACE and after.trace == NO_TRACE
    assert traced.trace == sent
    assert traced.trace.traceparent.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert traced.trace.tracestate == "vendor=abc"  # the caller's, carried on
    assert await stores.events.trace("alpha", traced.position) == sent
    assert await stores.events.trace("alpha", created.position) == NO_TRACE
    assert await stores.events.trace("alpha", 99) == NO_TRACE  # no such event
    # The stored context names the span it was recorded in, as a parent.
    context = traced.trace.context()
    assert context is not None
    assert get_current_span(context).get_span_context().trace_id == int(
        "0af7651916cd43dd8448eb211c80319c", 16)


async def test_with_tracing_off_events_keep_no_context(stores: Stores, tracer: Tracer
                                                       ) -> None:
    await make_group(stores, "g1", ["alice", "bob"])
    with tracer.start_as_current_span("CreateMessage"):
        await send(stores, "g1", "alice", "untraced")
    events = await stores.events.read("alpha", 0, 10)
    assert [e.trace for e in events] == [NO_TRACE, NO_TRACE]
    assert await stores.events.trace("alpha", events[1].position) == NO_TRACE
