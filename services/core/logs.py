"""Structured logs: one JSON object per line on stderr (ready for Loki and friends).

A line logged while a span is current (tracing on: services/core/tracing.py) carries
its `trace_id` and `span_id` (hex, as trace backends show them), to go from a log line
to its trace and back. With tracing off no span is ever current: one context look-up.
"""

from __future__ import annotations

import json
import logging
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


def configure_logging(level: str, access_log: bool = True) -> None:
    """Send every log record to stderr as JSON at `level` and above; the per-RPC access
    log only when `access_log`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("caas.access").disabled = not access_log
    # The Elasticsearch client logs every request at INFO: its failures are enough.
    logging.getLogger("elastic_transport").setLevel(max(root.level, logging.WARNING))
