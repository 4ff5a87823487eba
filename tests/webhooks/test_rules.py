"""Where webhook deliveries may go, and which event types an endpoint may ask for."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.core.clock import SystemClock
from services.core.errors import InvalidArgument
from services.core.settings import Settings
from services.runtime import Stores, open_stores
from services.webhooks.actions import check_event_types, check_url
from services.webhooks.addresses import host_problem, is_public_address
from services.webhooks.delivery import Attempt, Deliverer
from services.webhooks.dispatch import BREAK_AFTER, INTERNAL_ERROR, Dispatcher
from services.webhooks.models import Delivery, Webhook, wants
from tests.support.webhook_receiver import running_receiver


@pytest.mark.parametrize("url", [
    "https://example.com/hook", "https://hooks.example.com:8443/a/b?c=d",
    "https://93.184.215.14/x", "https://[2606:4700::1111]/x",
    "https://example.com./x",  # fully qualified
    "https://Hooks.Example.COM/x", "https://b\u00fccher.example/x", "https://xn--bcher-kva.example/x",
    "https://_acme.example.com/x", f"https://{'a' * 63}.example.com/x",
    f"https://{('a' * 63 + '.') * 3}{'b' * 61}/x",  # 253 characters
])
def test_public_https_urls_are_accepted(url: str) -> None:
    assert check_url(url, allow_insecure=False) == url


# Hosts that are no DNS name the delivery's client can encode or look up (IDNA 2008 /
# UTS-46 as yarl applies it, then Python's idna codec as getaddrinfo does).
BAD_HOSTS = [
    (f"https://{'a' * 64}.example.com/x", "label longer than 63"),
    ("https://a..example.com/x", "empty label"),
    ("https://.example.com/x", "empty label"),
    ("https://example.com../x", "empty label"),
    (f"https://{('a' * 63 + '.') * 3}{'b' * 62}/x", "longer than 253"),
    ("https://x\u2488.com/x", "IDNA 2008"),  # UTS-46 maps it to "x1.": an empty label
    ("https://\u0661\u0662.com/x", "IDNA 2008"),  # a right-to-left label starting with digits
    ("https://xn--a.example.com/x", "'xn--a' is not valid IDNA 2008"),
    ("https://ab--c.example.com/x", "'ab--c' is not valid IDNA 2008"),
    ("https://-a.example.com/x", "'-' at an end"),
    ("https://a-.example.com/x", "'-' at an end"),
    ("https://exa%20mple.com/x", "other than letters"),
    ("https://127.1/x", "all digits"),  # resolves to 127.0.0.1
    ("https://2130706433/x", "all digits"),
    ("https://a\u200d.com/x", "valid URL"),
]


@pytest.mark.parametrize(("url", "why"), BAD_HOSTS)
@pytest.mark.parametrize("allow_insecure", [False, True])
def test_hosts_that_are_no_valid_dns_name_are_refused(url: str, why: str,
                                                       allow_insecure: bool) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_url(url, allow_insecure=allow_insecure)
    assert refused.value.reason == "WEBHOOK_URL_NOT_ALLOWED"
    assert "must name a valid host" in refused.value.message and why in refused.value.message
    assert [v.field for v in refused.value.field_violations] == ["webhook.url"]
    assert host_problem(url) is not None and why in host_problem(url)  # type: ignore[operator]


@pytest.mark.parametrize(("url", "why"), [
    ("http://example.com/hook", "https"),
    ("ftp://example.com/hook", "https"),
    ("https:///nohost", "host"),
    ("https://example.com:99999/x", "valid"),
    ("https://localhost/x", "local"),
    ("https://api.localhost/x", "local"),
    ("https://127.0.0.1/x", "loopback"),
    ("https://10.1.2.3/x", "private"),
    ("https://192.168.0.10/x", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),  # cloud metadata
    ("https://[::1]/x", "loopback"),
    ("https://[::ffff:127.0.0.1]/x", "loopback"),
    ("https://0.0.0.0/x", "loopback"),
])
def test_other_urls_are_refused_with_the_field_named(url: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_url(url, allow_insecure=False)
    assert refused.value.reason == "WEBHOOK_URL_NOT_ALLOWED"
    assert why in refused.value.message
    assert [v.field for v in refused.value.field_violations] == ["webhook.url"]


def test_insecure_mode_allows_local_http_but_still_wants_a_url() -> None:
    assert check_url("http://127.0.0.1:9000/x", allow_insecure=True)
    with pytest.raises(InvalidArgument):
        check_url("ftp://127.0.0.1/x", allow_insecure=True)


def test_addresses() -> None:
    assert is_public_address("8.8.8.8")
    assert not any(is_public_address(a) for a in (
        "127.0.0.1", "10.0.0.1", "172.16.0.1", "100.64.0.1", "169.254.1.1", "224.0.0.1",
        "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1"))


def test_event_type_filters_must_name_real_types() -> None:
    assert check_event_types(["message.created", "reaction.*", "*"]) == (
        "message.created", "reaction.*", "*")
    with pytest.raises(InvalidArgument) as refused:
        check_event_types(["message.created", "mesage.*", "message.sent"])
    assert [v.field for v in refused.value.field_violations] == [
        "webhook.event_types[1]", "webhook.event_types[2]"]


def test_filters_match_types_families_and_everything() -> None:
    assert wants((), "message.created")
    assert wants(("*",), "read.updated")
    assert wants(("message.*",), "message.deleted")
    assert not wants(("message.*",), "member.added")
    assert wants(("member.added", "reaction.added"), "reaction.added")
    assert not wants(("message.created",), "message.updated")


async def test_a_host_resolving_to_a_private_address_is_blocked_at_delivery() -> None:
    async with Deliverer(1.0, public_only=True) as deliverer:
        named = await deliverer.attempt("https://localhost:1/x", ["s"], "e", b"{}", 0)
        literal = await deliverer.attempt("https://[::ffff:10.0.0.1]/x", ["s"], "e", b"{}", 0)
        unknown = await deliverer.attempt("https://no-such-host.invalid/x", ["s"], "e",
                                          b"{}", 0)
    assert named.error.startswith("blocked: localhost resolves to")
    assert literal.error == "blocked: ::ffff:10.0.0.1 is not a public address"
    assert unknown.error.startswith("dns:")
    assert not any(a.ok or a.status_code for a in (named, literal, unknown))


async def test_a_delivery_to_a_host_the_client_cannot_encode_is_a_failed_attempt() -> None:
    """As an endpoint stored before hosts were checked would be: no exception (it
    raised UnicodeError from the resolver), an attempt saying why."""
    for public_only in (True, False):
        async with Deliverer(1.0, public_only=public_only) as deliverer:
            for url, why in BAD_HOSTS:
                attempt = await deliverer.attempt(url, ["s"], "e", b"{}", 0)
                assert (attempt.ok, attempt.status_code) == (False, 0)
                assert attempt.error.startswith("invalid host: ") and why in attempt.error


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    opened = await open_stores(Settings(data_dir=tmp_path))
    yield opened
    await opened.close()


async def test_the_dispatcher_records_a_blocked_delivery_without_connecting(
        stores: Stores) -> None:
    """An endpoint whose host came to resolve to a loopback address (DNS changed after
    its URL was accepted) gets no request; the attempt says why."""
    now = datetime.now(UTC)
    with running_receiver() as receiver:
        url = receiver.url("ok").replace("127.0.0.1", "localhost")
        await stores.webhooks.create_webhook(Webhook(
            "acme", "a" * 16, url, (), False, True, "", "whsec_x", None, None, now, now), 10)
        await stores.webhooks.enqueue([Delivery(
            "acme", "a" * 16, "apps/acme/events/1", "message.created",
            "apps/acme/conversations/c", 1, b"{}", 0, now, now)])
        ((claimed, hook),) = await stores.webhooks.claim(now, now + timedelta(seconds=9), 10, 4)
        async with Deliverer(1.0, public_only=True) as deliverer:
            dispatcher = Dispatcher(stores.webhooks, deliverer, SystemClock(),
                                    timeout=timedelta(seconds=1), retry_delays=[],
                                    rng=random.Random(1))
            await dispatcher.deliver(claimed, hook)
        assert receiver.to(url.replace("localhost", "127.0.0.1")) == []
    (attempt,) = await stores.webhooks.list_attempts("acme", "a" * 16, "", 10, None)
    assert (attempt.succeeded, attempt.status_code) == (False, 0)
    assert attempt.error.startswith("blocked: localhost resolves to")
    (letter,) = await stores.webhooks.list_dead_letters("acme", "a" * 16, 10, None)
    assert letter.last_error == attempt.error  # no retries were scheduled


async def test_an_endpoint_that_keeps_failing_is_blocked_and_others_go_on(
        stores: Stores) -> None:
    now = datetime.now(UTC)
    store = stores.webhooks
    with running_receiver() as receiver:
        failing, healthy = receiver.url("fail"), receiver.url("ok")
        for webhook_id, url in (("a" * 16, failing), ("b" * 16, healthy)):
            await store.create_webhook(Webhook("acme", webhook_id, url, (), False, True, "",
                                               "whsec_x", None, None, now, now), 10)
            await store.enqueue([Delivery(
                "acme", webhook_id, f"apps/acme/events/{n}", "message.created",
                "apps/acme/conversations/c", n, b"{}", 0, now, now) for n in range(1, 9)])
        async with Deliverer(1.0, public_only=False) as deliverer:
            dispatcher = Dispatcher(store, deliverer, SystemClock(),
                                    timeout=timedelta(seconds=1),
                                    retry_delays=[timedelta(hours=1)])
            while claimed := await store.claim(datetime.now(UTC),
                                               datetime.now(UTC) + timedelta(seconds=9), 1, 4):
                ((delivery, webhook),) = claimed
                await dispatcher.deliver(delivery, webhook)
        assert len(receiver.to(failing)) == BREAK_AFTER  # then it was blocked
        assert len(receiver.to(healthy)) == 8  # the other endpoint got everything
    blocked = await store.get_webhook("acme", "a" * 16)
    assert blocked is not None and blocked.blocked_until is not None
    assert timedelta(seconds=4) < blocked.blocked_until - now < timedelta(seconds=10)
    waiting = await store.claim(blocked.blocked_until, blocked.blocked_until, 10, 4)
    assert len(waiting) == 8 - BREAK_AFTER  # they wait, and go when the block ends


class BuggyDeliverer(Deliverer):
    """A deliverer with a bug of ours: every attempt raises."""

    async def attempt(self, url: str, secrets: Sequence[str], event_id: str, body: bytes,
                      now: int) -> Attempt:
        raise KeyError("/srv/caas/internal-detail.py")


async def test_an_unexpected_failure_is_a_failed_attempt_and_ends_as_a_dead_letter(
        stores: Stores, caplog: pytest.LogCaptureFixture) -> None:
    """Whatever goes wrong in an attempt, the delivery follows the retry schedule to a
    dead letter (it stayed claimed and came back every claim period, forever); the app
    sees no detail, the server log has each traceback once, under the attempt's id."""
    store, now = stores.webhooks, datetime.now(UTC)
    await store.create_webhook(Webhook("acme", "a" * 16, "https://example.com/x", (), False,
                                       True, "", "whsec_x", None, None, now, now), 10)
    await store.enqueue([Delivery("acme", "a" * 16, "apps/acme/events/1", "message.created",
                                  "apps/acme/conversations/c", 1, b"{}", 0, now, now)])
    async with BuggyDeliverer(1.0, public_only=True) as deliverer:
        dispatcher = Dispatcher(store, deliverer, SystemClock(), timeout=timedelta(seconds=1),
                                retry_delays=[timedelta(0), timedelta(0)])
        with caplog.at_level(logging.WARNING, logger="caas.webhooks"):
            for _ in range(3):
                claimed = await store.claim(datetime.now(UTC),
                                            datetime.now(UTC) + timedelta(seconds=9), 10, 4)
                ((delivery, webhook),) = claimed
                await dispatcher.deliver(delivery, webhook)
    later = datetime.now(UTC) + timedelta(hours=1)  # every claim would have run out
    assert await store.claim(later, later, 10, 4) == []  # nothing left waiting
    attempts = await store.list_attempts("acme", "a" * 16, "", 10, None)
    # (Newest first; attempts made within one millisecond list in id order.)
    assert sorted(a.attempt_number for a in attempts) == [1, 2, 3]
    assert {(a.succeeded, a.status_code, a.error) for a in attempts} == {
        (False, 0, INTERNAL_ERROR)}
    (letter,) = await store.list_dead_letters("acme", "a" * 16, 10, None)
    assert (letter.attempts, letter.last_error) == (3, INTERNAL_ERROR)
    assert "internal-detail" not in INTERNAL_ERROR and "Traceback" not in INTERNAL_ERROR
    logged = [r for r in caplog.records if r.name == "caas.webhooks"]
    assert all(r.levelno >= logging.WARNING and r.exc_info for r in logged)
    assert sorted(vars(r)["attempt"] for r in logged) == sorted(a.attempt_id for a in attempts)
