"""One webhook delivery attempt, and when to try again.

An attempt POSTs the event as JSON with its signature and id, within a timeout, and
follows no redirect (a receiver that moved must be updated, not chased). Any 2xx is
success; anything else — another status, a timeout, a refused connection — is a
failure to retry on the schedule below, with full jitter so that a recovering
receiver is not hit by every retry at once. After the last one the event goes to the
endpoint's dead letters, from which the app can replay it.

With tracing on, each attempt is a CLIENT span whose parent is the trace context the
event log recorded with the event (the request that caused it), and the request
carries that span's `traceparent` (and `tracestate`) header: a receiver that traces
continues the trace.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from services.core.tracing import NO_TRACE, TraceHeaders, current_headers
from services.webhooks.addresses import (
    BlockedAddress,
    PublicResolver,
    blocked_literal,
    host_problem,
)
from services.webhooks.signing import HEADER, sign

log = logging.getLogger("caas.webhooks")
# The trace context recorded with an event: (app id, position) → its headers.
TraceLookup = Callable[[str, int], Awaitable[TraceHeaders]]

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
                 tls: ssl.SSLContext | None = None, tracer: Tracer | None = None,
                 traces: TraceLookup | None = None) -> None:
        """With `tracer` (tracing on), attempts are spans, children of what `traces`
        says the event was recorded in."""
        self._tracer = tracer
        self._traces = traces
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
                      now: int, *, within: float | None = None,
                      keep: int = MAX_RESPONSE_BYTES) -> Attempt:
        """POST the event to `url`; the outcome, whatever the receiver does, with up to
        `keep` bytes of its answer. (Raises only on a fault of our own.) `within`
        (seconds) replaces the deliverer's timeout for this attempt."""
        if self._tracer is None:
            return await self._attempt(url, secrets, event_id, body, now, NO_TRACE,
                                       within, keep)
        parent = (await self._recorded_trace(event_id)).context()
        with self._tracer.start_as_current_span("POST", parent, SpanKind.CLIENT, attributes={
                "http.request.method": "POST", **_server(url), "caas.event": event_id},
                set_status_on_exception=True) as span:
            result = await self._attempt(url, secrets, event_id, body, now,
                                         current_headers(span), within, keep)
            if result.status_code:
                span.set_attribute("http.response.status_code", result.status_code)
            if not result.ok:
                span.set_attribute("error.type", str(result.status_code or "")
                                   or result.error.partition(":")[0])
                span.set_status(Status(StatusCode.ERROR, result.error))
            return result

    async def _recorded_trace(self, event_id: str) -> TraceHeaders:
        """The trace context the log recorded with the event `apps/{app}/events/{n}`
        (none if it cannot be read: the attempt goes on, in a trace of its own)."""
        if self._traces is None:
            return NO_TRACE
        try:
            _, app_id, _, position = event_id.split("/")
            return await self._traces(app_id, int(position))
        except Exception:
            log.debug("no trace context for a webhook attempt", exc_info=True,
                      extra={"event": event_id})
            return NO_TRACE

    async def _attempt(self, url: str, secrets: Sequence[str], event_id: str, body: bytes,
                       now: int, trace: TraceHeaders, within: float | None,
                       keep: int) -> Attempt:
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
        if trace:
            headers.update(trace.items())
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          timeout=self._timeout if within is None else
                                          aiohttp.ClientTimeout(total=within),
                                          allow_redirects=False) as response:
                excerpt = await _read_up_to(response.content, keep)
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


async def _read_up_to(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The answer's first `limit` bytes (or all of a shorter one)."""
    kept = bytearray()
    while len(kept) < limit:
        chunk = await content.read(limit - len(kept))
        if not chunk:
            break
        kept += chunk
    return bytes(kept)


def _server(url: str) -> dict[str, str | int]:
    """The span attributes naming the receiver: its host and port (never the whole URL,
    whose path or query may hold a token)."""
    try:
        target = urlsplit(url)
        port = target.port or (443 if target.scheme == "https" else 80)
    except ValueError:
        return {}
    return {"server.address": target.hostname or "", "server.port": port}


def _why(error: aiohttp.ClientConnectorError) -> str:
    if isinstance(error.os_error, BlockedAddress):
        return str(error.os_error)
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"dns: {error.os_error.strerror or error.os_error}"
    return f"connect: {type(error).__name__}"
