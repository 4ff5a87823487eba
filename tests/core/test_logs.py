"""The access log's sampling: every failure kept, a share of the successes."""

from __future__ import annotations

import logging
import random

from services.core.logs import AccessSample


def record(code: str) -> logging.LogRecord:
    entry = logging.LogRecord("caas.access", logging.INFO, "", 0, "rpc", (), None)
    entry.code = code
    return entry


def test_failures_are_always_kept_and_a_share_of_successes() -> None:
    sample = AccessSample(0.1, random.Random(7))
    assert all(sample.filter(record(code)) for code in ("INTERNAL", "NOT_FOUND") * 500)
    kept = sum(sample.filter(record("OK")) for _ in range(10_000))
    assert 800 < kept < 1_200  # about a tenth (seeded: the same count each run)


def test_none_and_all() -> None:
    assert not any(AccessSample(0.0).filter(record("OK")) for _ in range(1_000))
    assert all(AccessSample(1.0).filter(record("OK")) for _ in range(1_000))
    assert AccessSample(0.0).filter(record("UNAVAILABLE"))
