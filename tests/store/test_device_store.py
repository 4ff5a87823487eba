"""The device directory of end-to-end encryption (services/e2ee/store.py) on both
engines: a device registered once per id within the per-user limit, listed oldest
first with its stock; deleting a device (or the session that registered it) takes its
KeyPackages; uploads skip references held already and add nothing past the limit;
claims hand each KeyPackage out once, in upload order, then the last-resort one (kept),
with the `e2ee.key_packages_low` event in the claim's transaction — and never the same
KeyPackage twice to concurrent claims; the limits hold under concurrent calls too;
an app's purge takes its devices and KeyPackages and nobody else's. KeyPackages are
opaque bytes to the store."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from caas.events.v1 import events_pb2

from services.compliance.offboarding import KEEP
from services.core.errors import CapacityExceeded
from services.e2ee.models import Device
from services.runtime import Stores

T0 = datetime(2026, 12, 5, 9, 30, 0, 125_000, tzinfo=UTC)  # milliseconds: both engines keep them
SECOND = timedelta(seconds=1)
LIMIT = 500


def device(user_id: str = "alice", device_id: str = "phone", app_id: str = "alpha",
           at: datetime = T0, session_id: str = "s1", cipher_suite: int = 1) -> Device:
    return Device(app_id, user_id, device_id, cipher_suite, os.urandom(32), session_id, at)


def packages(count: int, tag: str = "kp") -> list[tuple[bytes, bytes]]:
    """(reference, KeyPackage) pairs: distinct references, recognizable contents."""
    return [(os.urandom(32), f"{tag}-{i}".encode()) for i in range(count)]


async def registered(stores: Stores, *devices: Device) -> None:
    for one in devices:
        _, created = await stores.devices.create_device(one, 20)
        assert created


async def stock(stores: Stores, one: Device) -> tuple[int, bool]:
    found = await stores.devices.get_device(one.app_id, one.user_id, one.device_id)
    assert found is not None
    return found.key_package_count, found.has_last_resort


async def test_a_device_is_registered_once_within_the_users_limit(stores: Stores) -> None:
    phone = device()
    made, created = await stores.devices.create_device(phone, 3)
    assert created and made == phone
    assert await stores.devices.get_device("alpha", "alice", "phone") == phone
    # Again, whatever the key: the one registered, unchanged.
    again, created = await stores.devices.create_device(
        replace(device(), cipher_suite=2, session_id="s9", create_time=T0 + SECOND), 3)
    assert not created and again == phone
    await stores.devices.create_device(device(device_id="laptop", at=T0 + SECOND), 3)
    await stores.devices.create_device(device(device_id="tablet", at=T0 + 2 * SECOND), 3)
    # The user's fourth: refused, nothing written; the one registered still comes back.
    with pytest.raises(CapacityExceeded) as full:
        await stores.devices.create_device(device(device_id="watch"), 3)
    assert full.value.maximum == 3
    assert await stores.devices.get_device("alpha", "alice", "watch") is None
    assert len(await stores.devices.list_devices("alpha", ["alice"])) == 3
    assert (await stores.devices.create_device(device(device_id="laptop"), 3))[1] is False
    # The limit is per user and per app.
    assert (await stores.devices.create_device(device("bob", "watch"), 3))[1]
    assert (await stores.devices.create_device(device(app_id="beta", device_id="watch"), 3))[1]


async def test_devices_are_listed_oldest_first_with_their_stock(stores: Stores) -> None:
    old = device("bob", "old", at=T0)
    phone = device("alice", "phone", at=T0 + 2 * SECOND)
    laptop = device("alice", "laptop", at=T0 + SECOND)
    other = device("carol", "phone", at=T0 - SECOND)
    elsewhere = device("alice", "tv", app_id="beta", at=T0 - SECOND)
    await registered(stores, phone, laptop, old, other, elsewhere)
    await stores.devices.add_key_packages("alpha", "alice", "phone", packages(3), b"", LIMIT)
    await stores.devices.add_key_packages("alpha", "bob", "old", [], b"last", LIMIT)
    listed = await stores.devices.list_devices("alpha", ["alice", "bob"])
    assert listed == [replace(old, has_last_resort=True), laptop,
                      replace(phone, key_package_count=3)]
    assert await stores.devices.list_devices("alpha", []) == []
    assert await stores.devices.list_devices("alpha", ["nobody"]) == []
    assert [d.device_id for d in await stores.devices.list_devices("beta", ["alice"])] == ["tv"]
    got = await stores.devices.get_device("alpha", "alice", "phone")
    assert got == replace(phone, key_package_count=3)
    assert await stores.devices.get_device("alpha", "alice", "nothing") is None
    assert await stores.devices.get_device("beta", "alice", "phone") is None


async def test_deleting_a_device_takes_its_key_packages(stores: Stores) -> None:
    phone, laptop = device(device_id="phone"), device(device_id="laptop", at=T0 + SECOND)
    await registered(stores, phone, laptop)
    await stores.devices.add_key_packages("alpha", "alice", "phone", packages(4), b"lr", LIMIT)
    await stores.devices.add_key_packages("alpha", "alice", "laptop", packages(2), b"", LIMIT)
    assert await stores.devices.delete_device("alpha", "alice", "phone")
    assert await stores.devices.get_device("alpha", "alice", "phone") is None
    assert not await stores.devices.delete_device("alpha", "alice", "phone")
    # Registered again under the same id: a new device, with nothing of the old one's.
    await registered(stores, phone)
    assert await stock(stores, phone) == (0, False)
    assert await stores.devices.claim("alpha", [phone], 10, T0) == []
    assert await stock(stores, laptop) == (2, False)  # another device's stay


async def test_revoking_a_session_deletes_the_devices_it_registered(stores: Stores) -> None:
    phone = device(device_id="phone", session_id="s1")
    laptop = device(device_id="laptop", session_id="s2", at=T0 + SECOND)
    tablet = device(device_id="tablet", session_id="s1", at=T0 + 2 * SECOND)
    backend = device(device_id="server", session_id="", at=T0 + 3 * SECOND)
    bobs = device("bob", "phone", session_id="s1")  # another user's session of that id
    await registered(stores, phone, laptop, tablet, backend, bobs)
    await stores.devices.add_key_packages("alpha", "alice", "tablet", packages(2), b"lr", LIMIT)
    gone = await stores.devices.delete_session_devices("alpha", "alice", ["s1", "s3"])
    assert sorted(gone) == ["phone", "tablet"]
    assert [d.device_id for d in await stores.devices.list_devices("alpha", ["alice"])] == [
        "laptop", "server"]
    assert await stores.devices.get_device("alpha", "bob", "phone") is not None
    assert await stores.devices.get_device("alpha", "alice", "phone") is None
    assert await stores.devices.delete_session_devices("alpha", "alice", []) == []
    assert await stores.devices.delete_session_devices("alpha", "alice", ["s1"]) == []
    await registered(stores, tablet)
    assert await stock(stores, tablet) == (0, False)  # its KeyPackages went with it


async def test_key_packages_are_added_once_and_never_past_the_limit(stores: Stores) -> None:
    phone = device()
    await registered(stores, phone)
    first = packages(3)
    added = await stores.devices.add_key_packages("alpha", "alice", "phone", first, b"", 5)
    assert added is not None and (added.key_package_count, added.has_last_resort) == (3, False)
    assert added.signature_key == phone.signature_key
    # References held already are skipped, within a call too.
    again = [first[0], (first[1][0], b"another body"), *packages(1, "new")]
    again.append(again[-1])
    added = await stores.devices.add_key_packages("alpha", "alice", "phone", again, b"", 5)
    assert added is not None and added.key_package_count == 4
    # Past the limit: the whole call is refused, the last resort with it.
    with pytest.raises(CapacityExceeded) as full:
        await stores.devices.add_key_packages("alpha", "alice", "phone", packages(2, "over"),
                                              b"refused", 5)
    assert full.value.maximum == 5
    assert await stock(stores, phone) == (4, False)
    added = await stores.devices.add_key_packages("alpha", "alice", "phone",
                                                  packages(1, "fifth"), b"lr1", 5)
    assert added is not None and (added.key_package_count, added.has_last_resort) == (5, True)
    # At the limit, nothing more; the last resort alone may still be replaced.
    added = await stores.devices.add_key_packages("alpha", "alice", "phone", [], b"lr2", 5)
    assert added is not None and (added.key_package_count, added.has_last_resort) == (5, True)
    added = await stores.devices.add_key_packages("alpha", "alice", "phone", [], b"", 5)
    assert added is not None and added.has_last_resort  # empty: kept
    # Handed out in upload order: the first three, the fourth new, the fifth; then lr2.
    taken = [(await stores.devices.claim("alpha", [phone], 0, T0))[0] for _ in range(7)]
    assert [(c.key_package, c.last_resort) for c in taken] == [
        (b"kp-0", False), (b"kp-1", False), (b"kp-2", False), (b"new-0", False),
        (b"fifth-0", False), (b"lr2", True), (b"lr2", True)]
    # A device that is gone takes nothing.
    assert await stores.devices.add_key_packages("alpha", "alice", "gone", packages(1), b"x",
                                                 5) is None
    assert await stores.devices.get_device("alpha", "alice", "gone") is None


async def test_claims_hand_each_key_package_out_once_then_the_last_resort(
        stores: Stores) -> None:
    phone = device("alice", "phone")
    laptop = device("alice", "laptop", at=T0 + SECOND)
    bobs = device("bob", "phone", at=T0 + 2 * SECOND)
    empty = device("carol", "phone", at=T0 + 3 * SECOND)
    await registered(stores, phone, laptop, bobs, empty)
    await stores.devices.add_key_packages("alpha", "alice", "phone", packages(3, "a"), b"a-lr",
                                          LIMIT)
    await stores.devices.add_key_packages("alpha", "alice", "laptop", [], b"l-lr", LIMIT)
    await stores.devices.add_key_packages("alpha", "bob", "phone", packages(5, "b"), b"", LIMIT)
    head = await stores.events.head("alpha")

    async def claim(*devices: Device) -> list[tuple[str, bytes, bool]]:
        claimed = await stores.devices.claim("alpha", devices, 3, T0)
        return [(c.device.name, c.key_package, c.last_resort) for c in claimed]

    everyone = (phone, laptop, bobs, empty)
    assert await claim(*everyone) == [(phone.name, b"a-0", False),
                                      (laptop.name, b"l-lr", True),
                                      (bobs.name, b"b-0", False)]  # carol's has nothing
    assert await claim(*everyone) == [(phone.name, b"a-1", False),
                                      (laptop.name, b"l-lr", True),
                                      (bobs.name, b"b-1", False)]
    assert await claim(phone) == [(phone.name, b"a-2", False)]
    assert await claim(phone) == [(phone.name, b"a-lr", True)]
    assert await claim(phone) == [(phone.name, b"a-lr", True)]  # the last resort stays
    assert await claim(empty) == []
    assert await stock(stores, phone) == (0, True)
    assert await stock(stores, bobs) == (3, False)
    assert await stock(stores, laptop) == (0, True)
    # Fewer than `low` (3) left after a claim, or the last resort handed out: the
    # device's user is told, privately.
    logged = await stores.events.read("alpha", head.position, 100)
    told = []
    for event in logged:
        assert (event.type, event.private, event.conversation_id) == (
            "e2ee.key_packages_low", True, "")
        low = events_pb2.Event.FromString(event.payload).e2ee_key_packages_low
        told.append((event.user_id, low.device, low.key_package_count))
    assert told == [("alice", phone.name, 2), ("alice", laptop.name, 0),
                    ("alice", phone.name, 1), ("alice", laptop.name, 0),
                    ("alice", phone.name, 0), ("alice", phone.name, 0),
                    ("alice", phone.name, 0)]
    # The next claim of bob's leaves 2: told in that claim's own transaction.
    mark = (await stores.events.head("alpha")).position
    await claim(bobs)
    (event,) = await stores.events.read("alpha", mark, 10)
    assert event.user_id == "bob"
    low = events_pb2.Event.FromString(event.payload).e2ee_key_packages_low
    assert (low.device, low.key_package_count) == (bobs.name, 2)
    assert await stores.devices.claim("alpha", [], 3, T0) == []


async def test_concurrent_claims_never_hand_out_a_key_package_twice(stores: Stores) -> None:
    phone = device("alice", "phone")
    laptop = device("alice", "laptop", at=T0 + SECOND)
    await registered(stores, phone, laptop)
    await stores.devices.add_key_packages("alpha", "alice", "phone", packages(12, "p"),
                                          b"p-lr", LIMIT)
    await stores.devices.add_key_packages("alpha", "alice", "laptop", packages(12, "l"), b"",
                                          LIMIT)
    rounds = await asyncio.gather(*[stores.devices.claim("alpha", [phone, laptop], 5, T0)
                                    for _ in range(16)])
    taken = [c for claimed in rounds for c in claimed]
    single = [c.key_package for c in taken if not c.last_resort]
    assert len(single) == len(set(single)) == 24  # each once, all of them
    assert sorted(single) == sorted([f"p-{i}".encode() for i in range(12)]
                                    + [f"l-{i}".encode() for i in range(12)])
    assert [c.key_package for c in taken if c.last_resort] == [b"p-lr"] * 4
    assert await stock(stores, phone) == (0, True)
    assert await stock(stores, laptop) == (0, False)


async def test_concurrent_registrations_keep_the_users_limit(stores: Stores) -> None:
    results = await asyncio.gather(*[
        stores.devices.create_device(device(device_id=f"d{i}", at=T0 + i * SECOND), 3)
        for i in range(8)], return_exceptions=True)
    made = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, CapacityExceeded)]
    assert len(made) + len(refused) == 8, results
    assert len(await stores.devices.list_devices("alpha", ["alice"])) == len(made) == 3


async def test_concurrent_uploads_keep_the_devices_limit(stores: Stores) -> None:
    phone = device()
    await registered(stores, phone)
    results = await asyncio.gather(*[
        stores.devices.add_key_packages("alpha", "alice", "phone", packages(3, f"u{i}"), b"",
                                        10) for i in range(6)], return_exceptions=True)
    done = [r for r in results if isinstance(r, Device)]
    refused = [r for r in results if isinstance(r, CapacityExceeded)]
    assert len(done) + len(refused) == 6, results
    assert await stock(stores, phone) == (3 * len(done), False)
    assert len(done) == 3


async def test_an_apps_purge_takes_its_devices_and_key_packages_only(stores: Stores) -> None:
    gone = [device("alice", "phone", app_id="gone"), device("bob", "phone", app_id="gone")]
    kept = [device("alice", "phone", app_id="kept"),
            device("alice", "phone", app_id="gone2")]  # an app id the first one begins
    await registered(stores, *gone, *kept)
    for one in (*gone, *kept):
        await stores.devices.add_key_packages(one.app_id, one.user_id, one.device_id,
                                              packages(3, one.app_id), b"lr", LIMIT)
    erased = await stores.purge_app("gone", KEEP)
    assert erased >= 2 + 6
    assert await stores.devices.list_devices("gone", ["alice", "bob"]) == []
    for one in kept:
        assert await stock(stores, one) == (3, True)
        (claimed,) = await stores.devices.claim(one.app_id, [one], 0, T0)
        assert claimed.key_package == f"{one.app_id}-0".encode()
    # Registered again, the purged app's devices hold nothing of what was uploaded.
    await registered(stores, *gone)
    for one in gone:
        assert await stock(stores, one) == (0, False)
        assert await stores.devices.claim("gone", [one], 0, T0) == []
