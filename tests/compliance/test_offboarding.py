"""DeleteApp's grace period in the process, on both engines, with a clock the test
moves: the app's calls are refused at once, the operation waits out the grace,
UndeleteApp within it keeps everything (the operation ends, cancelled), and past it
the app's records are erased."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.compliance.offboarding import AppDeleter
from services.compliance.operations import DELETE_APP
from services.core.errors import DomainError
from services.core.principal import Operator
from services.runtime import Runtime, build_runtime
from tests.store.conftest import engine_settings
from tests.support.clock import MovableClock

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=7)


@pytest.fixture(params=["sqlite", "mongodb"])
async def world(request: pytest.FixtureRequest, tmp_path: Path
                ) -> AsyncIterator[tuple[Runtime, MovableClock]]:
    clock = MovableClock(T0)
    settings = engine_settings(request, tmp_path).model_copy(
        update={"app_deletion_grace": GRACE})
    runtime = await build_runtime(settings, clock=clock)
    for app_id in ("alpha", "beta"):
        await runtime.apps.do_create_app(Operator(), app_id, app_id.title(), "")
        await runtime.users.ensure_user(app_id, "alice")
    yield runtime, clock
    await runtime.close()


async def delete(runtime: Runtime, app_id: str) -> str:
    await runtime.apps.do_delete_app(Operator(), app_id)
    op = await runtime.user_data.start(DELETE_APP, AppDeleter.steps[0], app_id, app_id)
    return op.operation_id


async def test_undeleted_within_the_grace_nothing_goes(world: tuple[Runtime, MovableClock]
                                                       ) -> None:
    runtime, clock = world
    op_id = await delete(runtime, "alpha")
    with pytest.raises(DomainError) as refused:
        await runtime.plans.plan_of("alpha")
    assert refused.value.reason == "APP_UNAVAILABLE"
    app = await runtime.stores.apps.get_app("alpha")
    assert app is not None and app.purge_time == T0 + GRACE
    assert await runtime.operations.work_once()  # waits for the grace
    waiting = await runtime.stores.operations.get("alpha", op_id)
    assert waiting is not None and waiting.stage == "grace" and not waiting.done
    assert not await runtime.operations.work_once()  # nothing more until then

    await runtime.apps.do_undelete_app(Operator(), "alpha")
    await runtime.plans.plan_of("alpha")  # its calls work again
    clock.moment = T0 + GRACE + timedelta(seconds=1)
    assert await runtime.operations.work_once()
    ended = await runtime.stores.operations.get("alpha", op_id)
    assert ended is not None and ended.done and ended.error == "cancelled"
    assert await runtime.stores.users.get_user("alpha", "alice") is not None


async def test_past_the_grace_the_app_is_erased(world: tuple[Runtime, MovableClock]) -> None:
    runtime, clock = world
    op_id = await delete(runtime, "alpha")
    assert await runtime.operations.work_once()
    clock.moment = T0 + GRACE - timedelta(seconds=1)
    assert not await runtime.operations.work_once()  # not yet
    clock.moment = T0 + GRACE + timedelta(seconds=1)
    assert await runtime.operations.work_once()
    done = await runtime.stores.operations.get("alpha", op_id)
    assert done is not None and done.done and not done.error
    assert done.counts["records_erased"] >= 2  # the app, its first key, alice...
    assert await runtime.stores.apps.get_app("alpha") is None
    assert await runtime.stores.users.get_user("alpha", "alice") is None
    assert await runtime.stores.users.get_user("beta", "alice") is not None  # the other
