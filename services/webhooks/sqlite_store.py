"""WebhookStore on the embedded SQLite engine."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.core.clock import from_ms, opt_from_ms, to_ms
from services.core.db.sqlite import Migration, SqliteDatabase
from services.webhooks.models import (
    DeadLetter,
    Delivery,
    DeliveryAttempt,
    Webhook,
)
from services.webhooks.store import PARK, Position, claim_window

MIGRATIONS: tuple[Migration, ...] = (
    (
        "CREATE TABLE webhooks ("
        " app_id TEXT NOT NULL, webhook_id TEXT NOT NULL, url TEXT NOT NULL,"
        " event_types TEXT NOT NULL, ordered INTEGER NOT NULL, active INTEGER NOT NULL,"
        " description TEXT NOT NULL, secret TEXT NOT NULL, previous_secret TEXT,"
        " previous_secret_expire_time INTEGER, create_time INTEGER NOT NULL,"
        " update_time INTEGER NOT NULL, revision INTEGER NOT NULL,"
        " blocked_until INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (app_id, webhook_id))",
        "CREATE INDEX webhooks_by_create_time ON webhooks (app_id, create_time, webhook_id)",
        "CREATE INDEX webhooks_paused ON webhooks (active)",
        "CREATE INDEX webhooks_blocked ON webhooks (blocked_until)",
        "CREATE TABLE webhook_deliveries ("
        " app_id TEXT NOT NULL, webhook_id TEXT NOT NULL, event TEXT NOT NULL,"
        " event_type TEXT NOT NULL, conversation TEXT NOT NULL, position INTEGER NOT NULL,"
        " body BLOB NOT NULL, failures INTEGER NOT NULL, next_attempt_time INTEGER NOT NULL,"
        " create_time INTEGER NOT NULL, claim_until INTEGER NOT NULL DEFAULT 0,"
        " PRIMARY KEY (app_id, webhook_id, event))",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_time)",
        "CREATE INDEX webhook_deliveries_claimed ON webhook_deliveries (claim_until)",
        "CREATE INDEX webhook_deliveries_by_endpoint_due"
        " ON webhook_deliveries (app_id, webhook_id, next_attempt_time)",
        "CREATE INDEX webhook_deliveries_by_conversation"
        " ON webhook_deliveries (app_id, webhook_id, conversation, position)",
        "CREATE INDEX webhook_deliveries_by_create_time ON webhook_deliveries (create_time)",
        "CREATE TABLE webhook_attempts ("
        " app_id TEXT NOT NULL, webhook_id TEXT NOT NULL, attempt_id TEXT NOT NULL,"
        " event TEXT NOT NULL, event_type TEXT NOT NULL, attempt_number INTEGER NOT NULL,"
        " succeeded INTEGER NOT NULL, status_code INTEGER NOT NULL, error TEXT NOT NULL,"
        " latency_ms INTEGER NOT NULL, response_excerpt TEXT NOT NULL,"
        " create_time INTEGER NOT NULL, PRIMARY KEY (app_id, webhook_id, attempt_id))",
        "CREATE INDEX webhook_attempts_by_time"
        " ON webhook_attempts (app_id, webhook_id, create_time, attempt_id)",
        "CREATE INDEX webhook_attempts_by_event"
        " ON webhook_attempts (app_id, webhook_id, event, create_time, attempt_id)",
        "CREATE INDEX webhook_attempts_by_create_time ON webhook_attempts (create_time)",
        "CREATE TABLE webhook_dead_letters ("
        " app_id TEXT NOT NULL, webhook_id TEXT NOT NULL, dead_letter_id TEXT NOT NULL,"
        " event TEXT NOT NULL, event_type TEXT NOT NULL, conversation TEXT NOT NULL,"
        " position INTEGER NOT NULL, body BLOB NOT NULL, attempts INTEGER NOT NULL,"
        " last_error TEXT NOT NULL, create_time INTEGER NOT NULL,"
        " PRIMARY KEY (app_id, webhook_id, dead_letter_id))",
        "CREATE INDEX webhook_dead_letters_by_time"
        " ON webhook_dead_letters (app_id, webhook_id, create_time, dead_letter_id)",
        "CREATE INDEX webhook_dead_letters_by_create_time ON webhook_dead_letters (create_time)",
    ),
)

_HOOK = ("app_id, webhook_id, url, event_types, ordered, active, description, secret,"
         " previous_secret, previous_secret_expire_time, create_time, update_time, revision,"
         " blocked_until")
_DELIVERY = ("app_id, webhook_id, event, event_type, conversation, position, body, failures,"
             " next_attempt_time, create_time")
_ATTEMPT = ("app_id, webhook_id, attempt_id, event, event_type, attempt_number, succeeded,"
            " status_code, error, latency_ms, response_excerpt, create_time")
_DEAD = ("app_id, webhook_id, dead_letter_id, event, event_type, conversation, position, body,"
         " attempts, last_error, create_time")


def _hook_row(h: Webhook) -> tuple[Any, ...]:
    expire = h.previous_secret_expire_time
    return (h.app_id, h.webhook_id, h.url, json.dumps(list(h.event_types)), int(h.ordered),
            int(h.active), h.description, h.secret, h.previous_secret,
            None if expire is None else to_ms(expire), to_ms(h.create_time),
            to_ms(h.update_time), h.revision,
            0 if h.blocked_until is None else to_ms(h.blocked_until))


def _hook(row: Sequence[Any]) -> Webhook:
    return Webhook(row[0], row[1], row[2], tuple(json.loads(row[3])), bool(row[4]),
                   bool(row[5]), row[6], row[7], row[8], opt_from_ms(row[9]),
                   from_ms(row[10]), from_ms(row[11]), row[12],
                   from_ms(row[13]) if row[13] else None)


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]), row[7],
                    from_ms(row[8]), from_ms(row[9]))


def _attempt(row: Sequence[Any]) -> DeliveryAttempt:
    return DeliveryAttempt(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]),
                           row[7], row[8], row[9], row[10], from_ms(row[11]))


def _dead(row: Sequence[Any]) -> DeadLetter:
    return DeadLetter(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bytes(row[7]),
                      row[8], row[9], from_ms(row[10]))


def _insert_deliveries(conn: sqlite3.Connection, deliveries: Sequence[Delivery]) -> int:
    return conn.executemany(
        f"INSERT OR IGNORE INTO webhook_deliveries ({_DELIVERY}) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [(d.app_id, d.webhook_id, d.event, d.event_type, d.conversation, d.position, d.body,
          d.failures, to_ms(d.next_attempt_time), to_ms(d.create_time))
         for d in deliveries]).rowcount


def _insert_dead(conn: sqlite3.Connection, dead: Sequence[DeadLetter]) -> None:
    conn.executemany(
        f"INSERT INTO webhook_dead_letters ({_DEAD}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(d.app_id, d.webhook_id, d.dead_letter_id, d.event, d.event_type, d.conversation,
          d.position, d.body, d.attempts, d.last_error, to_ms(d.create_time)) for d in dead])


def _park(conn: sqlite3.Connection, now: int) -> None:
    """Move the due deliveries of paused endpoints PARK on, and those of blocked ones to
    the block's end: the due index then leads only to deliveries that can go."""
    stopped = conn.execute(
        "SELECT app_id, webhook_id, CASE WHEN active THEN blocked_until ELSE ? END"
        " FROM webhooks WHERE active = 0 OR blocked_until > ?",
        (now + int(PARK.total_seconds() * 1000), now)).fetchall()
    conn.executemany(
        "UPDATE webhook_deliveries SET next_attempt_time = ?"
        " WHERE app_id = ? AND webhook_id = ? AND next_attempt_time <= ? AND claim_until <= ?",
        [(until, app_id, webhook_id, now, now) for app_id, webhook_id, until in stopped])


# What `claim` may take: the first `window` due deliveries (by the due index) of active
# endpoints that have room for more in flight, each ordered endpoint's only the head of
# each conversation; ranked per endpoint so that no endpoint takes more than its room.
_CLAIMABLE = """
WITH busy AS (
    SELECT app_id, webhook_id, count(*) AS taken
    FROM webhook_deliveries INDEXED BY webhook_deliveries_claimed  -- the few in flight
    WHERE claim_until > :now GROUP BY app_id, webhook_id),
due AS (
    SELECT d.rowid AS id, d.app_id, d.webhook_id, d.next_attempt_time, d.position
    FROM webhook_deliveries AS d
    JOIN webhooks AS w USING (app_id, webhook_id)
    LEFT JOIN busy USING (app_id, webhook_id)
    WHERE d.next_attempt_time <= :now AND d.claim_until <= :now AND w.active
      AND w.blocked_until <= :now
      AND coalesce(busy.taken, 0) < :per_webhook
      AND (NOT w.ordered OR NOT EXISTS (
          SELECT 1 FROM webhook_deliveries AS e
          WHERE e.app_id = d.app_id AND e.webhook_id = d.webhook_id
            AND e.conversation = d.conversation AND e.position < d.position))
    ORDER BY d.next_attempt_time LIMIT :window),
ranked AS (
    SELECT due.*, row_number() OVER (PARTITION BY app_id, webhook_id
                                     ORDER BY next_attempt_time, position) AS rank
    FROM due)
SELECT ranked.id FROM ranked LEFT JOIN busy USING (app_id, webhook_id)
WHERE ranked.rank + coalesce(busy.taken, 0) <= :per_webhook
ORDER BY ranked.next_attempt_time, ranked.position LIMIT :limit
"""


class SqliteWebhookStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate("webhooks", MIGRATIONS)

    async def create_webhook(self, webhook: Webhook, limit: int) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            (count,) = conn.execute("SELECT count(*) FROM webhooks WHERE app_id = ?",
                                    (webhook.app_id,)).fetchone()
            if count >= limit:
                return False
            conn.execute(f"INSERT INTO webhooks ({_HOOK}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         _hook_row(webhook))
            return True

        return await self._db.write(tx)

    async def get_webhook(self, app_id: str, webhook_id: str) -> Webhook | None:
        row = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_HOOK} FROM webhooks WHERE app_id = ? AND webhook_id = ?",
            (app_id, webhook_id)).fetchone())
        return None if row is None else _hook(row)

    async def list_webhooks(self, app_id: str, limit: int, after: Position | None
                            ) -> list[Webhook]:
        start = after or (-1, "")
        rows = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_HOOK} FROM webhooks WHERE app_id = ? AND (create_time, webhook_id) > (?, ?)"
            " ORDER BY create_time, webhook_id LIMIT ?", (app_id, *start, limit)).fetchall())
        return [_hook(row) for row in rows]

    async def update_webhook(self, webhook: Webhook) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            if conn.execute(
                    f"UPDATE webhooks SET ({_HOOK}) = (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                    " WHERE app_id = ? AND webhook_id = ? AND revision = ?",
                    (*_hook_row(webhook), webhook.app_id, webhook.webhook_id,
                     webhook.revision - 1)).rowcount != 1:
                return False
            if webhook.active:  # resumed, maybe: what was parked goes now
                now = to_ms(webhook.update_time)
                conn.execute(
                    "UPDATE webhook_deliveries SET next_attempt_time = ?"
                    " WHERE app_id = ? AND webhook_id = ? AND next_attempt_time > ?"
                    " AND next_attempt_time <= ?",
                    (now, webhook.app_id, webhook.webhook_id, now,
                     now + int(PARK.total_seconds() * 1000)))
            return True

        return await self._db.write(tx)

    async def delete_webhook(self, app_id: str, webhook_id: str) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            for table in ("webhook_deliveries", "webhook_attempts", "webhook_dead_letters"):
                conn.execute(f"DELETE FROM {table} WHERE app_id = ? AND webhook_id = ?",
                             (app_id, webhook_id))
            return conn.execute("DELETE FROM webhooks WHERE app_id = ? AND webhook_id = ?",
                                (app_id, webhook_id)).rowcount == 1

        return await self._db.write(tx)

    async def block_webhook(self, app_id: str, webhook_id: str, until: datetime) -> None:
        await self._db.write(lambda conn: conn.execute(
            "UPDATE webhooks SET blocked_until = ? WHERE app_id = ? AND webhook_id = ?",
            (to_ms(until), app_id, webhook_id)))

    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._db.write(lambda conn: _insert_deliveries(conn, deliveries))

    async def claim(self, now: datetime, until: datetime, limit: int, per_webhook: int
                    ) -> list[tuple[Delivery, Webhook]]:
        def tx(conn: sqlite3.Connection) -> list[tuple[Delivery, Webhook]]:
            _park(conn, to_ms(now))
            ids = [row[0] for row in conn.execute(_CLAIMABLE, {
                "now": to_ms(now), "per_webhook": per_webhook, "limit": limit,
                "window": claim_window(limit)})]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            conn.execute(f"UPDATE webhook_deliveries SET claim_until = ?"
                         f" WHERE rowid IN ({marks})", (to_ms(until), *ids))
            deliveries = [_delivery(row) for row in conn.execute(
                f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE rowid IN ({marks})"
                " ORDER BY next_attempt_time, position", ids)]
            hooks = {(h.app_id, h.webhook_id): h for h in (_hook(row) for row in conn.execute(
                f"SELECT {_HOOK} FROM webhooks WHERE (app_id, webhook_id) IN"
                f" (SELECT app_id, webhook_id FROM webhook_deliveries WHERE rowid IN ({marks}))",
                ids))}
            return [(d, hooks[d.app_id, d.webhook_id]) for d in deliveries]

        return await self._db.write(tx)

    async def finish(self, delivery: Delivery, attempt: DeliveryAttempt,
                     retry_at: datetime | None, dead: DeadLetter | None) -> None:
        key = (delivery.app_id, delivery.webhook_id, delivery.event)

        def tx(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM webhook_deliveries"
                            " WHERE app_id = ? AND webhook_id = ? AND event = ?",
                            key).fetchone() is None:
                return
            a = attempt
            conn.execute(
                f"INSERT INTO webhook_attempts ({_ATTEMPT}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (a.app_id, a.webhook_id, a.attempt_id, a.event, a.event_type, a.attempt_number,
                 int(a.succeeded), a.status_code, a.error, a.latency_ms, a.response_excerpt,
                 to_ms(a.create_time)))
            if retry_at is not None and not attempt.succeeded:
                conn.execute(
                    "UPDATE webhook_deliveries SET failures = failures + 1,"
                    " next_attempt_time = ?, claim_until = 0"
                    " WHERE app_id = ? AND webhook_id = ? AND event = ?",
                    (to_ms(retry_at), *key))
                return
            conn.execute("DELETE FROM webhook_deliveries"
                         " WHERE app_id = ? AND webhook_id = ? AND event = ?", key)
            if dead is not None and not attempt.succeeded:
                _insert_dead(conn, [dead])

        await self._db.write(tx)

    async def list_attempts(self, app_id: str, webhook_id: str, event: str, limit: int,
                            after: Position | None) -> list[DeliveryAttempt]:
        clauses = ["app_id = ?", "webhook_id = ?"]
        args: list[Any] = [app_id, webhook_id]
        if event:
            clauses.append("event = ?")
            args.append(event)
        if after is not None:
            clauses.append("(create_time, attempt_id) < (?, ?)")
            args.extend(after)
        query = (f"SELECT {_ATTEMPT} FROM webhook_attempts WHERE {' AND '.join(clauses)}"
                 " ORDER BY create_time DESC, attempt_id DESC LIMIT ?")
        rows = await self._db.read(lambda conn: conn.execute(query, (*args, limit)).fetchall())
        return [_attempt(row) for row in rows]

    async def list_dead_letters(self, app_id: str, webhook_id: str, limit: int,
                                after: Position | None) -> list[DeadLetter]:
        start = after or (-1, "")
        rows = await self._db.read(lambda conn: conn.execute(
            f"SELECT {_DEAD} FROM webhook_dead_letters WHERE app_id = ? AND webhook_id = ?"
            " AND (create_time, dead_letter_id) > (?, ?)"
            " ORDER BY create_time, dead_letter_id LIMIT ?",
            (app_id, webhook_id, *start, limit)).fetchall())
        return [_dead(row) for row in rows]

    async def replay(self, app_id: str, webhook_id: str, dead_letter_ids: Sequence[str] | None,
                     now: datetime) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            query = (f"SELECT {_DEAD} FROM webhook_dead_letters"
                     " WHERE app_id = ? AND webhook_id = ?")
            args: list[Any] = [app_id, webhook_id]
            if dead_letter_ids is not None:
                query += f" AND dead_letter_id IN ({','.join('?' * len(dead_letter_ids))})"
                args.extend(dead_letter_ids)
            dead = [_dead(row) for row in conn.execute(query, args)]
            _insert_deliveries(conn, [d.replayed(now) for d in dead])
            conn.executemany("DELETE FROM webhook_dead_letters"
                             " WHERE app_id = ? AND webhook_id = ? AND dead_letter_id = ?",
                             [(d.app_id, d.webhook_id, d.dead_letter_id) for d in dead])
            return len(dead)

        return await self._db.write(tx)

    async def drop_events(self, app_id: str, events: Sequence[str]) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            gone = 0
            for event in events:
                for table in ("webhook_deliveries", "webhook_dead_letters"):
                    gone += conn.execute(f"DELETE FROM {table} WHERE app_id = ? AND event = ?",
                                         (app_id, event)).rowcount
            return gone

        return await self._db.write(tx)

    async def queued(self) -> int:
        return int(await self._db.read(lambda conn: conn.execute(
            "SELECT count(*) FROM webhook_deliveries").fetchone()[0]))

    async def purge(self, before: datetime, now: datetime) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            cutoff = to_ms(before)
            gone = sum(conn.execute(f"DELETE FROM {table} WHERE create_time < ?",
                                    (cutoff,)).rowcount
                       for table in ("webhook_attempts", "webhook_dead_letters"))
            expired = [_delivery(row) for row in conn.execute(
                f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE create_time < ?", (cutoff,))]
            _insert_dead(conn, [d.expired(now) for d in expired])
            conn.execute("DELETE FROM webhook_deliveries WHERE create_time < ?", (cutoff,))
            return gone + len(expired)

        return await self._db.write(tx)
