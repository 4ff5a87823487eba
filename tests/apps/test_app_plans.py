"""AppPlans: the per-app settings other domains read per call, cached and forgotten
when the app changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.core.principal import Operator
from services.core.settings import default_plans, load_settings
from services.runtime import Runtime, build_runtime

TOKEN = "caaso_" + "t" * 40


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    built = await build_runtime(load_settings(data_dir=tmp_path, operator_token=TOKEN))
    yield built
    await built.close()


async def test_media_retention_follows_the_app(runtime: Runtime) -> None:
    plans = runtime.plans
    await runtime.apps.do_create_app(Operator(), "alpha", "Alpha", "standard",
                                     timedelta(days=30))
    await runtime.apps.do_create_app(Operator(), "beta", "Beta", "")
    assert await plans.media_retention("alpha") == timedelta(days=30)
    assert await plans.media_retention("beta") is None  # the server's default applies
    assert await plans.media_retention("missing") is None
    standard, enterprise = default_plans()["standard"], default_plans()["enterprise"]
    assert await plans.plan_of("alpha") == standard  # one cached entry holds both

    await runtime.apps.do_update_app(Operator(), "alpha", display_name=None, plan=None,
                                     media_retention=None)
    await runtime.apps.do_update_app(Operator(), "beta", display_name=None, plan="enterprise",
                                     media_retention=timedelta(0))
    # "app.updated" dropped the cached entries: the next read sees the change.
    assert await plans.media_retention("alpha") is None
    assert await plans.media_retention("beta") == timedelta(0)
    assert await plans.plan_of("beta") == enterprise != standard
