"""UserStore.search_users, on every engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.runtime import Stores
from services.users.models import User, UserChanges

T0 = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


async def add(stores: Stores, user_id: str, name: str, app_id: str = "alpha") -> None:
    await stores.users.create_user(User(app_id, user_id, name, "", {}, T0, T0))


async def ids(stores: Stores, prefix: str, limit: int = 10, app_id: str = "alpha",
              among: list[str] | None = None) -> list[str]:
    users = await stores.users.search_users(app_id, prefix.split(), limit, among)
    return [u.user_id for u in users]


async def test_prefixes_of_words_in_order_of_the_matching_word(stores: Stores) -> None:
    await add(stores, "u1", "martin dupont")
    await add(stores, "u2", "Élodie Martin")
    await add(stores, "marc", "")
    await add(stores, "u3", "Zoe")
    await add(stores, "x", "Martin", app_id="beta")
    assert await ids(stores, "mar") == ["marc", "u1", "u2"]  # marc < martin; then by id
    assert await ids(stores, "elodie mar") == ["u2"]
    assert await ids(stores, "mar", limit=2) == ["marc", "u1"]
    assert await ids(stores, "mar", among=["u2", "u3"]) == ["u2"]
    assert await ids(stores, "zz") == []
    assert await ids(stores, "mar", app_id="beta") == ["x"]


async def test_renamed_and_deleted_users(stores: Stores) -> None:
    await add(stores, "u1", "Martin")
    await stores.users.update_user("alpha", "u1", UserChanges(display_name="Luc"),
                                   T0 + timedelta(seconds=1))
    assert await ids(stores, "mar") == []
    assert await ids(stores, "luc") == ["u1"]
    await stores.users.delete_user("alpha", "u1", T0 + timedelta(seconds=2))
    assert await ids(stores, "luc") == []
    assert await ids(stores, "u1") == []


async def test_many_users_sharing_a_prefix(stores: Stores) -> None:
    for n in range(60):
        await add(stores, f"user{n:02d}", f"Sam Number{n:02d}")
    assert await ids(stores, "sam", limit=5) == [f"user{n:02d}" for n in range(5)]
    # The second word narrows what the first word's range holds.
    assert await ids(stores, "sam number5", limit=20) == [f"user5{n}" for n in range(10)]
