"""How long store operations take: the engines time them for a `Timer` (metrics), and
trace them as CLIENT spans when given a tracer (`SPAN_KIND`, OpenTelemetry's database
conventions: `db.system.name`, `db.operation.name`).

A store call gets a span only inside a span that records (a sampled request's): not
in a trace the sampler dropped (at 1 % sampling, 99 % of calls pay one context look-up
instead of a span each), nor outside any request (the relays' and indexers' rounds
would otherwise each start a trace of one store call).

An operation's name is bounded by the code, never by data: for SQLite, the store method
that ran the read or write (`message.get_message`); for MongoDB, the collection and the
command the driver sent (`messages.find`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from opentelemetry.trace import SpanKind

SPAN_KIND = SpanKind.CLIENT


class Timer(Protocol):
    def observe(self, operation: str, seconds: float) -> None:
        """`operation` took `seconds`."""

    def series(self, operation: str) -> Callable[[float], None]:
        """What to call with the seconds each run of `operation` took (quicker than
        `observe` for an engine that names its operations once)."""


def operation_name(function: Callable[..., Any]) -> str:
    """`message.get_message` for a function defined in `SqliteMessageStore.get_message`
    (the store and its method: the caller's view of the operation)."""
    parts = function.__qualname__.split(".<locals>.")[0].split(".")
    if len(parts) < 2:  # a module's function: `ping` for `_ping`
        return parts[0].lstrip("_")
    store, method = parts[-2], parts[-1]
    for prefix in ("Sqlite", "Mongo"):
        store = store.removeprefix(prefix)
    store = store.removesuffix("Store") or store
    return f"{store[0].lower()}{store[1:]}.{method}"
