"""Envelope encryption on both engines: sealed values open only where they were
sealed, survive a master key rotation, and stop opening when their key is erased."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from services.core.clock import SystemClock
from services.core.db.mongo import MongoDatabase
from services.core.db.sqlite import SqliteDatabase
from services.core.settings import Settings
from services.keys.keyring import MAGIC, TOKEN_PREFIX, KeyErased, Keyring
from services.keys.models import APP_OWNER, user_owner
from services.keys.mongo_store import MongoDataKeyStore
from services.keys.provider import KeyUnavailable, LocalKeyProvider
from services.keys.rotation import rotate_master_key
from services.keys.sqlite_store import SqliteDataKeyStore
from services.keys.store import DataKeyStore
from services.runtime import Stores, open_stores
from tests.store.conftest import engine_settings


def fresh(stores: Stores, directory: Path | None = None, ttl: float = 300.0) -> Keyring:
    """Another process's keyring on the same store: nothing cached."""
    provider = stores.keyring.provider
    assert isinstance(provider, LocalKeyProvider)
    return Keyring(stores.data_keys, LocalKeyProvider.open(directory or provider._dir),
                   SystemClock(), ttl)


async def test_sealed_values_open_only_in_their_place(stores: Stores) -> None:
    keyring = stores.keyring
    sealed = await keyring.seal("alpha", "webhook.secret/w1", b"s3cret")
    assert sealed.startswith(MAGIC) and b"s3cret" not in sealed
    assert sealed != await keyring.seal("alpha", "webhook.secret/w1", b"s3cret")  # nonces
    assert await fresh(stores).open("alpha", "webhook.secret/w1", sealed) == b"s3cret"
    with pytest.raises(InvalidTag):  # moved to another place
        await keyring.open("alpha", "webhook.secret/w2", sealed)
    with pytest.raises(KeyErased):  # moved to another app (whose key is another)
        await keyring.open("beta", "webhook.secret/w1", sealed)
    changed = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(InvalidTag):
        await keyring.open("alpha", "webhook.secret/w1", changed)
    text = await keyring.seal_text("alpha", "send_hook.secret", "hook-secret")
    assert text.startswith("caas:v1:") and "hook-secret" not in text
    assert await keyring.open_text("alpha", "send_hook.secret", text) == "hook-secret"
    # Written before encryption at rest: read as it is.
    assert await keyring.open_text("alpha", "send_hook.secret", "plain") == "plain"
    assert await keyring.open("alpha", "x", b"raw") == b"raw"


async def test_processes_making_the_first_key_at_once_agree(stores: Stores) -> None:
    rings = [fresh(stores) for _ in range(4)]
    sealed = await asyncio.gather(*(ring.seal("gamma", "c", bytes([n]))
                                    for n, ring in enumerate(rings)))
    for n, value in enumerate(sealed):
        assert await fresh(stores).open("gamma", "c", value) == bytes([n])


async def test_an_erased_key_opens_nothing_more(stores: Stores) -> None:
    keyring = stores.keyring
    owner = user_owner("alice")
    sealed = await keyring.seal("alpha", "message.text", b"hello", owner)
    other = await keyring.seal("alpha", "message.text", b"kept", user_owner("bob"))
    elsewhere = fresh(stores, ttl=0)  # another process, caching nothing
    assert await elsewhere.open("alpha", "message.text", sealed, owner) == b"hello"
    assert await keyring.erase("alpha", owner)
    for ring in (keyring, elsewhere, fresh(stores)):
        with pytest.raises(KeyErased):
            await ring.open("alpha", "message.text", sealed, owner)
    assert await fresh(stores).open("alpha", "message.text", other, user_owner("bob")) == b"kept"
    # A new key for alice opens her new content, never the old.
    again = await keyring.seal("alpha", "message.text", b"new", owner)
    assert await fresh(stores).open("alpha", "message.text", again, owner) == b"new"
    with pytest.raises(KeyErased):
        await fresh(stores).open("alpha", "message.text", sealed, owner)


async def test_a_rotated_master_key_still_reads_old_data(stores: Stores) -> None:
    provider = stores.keyring.provider
    assert isinstance(provider, LocalKeyProvider)
    first_kek = provider.active_kek()
    sealed = {app: await stores.keyring.seal(app, "c", app.encode())
              for app in ("a1", "a2", "a3")}
    # Mid-rotation: a new active master key, data keys still wrapped by the old one.
    second = LocalKeyProvider.open(provider._dir)
    second.add_master_key()
    assert await fresh(stores).open("a1", "c", sealed["a1"]) == b"a1"
    made_after = await fresh(stores).seal("a4", "c", b"a4")  # wrapped by the new one

    done = await rotate_master_key(fresh(stores), LocalKeyProvider.open(provider._dir))
    # a1..a3 and the platform's key (made at opening) by the first master key, a4 by
    # the second: all by the third now.
    assert done.rewrapped == 5
    assert first_kek in done.retired
    assert provider.master_keys() == [done.active]
    assert (provider._dir / "retired" / f"master-{first_kek}.key").exists()
    for app, value in sealed.items():
        assert await fresh(stores).open(app, "c", value) == app.encode()
    assert await fresh(stores).open("a4", "c", made_after) == b"a4"
    assert await stores.data_keys.wrapped_by_other(done.active, 10) == []


async def test_without_its_master_key_a_data_key_does_not_open(stores: Stores,
                                                               tmp_path: Path) -> None:
    sealed = await stores.keyring.seal("alpha", "c", b"x")
    elsewhere = fresh(stores, directory=tmp_path / "other-keys")  # another master key
    with pytest.raises(KeyUnavailable):
        await elsewhere.open("alpha", "c", sealed)


async def test_blind_tokens_compare_values_and_tell_nothing_else(stores: Stores) -> None:
    keyring = stores.keyring
    assert await keyring.token("delta", "message.metadata/k", "v", create=False) is None
    token = await keyring.token("delta", "message.metadata/k", "v")
    assert token is not None and token.startswith(TOKEN_PREFIX)
    assert await fresh(stores).token("delta", "message.metadata/k", "v") == token
    assert len({token, await keyring.token("delta", "message.metadata/k", "w"),
                await keyring.token("delta", "message.metadata/other", "v"),
                await keyring.token("epsilon", "message.metadata/k", "v")}) == 4


@pytest.fixture(params=["sqlite", "mongodb"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return engine_settings(request, tmp_path)


async def test_data_keys_move_out_of_the_stores_own_database(settings: Settings,
                                                             tmp_path: Path) -> None:
    """Data keys kept in the store's database (before they had one of their own) move
    to the keys' database on start, and what they sealed still opens."""
    opened = await open_stores(settings)
    try:
        sealed = await opened.keyring.seal("zeta", "c", b"before")
        # Put the key back where it used to be: in the store's own database.
        [key] = [k for k in await opened.data_keys.wrapped_by_other("none", 100)
                 if k.app_id == "zeta"]
        assert await opened.data_keys.delete_key("zeta", APP_OWNER)
        if settings.store == "mongodb":
            mongo = await MongoDatabase.open(settings.mongodb_url, settings.mongodb_database)
            old: DataKeyStore = MongoDataKeyStore(mongo)
        else:
            sqlite = await SqliteDatabase.open(tmp_path / "caas.db")
            old = SqliteDataKeyStore(sqlite)
        await old.migrate()
        await old.add_key(key)
        await (mongo.close() if settings.store == "mongodb" else sqlite.close())
    finally:
        await opened.close()

    reopened = await open_stores(settings)
    try:
        assert await reopened.keyring.open("zeta", "c", sealed) == b"before"
        assert await reopened.data_keys.get_key("zeta", APP_OWNER) == key
    finally:
        await reopened.close()
    if settings.store == "sqlite":
        with sqlite3.connect(tmp_path / "caas.db") as db:
            assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'data_keys'"
                                  ).fetchall()
