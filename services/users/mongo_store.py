"""UserStore on MongoDB. Documents are keyed `app/user` so no lookup crosses apps."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.clock import from_ms
from services.core.db import mongo_filter as mq
from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.core.db.mongo import after as after_position
from services.core.db.mongo_filter import MongoTerm, field, string_map
from services.core.errors import StoreConflict
from services.core.filtering import Comparison, Expr, Op, Ordering
from services.users.listing import BY_CREATION, DELETED
from services.users.models import Block, User, UserChanges
from services.users.store import Keyset, Position
from services.users.words import WORD_END, matches, user_words


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["users"].create_index(
        [("app_id", ASCENDING), ("create_time", ASCENDING), ("user_id", ASCENDING)])
    await db["blocks"].create_index(
        [("app_id", ASCENDING), ("user_id", ASCENDING), ("create_time", DESCENDING),
         ("blocked_id", DESCENDING)])


async def _v2(db: AsyncDatabase[Document]) -> None:
    # ListUsers ordered by display name.
    await db["users"].create_index(
        [("app_id", ASCENDING), ("display_name", ASCENDING), ("user_id", ASCENDING)])


async def _v3(db: AsyncDatabase[Document]) -> None:
    # SearchUsers: each live user's words (services/users/words.py), one document each.
    await db["user_words"].create_index(
        [("app_id", ASCENDING), ("word", ASCENDING), ("user_id", ASCENDING)], unique=True)
    await db["user_words"].create_index([("app_id", ASCENDING), ("user_id", ASCENDING)])
    async for doc in db["users"].find({"delete_time": None}):
        await _set_words(db["user_words"], doc["app_id"], doc["user_id"], doc["display_name"])


MIGRATIONS: tuple[MongoMigration, ...] = (_v1, _v2, _v3)
SEARCH_ROUNDS = 8  # pages of candidates read before a search settles for fewer


def _state(c: Comparison) -> Document:
    deleted = (c.value == DELETED) == (c.op is Op.EQ)
    return {"delete_time": {"$ne": None}} if deleted else {"delete_time": None}


# ListUsers: the filter's fields (services/users/listing.py) as document fields.
_TERMS: dict[str, MongoTerm] = {
    "user_id": field("user_id"), "display_name": field("display_name"),
    "metadata": string_map("metadata"), "state": _state, "create_time": field("create_time")}
_KEYS = {"create_time": "create_time", "display_name": "display_name", "user_id": "user_id"}


async def _set_words(words: AsyncCollection[Document], app_id: str, user_id: str,
                     display_name: str | None) -> None:
    """Replace the user's words (none for a deleted user: display_name None). Not
    atomic with the user's own write: searches check every candidate against the user
    as stored, so words left over never show a user wrongly."""
    await words.delete_many({"app_id": app_id, "user_id": user_id})
    if display_name is not None:
        await words.insert_many([{"app_id": app_id, "word": word, "user_id": user_id}
                                 for word in user_words(user_id, display_name)])


def _user_doc(user: User) -> Document:
    return {"_id": f"{user.app_id}/{user.user_id}", "app_id": user.app_id,
            "user_id": user.user_id, "display_name": user.display_name,
            "image_uri": user.image_uri, "metadata": dict(user.metadata),
            "create_time": user.create_time, "update_time": user.update_time,
            "delete_time": user.delete_time, "role": user.role}


def _user(doc: Document) -> User:
    return User(doc["app_id"], doc["user_id"], doc["display_name"], doc["image_uri"],
                doc["metadata"], doc["create_time"], doc["update_time"],
                doc.get("delete_time"), doc.get("role", ""))


def _block_id(app_id: str, user_id: str, blocked_id: str) -> str:
    return f"{app_id}/{user_id}/{blocked_id}"


class MongoUserStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._users = db.db["users"]
        self._blocks = db.db["blocks"]
        self._words = db.db["user_words"]

    async def migrate(self) -> None:
        await self._mongo.migrate("users", MIGRATIONS)

    async def create_user(self, user: User) -> None:
        try:
            await self._users.insert_one(_user_doc(user))
        except DuplicateKeyError as exc:
            raise StoreConflict(user.user_id) from exc
        if not user.deleted:
            await _set_words(self._words, user.app_id, user.user_id, user.display_name)

    async def get_user(self, app_id: str, user_id: str) -> User | None:
        doc = await self._users.find_one({"_id": f"{app_id}/{user_id}", "app_id": app_id})
        return None if doc is None else _user(doc)

    async def get_users(self, app_id: str, user_ids: Iterable[str]) -> dict[str, User]:
        keys = [f"{app_id}/{user_id}" for user_id in set(user_ids)]
        if not keys:
            return {}
        cursor = self._users.find({"_id": {"$in": keys}, "app_id": app_id})
        return {doc["user_id"]: _user(doc) async for doc in cursor}

    async def list_users(self, app_id: str, limit: int, after: Keyset | None, *,
                         where: Expr | None = None, ordering: Ordering = BY_CREATION
                         ) -> list[User]:
        stored = None if after is None else [
            from_ms(int(value)) if kind == "time" else value
            for kind, value in zip(ordering.kinds, after, strict=True)]
        beyond, sort = mq.keyset([_KEYS[k] for k in ordering.keys], ordering.descending,
                                 stored)
        cursor = self._users.find(mq.combine({"app_id": app_id}, mq.query(where, _TERMS),
                                             beyond)).sort(sort).limit(limit)
        return [_user(doc) async for doc in cursor]

    async def update_user(self, app_id: str, user_id: str, changes: UserChanges,
                          now: datetime, create: User | None = None) -> User | None:
        changed: Document = {"update_time": now}
        if changes.display_name is not None:
            changed["display_name"] = changes.display_name
        if changes.image_uri is not None:
            changed["image_uri"] = changes.image_uri
        if changes.metadata is not None:
            changed["metadata"] = dict(changes.metadata)
        if changes.role is not None:
            changed["role"] = changes.role
        selector = {"_id": f"{app_id}/{user_id}", "app_id": app_id}
        doc = await self._users.find_one_and_update(
            {**selector, "delete_time": None}, {"$set": changed},
            return_document=ReturnDocument.AFTER)
        if doc is not None:
            if changes.display_name is not None:
                await _set_words(self._words, app_id, user_id, changes.display_name)
            return _user(doc)
        existing = await self._users.find_one(selector)  # a tombstone stays as it is
        if existing is not None:
            return _user(existing)
        if create is None:
            return None
        try:
            await self.create_user(create)
        except StoreConflict:  # created concurrently: apply the changes to it instead
            return await self.update_user(app_id, user_id, changes, now)
        return create

    async def delete_user(self, app_id: str, user_id: str, now: datetime) -> User | None:
        selector = {"_id": f"{app_id}/{user_id}", "app_id": app_id}
        await self._users.update_one(
            {**selector, "delete_time": None},
            {"$set": {"display_name": "", "image_uri": "", "metadata": {},
                      "update_time": now, "delete_time": now}})
        await _set_words(self._words, app_id, user_id, None)
        return await self.get_user(app_id, user_id)

    async def create_block(self, block: Block) -> Block:
        key = _block_id(block.app_id, block.user_id, block.blocked_id)
        doc = await self._blocks.find_one_and_update(
            {"_id": key},
            {"$setOnInsert": {"app_id": block.app_id, "user_id": block.user_id,
                              "blocked_id": block.blocked_id,
                              "create_time": block.create_time}},
            upsert=True, return_document=ReturnDocument.AFTER)
        assert doc is not None  # an upsert returning the document after always has one
        return Block(block.app_id, block.user_id, block.blocked_id, doc["create_time"])

    async def delete_block(self, app_id: str, user_id: str, blocked_id: str) -> bool:
        result = await self._blocks.delete_one({"_id": _block_id(app_id, user_id, blocked_id),
                                                "app_id": app_id})
        return result.deleted_count > 0

    async def list_blocks(self, app_id: str, user_id: str, limit: int,
                          after: Position | None) -> list[Block]:
        query = {"app_id": app_id, "user_id": user_id,
                 **after_position(after, "create_time", "blocked_id", descending=True)}
        cursor = self._blocks.find(query).sort(
            [("create_time", DESCENDING), ("blocked_id", DESCENDING)]).limit(limit)
        return [Block(app_id, user_id, doc["blocked_id"], doc["create_time"])
                async for doc in cursor]

    async def blocked_either_way(self, app_id: str, a: str, b: str) -> bool:
        found = await self._blocks.find_one(
            {"_id": {"$in": [_block_id(app_id, a, b), _block_id(app_id, b, a)]},
             "app_id": app_id}, {"_id": 1})
        return found is not None

    async def blockers_among(self, app_id: str, blocked_id: str, among: Collection[str]
                             ) -> set[str]:
        ids = [_block_id(app_id, user_id, blocked_id) for user_id in sorted(set(among))]
        return {doc["user_id"] async for doc in self._blocks.find(
            {"_id": {"$in": ids}, "app_id": app_id}, {"user_id": 1})}

    async def search_users(self, app_id: str, words: Sequence[str], limit: int,
                           among: Collection[str] | None = None) -> list[User]:
        first = words[0]
        found: dict[str, User] = {}
        after: Document = {}
        for _ in range(SEARCH_ROUNDS):
            query: Document = {"app_id": app_id,
                               "word": {"$gte": first, "$lt": first + WORD_END}, **after}
            if among is not None:
                query["user_id"] = {"$in": sorted(among)}
            rows = [doc async for doc in self._words.find(query).sort(
                [("app_id", ASCENDING), ("word", ASCENDING), ("user_id", ASCENDING)]
            ).limit(limit * 2)]
            fresh = [row["user_id"] for row in rows if row["user_id"] not in found]
            users = await self.get_users(app_id, fresh)
            for user_id in fresh:  # in the order of the word that matched
                user = users.get(user_id)
                if (user is not None and not user.deleted and user_id not in found
                        and matches(user_words(user_id, user.display_name), words)):
                    found[user_id] = user
            if len(rows) < limit * 2 or len(found) >= limit:
                break
            last = rows[-1]
            after = {"$or": [{"word": {"$gt": last["word"]}},
                             {"word": last["word"], "user_id": {"$gt": last["user_id"]}}]}
        return list(found.values())[:limit]
