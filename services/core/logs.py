"""Structured logs: one JSON object per line on stderr (ready for Loki and friends).

A line logged while a span is current (tracing on: services/core/tracing.py) carries
its `trace_id` and `span_id` (hex, as trace backends show them), to go from a log line
to its trace and back. With tracing off no span is ever current: one context look-up.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from datetime import UTC, datetime

from opentelemetry import trace

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message",
                                                                             "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class AccessSample(logging.Filter):
    """Keeps every access-log line of a call that failed, and a `share` (0 to 1) of those
    that succeeded (`code` OK), chosen at random: a busy server's log volume without
    losing one failure."""

    def __init__(self, share: float, rng: random.Random | None = None) -> None:
        super().__init__()
        self._share = share
        self._random = (rng or random.Random()).random  # noqa: S311 - sampling, no secret

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "code", "OK") != "OK" or self._share >= 1:
            return True
        return self._random() < self._share


def configure_logging(level: str, access_log: bool = True, access_share: float = 1.0
                      ) -> None:
    """Send every log record to stderr as JSON at `level` and above; the per-RPC access
    log only when `access_log`, every failed call's line and `access_share` of the
    others."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    access = logging.getLogger("caas.access")
    access.disabled = not access_log
    access.filters[:] = [AccessSample(access_share)] if access_share < 1 else []
    # The Elasticsearch client logs every request at INFO: its failures are enough.
    logging.getLogger("elastic_transport").setLevel(max(root.level, logging.WARNING))
