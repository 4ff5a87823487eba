"""Guest sessions in-process, on a clock the test moves: a guest's session ends its app's
guest session lifetime after it began, however often it refreshes, and no token it
issues outlives that end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.apps.models import GuestAccess
from services.core.errors import Unauthenticated
from services.core.principal import Operator, User
from services.core.settings import load_settings
from services.runtime import Runtime, build_runtime
from tests.support.clock import MovableClock

TOKEN = "caaso_" + "t" * 40
START = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


async def no_budget(app_id: str, user_id: str | None) -> None:
    return None


@pytest.fixture
async def clock() -> MovableClock:
    return MovableClock(START)


@pytest.fixture
async def runtime(tmp_path: Path, clock: MovableClock) -> AsyncIterator[Runtime]:
    built = await build_runtime(load_settings(data_dir=tmp_path, operator_token=TOKEN),
                                clock=clock)
    await built.apps.do_create_app(Operator(), "alpha", "Alpha", "",
                                   guest_access=GuestAccess(True, timedelta(hours=1)))
    yield built
    await built.close()


async def test_a_guest_session_ends_with_its_lifetime(runtime: Runtime,
                                                       clock: MovableClock) -> None:
    guest, session, first = await runtime.auth.do_create_guest_session(
        "alpha", "Visitor", "", "192.0.2.1", no_budget)
    end = START + timedelta(hours=1)
    assert (guest.role, session.end_time, session.expire_time) == ("guest", end, end)
    assert first.access_token_expire_time == START + timedelta(minutes=15)  # the default
    assert first.refresh_token_expire_time == end
    # Fifty minutes on, a refresh: the session still ends at `end`, and so does the token.
    clock.moment = START + timedelta(minutes=50)
    refreshed, second = await runtime.auth.do_refresh_session(first.refresh_token, no_budget)
    assert (refreshed.expire_time, refreshed.end_time) == (end, end)
    assert second.access_token_expire_time == end  # not 15 minutes: the session ends first
    assert isinstance(await runtime.authenticator.authenticate(second.access_token), User)
    # At the end nothing renews it, and its tokens stop working.
    clock.moment = end + timedelta(seconds=10)
    with pytest.raises(Unauthenticated) as refused:
        await runtime.auth.do_refresh_session(second.refresh_token, no_budget)
    assert refused.value.reason == "REFRESH_TOKEN_INVALID"
    with pytest.raises(Unauthenticated):
        await runtime.authenticator.authenticate(second.access_token)


async def test_a_lifetime_change_applies_to_new_guest_sessions(runtime: Runtime,
                                                                clock: MovableClock) -> None:
    _, before, _ = await runtime.auth.do_create_guest_session("alpha", "", "", "192.0.2.1",
                                                              no_budget)
    await runtime.apps.do_update_app(Operator(), "alpha", display_name=None, plan=None,
                                     guest_access=GuestAccess(True))  # back to 24 hours
    _, after, _ = await runtime.auth.do_create_guest_session("alpha", "", "", "192.0.2.1",
                                                             no_budget)
    assert before.end_time == START + timedelta(hours=1)
    assert after.end_time == START + timedelta(hours=24)
