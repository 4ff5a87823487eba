"""The restrictions the hot paths consult, in-process on a real SQLite store: they stop
applying at their expiry even while cached, and this process forgets them at once when
one changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.core.errors import PermissionDenied
from services.core.principal import Operator
from services.core.settings import load_settings
from services.moderation.models import APP_WIDE, RestrictionType
from services.runtime import Runtime, build_runtime
from tests.support.clock import MovableClock

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
async def clock() -> MovableClock:
    return MovableClock(T0)


@pytest.fixture
async def runtime(tmp_path: Path, clock: MovableClock) -> AsyncIterator[Runtime]:
    settings = load_settings(data_dir=tmp_path, operator_token="caaso_" + "t" * 40)
    runtime = await build_runtime(settings, clock=clock)
    await runtime.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    await runtime.users.ensure_user("alpha", "bob")
    yield runtime
    await runtime.close()


async def test_a_mute_ends_at_its_expiry_even_when_cached(runtime: Runtime,
                                                          clock: MovableClock) -> None:
    restrictions = runtime.restrictions
    await restrictions.check_write("alpha", "bob", "c1")  # cached: nothing applies
    ends = T0 + timedelta(minutes=10)
    await runtime.moderation.do_restrict(Operator(), "alpha", "bob", APP_WIDE,
                                         RestrictionType.MUTE, "spam", ends)
    with pytest.raises(PermissionDenied) as refused:  # forgotten at once: applies now
        await restrictions.check_write("alpha", "bob", "c1")
    assert refused.value.reason == "USER_MUTED"
    assert refused.value.metadata["expire_time"] == ends.isoformat()
    await restrictions.check_entry("alpha", "bob", "c1")  # a mute keeps nobody out
    await restrictions.check_sign_in("alpha", "bob")
    clock.moment = ends - timedelta(milliseconds=1)
    with pytest.raises(PermissionDenied):
        await restrictions.check_write("alpha", "bob", "c1")
    clock.moment = ends
    await restrictions.check_write("alpha", "bob", "c1")  # cached, and over


async def test_a_ban_says_more_than_a_mute(runtime: Runtime) -> None:
    restrictions = runtime.restrictions
    await runtime.moderation.do_restrict(Operator(), "alpha", "bob", APP_WIDE,
                                         RestrictionType.MUTE, "", None)
    await runtime.moderation.do_restrict(Operator(), "alpha", "bob", APP_WIDE,
                                         RestrictionType.BAN, "", None)
    for check in (restrictions.check_write, restrictions.check_entry):
        with pytest.raises(PermissionDenied) as refused:
            await check("alpha", "bob", "c1")
        assert refused.value.reason == "USER_BANNED"
        assert "expire_time" not in refused.value.metadata  # until lifted
    await restrictions.check_write("alpha", "carol", "c1")  # another user
