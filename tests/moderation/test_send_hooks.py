"""The pre-send hook's calls, in-process against a real local endpoint and a real SQLite
store: each call's outcome and latency are measured."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.core.errors import Unavailable
from services.core.principal import Operator
from services.moderation.models import FailurePolicy, SendHook
from services.moderation.send_hooks import HookMeter, Presend, SendHooks
from services.runtime import Runtime
from services.webhooks.delivery import Deliverer
from tests.support.webhook_receiver import running_receiver


def presend(text: str) -> Presend:
    return Presend("alpha", "c1", "group", "bob", "r1", text, {}, (), 0, 0)


async def test_each_call_is_counted_by_outcome_and_timed(runtime: Runtime) -> None:
    registry = CollectorRegistry()
    calls = Counter("calls", "", ["outcome"], registry=registry)
    seconds = Histogram("seconds", "", registry=registry)
    hooks = SendHooks(runtime.stores.send_hooks, Deliverer(1, public_only=False),
                      runtime.clock, 5, HookMeter(calls, seconds), allow_insecure=True)
    try:
        with running_receiver() as receiver:
            at = runtime.clock.now()
            given = SendHook("alpha", receiver.url("hook"), "", timedelta(milliseconds=200),
                             FailurePolicy.CLOSED, frozenset(), at, at)
            await hooks.do_update(Operator(), given, {"url", "timeout", "failure_policy"},
                                  allow_missing=True)
            assert await hooks.check(presend("hi")) == "hi"
            assert await hooks.check(presend("modify it")) == "changed it"
            await hooks.do_update(Operator(), SendHook(
                "alpha", receiver.url("hang"), "", given.timeout, given.failure_policy,
                frozenset(), at, at), {"url"}, allow_missing=False)
            with pytest.raises(Unavailable) as refused:
                await hooks.check(presend("hi"))
            assert refused.value.reason == "SEND_HOOK_UNAVAILABLE"
    finally:
        await hooks.close()
    counted = {s.labels["outcome"]: s.value for m in registry.collect() if m.name == "calls"
               for s in m.samples if s.name == "calls_total"}
    assert counted == {"allow": 1, "modify": 1, "failed": 1}
    observed = registry.get_sample_value("seconds_count")
    slowest = registry.get_sample_value("seconds_sum")
    assert observed == 3 and slowest is not None and slowest >= 0.2  # the timeout was waited
