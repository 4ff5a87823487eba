"""The pre-send hook: what the send path asks an app's own endpoint before storing a
message (see caas.moderation.v1.SendHook for the exchange), and managing it.

Each process keeps an app's hook (or that it has none) for `ttl` seconds; the process
that changes it forgets it at once, the others within `ttl`, as for content filters.
Calls go through the webhooks' deliverer: no redirects, public addresses only unless
the deployment allows local ones, the hook's timeout per call."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from services.conversations.access import conversation_name
from services.core.cache import TtlCache
from services.core.clock import Clock, truncate_ms
from services.core.errors import PermissionDenied, Unavailable, invalid_field, not_found
from services.core.ids import new_id
from services.core.names import app_name
from services.core.principal import Principal, require_backend
from services.moderation.models import DEFAULT_HOOK_TIMEOUT, FailurePolicy, SendHook
from services.moderation.store import SendHookStore
from services.webhooks.actions import check_url, new_webhook_secret
from services.webhooks.delivery import Deliverer

MAX_ANSWER_BYTES = 64 * 1024  # a modified text of 4,000 characters fits many times
MAX_TEXT = 4000
MAX_REASON = 500
RETRY_AFTER = timedelta(seconds=1)


def send_hook_name(app_id: str) -> str:
    return f"apps/{app_id}/sendHook"


@dataclass(frozen=True, slots=True)
class Presend:
    """A message about to be sent, as the hook sees it."""

    app_id: str
    conversation_id: str
    kind: str
    sender_id: str
    request_id: str
    text: str
    metadata: Mapping[str, str]
    mention_ids: Sequence[str]
    attachment_count: int
    thread_root: int

    def body(self) -> bytes:
        return json.dumps({
            "type": "message.presend", "app": app_name(self.app_id),
            "conversation": conversation_name(self.app_id, self.conversation_id),
            "conversationKind": self.kind, "senderId": self.sender_id,
            "requestId": self.request_id, "text": self.text,
            "metadata": dict(self.metadata), "mentionIds": list(self.mention_ids),
            "attachmentCount": self.attachment_count,
            "threadRootSequence": self.thread_root}, separators=(",", ":")).encode()


class HookMeter:
    """Calls by outcome (allow, reject, modify, failed), and their latency."""

    def __init__(self, calls: Any = None, seconds: Any = None) -> None:
        self._calls = calls
        self._seconds = seconds

    def record(self, outcome: str, seconds: float) -> None:
        if self._calls is not None:
            self._calls.labels(outcome).inc()
            self._seconds.observe(seconds)


def _answer(raw: str, presend: Presend) -> tuple[str, str] | None:
    """(action, text or reason) of a valid answer; None for anything else."""
    try:
        answer = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    action = answer.get("action")
    if action == "allow":
        return "allow", presend.text
    if action == "reject":
        reason = answer.get("reason", "")
        return ("reject", reason[:MAX_REASON]) if isinstance(reason, str) else None
    if action == "modify":
        text = answer.get("text")
        if (isinstance(text, str) and len(text) <= MAX_TEXT
                and (text or presend.attachment_count)):
            return "modify", text
    return None


class SendHooks:
    def __init__(self, store: SendHookStore, deliverer: Deliverer, clock: Clock, ttl: float,
                 meter: HookMeter, allow_insecure: bool) -> None:
        self._store = store
        self._deliverer = deliverer
        self._clock = clock
        self._meter = meter
        self._allow_insecure = allow_insecure
        # The app's hook, or None for none (a miss is absent from the cache).
        self._cache: TtlCache[str, tuple[SendHook | None]] = TtlCache(ttl)

    async def _hook(self, app_id: str) -> SendHook | None:
        found = self._cache.get(app_id)
        if found is None:
            found = (await self._store.get_send_hook(app_id),)
            self._cache.put(app_id, found)
        return found[0]

    async def check(self, presend: Presend) -> str:
        """The text to store: as sent, or as the hook changed it. PERMISSION_DENIED,
        MESSAGE_REJECTED when the hook refuses; UNAVAILABLE, SEND_HOOK_UNAVAILABLE when
        it fails and the app refuses messages then."""
        hook = await self._hook(presend.app_id)
        if hook is None or (hook.kinds and presend.kind not in hook.kinds):
            return presend.text
        started = time.perf_counter()
        attempt = await self._deliverer.attempt(
            hook.url, [hook.secret], f"apps/{presend.app_id}/sendHook/calls/{new_id()}",
            presend.body(), int(self._clock.now().timestamp()),
            within=hook.timeout.total_seconds(), keep=MAX_ANSWER_BYTES)
        answer = _answer(attempt.response_excerpt, presend) if attempt.ok else None
        self._meter.record(answer[0] if answer else "failed", time.perf_counter() - started)
        if answer is None:
            if hook.failure_policy is FailurePolicy.OPEN:
                return presend.text
            raise Unavailable("SEND_HOOK_UNAVAILABLE",
                              "the app's pre-send hook did not answer: try again",
                              retry_after=RETRY_AFTER)
        action, value = answer
        if action == "reject":
            raise PermissionDenied("MESSAGE_REJECTED",
                                   f"the app refused the message{': ' if value else ''}{value}",
                                   metadata={"reason": value})
        return value

    # Managing the hook: the app's backend and the operator.

    async def get(self, principal: Principal, app_id: str) -> SendHook:
        require_backend(principal, app_id, "pre-send hooks")
        found = await self._store.get_send_hook(app_id)
        if found is None:
            raise not_found("caas.dev/SendHook", send_hook_name(app_id))
        return found

    async def do_update(self, principal: Principal, given: SendHook, fields: set[str],
                        allow_missing: bool) -> tuple[SendHook, str]:
        """The hook as changed (or created), and its secret when this created it."""
        require_backend(principal, given.app_id, "pre-send hooks")
        if "url" in fields:
            check_url(given.url, self._allow_insecure, "send_hook.url")
        now = truncate_ms(self._clock.now())
        current = await self._store.get_send_hook(given.app_id)
        if current is None and allow_missing:
            if "url" not in fields or not given.url:
                raise invalid_field("send_hook.url", "is required to create the hook")
            created = replace(
                SendHook(given.app_id, "", new_webhook_secret(), DEFAULT_HOOK_TIMEOUT,
                         FailurePolicy.OPEN, frozenset(), now, now),
                **{f: getattr(given, f) for f in fields})
            if await self._store.create_send_hook(created):
                self._cache.discard(given.app_id)
                return created, created.secret
            current = await self._store.get_send_hook(given.app_id)  # created meanwhile
        if current is None:
            raise not_found("caas.dev/SendHook", send_hook_name(given.app_id))
        if "url" in fields and not given.url:
            raise invalid_field("send_hook.url", "is required")
        updated = replace(current, update_time=now, **{f: getattr(given, f) for f in fields})
        if not await self._store.update_send_hook(updated):
            raise not_found("caas.dev/SendHook", send_hook_name(given.app_id))
        self._cache.discard(given.app_id)
        return updated, ""

    async def do_delete(self, principal: Principal, app_id: str) -> None:
        require_backend(principal, app_id, "pre-send hooks")
        if not await self._store.delete_send_hook(app_id):
            raise not_found("caas.dev/SendHook", send_hook_name(app_id))
        self._cache.discard(app_id)

    async def close(self) -> None:
        await self._deliverer.close()
