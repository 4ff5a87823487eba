"""RestrictionStore on the embedded SQLite engine."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from services.core.clock import from_ms, opt_from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.core.errors import CapacityExceeded, StoreConflict
from services.events.log import Emit
from services.events.sqlite_log import SqliteEventLog
from services.moderation.events import (
    CREATED,
    DELETED,
    REPORTED,
    RESOLVED,
    flag_event,
    restriction_event,
)
from services.moderation.models import (
    REPORTS_SHOWN,
    ContentFilter,
    FailurePolicy,
    FilterAction,
    Flag,
    FlagState,
    Report,
    ReportReason,
    Resolution,
    Restriction,
    RestrictionType,
    SendHook,
)
from services.moderation.permissions import PermissionPolicy, policy_body, policy_of
from services.moderation.store import Position

MIGRATIONS: tuple[Migration, ...] = (
    (
        # expire_time NULL: until lifted. One row per user, place and type.
        "CREATE TABLE restrictions ("
        " app_id TEXT NOT NULL, restriction_id TEXT NOT NULL, user_id TEXT NOT NULL,"
        " conversation_id TEXT NOT NULL, type TEXT NOT NULL, reason TEXT NOT NULL,"
        " creator TEXT NOT NULL, create_time INTEGER NOT NULL, expire_time INTEGER,"
        " PRIMARY KEY (app_id, restriction_id))",
        "CREATE UNIQUE INDEX restrictions_by_place"
        " ON restrictions (app_id, user_id, conversation_id, type)",
        "CREATE INDEX restrictions_by_time ON restrictions (app_id, create_time, restriction_id)",
    ),
    (
        # open_key: the target while open (one open flag per target), the id once
        # resolved. The resolution columns are NULL while open.
        "CREATE TABLE flags ("
        " app_id TEXT NOT NULL, flag_id TEXT NOT NULL, open_key TEXT NOT NULL,"
        " conversation_id TEXT NOT NULL, sequence INTEGER NOT NULL, user_id TEXT NOT NULL,"
        " message_text TEXT NOT NULL, state TEXT NOT NULL, report_count INTEGER NOT NULL,"
        " claimer TEXT NOT NULL, claim_expire_time INTEGER, resolver TEXT, note TEXT,"
        " message_deleted INTEGER, restriction_id TEXT, resolve_time INTEGER,"
        " create_time INTEGER NOT NULL, update_time INTEGER NOT NULL,"
        " PRIMARY KEY (app_id, flag_id))",
        "CREATE UNIQUE INDEX flags_open ON flags (app_id, open_key)",
        "CREATE INDEX flags_by_time ON flags (app_id, create_time, flag_id)",
        "CREATE TABLE flag_reports ("
        " app_id TEXT NOT NULL, flag_id TEXT NOT NULL, reporter TEXT NOT NULL,"
        " reason TEXT NOT NULL, details TEXT NOT NULL, create_time INTEGER NOT NULL,"
        " PRIMARY KEY (app_id, flag_id, reporter))",
        "CREATE INDEX flag_reports_by_time ON flag_reports (app_id, flag_id, create_time)",
    ),
    (
        # rules: JSON of the words, patterns, domains and conversation kinds.
        "CREATE TABLE filters ("
        " app_id TEXT NOT NULL, filter_id TEXT NOT NULL, display_name TEXT NOT NULL,"
        " rules TEXT NOT NULL, action INTEGER NOT NULL, create_time INTEGER NOT NULL,"
        " update_time INTEGER NOT NULL, PRIMARY KEY (app_id, filter_id))",
    ),
    (
        "CREATE TABLE send_hooks ("
        " app_id TEXT NOT NULL PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL,"
        " timeout_ms INTEGER NOT NULL, failure_policy TEXT NOT NULL, kinds TEXT NOT NULL,"
        " create_time INTEGER NOT NULL, update_time INTEGER NOT NULL)",
    ),
    (
        "CREATE TABLE permission_policies ("
        " app_id TEXT NOT NULL PRIMARY KEY, body TEXT NOT NULL, update_time INTEGER NOT NULL)",
    ),
)

_COLUMNS = ("app_id, restriction_id, user_id, conversation_id, type, reason, creator,"
            " create_time, expire_time")
_APPLIES = "(expire_time IS NULL OR expire_time > ?)"


def _restriction(row: Any) -> Restriction:
    return Restriction(row[0], row[1], row[2], row[3], RestrictionType(row[4]), row[5], row[6],
                       from_ms(row[7]), opt_from_ms(row[8]))


def _values(r: Restriction) -> tuple[Any, ...]:
    return (r.app_id, r.restriction_id, r.user_id, r.conversation_id, r.type.value, r.reason,
            r.creator, to_ms(r.create_time),
            None if r.expire_time is None else to_ms(r.expire_time))


class SqliteRestrictionStore:
    def __init__(self, db: SqliteDatabase, log: SqliteEventLog) -> None:
        self._db = db
        self._log = log

    async def migrate(self) -> None:
        await self._db.migrate("moderation", MIGRATIONS)

    async def put_restriction(self, restriction: Restriction, now: datetime) -> Restriction:
        def body(conn: sqlite3.Connection, emit: Emit) -> Restriction:
            row = conn.execute(
                "SELECT restriction_id FROM restrictions WHERE app_id = ? AND user_id = ?"
                f" AND conversation_id = ? AND type = ? AND {_APPLIES}",
                (restriction.app_id, restriction.user_id, restriction.conversation_id,
                 restriction.type.value, to_ms(now))).fetchone()
            # The one it replaces keeps its id.
            stored = restriction if row is None else replace(restriction, restriction_id=row[0])
            conn.execute(
                f"INSERT INTO restrictions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (app_id, user_id, conversation_id, type) DO UPDATE SET"
                " restriction_id = excluded.restriction_id, reason = excluded.reason,"
                " creator = excluded.creator, create_time = excluded.create_time,"
                " expire_time = excluded.expire_time", _values(stored))
            emit(restriction_event(CREATED, stored, now))
            return stored

        return await self._log.transact(body)

    async def get_restriction(self, app_id: str, restriction_id: str) -> Restriction | None:
        row = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM restrictions WHERE app_id = ? AND restriction_id = ?",
            (app_id, restriction_id)).fetchone())
        return None if row is None else _restriction(row)

    async def delete_restriction(self, app_id: str, restriction_id: str, now: datetime
                                 ) -> Restriction | None:
        def body(conn: sqlite3.Connection, emit: Emit) -> Restriction | None:
            row = conn.execute(
                f"DELETE FROM restrictions WHERE app_id = ? AND restriction_id = ?"
                f" AND {_APPLIES} RETURNING {_COLUMNS}",
                (app_id, restriction_id, to_ms(now))).fetchone()
            if row is None:
                return None
            lifted = _restriction(row)
            emit(restriction_event(DELETED, lifted, now))
            return lifted

        return await self._log.transact(body)

    async def list_restrictions(self, app_id: str, now: datetime, limit: int,
                                after: Position | None, *, user_id: str = "",
                                conversation_id: str | None = None, unseen_by: str = ""
                                ) -> list[Restriction]:
        where = [f"app_id = ? AND {_APPLIES}"]
        args: list[Any] = [app_id, to_ms(now)]
        if unseen_by:
            where.append("NOT (type = ? AND user_id = ?)")
            args.extend([RestrictionType.SHADOW_BAN.value, unseen_by])
        if user_id:
            where.append("user_id = ?")
            args.append(user_id)
        if conversation_id is not None:
            where.append("conversation_id = ?")
            args.append(conversation_id)
        if after is not None:
            where.append("(create_time, restriction_id) > (?, ?)")
            args.extend(after)
        sql = (f"SELECT {_COLUMNS} FROM restrictions WHERE {' AND '.join(where)}"
               " ORDER BY create_time, restriction_id LIMIT ?")
        rows = await self._db.read(lambda conn: conn.execute(sql, (*args, limit)).fetchall())
        return [_restriction(row) for row in rows]

    async def user_restrictions(self, app_id: str, user_id: str, now: datetime
                                ) -> list[Restriction]:
        rows = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_COLUMNS} FROM restrictions WHERE app_id = ? AND user_id = ?"
            f" AND {_APPLIES}", (app_id, user_id, to_ms(now))).fetchall())
        return [_restriction(row) for row in rows]


_FLAG_COLUMNS = ("app_id, flag_id, conversation_id, sequence, user_id, message_text, state,"
                 " report_count, claimer, claim_expire_time, resolver, note, message_deleted,"
                 " restriction_id, resolve_time, create_time, update_time")
_REPORT_COLUMNS = "reporter, reason, details, create_time"
# Nobody but `claimer` holds it at `now`: (claimer, claimer, now).
_FREE = "(claimer IN ('', ?) OR claim_expire_time <= ?)"


def _flag(row: Any, reports: list[Any]) -> Flag:
    resolution = None if row[10] is None else Resolution(
        row[10], row[11], bool(row[12]), row[13], from_ms(row[14]))
    return Flag(row[0], row[1], row[2], row[3], row[4], row[5], FlagState(row[6]),
                from_ms(row[15]), from_ms(row[16]), row[7],
                tuple(_report(r) for r in reports), row[8], opt_from_ms(row[9]), resolution)


def _report(row: Any) -> Report:
    return Report(row[0], ReportReason(row[1]), row[2], from_ms(row[3]))


def _load_flag(conn: sqlite3.Connection, app_id: str, flag_id: str) -> Flag | None:
    row = conn.execute(f"SELECT {_FLAG_COLUMNS} FROM flags WHERE app_id = ? AND flag_id = ?",
                       (app_id, flag_id)).fetchone()
    return None if row is None else _with_reports(conn, row)


def _with_reports(conn: sqlite3.Connection, row: Any) -> Flag:
    reports = conn.execute(
        f"SELECT {_REPORT_COLUMNS} FROM flag_reports WHERE app_id = ? AND flag_id = ?"
        " ORDER BY create_time DESC, reporter LIMIT ?", (row[0], row[1], REPORTS_SHOWN)
    ).fetchall()
    return _flag(row, reports)


class SqliteFlagStore:
    def __init__(self, db: SqliteDatabase, log: SqliteEventLog) -> None:
        self._db = db
        self._log = log

    async def migrate(self) -> None:
        """The restriction store migrates the moderation tables, flags' included."""

    async def report(self, flag: Flag, report: Report) -> Flag:
        now = to_ms(report.create_time)

        def body(conn: sqlite3.Connection, emit: Emit) -> Flag:
            conn.execute(
                "INSERT INTO flags (app_id, flag_id, open_key, conversation_id, sequence,"
                " user_id, message_text, state, report_count, claimer, create_time,"
                " update_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, '', ?, ?)"
                " ON CONFLICT (app_id, open_key) DO NOTHING",
                (flag.app_id, flag.flag_id, flag.target, flag.conversation_id, flag.sequence,
                 flag.user_id, flag.message_text, FlagState.OPEN.value, now, now))
            flag_id = conn.execute("SELECT flag_id FROM flags WHERE app_id = ? AND open_key = ?",
                                   (flag.app_id, flag.target)).fetchone()[0]
            conn.execute(
                f"INSERT OR REPLACE INTO flag_reports (app_id, flag_id, {_REPORT_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (flag.app_id, flag_id, report.reporter, report.reason.value, report.details,
                 now))
            conn.execute(
                "UPDATE flags SET update_time = ?, report_count = (SELECT count(*) FROM"
                " flag_reports WHERE app_id = ? AND flag_id = ?) WHERE app_id = ? AND"
                " flag_id = ?", (now, flag.app_id, flag_id, flag.app_id, flag_id))
            stored = _load_flag(conn, flag.app_id, flag_id)
            assert stored is not None
            emit(flag_event(REPORTED, stored, report.create_time))
            return stored

        return await self._log.transact(body)

    async def get_flag(self, app_id: str, flag_id: str) -> Flag | None:
        return await self._db.read(lambda conn: _load_flag(conn, app_id, flag_id))

    async def get_report(self, app_id: str, flag_id: str, reporter: str) -> Report | None:
        row = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_REPORT_COLUMNS} FROM flag_reports WHERE app_id = ? AND flag_id = ?"
            " AND reporter = ?", (app_id, flag_id, reporter)).fetchone())
        return None if row is None else _report(row)

    async def forget_texts(self, app_id: str, user_id: str) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE flags SET message_text = '' WHERE app_id = ?"
                                " AND user_id = ? AND message_text != ''",
                                (app_id, user_id)).rowcount

        return await self._db.write(tx)

    async def list_flags(self, app_id: str, limit: int, after: Position | None, *,
                         state: FlagState | None = None, conversation_id: str | None = None,
                         user_id: str = "", not_user_id: str = "") -> list[Flag]:
        where = ["app_id = ?"]
        args: list[Any] = [app_id]
        for column, value in (("state", None if state is None else state.value),
                              ("conversation_id", conversation_id),
                              ("user_id", user_id or None)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if not_user_id:
            where.append("user_id != ?")
            args.append(not_user_id)
        if after is not None:
            where.append("(create_time, flag_id) > (?, ?)")
            args.extend(after)
        sql = (f"SELECT {_FLAG_COLUMNS} FROM flags WHERE {' AND '.join(where)}"
               " ORDER BY create_time, flag_id LIMIT ?")

        def query(conn: sqlite3.Connection) -> list[Flag]:
            return [_with_reports(conn, row)
                    for row in conn.execute(sql, (*args, limit)).fetchall()]

        return await self._db.read(query)

    async def claim(self, app_id: str, flag_id: str, claimer: str,
                    until: datetime | None, now: datetime) -> Flag | None:
        def body(conn: sqlite3.Connection) -> Flag | None:
            changed = conn.execute(
                "UPDATE flags SET claimer = ?, claim_expire_time = ?, update_time = ?"
                f" WHERE app_id = ? AND flag_id = ? AND state = ? AND {_FREE}",
                ("" if until is None else claimer, None if until is None else to_ms(until),
                 to_ms(now), app_id, flag_id, FlagState.OPEN.value, claimer, to_ms(now)))
            return _load_flag(conn, app_id, flag_id) if changed.rowcount else None

        return await self._db.write(body)

    async def resolve(self, app_id: str, flag_id: str, resolution: Resolution) -> Flag | None:
        at = to_ms(resolution.resolve_time)

        def body(conn: sqlite3.Connection, emit: Emit) -> Flag | None:
            changed = conn.execute(
                "UPDATE flags SET state = ?, open_key = flag_id, claimer = '',"
                " claim_expire_time = NULL, resolver = ?, note = ?, message_deleted = ?,"
                " restriction_id = ?, resolve_time = ?, update_time = ?"
                f" WHERE app_id = ? AND flag_id = ? AND state = ? AND {_FREE}",
                (FlagState.RESOLVED.value, resolution.resolver, resolution.note,
                 int(resolution.message_deleted), resolution.restriction_id, at, at, app_id,
                 flag_id, FlagState.OPEN.value, resolution.resolver, at))
            if not changed.rowcount:
                return None
            resolved = _load_flag(conn, app_id, flag_id)
            assert resolved is not None
            emit(flag_event(RESOLVED, resolved, resolution.resolve_time))
            return resolved

        return await self._log.transact(body)


_FILTER_COLUMNS = "app_id, filter_id, display_name, rules, action, create_time, update_time"


def _filter_row(f: ContentFilter) -> tuple[Any, ...]:
    rules = {"words": f.words, "patterns": f.patterns, "blocked_domains": f.blocked_domains,
             "allowed_domains": f.allowed_domains, "kinds": sorted(f.kinds)}
    return (f.app_id, f.filter_id, f.display_name, json.dumps(rules), int(f.action),
            to_ms(f.create_time), to_ms(f.update_time))


def _filter(row: Any) -> ContentFilter:
    rules = json.loads(row[3])
    return ContentFilter(row[0], row[1], row[2], tuple(rules["words"]),
                         tuple(rules["patterns"]), tuple(rules["blocked_domains"]),
                         tuple(rules["allowed_domains"]), FilterAction(row[4]),
                         frozenset(rules["kinds"]), from_ms(row[5]), from_ms(row[6]))


class SqliteFilterStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def create_filter(self, content_filter: ContentFilter, limit: int) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            (count,) = conn.execute("SELECT count(*) FROM filters WHERE app_id = ?",
                                    (content_filter.app_id,)).fetchone()
            if count >= limit:
                raise CapacityExceeded("filters per app", limit)
            try:
                conn.execute(f"INSERT INTO filters ({_FILTER_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                             _filter_row(content_filter))
            except sqlite3.IntegrityError as exc:
                raise StoreConflict(content_filter.filter_id) from exc

        await self._db.write(tx)

    async def get_filter(self, app_id: str, filter_id: str) -> ContentFilter | None:
        row = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_FILTER_COLUMNS} FROM filters WHERE app_id = ? AND filter_id = ?",
            (app_id, filter_id)).fetchone())
        return None if row is None else _filter(row)

    async def list_filters(self, app_id: str, limit: int, after: str = ""
                           ) -> list[ContentFilter]:
        rows = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_FILTER_COLUMNS} FROM filters WHERE app_id = ? AND filter_id > ?"
            " ORDER BY filter_id LIMIT ?", (app_id, after, limit)).fetchall())
        return [_filter(row) for row in rows]

    async def update_filter(self, content_filter: ContentFilter) -> bool:
        row = _filter_row(content_filter)
        changed = await self._db.write(lambda conn: conn.execute(
            "UPDATE filters SET display_name = ?, rules = ?, action = ?, update_time = ?"
            " WHERE app_id = ? AND filter_id = ?", (*row[2:5], row[6], *row[:2])).rowcount)
        return bool(changed)

    async def delete_filter(self, app_id: str, filter_id: str) -> bool:
        deleted = await self._db.write(lambda conn: conn.execute(
            "DELETE FROM filters WHERE app_id = ? AND filter_id = ?",
            (app_id, filter_id)).rowcount)
        return bool(deleted)


_HOOK_COLUMNS = ("app_id, url, secret, timeout_ms, failure_policy, kinds, create_time,"
                 " update_time")


def _hook_row(h: SendHook) -> tuple[Any, ...]:
    return (h.app_id, h.url, h.secret, h.timeout // timedelta(milliseconds=1),
            h.failure_policy.value, json.dumps(sorted(h.kinds)), to_ms(h.create_time),
            to_ms(h.update_time))


class SqliteSendHookStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get_send_hook(self, app_id: str) -> SendHook | None:
        row = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_HOOK_COLUMNS} FROM send_hooks WHERE app_id = ?", (app_id,)).fetchone())
        if row is None:
            return None
        return SendHook(row[0], row[1], row[2], timedelta(milliseconds=row[3]),
                        FailurePolicy(row[4]), frozenset(json.loads(row[5])),
                        from_ms(row[6]), from_ms(row[7]))

    async def create_send_hook(self, hook: SendHook) -> bool:
        created = await self._db.write(lambda conn: conn.execute(
            f"INSERT INTO send_hooks ({_HOOK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"
            " ON CONFLICT (app_id) DO NOTHING", _hook_row(hook)).rowcount)
        return bool(created)

    async def update_send_hook(self, hook: SendHook) -> bool:
        row = _hook_row(hook)
        changed = await self._db.write(lambda conn: conn.execute(
            "UPDATE send_hooks SET url = ?, timeout_ms = ?, failure_policy = ?, kinds = ?,"
            " update_time = ? WHERE app_id = ?",
            (row[1], row[3], row[4], row[5], row[7], row[0])).rowcount)
        return bool(changed)

    async def delete_send_hook(self, app_id: str) -> bool:
        deleted = await self._db.write(lambda conn: conn.execute(
            "DELETE FROM send_hooks WHERE app_id = ?", (app_id,)).rowcount)
        return bool(deleted)


class SqlitePolicyStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get_policy(self, app_id: str) -> PermissionPolicy | None:
        row = await self._db.read(lambda conn: conn.execute(
            "SELECT body, update_time FROM permission_policies WHERE app_id = ?",
            (app_id,)).fetchone())
        return None if row is None else policy_of(app_id, json.loads(row[0]), from_ms(row[1]))

    async def put_policy(self, policy: PermissionPolicy) -> None:
        assert policy.update_time is not None
        row = (policy.app_id, json.dumps(policy_body(policy)), to_ms(policy.update_time))
        await self._db.write(lambda conn: conn.execute(
            "INSERT INTO permission_policies (app_id, body, update_time) VALUES (?, ?, ?)"
            " ON CONFLICT (app_id) DO UPDATE SET body = excluded.body,"
            " update_time = excluded.update_time", row))
