"""What ListUsers filters on and orders by (docs/filtering.md; the grammar is
services/core/filtering.py's). Stated in the contract comments of its `filter` and
`order_by` fields."""

from __future__ import annotations

from services.core.filtering import Ordering, Schema, choice, mapping, string, timestamp

ACTIVE = "active"
DELETED = "deleted"

USER_FILTER = Schema((
    string("user_id", prefix=True),
    string("display_name", prefix=True),
    mapping("metadata"),
    choice("state", {ACTIVE: ACTIVE, DELETED: DELETED, "STATE_ACTIVE": ACTIVE,
                     "STATE_DELETED": DELETED}),
    timestamp("create_time"),
))

BY_CREATION = Ordering("create_time", ("create_time", "user_id"), ("time", "id"))
USER_ORDERINGS = (
    BY_CREATION,
    Ordering("create_time desc", ("create_time", "user_id"), ("time", "id"), descending=True),
    Ordering("display_name", ("display_name", "user_id"), ("text", "id")),
    Ordering("display_name desc", ("display_name", "user_id"), ("text", "id"),
             descending=True),
)
