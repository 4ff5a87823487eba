"""OrganizationStore on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import datetime
from typing import Any

from services.core.clock import from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.organizations.models import Invitation, Member, Organization, Role
from services.organizations.store import Outcome, Position

MIGRATIONS: tuple[Migration, ...] = ((
    "CREATE TABLE organizations (organization_id TEXT PRIMARY KEY,"
    " display_name TEXT NOT NULL, require_mfa INTEGER NOT NULL,"
    " create_time INTEGER NOT NULL)",
    "CREATE INDEX organizations_by_time ON organizations (create_time, organization_id)",
    "CREATE TABLE organization_members (organization_id TEXT NOT NULL,"
    " account_id TEXT NOT NULL, role TEXT NOT NULL, create_time INTEGER NOT NULL,"
    " PRIMARY KEY (organization_id, account_id))",
    "CREATE INDEX organization_members_by_account ON organization_members (account_id)",
    "CREATE TABLE organization_invitations (organization_id TEXT NOT NULL,"
    " invitation_id TEXT NOT NULL, email TEXT NOT NULL, role TEXT NOT NULL,"
    " inviter TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, create_time INTEGER NOT NULL,"
    " expire_time INTEGER NOT NULL, PRIMARY KEY (organization_id, invitation_id),"
    " UNIQUE (organization_id, email))",
),)

_ORG = "organization_id, display_name, require_mfa, create_time"
_MEMBER = "organization_id, account_id, role, create_time"
_INVITATION = ("organization_id, invitation_id, email, role, inviter, token_hash, create_time,"
               " expire_time")


def _organization(row: tuple[Any, ...]) -> Organization:
    return Organization(row[0], row[1], bool(row[2]), from_ms(row[3]))


def _member(row: tuple[Any, ...]) -> Member:
    return Member(row[0], row[1], Role(row[2]), from_ms(row[3]))


def _invitation(row: tuple[Any, ...]) -> Invitation:
    return Invitation(row[0], row[1], row[2], Role(row[3]), row[4], row[5], from_ms(row[6]),
                      from_ms(row[7]))


def _owners_after(conn: sqlite3.Connection, organization_id: str, account_id: str,
                  role: Role | None) -> int:
    """How many owners the organization keeps if the member gets `role` (None: leaves)."""
    others = conn.execute(
        "SELECT COUNT(*) FROM organization_members WHERE organization_id = ? AND role = ?"
        " AND account_id != ?", (organization_id, Role.OWNER.value, account_id)).fetchone()[0]
    return int(others) + (1 if role is Role.OWNER else 0)


class SqliteOrganizationStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("organizations", MIGRATIONS)

    async def create_organization(self, organization: Organization, owner: Member) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute(f"INSERT INTO organizations ({_ORG}) VALUES (?, ?, ?, ?)",
                             (organization.organization_id, organization.display_name,
                              organization.require_mfa, to_ms(organization.create_time)))
            except sqlite3.IntegrityError:
                return False
            _insert_member(conn, owner)
            return True
        return await self._db.write(body)

    async def get_organization(self, organization_id: str) -> Organization | None:
        row = await self._db.read(lambda c: c.execute(
            f"SELECT {_ORG} FROM organizations WHERE organization_id = ?",
            (organization_id,)).fetchone())
        return None if row is None else _organization(row)

    async def save_organization(self, organization: Organization) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE organizations SET display_name = ?, require_mfa = ?"
                         " WHERE organization_id = ?",
                         (organization.display_name, organization.require_mfa,
                          organization.organization_id))
        await self._db.write(body)

    async def list_organizations(self, ids: Collection[str] | None, limit: int,
                                 after: Position | None) -> list[Organization]:
        where: list[str] = ["1"]
        args: list[Any] = []
        if ids is not None:
            where.append(f"organization_id IN ({', '.join('?' for _ in ids)})")
            args.extend(ids)
        if after is not None:
            where.append("(create_time > ? OR (create_time = ? AND organization_id > ?))")
            args.extend((after[0], after[0], after[1]))
        rows = await self._db.read(lambda c: c.execute(
            f"SELECT {_ORG} FROM organizations WHERE {' AND '.join(where)}"
            " ORDER BY create_time, organization_id LIMIT ?", (*args, limit)).fetchall())
        return [_organization(r) for r in rows]

    async def memberships(self, account_id: str) -> list[Member]:
        rows = await self._db.read(lambda c: c.execute(
            f"SELECT {_MEMBER} FROM organization_members WHERE account_id = ?",
            (account_id,)).fetchall())
        return [_member(r) for r in rows]

    async def get_member(self, organization_id: str, account_id: str) -> Member | None:
        row = await self._db.read(lambda c: c.execute(
            f"SELECT {_MEMBER} FROM organization_members WHERE organization_id = ?"
            " AND account_id = ?", (organization_id, account_id)).fetchone())
        return None if row is None else _member(row)

    async def list_members(self, organization_id: str, limit: int,
                           after: Position | None) -> list[Member]:
        where, args = "organization_id = ?", list[Any]([organization_id])
        if after is not None:
            where += " AND (create_time > ? OR (create_time = ? AND account_id > ?))"
            args.extend((after[0], after[0], after[1]))
        rows = await self._db.read(lambda c: c.execute(
            f"SELECT {_MEMBER} FROM organization_members WHERE {where}"
            " ORDER BY create_time, account_id LIMIT ?", (*args, limit)).fetchall())
        return [_member(r) for r in rows]

    async def add_member(self, member: Member) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            try:
                _insert_member(conn, member)
            except sqlite3.IntegrityError:
                return False
            return True
        return await self._db.write(body)

    async def set_role(self, organization_id: str, account_id: str, role: Role) -> Outcome:
        def body(conn: sqlite3.Connection) -> Outcome:
            if _owners_after(conn, organization_id, account_id, role) == 0:
                return (Outcome.LAST_OWNER if _exists(conn, organization_id, account_id)
                        else Outcome.MISSING)
            changed = conn.execute(
                "UPDATE organization_members SET role = ? WHERE organization_id = ?"
                " AND account_id = ?", (role.value, organization_id, account_id)).rowcount
            return Outcome.DONE if changed else Outcome.MISSING
        return await self._db.write(body)

    async def remove_member(self, organization_id: str, account_id: str) -> Outcome:
        def body(conn: sqlite3.Connection) -> Outcome:
            if _owners_after(conn, organization_id, account_id, None) == 0:
                return (Outcome.LAST_OWNER if _exists(conn, organization_id, account_id)
                        else Outcome.MISSING)
            removed = conn.execute(
                "DELETE FROM organization_members WHERE organization_id = ?"
                " AND account_id = ?", (organization_id, account_id)).rowcount
            return Outcome.DONE if removed else Outcome.MISSING
        return await self._db.write(body)

    async def put_invitation(self, invitation: Invitation) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM organization_invitations WHERE organization_id = ?"
                         " AND email = ?", (invitation.organization_id, invitation.email))
            conn.execute(
                f"INSERT INTO organization_invitations ({_INVITATION})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (invitation.organization_id, invitation.invitation_id, invitation.email,
                 invitation.role.value, invitation.inviter, invitation.token_hash,
                 to_ms(invitation.create_time), to_ms(invitation.expire_time)))
        await self._db.write(body)

    async def get_invitation(self, organization_id: str, invitation_id: str
                             ) -> Invitation | None:
        row = await self._db.read(lambda c: c.execute(
            f"SELECT {_INVITATION} FROM organization_invitations WHERE organization_id = ?"
            " AND invitation_id = ?", (organization_id, invitation_id)).fetchone())
        return None if row is None else _invitation(row)

    async def list_invitations(self, organization_id: str, now: datetime, limit: int,
                               after: Position | None) -> list[Invitation]:
        where, args = "organization_id = ? AND expire_time > ?", [organization_id, to_ms(now)]
        if after is not None:
            where += " AND (create_time < ? OR (create_time = ? AND invitation_id < ?))"
            args.extend((after[0], after[0], after[1]))
        rows = await self._db.read(lambda c: c.execute(
            f"SELECT {_INVITATION} FROM organization_invitations WHERE {where}"
            " ORDER BY create_time DESC, invitation_id DESC LIMIT ?",
            (*args, limit)).fetchall())
        return [_invitation(r) for r in rows]

    async def delete_invitation(self, organization_id: str, invitation_id: str) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "DELETE FROM organization_invitations WHERE organization_id = ?"
                " AND invitation_id = ?", (organization_id, invitation_id)).rowcount > 0
        return await self._db.write(body)

    async def take_invitation(self, token_hash: str, now: datetime) -> Invitation | None:
        def body(conn: sqlite3.Connection) -> Invitation | None:
            row = conn.execute(
                f"DELETE FROM organization_invitations WHERE token_hash = ?"
                f" RETURNING {_INVITATION}", (token_hash,)).fetchone()
            invitation = None if row is None else _invitation(row)
            return invitation if invitation is not None and now < invitation.expire_time \
                else None
        return await self._db.write(body)


def _insert_member(conn: sqlite3.Connection, member: Member) -> None:
    conn.execute(f"INSERT INTO organization_members ({_MEMBER}) VALUES (?, ?, ?, ?)",
                 (member.organization_id, member.account_id, member.role.value,
                  to_ms(member.create_time)))


def _exists(conn: sqlite3.Connection, organization_id: str, account_id: str) -> bool:
    return conn.execute("SELECT 1 FROM organization_members WHERE organization_id = ?"
                        " AND account_id = ?", (organization_id, account_id)).fetchone() \
        is not None
