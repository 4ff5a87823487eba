"""What ListMessages filters on (docs/filtering.md; the grammar is
services/core/filtering.py's). Stated in the contract comment of its `filter` field.

Messages have no `order_by`: ListMessages pages by sequence number in both directions,
and a filter only leaves messages out of those pages."""

from __future__ import annotations

from services.core.filtering import (
    Schema,
    boolean,
    choice,
    integer,
    mapping,
    repeated,
    string,
    timestamp,
)

ACTIVE = "active"
DELETED = "deleted"

MESSAGE_FILTER = Schema((
    string("sender_id", prefix=True),
    timestamp("create_time"),
    boolean("has_attachments"),
    repeated("mention_ids"),
    choice("state", {ACTIVE: ACTIVE, DELETED: DELETED, "STATE_ACTIVE": ACTIVE,
                     "STATE_DELETED": DELETED}),
    integer("reply_count"),
    mapping("metadata"),
))
