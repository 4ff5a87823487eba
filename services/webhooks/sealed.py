"""The webhook store with each endpoint's signing secrets, and the bodies of the
deliveries and dead letters (events with the content they carry), sealed at rest
with the app's key (services/keys/keyring.py): sealed on the way in, opened on the
way out; the rest passes through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime

from services.keys.keyring import Keyring
from services.webhooks.models import DeadLetter, Delivery, DeliveryAttempt, Webhook
from services.webhooks.store import Position, WebhookStore

CONTEXT = "webhook.secret"
BODY = "webhook.body"  # a delivery's or dead letter's body: the event, content and all


class SealedWebhookStore:
    def __init__(self, inner: WebhookStore, keyring: Keyring) -> None:
        self._inner = inner
        self._keyring = keyring

    @staticmethod
    async def _secrets(w: Webhook, change: Callable[[str, str, str], Awaitable[str]]
                       ) -> Webhook:
        """`w` with its secrets passed through `change` (sealing or opening)."""
        context = f"{CONTEXT}/{w.webhook_id}"
        return replace(
            w, secret=await change(w.app_id, context, w.secret),
            previous_secret=None if w.previous_secret is None else await change(
                w.app_id, context, w.previous_secret))

    async def _sealed(self, w: Webhook) -> Webhook:
        return await self._secrets(w, self._keyring.seal_text)

    async def _opened(self, w: Webhook) -> Webhook:
        return await self._secrets(w, self._keyring.open_text)

    async def migrate(self) -> None:
        await self._inner.migrate()

    async def create_webhook(self, webhook: Webhook, limit: int) -> bool:
        return await self._inner.create_webhook(await self._sealed(webhook), limit)

    async def get_webhook(self, app_id: str, webhook_id: str) -> Webhook | None:
        found = await self._inner.get_webhook(app_id, webhook_id)
        return None if found is None else await self._opened(found)

    async def list_webhooks(self, app_id: str, limit: int, after: Position | None
                            ) -> list[Webhook]:
        return [await self._opened(w)
                for w in await self._inner.list_webhooks(app_id, limit, after)]

    async def update_webhook(self, webhook: Webhook) -> bool:
        return await self._inner.update_webhook(await self._sealed(webhook))

    async def delete_webhook(self, app_id: str, webhook_id: str) -> bool:
        return await self._inner.delete_webhook(app_id, webhook_id)

    async def block_webhook(self, app_id: str, webhook_id: str, until: datetime) -> None:
        await self._inner.block_webhook(app_id, webhook_id, until)

    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        await self._inner.enqueue([
            replace(d, body=await self._keyring.seal(d.app_id, BODY, d.body))
            for d in deliveries])

    async def claim(self, now: datetime, until: datetime, limit: int, per_webhook: int
                    ) -> list[tuple[Delivery, Webhook]]:
        return [(replace(delivery, body=await self._keyring.open(delivery.app_id, BODY,
                                                                 delivery.body)),
                 await self._opened(webhook)) for delivery, webhook
                in await self._inner.claim(now, until, limit, per_webhook)]

    async def finish(self, delivery: Delivery, attempt: DeliveryAttempt,
                     retry_at: datetime | None, dead: DeadLetter | None) -> None:
        if dead is not None:
            dead = replace(dead, body=await self._keyring.seal(dead.app_id, BODY, dead.body))
        await self._inner.finish(delivery, attempt, retry_at, dead)

    async def list_attempts(self, app_id: str, webhook_id: str, event: str, limit: int,
                            after: Position | None) -> list[DeliveryAttempt]:
        return await self._inner.list_attempts(app_id, webhook_id, event, limit, after)

    async def list_dead_letters(self, app_id: str, webhook_id: str, limit: int,
                                after: Position | None) -> list[DeadLetter]:
        return [replace(d, body=await self._keyring.open(app_id, BODY, d.body))
                for d in await self._inner.list_dead_letters(app_id, webhook_id, limit, after)]

    async def replay(self, app_id: str, webhook_id: str, dead_letter_ids: Sequence[str] | None,
                     now: datetime) -> int:
        return await self._inner.replay(app_id, webhook_id, dead_letter_ids, now)

    async def drop_events(self, app_id: str, events: Sequence[str]) -> int:
        return await self._inner.drop_events(app_id, events)

    async def queued(self) -> int:
        return await self._inner.queued()

    async def purge(self, before: datetime, now: datetime) -> int:
        return await self._inner.purge(before, now)
