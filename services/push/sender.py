"""Handing queued pushes to their providers.

Every process runs a sender: it claims the pushes that are due (a lease in the store,
so one process sends each; a process that dies lets its pushes go after the lease),
renders each for its channel's language, and hands it to the channel's provider —
Web Push, APNs or FCM — with at most `CONCURRENCY` requests in flight per provider
(a provider slow to answer does not hold the others up). Each try is recorded on the
push with the provider's answer. Then:

- accepted: sent (and the time from its event to now observed);
- the channel is gone (Web Push 404/410, APNs `Unregistered`/`BadDeviceToken`, FCM
  `UNREGISTERED`, or a Web Push subscription whose key the app rotated away): the
  channel is deleted, the push pruned;
- refused for now (throttled, the provider's trouble, no answer): tried again after
  a growing delay (or the provider's `Retry-After`), up to `MAX_ATTEMPTS` tries;
- anything else, or no credentials for the provider: failed.

An app's pushes go at most `rate` per second toward the providers (a burst of
`rate`); beyond it they wait in the queue, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiohttp
import httpx

from services.core.aio import wait_set
from services.core.clock import Clock
from services.core.metrics import PushMeter
from services.messages.store import MessageStore
from services.push.actions import PushActions
from services.push.apns import ApnsCredentials, ApnsSender
from services.push.fcm import FcmCredentials, FcmSender
from services.push.models import (
    APNS,
    CANCELED,
    FAILED,
    FCM,
    MENTION,
    MESSAGE,
    PENDING,
    PRUNED,
    REACTION,
    SENT,
    THREAD_REPLY,
    WEB_PUSH,
    Attempt,
    Outcome,
    Push,
    PushConfig,
    PushDevice,
    WebPushKey,
    from_b64url,
)
from services.push.providers import Delivery, Notification
from services.push.render import render
from services.push.store import PushStore
from services.push.webpush import WebPushSender, topic_of, web_push_payload

log = logging.getLogger("caas.push")

BATCH = 200  # pushes claimed at once
LEASE = timedelta(seconds=60)  # a claimed push is the sender's this long
CONCURRENCY = 64  # requests in flight per provider
MAX_ATTEMPTS = 6
BACKOFF = (1.0, 300.0)  # seconds: the first retry's delay, the longest
POLL_SECONDS = 1.0  # how often to look without a wake
CONFIG_SECONDS = 30.0  # how long an app's settings and opened credentials are reused
PURGE_SECONDS = 3600.0
TOLD_OF_A_MESSAGE = frozenset({MESSAGE, MENTION, THREAD_REPLY, REACTION})


class Pace:
    """A token bucket per app: `rate` pushes a second, bursts of `rate`."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # app → (tokens, at)

    def wait(self, app_id: str, now: float) -> float:
        """0 and a token taken if the app may push now; else seconds until it may."""
        tokens, at = self._buckets.get(app_id, (self._rate, now))
        tokens = min(self._rate, tokens + (now - at) * self._rate)
        if tokens >= 1:
            self._buckets[app_id] = (tokens - 1, now)
            return 0.0
        self._buckets[app_id] = (tokens, now)
        return (1 - tokens) / self._rate


@dataclass(slots=True)
class Credentials:
    """An app's settings and keys as the sender uses them for a while."""

    config: PushConfig | None
    apns: ApnsCredentials | None
    fcm: FcmCredentials | None
    web_push_key: WebPushKey | None
    until: float  # monotonic time after which they are read again
    vapid: dict[bytes, bytes] = field(default_factory=dict)  # public → private, opened


class PushSender:
    def __init__(self, store: PushStore, actions: PushActions, messages: MessageStore,
                 web: WebPushSender,
                 apns: ApnsSender, fcm: FcmSender, clock: Clock, contact: str,
                 rate: float, retention: timedelta, meter: PushMeter | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 closing: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        self._store = store
        self._actions = actions
        self._messages = messages
        self._web = web
        self._apns = apns
        self._fcm = fcm
        self._clock = clock
        self._contact = contact
        self._pace = Pace(rate)
        self._retention = retention
        self._meter = meter
        self._monotonic = monotonic
        self._credentials: dict[str, Credentials] = {}
        self._slots = {provider: asyncio.Semaphore(CONCURRENCY)
                       for provider in (WEB_PUSH, APNS, FCM)}
        self._wake = asyncio.Event()
        self._closing = closing

    def wake(self) -> None:
        """Pushes were queued: look now."""
        self._wake.set()

    async def run(self, ok: Callable[[], None]) -> None:
        """Send for the life of the process (a background task); forget pushes older
        than the retention once an hour."""
        purged = float("-inf")
        while True:
            self._wake.clear()
            try:
                sent = await self.run_once()
                if self._monotonic() - purged >= PURGE_SECONDS:
                    purged = self._monotonic()
                    await self._store.purge_pushes(self._clock.now() - self._retention)
                ok()
            except Exception:
                log.exception("push round failed")
                sent = 0
            if sent < BATCH:
                await wait_set(self._wake, POLL_SECONDS)

    async def run_once(self) -> int:
        """Send what is due now — each channel's pushes in order, the channels side by
        side — and record the outcomes in one write; how many were claimed."""
        claimed = await self._store.claim(self._clock.now(), BATCH, LEASE)
        by_channel: dict[tuple[str, str], list[Push]] = {}
        for push in claimed:  # soonest due first
            by_channel.setdefault((push.app_id, push.push_device_id), []).append(push)
        outcomes: list[Outcome] = []
        if by_channel:
            await asyncio.gather(*(self._deliver_in_order(pushes, outcomes)
                                   for pushes in by_channel.values()))
            await self._store.finish(outcomes)
        return len(claimed)

    async def _deliver_in_order(self, pushes: list[Push], outcomes: list[Outcome]) -> None:
        for push in pushes:
            outcomes.append(await self._deliver(push))

    async def close(self) -> None:
        """Close the HTTP clients."""
        for close in self._closing:
            await close()

    async def _deliver(self, push: Push) -> Outcome:
        device = await self._store.get_device(push.app_id, push.user_id, push.push_device_id)
        if device is None:  # deleted since (signed out, or pruned)
            return Outcome(push, CANCELED)
        delay = self._pace.wait(push.app_id, self._monotonic())
        if delay:
            return Outcome(push, PENDING, due_time=self._clock.now() + timedelta(seconds=delay))
        text = ""
        if push.kind in TOLD_OF_A_MESSAGE and not push.content.get("encrypted"):
            message = await self._messages.get(push.app_id, push.conversation_id,
                                               int(push.content.get("sequence", "0")))
            if message is None or message.delete_time is not None:
                return Outcome(push, CANCELED)  # deleted before it was told of
            text = message.text
        credentials = await self._credentials_of(push.app_id)
        notification = render(push, credentials.config, device.locale, text)
        async with self._slots[device.provider]:
            started = self._monotonic()
            now = self._clock.now()
            final = False
            try:
                delivery = await self._hand(device, push, notification, credentials, now)
            except (MissingCredentials, ValueError) as refused:  # nothing was sent
                delivery, final = Delivery(0, str(refused)), True
            except (aiohttp.ClientError, httpx.HTTPError, OSError, TimeoutError) as error:
                delivery = Delivery(0, f"connect: {type(error).__name__}")
            latency = int((self._monotonic() - started) * 1000)
        return await self._outcome(push, device, delivery, now, latency, final)

    async def _hand(self, device: PushDevice, push: Push, notification: Notification,
                    credentials: Credentials, now: datetime) -> Delivery:
        match device.provider:
            case "web_push":
                return await self._web_push(device, push, notification, credentials, now)
            case "apns":
                if credentials.apns is None:
                    raise MissingCredentials("APNs is not configured for the app")
                return await self._apns.send(device, notification, credentials.apns, now)
            case "fcm":
                if credentials.fcm is None:
                    raise MissingCredentials("FCM is not configured for the app")
                return await self._fcm.send(device, notification, credentials.fcm, now)
        raise MissingCredentials(f"unknown provider {device.provider}")

    async def _web_push(self, device: PushDevice, push: Push, notification: Notification,
                        credentials: Credentials, now: datetime) -> Delivery:
        key = credentials.web_push_key
        public = from_key(device)
        if key is None or not key.knows(public):
            return Delivery(410, "VAPID key rotated away: subscribe again")
        private = credentials.vapid.get(public)
        if private is None:
            private = credentials.vapid[public] = await self._actions.private_key(key, public)
        config = credentials.config
        contact = config.web_push_contact if config and config.web_push_contact \
            else self._contact
        return await self._web.send(
            device, web_push_payload(notification), private, public, contact, now,
            ttl=notification.ttl_seconds,
            urgency="high" if notification.urgent else "low" if notification.silent
            else "normal", topic=topic_of(push.group))

    async def _outcome(self, push: Push, device: PushDevice, delivery: Delivery,
                       now: datetime, latency_ms: int, final: bool) -> Outcome:
        """What becomes of a push after a try (a gone channel is deleted at once)."""
        attempt = Attempt(now, delivery.status, "" if delivery.accepted else
                          delivery.error or f"status {delivery.status}", latency_ms)
        tries = len(push.attempts) + 1
        if delivery.accepted:
            taken = (self._clock.now() - push.create_time).total_seconds()
            self._observe(device.provider, "sent", taken)
            return Outcome(push, SENT, attempt)
        if delivery.gone:
            await self._store.delete_device(push.app_id, push.user_id, push.push_device_id)
            self._observe(device.provider, "pruned")
            return Outcome(push, PRUNED, attempt)
        if delivery.retryable and not final and tries < MAX_ATTEMPTS:
            wait = max(delivery.retry_after or 0.0,
                       min(BACKOFF[0] * 2 ** (tries - 1), BACKOFF[1]))
            self._observe(device.provider, "retried")
            return Outcome(push, PENDING, attempt, now + timedelta(seconds=wait))
        self._observe(device.provider, "failed")
        return Outcome(push, FAILED, attempt)

    def _observe(self, provider: str, outcome: str, seconds: float | None = None) -> None:
        if self._meter is None:
            return
        if seconds is not None:
            self._meter.accepted(provider, max(0.0, seconds))
        else:
            self._meter.count(provider, outcome)

    async def _credentials_of(self, app_id: str) -> Credentials:
        cached = self._credentials.get(app_id)
        now = self._monotonic()
        if cached is not None and cached.until > now:
            return cached
        config, apns, fcm = await self._actions.opened_config(app_id)
        fresh = Credentials(config, apns, fcm,
                            await self._actions.stored_web_push_key(app_id),
                            now + CONFIG_SECONDS)
        self._credentials[app_id] = fresh
        return fresh


class MissingCredentials(Exception):
    """The app has not configured the channel's provider."""


def from_key(device: PushDevice) -> bytes:
    """The VAPID public key a Web Push subscription was made with."""
    return from_b64url(device.keys.get("application_server_key", ""))
