"""One webhook delivery attempt, and when to try again.

An attempt POSTs the event as JSON with its signature and id, within a timeout, and
follows no redirect (a receiver that moved must be updated, not chased). Any 2xx is
success; anything else — another status, a timeout, a refused connection — is a
failure to retry on the schedule below, with full jitter so that a recovering
receiver is not hit by every retry at once. After the last one the event goes to the
endpoint's dead letters, from which the app can replay it.
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from services.webhooks.addresses import (
    BlockedAddress,
    PublicResolver,
    blocked_literal,
    host_problem,
)
from services.webhooks.signing import HEADER, sign

USER_AGENT = "caas-webhooks/1"
MAX_RESPONSE_BYTES = 4096  # what an attempt keeps of the receiver's answer


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status_code: int  # 0 when no response came
    latency_seconds: float
    error: str  # "" on success; "timeout", "connect: …", "invalid host: …", "status 500", …
    response_excerpt: str


def next_delay(failures: int, delays: Sequence[float], rng: random.Random) -> float | None:
    """Seconds before the next attempt after `failures` failed ones, given the
    scheduled `delays` (`webhook_retry_delays`: about a day in all by default), with
    jitter; None when the schedule is exhausted: dead letter."""
    if failures < 1 or failures > len(delays):
        return None
    return rng.uniform(0.5, 1.0) * delays[failures - 1]


class Deliverer:
    """Makes attempts through one HTTP session (kept-alive connections per host, at most
    `connections` open, no cookies kept, no proxy from the environment), to public
    addresses only unless `public_only` is off; certificates are checked against the
    system's authorities (or `tls`'s). Close it when done."""

    def __init__(self, timeout_seconds: float, *, public_only: bool, connections: int = 64,
                 tls: ssl.SSLContext | None = None) -> None:
        self._public_only = public_only
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=connections, ttl_dns_cache=60, ssl=tls if tls is not None else True,
                resolver=PublicResolver() if public_only else None),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> Deliverer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def attempt(self, url: str, secrets: Sequence[str], event_id: str, body: bytes,
                      now: int) -> Attempt:
        """POST the event to `url`; the outcome, whatever the receiver does. (Raises
        only on a fault of our own.)"""
        started = time.perf_counter()
        # An endpoint stored before hosts were checked at creation may name one the
        # client cannot encode (an empty or 64-character label): refused here, as an
        # attempt, rather than raising from deep in the resolver.
        problem = host_problem(url)
        if problem is not None:
            return Attempt(False, 0, 0.0, f"invalid host: {problem}", "")
        blocked = blocked_literal(url) if self._public_only else None
        if blocked is not None:
            return Attempt(False, 0, 0.0, blocked, "")
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   "caas-event-id": event_id, HEADER: sign(secrets, now, body)}
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          timeout=self._timeout,
                                          allow_redirects=False) as response:
                excerpt = await response.content.read(MAX_RESPONSE_BYTES)
                status = response.status
        except TimeoutError:
            return Attempt(False, 0, time.perf_counter() - started, "timeout", "")
        except aiohttp.ClientConnectorError as error:
            return Attempt(False, 0, time.perf_counter() - started, _why(error), "")
        except aiohttp.ClientError as error:
            return Attempt(False, 0, time.perf_counter() - started,
                           f"connect: {type(error).__name__}", "")
        latency = time.perf_counter() - started
        text = excerpt.decode(errors="replace")
        if 200 <= status < 300:
            return Attempt(True, status, latency, "", text)
        return Attempt(False, status, latency, f"status {status}", text)


def _why(error: aiohttp.ClientConnectorError) -> str:
    if isinstance(error.os_error, BlockedAddress):
        return str(error.os_error)
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"dns: {error.os_error.strerror or error.os_error}"
    return f"connect: {type(error).__name__}"
