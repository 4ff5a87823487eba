"""AppStore contract, on every engine."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.apps import mongo_store as apps_mongo
from services.apps import sqlite_store as apps_sqlite
from services.apps.models import NO_GUESTS, ApiKey, App, GuestAccess
from services.core.clock import to_ms
from services.core.db.mongo import MongoDatabase
from services.core.db.sqlite import SqliteDatabase
from services.core.errors import StoreConflict
from services.runtime import Stores
from tests.support.servers import ExternalServer

T0 = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)


def app(app_id: str, at: datetime = T0, plan: str = "free") -> App:
    return App(app_id, f"App {app_id}", plan, at, at)


def key(app_id: str, key_id: str, at: datetime = T0) -> ApiKey:
    return ApiKey(app_id, key_id, f"key {key_id}", f"hash-{app_id}-{key_id}", at)


async def test_app_round_trip_keeps_every_field(stores: Stores) -> None:
    await stores.apps.create_app(app("alpha"), key("alpha", "k1"))
    assert await stores.apps.get_app("alpha") == app("alpha")
    assert await stores.apps.get_api_key("alpha", "k1") == key("alpha", "k1")
    assert await stores.apps.get_app("missing") is None


async def test_duplicate_app_writes_nothing(stores: Stores) -> None:
    await stores.apps.create_app(app("alpha"), key("alpha", "k1"))
    with pytest.raises(StoreConflict):
        await stores.apps.create_app(app("alpha", plan="enterprise"), key("alpha", "k2"))
    assert (await stores.apps.get_app("alpha")) == app("alpha")
    assert await stores.apps.get_api_key("alpha", "k2") is None  # rolled back with the app


async def test_list_apps_pages_in_creation_order(stores: Stores) -> None:
    # Two apps share a creation time: the id breaks the tie.
    for app_id, offset in (("c", 0), ("a", 1), ("b", 1), ("d", 2)):
        await stores.apps.create_app(app(app_id, T0 + timedelta(seconds=offset)), None)
    first = await stores.apps.list_apps(2, None)
    assert [a.app_id for a in first] == ["c", "a"]
    last = first[-1]
    rest = await stores.apps.list_apps(10, (to_ms(last.create_time), last.app_id))
    assert [a.app_id for a in rest] == ["b", "d"]


async def test_update_app_changes_only_given_fields(stores: Stores) -> None:
    await stores.apps.create_app(app("alpha"), None)
    later = T0 + timedelta(minutes=1)
    updated = await stores.apps.update_app("alpha", later, plan="standard")
    assert updated == App("alpha", "App alpha", "standard", T0, later)
    renamed = await stores.apps.update_app("alpha", later, display_name="Renamed")
    assert renamed is not None and (renamed.display_name, renamed.plan) == ("Renamed", "standard")
    assert await stores.apps.update_app("missing", later, plan="free") is None


async def test_media_retention_is_kept_changed_and_cleared(stores: Stores) -> None:
    """Unset (None) is the server's default, distinct from 0 s; KEEP leaves it alone,
    None clears it."""
    week = timedelta(days=7, milliseconds=250)
    await stores.apps.create_app(replace(app("alpha"), media_retention=week), None)
    await stores.apps.create_app(replace(app("zero"), media_retention=timedelta(0)), None)
    await stores.apps.create_app(app("unset"), None)
    alpha = await stores.apps.get_app("alpha")
    assert alpha is not None and alpha.media_retention == week
    zero = await stores.apps.get_app("zero")
    assert zero is not None and zero.media_retention == timedelta(0)
    unset = await stores.apps.get_app("unset")
    assert unset is not None and unset.media_retention is None
    listed = {a.app_id: a.media_retention for a in await stores.apps.list_apps(10, None)}
    assert listed == {"alpha": week, "zero": timedelta(0), "unset": None}

    later = T0 + timedelta(minutes=1)
    renamed = await stores.apps.update_app("alpha", later, display_name="Renamed")
    assert renamed is not None and renamed.media_retention == week  # KEEP by default
    longest = timedelta(days=3650)
    changed = await stores.apps.update_app("alpha", later, media_retention=longest)
    assert changed == App("alpha", "Renamed", "free", T0, later, longest)
    cleared = await stores.apps.update_app("alpha", later, plan="standard",
                                           media_retention=None)
    assert cleared == App("alpha", "Renamed", "standard", T0, later, None)
    assert await stores.apps.get_app("alpha") == cleared
    set_later = await stores.apps.update_app("unset", later, media_retention=timedelta(hours=1))
    assert set_later is not None and set_later.media_retention == timedelta(hours=1)
    assert await stores.apps.update_app("missing", later, media_retention=None) is None


async def test_guest_access_is_kept_replaced_and_left_alone(stores: Stores) -> None:
    """Off unless set; replaced whole by update_app; None leaves it as it is."""
    hour = GuestAccess(True, timedelta(hours=1, milliseconds=5))
    await stores.apps.create_app(replace(app("alpha"), guest_access=hour), None)
    await stores.apps.create_app(app("plain"), None)
    alpha = await stores.apps.get_app("alpha")
    assert alpha is not None and alpha.guest_access == hour
    plain = await stores.apps.get_app("plain")
    assert plain is not None and plain.guest_access == NO_GUESTS
    listed = {a.app_id: a.guest_access for a in await stores.apps.list_apps(10, None)}
    assert listed == {"alpha": hour, "plain": NO_GUESTS}

    later = T0 + timedelta(minutes=1)
    renamed = await stores.apps.update_app("alpha", later, display_name="Renamed",
                                           media_retention=None)
    assert renamed is not None and renamed.guest_access == hour  # left alone
    default_lifetime = GuestAccess(True)
    changed = await stores.apps.update_app("alpha", later, guest_access=default_lifetime)
    assert changed == App("alpha", "Renamed", "free", T0, later,
                          guest_access=default_lifetime)
    turned_on = await stores.apps.update_app("plain", later, guest_access=hour)
    assert turned_on is not None and turned_on.guest_access == hour
    off = await stores.apps.update_app("plain", later, guest_access=NO_GUESTS)
    assert off is not None and off.guest_access == NO_GUESTS
    assert await stores.apps.get_app("plain") == off
    assert await stores.apps.update_app("missing", later, guest_access=hour) is None


async def test_api_keys_are_scoped_by_app(stores: Stores) -> None:
    await stores.apps.create_app(app("alpha"), key("alpha", "k1"))
    await stores.apps.create_app(app("beta"), key("beta", "k2"))
    assert await stores.apps.get_api_key("beta", "k1") is None
    assert [k.key_id for k in await stores.apps.list_api_keys("beta", 10, None)] == ["k2"]
    assert await stores.apps.revoke_api_key("beta", "k1", T0) is None
    still = await stores.apps.get_api_key("alpha", "k1")
    assert still is not None and still.active


async def test_duplicate_key_id_in_an_app_conflicts(stores: Stores) -> None:
    await stores.apps.create_app(app("alpha"), key("alpha", "k1"))
    with pytest.raises(StoreConflict):
        await stores.apps.create_api_key(key("alpha", "k1"))


async def test_list_api_keys_pages(stores: Stores) -> None:
    await stores.apps.create_app(app("alpha"), None)
    for index, key_id in enumerate(["k3", "k1", "k2"]):
        await stores.apps.create_api_key(key("alpha", key_id, T0 + timedelta(seconds=index)))
    page = await stores.apps.list_api_keys("alpha", 2, None)
    assert [k.key_id for k in page] == ["k3", "k1"]
    rest = await stores.apps.list_api_keys("alpha", 2, (to_ms(page[-1].create_time), "k1"))
    assert [k.key_id for k in rest] == ["k2"]


async def test_revoke_is_idempotent_and_keeps_the_first_time(stores: Stores) -> None:
    await stores.apps.create_app(app("alpha"), key("alpha", "k1"))
    first = await stores.apps.revoke_api_key("alpha", "k1", T0 + timedelta(seconds=5))
    second = await stores.apps.revoke_api_key("alpha", "k1", T0 + timedelta(seconds=9))
    assert first is not None and second is not None
    assert first.revoke_time == second.revoke_time == T0 + timedelta(seconds=5)
    assert not second.active
    assert await stores.apps.revoke_api_key("alpha", "nope", T0) is None


async def test_migrations_run_again_without_harm(stores: Stores) -> None:
    """Every start migrates; a second run must change nothing and lose nothing."""
    await stores.apps.create_app(app("alpha"), key("alpha", "k1"))
    for store in (stores.apps, stores.auth, stores.users, stores.conversations,
                  stores.messages):
        await store.migrate()
    assert await stores.apps.get_app("alpha") == app("alpha")


async def test_api_key_scopes_and_expiry_round_trip(stores: Stores) -> None:
    await stores.apps.create_app(app("alpha"), None)
    scoped = replace(key("alpha", "k1"), scopes=frozenset({"messages:read", "users:write"}),
                     expire_time=T0 + timedelta(days=30))
    await stores.apps.create_api_key(scoped)
    await stores.apps.create_api_key(key("alpha", "k2"))
    assert await stores.apps.get_api_key("alpha", "k1") == scoped
    full = await stores.apps.get_api_key("alpha", "k2")
    assert full is not None and (full.scopes, full.expire_time) == (frozenset({"*"}), None)
    listed = await stores.apps.list_api_keys("alpha", 10, None)
    assert listed == [scoped, key("alpha", "k2")]
    revoked = await stores.apps.revoke_api_key("alpha", "k1", T0 + timedelta(minutes=1))
    assert revoked is not None and (revoked.scopes, revoked.expire_time) == (
        scoped.scopes, scoped.expire_time)


async def test_api_keys_made_before_scopes_keep_every_scope_sqlite(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "old.db")
    try:
        await db.migrate("apps", apps_sqlite.MIGRATIONS[:2])
        at = to_ms(T0)

        def old_rows(conn: object) -> None:
            execute = conn.execute  # type: ignore[attr-defined]
            execute("INSERT INTO apps VALUES ('alpha', 'Alpha', 'free', ?, ?, NULL)", (at, at))
            execute("INSERT INTO api_keys VALUES ('alpha', 'k1', 'old', 'h', ?, NULL)", (at,))

        await db.write(old_rows)
        await db.migrate("apps", apps_sqlite.MIGRATIONS)
        old = await apps_sqlite.SqliteAppStore(db).get_api_key("alpha", "k1")
        assert old is not None and (old.scopes, old.expire_time) == (frozenset({"*"}), None)
        old_app = await apps_sqlite.SqliteAppStore(db).get_app("alpha")
        assert old_app is not None and old_app.guest_access == NO_GUESTS  # no guests
    finally:
        await db.close()


async def test_api_keys_made_before_scopes_keep_every_scope_mongodb(
        mongo: ExternalServer) -> None:
    db = await MongoDatabase.open(mongo.url, f"t{uuid.uuid4().hex[:12]}")
    try:
        await db.migrate("apps", apps_mongo.MIGRATIONS)
        await db.db["api_keys"].insert_one({
            "_id": "alpha/k1", "app_id": "alpha", "key_id": "k1", "display_name": "old",
            "secret_hash": "h", "create_time": T0, "revoke_time": None})
        old = await apps_mongo.MongoAppStore(db).get_api_key("alpha", "k1")
        assert old is not None and (old.scopes, old.expire_time) == (frozenset({"*"}), None)
        await db.db["apps"].insert_one({"_id": "alpha", "display_name": "Alpha",
                                        "plan": "free", "create_time": T0,
                                        "update_time": T0})
        old_app = await apps_mongo.MongoAppStore(db).get_app("alpha")
        assert old_app is not None and old_app.guest_access == NO_GUESTS  # no guests
    finally:
        await db.client.drop_database(db.db.name)
        await db.close()
