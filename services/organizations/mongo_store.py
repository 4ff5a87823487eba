"""OrganizationStore on MongoDB (membership changes that must keep an owner run in a
transaction)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.core.clock import from_ms, to_ms
from services.core.db.mongo import Document, MongoDatabase, MongoMigration
from services.organizations.models import Invitation, Member, Organization, Role
from services.organizations.store import Outcome, Position


async def _v1(db: AsyncDatabase[Document]) -> None:
    await db["organizations"].create_index([("create_time", ASCENDING), ("_id", ASCENDING)])
    await db["organization_members"].create_index("account_id")
    await db["organization_members"].create_index(
        [("organization_id", ASCENDING), ("create_time", ASCENDING),
         ("account_id", ASCENDING)])
    await db["organization_invitations"].create_index("token_hash", unique=True)
    await db["organization_invitations"].create_index(
        [("organization_id", ASCENDING), ("email", ASCENDING)], unique=True)


MIGRATIONS: tuple[MongoMigration, ...] = (_v1,)


def _organization(doc: Document) -> Organization:
    return Organization(doc["_id"], doc["display_name"], doc["require_mfa"],
                        from_ms(doc["create_time"]))


def _member_doc(m: Member) -> Document:
    return {"_id": f"{m.organization_id}/{m.account_id}", "organization_id": m.organization_id,
            "account_id": m.account_id, "role": m.role.value,
            "create_time": to_ms(m.create_time)}


def _member(doc: Document) -> Member:
    return Member(doc["organization_id"], doc["account_id"], Role(doc["role"]),
                  from_ms(doc["create_time"]))


def _invitation_doc(i: Invitation) -> Document:
    return {"_id": f"{i.organization_id}/{i.invitation_id}",
            "organization_id": i.organization_id, "invitation_id": i.invitation_id,
            "email": i.email, "role": i.role.value, "inviter": i.inviter,
            "token_hash": i.token_hash, "create_time": to_ms(i.create_time),
            "expire_time": to_ms(i.expire_time)}


def _invitation(doc: Document) -> Invitation:
    return Invitation(doc["organization_id"], doc["invitation_id"], doc["email"],
                      Role(doc["role"]), doc["inviter"], doc["token_hash"],
                      from_ms(doc["create_time"]), from_ms(doc["expire_time"]))


def _after(position: Position | None, id_field: str, descending: bool = False) -> Document:
    if position is None:
        return {}
    beyond = "$lt" if descending else "$gt"
    return {"$or": [{"create_time": {beyond: position[0]}},
                    {"create_time": position[0], id_field: {beyond: position[1]}}]}


class MongoOrganizationStore:
    def __init__(self, db: MongoDatabase) -> None:
        self._mongo = db
        self._organizations = db.db["organizations"]
        self._members = db.db["organization_members"]
        self._invitations = db.db["organization_invitations"]

    async def migrate(self) -> None:
        await self._mongo.migrate("organizations", MIGRATIONS)

    async def create_organization(self, organization: Organization, owner: Member) -> bool:
        async def tx(session: AsyncClientSession) -> None:
            await self._organizations.insert_one(
                {"_id": organization.organization_id,
                 "display_name": organization.display_name,
                 "require_mfa": organization.require_mfa,
                 "create_time": to_ms(organization.create_time)}, session=session)
            await self._members.insert_one(_member_doc(owner), session=session)
        try:
            await self._mongo.transaction(tx)
        except DuplicateKeyError:
            return False
        return True

    async def get_organization(self, organization_id: str) -> Organization | None:
        doc = await self._organizations.find_one({"_id": organization_id})
        return None if doc is None else _organization(doc)

    async def save_organization(self, organization: Organization) -> None:
        await self._organizations.update_one(
            {"_id": organization.organization_id},
            {"$set": {"display_name": organization.display_name,
                      "require_mfa": organization.require_mfa}})

    async def list_organizations(self, ids: Collection[str] | None, limit: int,
                                 after: Position | None) -> list[Organization]:
        query: dict[str, Any] = _after(after, "_id")
        if ids is not None:
            query["_id"] = {"$in": list(ids)}
        cursor = self._organizations.find(query).sort(
            [("create_time", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [_organization(doc) async for doc in cursor]

    async def memberships(self, account_id: str) -> list[Member]:
        return [_member(doc) async for doc in self._members.find({"account_id": account_id})]

    async def get_member(self, organization_id: str, account_id: str) -> Member | None:
        doc = await self._members.find_one({"_id": f"{organization_id}/{account_id}"})
        return None if doc is None else _member(doc)

    async def list_members(self, organization_id: str, limit: int,
                           after: Position | None) -> list[Member]:
        cursor = self._members.find(
            {"organization_id": organization_id, **_after(after, "account_id")}).sort(
            [("create_time", ASCENDING), ("account_id", ASCENDING)]).limit(limit)
        return [_member(doc) async for doc in cursor]

    async def add_member(self, member: Member) -> bool:
        try:
            await self._members.insert_one(_member_doc(member))
        except DuplicateKeyError:
            return False
        return True

    async def _keeping_an_owner(self, organization_id: str, account_id: str,
                                role: Role | None) -> Outcome:
        async def tx(session: AsyncClientSession) -> Outcome:
            # Every membership change writes the organization's document first: two at
            # once conflict there (one is retried, and sees the other), where each alone
            # would write a different member and both could leave no owner (write skew).
            await self._organizations.update_one(
                {"_id": organization_id}, {"$inc": {"membership_version": 1}}, session=session)
            key = {"_id": f"{organization_id}/{account_id}"}
            if await self._members.find_one(key, session=session) is None:
                return Outcome.MISSING
            others = await self._members.count_documents(
                {"organization_id": organization_id, "role": Role.OWNER.value,
                 "account_id": {"$ne": account_id}}, session=session)
            if others + (1 if role is Role.OWNER else 0) == 0:
                return Outcome.LAST_OWNER
            if role is None:
                await self._members.delete_one(key, session=session)
            else:
                await self._members.update_one(key, {"$set": {"role": role.value}},
                                               session=session)
            return Outcome.DONE
        return await self._mongo.transaction(tx)

    async def set_role(self, organization_id: str, account_id: str, role: Role) -> Outcome:
        return await self._keeping_an_owner(organization_id, account_id, role)

    async def remove_member(self, organization_id: str, account_id: str) -> Outcome:
        return await self._keeping_an_owner(organization_id, account_id, None)

    async def put_invitation(self, invitation: Invitation) -> None:
        async def tx(session: AsyncClientSession) -> None:
            await self._invitations.delete_many(
                {"organization_id": invitation.organization_id, "email": invitation.email},
                session=session)
            await self._invitations.insert_one(_invitation_doc(invitation), session=session)
        await self._mongo.transaction(tx)

    async def get_invitation(self, organization_id: str, invitation_id: str
                             ) -> Invitation | None:
        doc = await self._invitations.find_one({"_id": f"{organization_id}/{invitation_id}"})
        return None if doc is None else _invitation(doc)

    async def list_invitations(self, organization_id: str, now: datetime, limit: int,
                               after: Position | None) -> list[Invitation]:
        cursor = self._invitations.find(
            {"organization_id": organization_id, "expire_time": {"$gt": to_ms(now)},
             **_after(after, "invitation_id", descending=True)}).sort(
            [("create_time", DESCENDING), ("invitation_id", DESCENDING)]).limit(limit)
        return [_invitation(doc) async for doc in cursor]

    async def delete_invitation(self, organization_id: str, invitation_id: str) -> bool:
        done = await self._invitations.delete_one(
            {"_id": f"{organization_id}/{invitation_id}"})
        return done.deleted_count > 0

    async def take_invitation(self, token_hash: str, now: datetime) -> Invitation | None:
        doc = await self._invitations.find_one_and_delete({"token_hash": token_hash})
        invitation = None if doc is None else _invitation(doc)
        return invitation if invitation is not None and now < invitation.expire_time else None
