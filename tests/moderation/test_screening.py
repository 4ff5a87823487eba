"""Content filters as the send path consults them, in-process on a real SQLite store:
another process (here, a second Screening over the same store) applies a change once its
cache time passes, compiling again only the filters that changed."""

from __future__ import annotations

import pytest

from services.core.errors import PermissionDenied
from services.core.principal import Operator
from services.moderation.matching import Folding
from services.moderation.models import FilterAction
from services.moderation.screening import Screening
from services.runtime import Runtime
from tests.moderation.test_matching import content_filter


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_another_process_applies_a_change_within_its_cache_time(
        runtime: Runtime) -> None:
    ticks = Ticks()
    other = Screening(runtime.stores.filters, runtime.stores.flags, Folding.load(),
                      runtime.clock, ttl=5, monotonic=ticks)
    assert (await other.check("alpha", "group", "darn")).text == "darn"  # cached: none
    await runtime.filters.do_create(Operator(), content_filter(
        "words", FilterAction.BLOCK, words=("darn",)))
    await runtime.filters.do_create(Operator(), content_filter(
        "links", FilterAction.MASK, blocked=("spam.example",)))
    ticks.now = 4.9
    assert (await other.check("alpha", "group", "darn")).text == "darn"  # still cached
    ticks.now = 5.0
    with pytest.raises(PermissionDenied) as refused:
        await other.check("alpha", "group", "darn")
    assert refused.value.metadata == {"filter": "apps/alpha/filters/words"}
    links = (await other.screen("alpha")).compiled["links"]
    changed = content_filter("words", FilterAction.MASK, words=("darn",))
    await runtime.filters.do_update(Operator(), changed, {"action"})
    ticks.now = 10.0
    assert (await other.check("alpha", "group", "darn www.spam.example")).text == "*** www.***"
    assert (await other.screen("alpha")).compiled["links"] is links  # not compiled again
