"""The webhooks store port. Every method is scoped by app id (and endpoint) except the
dispatcher's `claim` and the hourly `purge`, which work across apps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from services.webhooks.models import DeadLetter, Delivery, DeliveryAttempt, Webhook

# Listing position: (time in ms, id); lists resume strictly after it.
Position = tuple[int, str]

# A claim first moves the due deliveries of paused endpoints this far on (and those of
# blocked endpoints to the end of the block), so that they stop being looked at; a
# resumed endpoint gets them back at once (UpdateWebhook), at the latest after this.
PARK = timedelta(seconds=60)


def claim_window(limit: int) -> int:
    """How many due deliveries a claim of `limit` looks at (enough for several
    endpoints' worth, few enough to stay cheap with a large backlog)."""
    return min(max(4 * limit, 32), 500)


class WebhookStore(Protocol):
    async def migrate(self) -> None: ...

    async def create_webhook(self, webhook: Webhook, limit: int) -> bool:
        """Insert an endpoint unless its app already has `limit`; whether it was."""

    async def get_webhook(self, app_id: str, webhook_id: str) -> Webhook | None: ...

    async def list_webhooks(self, app_id: str, limit: int, after: Position | None
                            ) -> list[Webhook]:
        """The app's endpoints ordered by (create_time, webhook_id)."""

    async def update_webhook(self, webhook: Webhook) -> bool:
        """Replace the stored endpoint of the same app and id if it is still at the
        revision before `webhook.revision`; False if it is not (changed meanwhile, or
        gone)."""

    async def delete_webhook(self, app_id: str, webhook_id: str) -> bool:
        """Delete an endpoint with its deliveries, attempts and dead letters, at once;
        False if there was none."""

    async def block_webhook(self, app_id: str, webhook_id: str, until: datetime) -> None:
        """Claim none of the endpoint's deliveries before `until` (it keeps failing)."""

    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        """Add deliveries; one already waiting for the same endpoint and event stays as
        it is (an event handed over twice is delivered once more at most)."""

    async def claim(self, now: datetime, until: datetime, limit: int, per_webhook: int
                    ) -> list[tuple[Delivery, Webhook]]:
        """Take up to `limit` deliveries due by `now` until `until` (nobody else takes
        them meanwhile), oldest due first, each with its endpoint as it is now: only of
        active endpoints not blocked at `now`, no more than `per_webhook` in flight per
        endpoint (counting those already taken), and for an ordered endpoint only the
        first waiting delivery of each conversation. (Due deliveries are looked at in
        bounded numbers: under a large backlog a round may take fewer than it could.)"""

    async def finish(self, delivery: Delivery, attempt: DeliveryAttempt,
                     retry_at: datetime | None, dead: DeadLetter | None) -> None:
        """Record an attempt at `delivery` and, at once, its outcome: a success removes
        the delivery; a failure schedules it again at `retry_at`, or with `dead` turns
        it into that dead letter. Nothing happens if the delivery is gone (its endpoint
        was deleted)."""

    async def list_attempts(self, app_id: str, webhook_id: str, event: str, limit: int,
                            after: Position | None) -> list[DeliveryAttempt]:
        """The endpoint's attempts (of `event` only, unless empty), newest first:
        ordered by (create_time, attempt_id) descending."""

    async def list_dead_letters(self, app_id: str, webhook_id: str, limit: int,
                                after: Position | None) -> list[DeadLetter]:
        """The endpoint's dead letters ordered by (create_time, dead_letter_id)."""

    async def replay(self, app_id: str, webhook_id: str, dead_letter_ids: Sequence[str] | None,
                     now: datetime) -> int:
        """Turn dead letters (the given ones; None: all of the endpoint's) back into
        deliveries due at `now`, at once; how many."""

    async def drop_events(self, app_id: str, events: Sequence[str]) -> int:
        """Drop the deliveries and dead letters of these events (erasure: their bodies
        hold content that must go); how many."""

    async def queued(self) -> int:
        """Deliveries waiting (due, retrying or claimed), over every app: for metrics."""

    async def purge(self, before: datetime, now: datetime) -> int:
        """Drop attempts and dead letters created before `before`, and turn deliveries
        still waiting since then into dead letters (made at `now`, with the reason);
        how many records went or turned."""
