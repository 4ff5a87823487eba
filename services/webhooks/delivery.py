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
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

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
    def __init__(self, client: httpx.AsyncClient, timeout_seconds: float = 10.0) -> None:
        self._client = client
        self._timeout = httpx.Timeout(timeout_seconds)

    async def attempt(self, url: str, secrets: Sequence[str], event_id: str, body: bytes,
                      now: int) -> Attempt:
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   "caas-event-id": event_id, HEADER: sign(secrets, now, body)}
        started = time.perf_counter()
        try:
            async with self._client.stream("POST", url, content=body, headers=headers,
                                           timeout=self._timeout,
                                           follow_redirects=False) as response:
                excerpt = b""
                async for chunk in response.aiter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= MAX_RESPONSE_BYTES:
                        break
        except httpx.TimeoutException:
            return Attempt(False, 0, time.perf_counter() - started, "timeout", "")
        except httpx.TransportError as error:
            return Attempt(False, 0, time.perf_counter() - started,
                           f"connect: {type(error).__name__}", "")
        latency = time.perf_counter() - started
        text = excerpt[:MAX_RESPONSE_BYTES].decode(errors="replace")
        if 200 <= response.status_code < 300:
            return Attempt(True, response.status_code, latency, "", text)
        return Attempt(False, response.status_code, latency,
                       f"status {response.status_code}", text)
