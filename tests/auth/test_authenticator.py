"""The authenticator and sign-in actions in-process, on real SQLite stores."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.core.errors import Unauthenticated
from services.core.principal import AppBackend, Operator, User
from services.core.settings import load_settings
from services.runtime import Runtime, build_runtime, open_stores
from tests.support.clock import MovableClock

TOKEN = "caaso_" + "t" * 40


async def no_budget(app_id: str, user_id: str) -> None:
    return None


@pytest.fixture
async def runtimes(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two server processes' worth of runtime on one database."""
    settings = load_settings(data_dir=tmp_path, operator_token=TOKEN)
    first = await build_runtime(settings)
    second = await build_runtime(settings)
    yield first, second
    await first.close()
    await second.close()


async def test_rotation_in_one_process_is_seen_at_once_by_another(
        runtimes: tuple[Runtime, Runtime]) -> None:
    one, two = runtimes
    await one.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    _, before = await one.auth.do_create_session(Operator(), "alpha", "u", "", None, no_budget)
    authenticator = two.authenticator
    assert isinstance(await authenticator.authenticate(before.access_token), User)
    await one.auth.do_rotate_signing_key(Operator(), "alpha")
    _, after = await one.auth.do_create_session(Operator(), "alpha", "u", "", None, no_budget)
    # `two` loaded the keys a moment ago, before the rotation: it must look again.
    user = await authenticator.authenticate(after.access_token)
    assert isinstance(user, User) and user.user_id == "u"


class RevokeDuringLookup:
    """An app store whose key lookup lets a revocation commit before it answers."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.during_lookup: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get_api_key(self, app_id: str, key_id: str) -> Any:
        found = await self._inner.get_api_key(app_id, key_id)
        if self.during_lookup is not None:
            action, self.during_lookup = self.during_lookup, None
            await action()
        return found


async def test_a_lookup_racing_a_revocation_is_not_cached(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, operator_token=TOKEN)
    stores = await open_stores(settings)
    racing = RevokeDuringLookup(stores.apps)
    stores.apps = racing
    runtime = await build_runtime(settings, stores=stores)
    try:
        _, first = await runtime.apps.do_create_app(Operator(), "alpha", "Alpha", "")
        authenticator = runtime.authenticator

        async def revoke() -> None:
            await runtime.apps.do_revoke_api_key(Operator(), "alpha", first.key.key_id)

        racing.during_lookup = revoke
        # This call read the key before the revocation committed: it may pass...
        assert isinstance(await authenticator.authenticate(first.secret), AppBackend)
        # ...but nothing stale was cached: the next call sees the revocation.
        with pytest.raises(Unauthenticated) as caught:
            await authenticator.authenticate(first.secret)
        assert caught.value.reason == "API_KEY_REVOKED"
    finally:
        await runtime.close()


async def test_unknown_refresh_tokens_never_wait_for_the_writer(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, operator_token=TOKEN)
    runtime = await build_runtime(settings)
    try:
        await runtime.apps.do_create_app(Operator(), "alpha", "Alpha", "")
        blocker = sqlite3.connect(tmp_path / "caas.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # every write now waits
        try:
            with pytest.raises(Unauthenticated) as caught:
                await asyncio.wait_for(
                    runtime.auth.do_refresh_session("caasr_alpha_" + "x" * 43, no_budget), 2)
            assert caught.value.reason == "REFRESH_TOKEN_INVALID"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    finally:
        await runtime.close()


async def test_an_api_key_stops_at_its_expiry_even_when_cached(tmp_path: Path) -> None:
    clock = MovableClock(datetime(2026, 12, 1, tzinfo=UTC))
    settings = load_settings(data_dir=tmp_path, operator_token=TOKEN)
    runtime = await build_runtime(settings, clock=clock)
    try:
        await runtime.apps.do_create_app(Operator(), "alpha", "Alpha", "")
        expiry = clock.moment + timedelta(hours=1)
        new = await runtime.apps.do_create_api_key(
            Operator(), "alpha", "nightly job", frozenset({"messages:read"}), expiry)
        backend = await runtime.authenticator.authenticate(new.secret)  # now cached
        assert backend == AppBackend("alpha", new.key.key_id, frozenset({"messages:read"}),
                                     expiry)
        clock.moment = expiry - timedelta(milliseconds=1)
        assert await runtime.authenticator.authenticate(new.secret) == backend
        clock.moment = expiry
        with pytest.raises(Unauthenticated) as refused:
            await runtime.authenticator.authenticate(new.secret)
        assert refused.value.reason == "API_KEY_EXPIRED"
    finally:
        await runtime.close()
