"""What an app can do with its webhook endpoints: `check_*` authorises, `do_*` writes.

Only the app's backend (API key) and the operator manage endpoints; users never do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from services.core.clock import Clock, to_ms
from services.core.errors import (
    Aborted,
    FieldViolation,
    InvalidArgument,
    limit_exceeded,
    not_found,
)
from services.core.ids import new_id, new_secret
from services.core.pagination import Page, make_page, page_request, time_id_position
from services.core.principal import Principal, require_backend
from services.core.settings import Settings
from services.events.types import EVENT_TYPES, FAMILIES
from services.webhooks.addresses import host_problem, is_public_address
from services.webhooks.models import SECRET_PREFIX, DeadLetter, DeliveryAttempt, Webhook
from services.webhooks.store import WebhookStore

DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
MAX_CHANGE_TRIES = 5  # read-modify-write rounds lost to concurrent changes before giving up


@dataclass(frozen=True, slots=True)
class WebhookChanges:
    """The fields an update sets (None: unchanged)."""

    url: str | None = None
    event_types: tuple[str, ...] | None = None
    ordered: bool | None = None
    active: bool | None = None
    description: str | None = None


def webhook_name(app_id: str, webhook_id: str) -> str:
    return f"apps/{app_id}/webhooks/{webhook_id}"


def new_webhook_secret() -> str:
    return SECRET_PREFIX + new_secret()


def check_backend(principal: Principal, app_id: str) -> None:
    """The app's backend or the operator; never a user, never another app."""
    require_backend(principal, app_id, "webhooks")


def check_url(url: str, allow_insecure: bool, field: str = "webhook.url") -> str:
    """The URL if deliveries may go there; INVALID_ARGUMENT (WEBHOOK_URL_NOT_ALLOWED)
    if not: an absolute https URL whose host is a valid DNS name or an IP address
    (`host_problem`), not naming a local or private host (unless `allow_insecure`).
    Host names are resolved again at each delivery."""
    def refuse(why: str) -> InvalidArgument:
        return InvalidArgument("WEBHOOK_URL_NOT_ALLOWED", f"{field} {why}",
                               field_violations=(FieldViolation(field, why),))

    parts = urlsplit(url)
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in schemes:
        raise refuse("must be an https:// URL")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise refuse("must be a valid URL") from exc
    if not host:
        raise refuse("must name a host")
    problem = host_problem(url)
    if problem is not None:
        raise refuse(f"must name a valid host ({problem})")
    if allow_insecure:
        return url
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise refuse("must not name a local host")
    try:
        public = is_public_address(host)
    except ValueError:
        return url  # a host name
    if not public:
        raise refuse("must not be a loopback, private or link-local address")
    return url


def check_event_types(event_types: Sequence[str], field: str = "webhook.event_types"
                      ) -> tuple[str, ...]:
    """Filters that name real types or families; INVALID_ARGUMENT for a typo, which
    would otherwise match nothing, silently."""
    known = set(EVENT_TYPES) | {f"{f}.*" for f in FAMILIES} | {"*"}
    bad = [FieldViolation(f"{field}[{i}]", f"unknown event type {t!r}")
           for i, t in enumerate(event_types) if t not in known]
    if bad:
        raise InvalidArgument("EVENT_TYPE_UNKNOWN",
                              f"unknown event types; known: {', '.join(EVENT_TYPES)}",
                              field_violations=tuple(bad))
    return tuple(event_types)


class WebhooksActions:
    def __init__(self, store: WebhookStore, clock: Clock, settings: Settings) -> None:
        self._store = store
        self._clock = clock
        self._allow_insecure = settings.webhook_allow_insecure
        self._limit = settings.max_webhooks_per_app

    async def do_create(self, principal: Principal, app_id: str, url: str,
                        event_types: Sequence[str], ordered: bool, active: bool,
                        description: str) -> tuple[Webhook, str]:
        """A new endpoint and its secret (shown once)."""
        check_backend(principal, app_id)
        now = self._clock.now()
        secret = new_webhook_secret()
        webhook = Webhook(app_id, new_id(), check_url(url, self._allow_insecure),
                          check_event_types(event_types), ordered, active, description,
                          secret, None, None, now, now)
        if not await self._store.create_webhook(webhook, self._limit):
            raise limit_exceeded("max_webhooks_per_app", self._limit)
        return webhook, secret

    async def get(self, principal: Principal, app_id: str, webhook_id: str) -> Webhook:
        check_backend(principal, app_id)
        webhook = await self._store.get_webhook(app_id, webhook_id)
        if webhook is None:
            raise not_found("caas.dev/Webhook", webhook_name(app_id, webhook_id))
        return webhook

    async def list(self, principal: Principal, app_id: str, page_size: int, page_token: str
                   ) -> Page[Webhook]:
        check_backend(principal, app_id)
        scope = [f"apps/{app_id}", "webhooks"]
        request = page_request(page_size, page_token, scope)
        hooks = await self._store.list_webhooks(app_id, request.size + 1,
                                                time_id_position(request))
        return make_page(hooks, request, scope,
                         lambda h: (to_ms(h.create_time), h.webhook_id))

    async def _change(self, principal: Principal, app_id: str, webhook_id: str,
                      change: Callable[[Webhook], dict[str, object]]) -> Webhook:
        """Apply `change` (the stored endpoint → field values) to the endpoint, again on
        the new state when another change lands in between."""
        for _ in range(MAX_CHANGE_TRIES):
            current = await self.get(principal, app_id, webhook_id)
            changed = dataclasses.replace(current, **change(current),  # type: ignore[arg-type]
                                          update_time=self._clock.now(),
                                          revision=current.revision + 1)
            if await self._store.update_webhook(changed):
                return changed
        raise Aborted("WEBHOOK_BUSY", "the endpoint keeps changing; try again")

    async def do_update(self, principal: Principal, app_id: str, webhook_id: str,
                        changes: WebhookChanges) -> Webhook:
        change: dict[str, object] = {
            k: v for k, v in dataclasses.asdict(changes).items() if v is not None}
        if changes.url is not None:
            change["url"] = check_url(changes.url, self._allow_insecure)
        if changes.event_types is not None:
            change["event_types"] = check_event_types(changes.event_types)
        return await self._change(principal, app_id, webhook_id, lambda _: change)

    async def do_rotate_secret(self, principal: Principal, app_id: str, webhook_id: str,
                               overlap: timedelta | None) -> tuple[Webhook, str]:
        """A new secret; the current one keeps signing for `overlap` (None: a day)."""
        secret = new_webhook_secret()
        expire = self._clock.now() + (DEFAULT_ROTATION_OVERLAP if overlap is None else overlap)
        webhook = await self._change(principal, app_id, webhook_id, lambda current: {
            "secret": secret, "previous_secret": current.secret,
            "previous_secret_expire_time": expire})
        return webhook, secret

    async def do_delete(self, principal: Principal, app_id: str, webhook_id: str) -> None:
        check_backend(principal, app_id)
        if not await self._store.delete_webhook(app_id, webhook_id):
            raise not_found("caas.dev/Webhook", webhook_name(app_id, webhook_id))

    async def list_attempts(self, principal: Principal, app_id: str, webhook_id: str,
                            event: str, page_size: int, page_token: str
                            ) -> Page[DeliveryAttempt]:
        await self.get(principal, app_id, webhook_id)
        scope = [webhook_name(app_id, webhook_id), "attempts", event]
        request = page_request(page_size, page_token, scope)
        attempts = await self._store.list_attempts(app_id, webhook_id, event, request.size + 1,
                                                   time_id_position(request))
        return make_page(attempts, request, scope,
                         lambda a: (to_ms(a.create_time), a.attempt_id))

    async def list_dead_letters(self, principal: Principal, app_id: str, webhook_id: str,
                                page_size: int, page_token: str) -> Page[DeadLetter]:
        await self.get(principal, app_id, webhook_id)
        scope = [webhook_name(app_id, webhook_id), "deadLetters"]
        request = page_request(page_size, page_token, scope)
        dead = await self._store.list_dead_letters(app_id, webhook_id, request.size + 1,
                                                   time_id_position(request))
        return make_page(dead, request, scope,
                         lambda d: (to_ms(d.create_time), d.dead_letter_id))

    async def do_replay(self, principal: Principal, app_id: str, webhook_id: str,
                        dead_letter_ids: Sequence[str] | None) -> int:
        """Put dead letters (None: all) back to delivery; how many went."""
        await self.get(principal, app_id, webhook_id)
        return await self._store.replay(app_id, webhook_id, dead_letter_ids, self._clock.now())
