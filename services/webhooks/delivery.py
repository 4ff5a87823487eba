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

from services.webhooks.signing import HEADER, sign

USER_AGENT = "caas-webhooks/1"
MAX_RESPONSE_BYTES = 4096  # what an attempt keeps of the receiver's answer


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status_code: int  # 0 when no response came
    latency_seconds: float
    error: str  # "" on success; "timeout", "connect", or "status 500", …
    response_excerpt: str


def next_delay(failures: int, delays: Sequence[float], rng: random.Random) -> float | None:
    """Seconds before the next attempt after `failures` failed ones, given the
    scheduled `delays` (`webhook_retry_delays`: about a day in all by default), with
    jitter; None when the schedule is exhausted: dead letter."""
    if failures < 1 or failures > len(delays):
        return None
    return rng.uniform(0.5, 1.0) * delays[failures - 1]


class Deliverer:
    """Makes attempts through one aiohttp session (kept-alive connections per host)."""

    def __init__(self, session: aiohttp.ClientSession, timeout_seconds: float = 10.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def attempt(self, url: str, secrets: Sequence[str], event_id: str, body: bytes,
                      now: int) -> Attempt:
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   "caas-event-id": event_id, HEADER: sign(secrets, now, body)}
        started = time.perf_counter()
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          timeout=self._timeout,
                                          allow_redirects=False) as response:
                excerpt = await response.content.read(MAX_RESPONSE_BYTES)
                status = response.status
        except TimeoutError:
            return Attempt(False, 0, time.perf_counter() - started, "timeout", "")
        except aiohttp.ClientError as error:
            return Attempt(False, 0, time.perf_counter() - started,
                           f"connect: {type(error).__name__}", "")
        latency = time.perf_counter() - started
        text = excerpt.decode(errors="replace")
        if 200 <= status < 300:
            return Attempt(True, status, latency, "", text)
        return Attempt(False, status, latency, f"status {status}", text)


def http_session(connections: int, tls: ssl.SSLContext | None = None
                 ) -> aiohttp.ClientSession:
    """The session deliveries go through: at most `connections` open, no cookies kept,
    no proxy from the environment; certificates checked against the system's
    authorities (or `tls`'s)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, ttl_dns_cache=60,
                                       ssl=tls if tls is not None else True),
        cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)
