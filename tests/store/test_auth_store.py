"""AuthStore contract, on every engine."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.auth.models import (
    RefreshToken,
    RevokeReason,
    RotateOutcome,
    Session,
    SigningKey,
)
from services.auth.store import KEPT_GENERATIONS
from services.core.clock import to_ms
from services.core.errors import StoreConflict
from services.runtime import Stores

T0 = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
DAY = timedelta(days=1)


def session(app_id: str, session_id: str, user_id: str = "alice", at: datetime = T0
            ) -> Session:
    return Session(app_id, session_id, user_id, "laptop", timedelta(minutes=15), at, at,
                   at + DAY)


def token(app_id: str, session_id: str, token_hash: str, at: datetime = T0) -> RefreshToken:
    return RefreshToken(app_id, token_hash, session_id, 1, at)


def signing_key(app_id: str, key_id: str, at: datetime = T0) -> SigningKey:
    return SigningKey(app_id, key_id, b"p" * 32, b"q" * 32, at)


async def test_signing_keys_first_and_rotation(stores: Stores) -> None:
    auth = stores.auth
    await auth.add_first_signing_key(signing_key("alpha", "k1"))
    with pytest.raises(StoreConflict):
        await auth.add_first_signing_key(signing_key("alpha", "k2"))
    assert [k.key_id for k in await auth.signing_keys("alpha")] == ["k1"]
    later = T0 + timedelta(minutes=5)
    await auth.rotate_signing_key(signing_key("alpha", "k3", later), retire_at=later + DAY)
    keys = await auth.signing_keys("alpha")
    assert [(k.key_id, k.expire_time) for k in keys] == [("k3", None), ("k1", later + DAY)]
    assert keys[1].private_key == b"p" * 32 and keys[1].public_key == b"q" * 32
    assert await auth.signing_keys("beta") == []


async def test_rotation_drops_keys_already_expired(stores: Stores) -> None:
    auth = stores.auth
    await auth.add_first_signing_key(signing_key("alpha", "k1"))
    t1 = T0 + timedelta(minutes=1)
    await auth.rotate_signing_key(signing_key("alpha", "k2", t1), retire_at=t1 + timedelta(hours=1))
    t2 = t1 + timedelta(hours=2)
    await auth.rotate_signing_key(signing_key("alpha", "k3", t2), retire_at=t2 + timedelta(hours=1))
    assert [k.key_id for k in await auth.signing_keys("alpha")] == ["k3", "k2"]


async def test_sessions_are_scoped_by_app(stores: Stores) -> None:
    auth = stores.auth
    await auth.create_session(session("alpha", "s1"), token("alpha", "s1", "h1"))
    assert await auth.get_session("alpha", "s1") == session("alpha", "s1")
    assert await auth.get_session("beta", "s1") is None
    assert await auth.list_sessions("beta", "alice", 10, None) == []
    assert await auth.revoke_session("beta", "s1", T0, RevokeReason.REVOKED_BY_APP) is None
    result = await auth.rotate_refresh_token("beta", "h1", "h2", T0, T0 + DAY)
    assert result.outcome is RotateOutcome.UNKNOWN
    intact = await auth.get_session("alpha", "s1")
    assert intact is not None and intact.revoke_time is None


async def test_create_session_is_atomic(stores: Stores) -> None:
    auth = stores.auth
    await auth.create_session(session("alpha", "s1"), token("alpha", "s1", "h1"))
    with pytest.raises(StoreConflict):  # its token hash is taken: nothing may remain
        await auth.create_session(session("alpha", "s2"), token("alpha", "s2", "h1"))
    assert await auth.get_session("alpha", "s2") is None


async def test_list_sessions_newest_first_with_pages(stores: Stores) -> None:
    auth = stores.auth
    for index, sid in enumerate(["sa", "sc", "sb", "sd"]):
        at = T0 + timedelta(seconds=min(index, 2))  # sb and sd share a time
        await auth.create_session(session("alpha", sid, at=at), token("alpha", sid, f"h{sid}"))
    await auth.create_session(session("alpha", "other", "bob"), token("alpha", "other", "hx"))
    page = await auth.list_sessions("alpha", "alice", 3, None)
    assert [s.session_id for s in page] == ["sd", "sb", "sc"]
    rest = await auth.list_sessions("alpha", "alice", 3,
                                    (to_ms(page[-1].create_time), page[-1].session_id))
    assert [s.session_id for s in rest] == ["sa"]


async def test_revoke_session_keeps_the_first_reason(stores: Stores) -> None:
    auth = stores.auth
    await auth.create_session(session("alpha", "s1"), token("alpha", "s1", "h1"))
    first = await auth.revoke_session("alpha", "s1", T0, RevokeReason.SIGNED_OUT)
    second = await auth.revoke_session("alpha", "s1", T0 + DAY, RevokeReason.REVOKED_BY_APP)
    assert first == second
    assert second is not None and second.revoke_reason is RevokeReason.SIGNED_OUT


async def test_refresh_rotation_and_reuse(stores: Stores) -> None:
    auth = stores.auth
    await auth.create_session(session("alpha", "s1"), token("alpha", "s1", "h1"))
    t1 = T0 + timedelta(minutes=10)
    rotated = await auth.rotate_refresh_token("alpha", "h1", "h2", t1, t1 + DAY)
    assert rotated.outcome is RotateOutcome.ROTATED and rotated.generation == 2
    assert rotated.session is not None
    assert (rotated.session.refresh_time, rotated.session.expire_time) == (t1, t1 + DAY)
    again = await auth.rotate_refresh_token("alpha", "h2", "h3", t1, t1 + DAY)
    assert again.generation == 3
    reused = await auth.rotate_refresh_token("alpha", "h1", "h9", t1, t1 + DAY)
    assert reused.outcome is RotateOutcome.REUSED
    assert reused.session is not None
    assert reused.session.revoke_reason is RevokeReason.REFRESH_TOKEN_REUSED
    # The family is dead: even the newest token no longer rotates.
    ended = await auth.rotate_refresh_token("alpha", "h3", "h4", t1, t1 + DAY)
    assert ended.outcome is RotateOutcome.ENDED
    assert (await auth.rotate_refresh_token("alpha", "h9", "h5", t1, t1 + DAY)).outcome \
        is RotateOutcome.UNKNOWN  # the reuse attempt issued nothing


async def test_a_session_with_an_end_never_refreshes_past_it(stores: Stores) -> None:
    auth = stores.auth
    end = T0 + timedelta(hours=2)
    guest = replace(session("alpha", "s1", "guest-a"), expire_time=end, end_time=end)
    await auth.create_session(guest, token("alpha", "s1", "h1"))
    assert await auth.get_session("alpha", "s1") == guest
    t1 = T0 + timedelta(hours=1)
    rotated = await auth.rotate_refresh_token("alpha", "h1", "h2", t1, t1 + DAY)
    assert rotated.outcome is RotateOutcome.ROTATED and rotated.session is not None
    assert (rotated.session.expire_time, rotated.session.end_time) == (end, end)
    ended = await auth.rotate_refresh_token("alpha", "h2", "h3", end, end + DAY)
    assert ended.outcome is RotateOutcome.ENDED
    # Sessions without an end keep none.
    await auth.create_session(session("alpha", "s2"), token("alpha", "s2", "k1"))
    other = await auth.get_session("alpha", "s2")
    assert other is not None and other.end_time is None


async def test_expired_session_does_not_rotate(stores: Stores) -> None:
    auth = stores.auth
    await auth.create_session(session("alpha", "s1"), token("alpha", "s1", "h1"))
    result = await auth.rotate_refresh_token("alpha", "h1", "h2", T0 + DAY, T0 + 2 * DAY)
    assert result.outcome is RotateOutcome.ENDED
    fresh = await auth.rotate_refresh_token("alpha", "h1", "h2", T0 + DAY / 2, T0 + 2 * DAY)
    assert fresh.outcome is RotateOutcome.ROTATED  # the failed attempt consumed nothing


async def test_concurrent_refreshes_of_one_token_rotate_once(stores: Stores) -> None:
    auth = stores.auth
    await auth.create_session(session("alpha", "s1"), token("alpha", "s1", "h1"))
    results = await asyncio.gather(*[
        auth.rotate_refresh_token("alpha", "h1", f"n{i}", T0, T0 + DAY) for i in range(5)])
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes.count(RotateOutcome.ROTATED.value) == 1
    assert set(outcomes) <= {RotateOutcome.ROTATED.value, RotateOutcome.REUSED.value,
                             RotateOutcome.ENDED.value}


async def test_old_generations_are_pruned(stores: Stores) -> None:
    auth = stores.auth
    await auth.create_session(session("alpha", "s1"), token("alpha", "s1", "g1"))
    for generation in range(1, KEPT_GENERATIONS + 2):
        result = await auth.rotate_refresh_token("alpha", f"g{generation}",
                                                 f"g{generation + 1}", T0, T0 + DAY)
        assert result.outcome is RotateOutcome.ROTATED
    # The first token fell out of the kept window: refused, but the session lives on.
    assert (await auth.rotate_refresh_token("alpha", "g1", "x", T0, T0 + DAY)).outcome \
        is RotateOutcome.UNKNOWN
    # A recent used token still proves theft.
    reused = await auth.rotate_refresh_token("alpha", f"g{KEPT_GENERATIONS}", "y", T0, T0 + DAY)
    assert reused.outcome is RotateOutcome.REUSED


async def test_revoking_all_of_a_users_sessions(stores: Stores) -> None:
    auth = stores.auth
    await auth.create_session(session("alpha", "s1"), token("alpha", "s1", "h1"))
    await auth.create_session(session("alpha", "s2"), token("alpha", "s2", "h2"))
    await auth.create_session(session("alpha", "s3", "bob"), token("alpha", "s3", "h3"))
    await auth.revoke_session("alpha", "s2", T0, RevokeReason.SIGNED_OUT)
    revoked = await auth.revoke_user_sessions("alpha", "alice", T0 + DAY,
                                              RevokeReason.REVOKED_BY_APP)
    assert revoked == ["s1"]
    s1, s2, s3 = [await auth.get_session("alpha", s) for s in ("s1", "s2", "s3")]
    assert s1 is not None and s1.revoke_reason is RevokeReason.REVOKED_BY_APP
    assert s2 is not None and s2.revoke_reason is RevokeReason.SIGNED_OUT
    assert s3 is not None and s3.revoke_time is None
    assert await auth.revoke_user_sessions("beta", "alice", T0, RevokeReason.REVOKED_BY_APP) == []
