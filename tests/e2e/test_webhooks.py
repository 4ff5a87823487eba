"""Webhooks end to end: a running server delivers an app's events to real local HTTP
receivers — signed, retried, dead-lettered and replayed, isolated per endpoint and per
app. (The shared server's test config: http URLs allowed, 1 s timeout, retries after
0.2 s and 0.2 s, so a failing delivery makes 3 attempts.)"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from caas.webhooks.v1 import resources_pb2 as res
from caas.webhooks.v1 import webhooks_service_pb2 as pb
from google.protobuf import duration_pb2, field_mask_pb2

from services.core.ids import new_id
from services.core.settings import Settings
from services.runtime import open_stores
from services.webhooks.models import Webhook
from services.webhooks.signing import HEADER, verify
from services.webhooks.store import PARK
from tests.conftest import TEST_CONFIG, AppHandle, create_app, expect_error, unique_id
from tests.media import samples
from tests.support.chat import Person, person
from tests.support.client import Client
from tests.support.media import upload
from tests.support.servers import ExternalServer, start_caas
from tests.support.stream import Stream
from tests.support.webhook_receiver import Received, Receiver

ATTEMPTS = 3  # 1 + the two retries of the test config
T = TypeVar("T")


async def create_webhook(client: Client, app: AppHandle, url: str, *types: str,
                         **fields: object) -> pb.CreateWebhookResponse:
    response: pb.CreateWebhookResponse = await client.webhooks.CreateWebhook(
        pb.CreateWebhookRequest(parent=app.name, webhook=res.Webhook(
            url=url, event_types=list(types), **fields)),  # type: ignore[arg-type]
        metadata=app.auth)
    return response


def events(requests: list[Received]) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in requests]


def texts(requests: list[Received]) -> list[str]:
    return [str(e["messageCreated"]["text"]) for e in events(requests)  # type: ignore[index]
            if e["type"] == "message.created"]


def delivered(count: int) -> Callable[[list[Received]], bool]:
    """Whether `count` requests were answered 200."""
    return lambda got: sum(r.status == 200 for r in got) >= count


async def test_an_endpoint_receives_its_apps_events_signed_and_filtered(
        client: Client, app: AppHandle, alice: Person, receiver: Receiver) -> None:
    url = receiver.url("ok")
    created = await create_webhook(client, app, url, "message.created")
    assert created.secret.startswith("whsec_")
    assert created.webhook.secret_hint == created.secret[:10]
    assert created.webhook.state == res.Webhook.STATE_ACTIVE
    conversation = await alice.create()
    sent = await alice.send(conversation.name, "hello hooks")

    (got,) = await receiver.wait(url, delivered(1))
    assert verify(got.headers[HEADER], got.body, created.secret, time.time())
    assert not verify(got.headers[HEADER], got.body, "whsec_" + "x" * 43, time.time())
    event = json.loads(got.body)
    assert event["type"] == "message.created"  # conversation.created was filtered out
    assert event["messageCreated"]["name"] == sent.message.name
    assert event["messageCreated"]["text"] == "hello hooks"
    assert got.headers["caas-event-id"] == event["name"]
    assert event["name"].startswith(f"{app.name}/events/")

    (attempt,) = await _attempts(client, app, created.webhook.name, 1)
    assert (attempt.event, attempt.succeeded, attempt.status_code, attempt.attempt_number,
            attempt.response_excerpt) == (event["name"], True, 200, 1, "thanks")
    assert attempt.name.startswith(created.webhook.name + "/attempts/")


async def test_failures_are_retried_then_dead_lettered_then_replayed(
        client: Client, app: AppHandle, alice: Person, receiver: Receiver) -> None:
    failing = receiver.url("fail")
    created = await create_webhook(client, app, failing, "message.*")
    hook = created.webhook.name
    conversation = await alice.create()
    await alice.send(conversation.name, "try hard")

    await receiver.wait(failing, lambda got: len(got) == ATTEMPTS)
    dead = await _dead_letters(client, app, hook, 1)
    (letter,) = dead
    assert (letter.event_type, letter.attempts, letter.last_error) == (
        "message.created", ATTEMPTS, "status 500")
    attempts = await _attempts(client, app, hook, ATTEMPTS, letter.event)
    assert [a.attempt_number for a in attempts] == [3, 2, 1]  # newest first
    assert {(a.succeeded, a.status_code, a.error) for a in attempts} == {
        (False, 500, "status 500")}
    assert attempts[0].response_excerpt.startswith("upstream exploded")

    # The receiver is fixed: the app points the endpoint at it and replays.
    fixed = receiver.url("ok")
    await client.webhooks.UpdateWebhook(pb.UpdateWebhookRequest(
        webhook=res.Webhook(name=hook, url=fixed),
        update_mask=field_mask_pb2.FieldMask(paths=["url"])), metadata=app.auth)
    replayed = await client.webhooks.ReplayDeadLetters(
        pb.ReplayDeadLettersRequest(parent=hook, names=[letter.name]), metadata=app.auth)
    assert replayed.replayed == 1
    (got,) = await receiver.wait(fixed, delivered(1))
    assert texts([got]) == ["try hard"] and json.loads(got.body)["name"] == letter.event
    assert await _dead_letters(client, app, hook, 0) == []
    again = await client.webhooks.ReplayDeadLetters(pb.ReplayDeadLettersRequest(parent=hook),
                                                    metadata=app.auth)
    assert again.replayed == 0


async def until(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """`fetch()` once `done` holds for it: polled, for what the server records just
    after a receiver answered (the attempt, a dead letter)."""
    deadline = time.monotonic() + 30
    while not done(got := await fetch()):
        assert time.monotonic() < deadline, f"never came: {got}"
        await asyncio.sleep(0.05)  # poll interval
    return got


async def _dead_letters(client: Client, app: AppHandle, hook: str, count: int
                        ) -> list[res.DeadLetter]:
    listed = await until(lambda: client.webhooks.ListDeadLetters(
        pb.ListDeadLettersRequest(parent=hook), metadata=app.auth),
        lambda got: len(got.dead_letters) == count)
    return list(listed.dead_letters)


async def _attempts(client: Client, app: AppHandle, hook: str, count: int, event: str = ""
                    ) -> list[res.DeliveryAttempt]:
    """The endpoint's attempts (newest first) once there are at least `count`."""
    listed = await until(lambda: client.webhooks.ListDeliveryAttempts(
        pb.ListDeliveryAttemptsRequest(parent=hook, event=event), metadata=app.auth),
        lambda got: len(got.delivery_attempts) >= count)
    return list(listed.delivery_attempts)


async def test_a_flaky_endpoint_gets_the_event_again_with_the_same_id(
        client: Client, app: AppHandle, alice: Person, receiver: Receiver) -> None:
    url = receiver.url("flaky1")
    await create_webhook(client, app, url, "message.created")
    conversation = await alice.create()
    await alice.send(conversation.name, "second time lucky")
    first, second = await receiver.wait(url, delivered(1))
    assert (first.status, second.status) == (500, 200)
    assert first.headers["caas-event-id"] == second.headers["caas-event-id"]
    assert first.body == second.body


async def test_an_ordered_endpoint_gets_each_conversation_in_order(
        client: Client, app: AppHandle, alice: Person, receiver: Receiver) -> None:
    url = receiver.url("flaky2")  # the first event fails twice, then everything passes
    await create_webhook(client, app, url, "message.created", ordered=True)
    conversation = await alice.create()
    for n in range(1, 6):
        await alice.send(conversation.name, f"m{n}")
    got = await receiver.wait(url, delivered(5))
    assert texts(got[:3]) == ["m1", "m1", "m1"]  # nothing overtook the failing one
    assert texts([r for r in got if r.status == 200]) == ["m1", "m2", "m3", "m4", "m5"]


async def test_a_hanging_endpoint_delays_neither_sending_nor_other_endpoints(
        client: Client, app: AppHandle, other_app: AppHandle, alice: Person, mallory: Person,
        receiver: Receiver) -> None:
    hanging, healthy, sibling = receiver.url("hang"), receiver.url("ok"), receiver.url("ok")
    hanging_hook = (await create_webhook(client, app, hanging, "message.created")).webhook
    await create_webhook(client, app, sibling, "message.created")
    await create_webhook(client, other_app, healthy, "message.created")
    ours, theirs = await alice.create(), await mallory.create()
    for n in range(10):
        await alice.send(ours.name, f"a{n}")
        await mallory.send(theirs.name, f"m{n}")
    # Both healthy endpoints get everything while the hanging one still holds its
    # first requests (held until the end of the test).
    assert sorted(texts(await receiver.wait(healthy, delivered(10)))) == [
        f"m{n}" for n in range(10)]  # unordered endpoints: any order
    assert sorted(texts(await receiver.wait(sibling, delivered(10)))) == [
        f"a{n}" for n in range(10)]
    # The hanging endpoint was asked (how often depends on the machine's pace: each
    # attempt times out after 1 s in the test config) and never answered in time.
    assert receiver.to(hanging)
    attempts = await _attempts(client, app, hanging_hook.name, 1)
    assert {(a.succeeded, a.status_code, a.error) for a in attempts} == {
        (False, 0, "timeout")}
    # Each app's endpoint got only its own app's events.
    assert all(e["name"].startswith(other_app.name + "/")  # type: ignore[union-attr]
               for e in events(receiver.to(healthy)))


async def test_a_rotated_secret_overlaps_then_stops(
        client: Client, app: AppHandle, alice: Person, receiver: Receiver) -> None:
    url = receiver.url("ok")
    created = await create_webhook(client, app, url, "message.created")
    hook = created.webhook.name
    rotated = await client.webhooks.RotateWebhookSecret(
        pb.RotateWebhookSecretRequest(name=hook), metadata=app.auth)
    assert rotated.secret != created.secret
    assert rotated.webhook.secret_hint == rotated.secret[:10]
    assert rotated.webhook.previous_secret_expire_time.ToSeconds() > time.time() + 23 * 3600
    conversation = await alice.create()
    await alice.send(conversation.name, "during the overlap")
    (got,) = await receiver.wait(url, delivered(1))
    for secret in (created.secret, rotated.secret):  # a receiver holding either verifies
        assert verify(got.headers[HEADER], got.body, secret, time.time())

    final = await client.webhooks.RotateWebhookSecret(pb.RotateWebhookSecretRequest(
        name=hook, previous_secret_ttl=duration_pb2.Duration()), metadata=app.auth)
    await alice.send(conversation.name, "after")
    _, last = await receiver.wait(url, delivered(2))
    assert verify(last.headers[HEADER], last.body, final.secret, time.time())
    assert not verify(last.headers[HEADER], last.body, rotated.secret, time.time())
    assert not verify(last.headers[HEADER], last.body, created.secret, time.time())


async def test_endpoints_are_listed_updated_paused_and_deleted(
        client: Client, app: AppHandle, alice: Person, receiver: Receiver) -> None:
    url = receiver.url("ok")
    first = (await create_webhook(client, app, url, "message.*",
                                  state=res.Webhook.STATE_PAUSED, description="crm")).webhook
    second = (await create_webhook(client, app, receiver.url("ok"))).webhook
    page = await client.webhooks.ListWebhooks(pb.ListWebhooksRequest(parent=app.name,
                                                                     page_size=1),
                                              metadata=app.auth)
    assert [w.name for w in page.webhooks] == [first.name]
    rest = await client.webhooks.ListWebhooks(pb.ListWebhooksRequest(
        parent=app.name, page_size=1, page_token=page.next_page_token), metadata=app.auth)
    assert [w.name for w in rest.webhooks] == [second.name] and not rest.next_page_token
    assert (first.state, first.description, list(first.event_types)) == (
        res.Webhook.STATE_PAUSED, "crm", ["message.*"])

    conversation = await alice.create()
    await alice.send(conversation.name, "while paused")  # kept for the endpoint
    await alice.send(conversation.name, "still paused")
    assert receiver.to(url) == []
    resumed = await client.webhooks.UpdateWebhook(pb.UpdateWebhookRequest(
        webhook=res.Webhook(name=first.name, state=res.Webhook.STATE_ACTIVE),
        update_mask=field_mask_pb2.FieldMask(paths=["state"])), metadata=app.auth)
    assert resumed.webhook.state == res.Webhook.STATE_ACTIVE
    assert resumed.webhook.update_time.ToDatetime() >= first.update_time.ToDatetime()
    # A claim that read the endpoint paused may park a delivery just after the resume
    # brought the parked ones back: it comes at the latest when the parking ends.
    got = await receiver.wait(url, delivered(2), within=PARK.total_seconds() + 30)
    assert sorted(texts(got)) == ["still paused", "while paused"]

    await client.webhooks.DeleteWebhook(pb.DeleteWebhookRequest(name=first.name),
                                        metadata=app.auth)
    await expect_error(client.webhooks.GetWebhook(pb.GetWebhookRequest(name=first.name),
                                                  metadata=app.auth),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    await expect_error(client.webhooks.DeleteWebhook(pb.DeleteWebhookRequest(name=first.name),
                                                     metadata=app.auth),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


async def test_bad_endpoints_are_refused_with_the_field_named(
        client: Client, app: AppHandle) -> None:
    got = await expect_error(create_webhook(client, app, "ftp://example.com/x"),
                             grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_NOT_ALLOWED")
    assert "webhook.url" in got.field_violations
    got = await expect_error(create_webhook(client, app, "https://example.com/x",
                                            "message.craeted"),
                             grpc.StatusCode.INVALID_ARGUMENT, "EVENT_TYPE_UNKNOWN")
    assert "webhook.event_types[0]" in got.field_violations
    hook = (await create_webhook(client, app, "https://example.com/x")).webhook
    await expect_error(client.webhooks.UpdateWebhook(pb.UpdateWebhookRequest(
        webhook=res.Webhook(name=hook.name), update_mask=field_mask_pb2.FieldMask(
            paths=["state"])), metadata=app.auth),
        grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    await expect_error(client.webhooks.ReplayDeadLetters(pb.ReplayDeadLettersRequest(
        parent=hook.name, names=[f"{app.name}/webhooks/{'b' * 16}/deadLetters/{'c' * 16}"]),
        metadata=app.auth), grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    listed = await client.webhooks.ListWebhooks(pb.ListWebhooksRequest(parent=app.name),
                                                metadata=app.auth)
    assert [w.name for w in listed.webhooks] == [hook.name]  # nothing else was written


# Hosts that are no DNS name (an IDNA violation): deliveries to them raised from the
# resolver and stayed claimed forever, so they are refused up front.
BAD_HOSTS = [f"https://{'a' * 64}.example.com/x", "https://a..example.com/x",
             "https://.example.com/x", f"https://{('a' * 63 + '.') * 3}{'b' * 62}/x",
             "https://xn--a.example.com/x", "https://-a.example.com/x", "https://127.1/x"]


async def test_hosts_that_are_no_valid_dns_name_are_refused(client: Client, app: AppHandle
                                                            ) -> None:
    for url in BAD_HOSTS:
        got = await expect_error(create_webhook(client, app, url),
                                 grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_NOT_ALLOWED")
        assert list(got.field_violations) == ["webhook.url"], url
        assert "must name a valid host" in got.message, url
    hook = (await create_webhook(client, app, "https://example.com/x")).webhook
    for url in BAD_HOSTS:
        got = await expect_error(client.webhooks.UpdateWebhook(pb.UpdateWebhookRequest(
            webhook=res.Webhook(name=hook.name, url=url),
            update_mask=field_mask_pb2.FieldMask(paths=["url"])), metadata=app.auth),
            grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_NOT_ALLOWED")
        assert list(got.field_violations) == ["webhook.url"], url
        assert "must name a valid host" in got.message, url
    listed = await client.webhooks.ListWebhooks(pb.ListWebhooksRequest(parent=app.name),
                                                metadata=app.auth)
    assert [(w.name, w.url) for w in listed.webhooks] == [(hook.name, "https://example.com/x")]


@pytest.mark.parametrize("engine", ["sqlite", "mongodb"])
async def test_a_stored_endpoint_with_a_bad_host_gets_failed_attempts_then_a_dead_letter(
        engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Endpoints stored before hosts were checked (written straight into the store
    here): each delivery is a failed attempt, retried on the schedule, then a dead
    letter — none stays claimed, no traceback. (The server delivers as in production:
    public addresses only.)"""
    env = {"CAAS_WEBHOOK_RETRY_DELAYS": "[0.2, 0.2]", "CAAS_WEBHOOK_TIMEOUT": "1"}
    if engine == "mongodb":
        mongo: ExternalServer = request.getfixturevalue("mongo")
        env |= {"CAAS_STORE": "mongodb", "CAAS_MONGODB_URL": mongo.url,
                "CAAS_MONGODB_DATABASE": unique_id("e2e")}
    caas = start_caas(tmp_path, env=env)
    stores = await open_stores(Settings(  # type: ignore[call-arg]
        data_dir=tmp_path, store=engine, mongodb_url=env.get("CAAS_MONGODB_URL", ""),
        mongodb_database=env.get("CAAS_MONGODB_DATABASE", "caas")))
    client = Client(caas.address)
    try:
        app = await create_app(client, caas.operator_token)
        now = datetime.now(UTC)
        hooks = [Webhook(app.app_id, new_id(), url, ("message.created",), False, True, "",
                         "whsec_" + "x" * 43, None, None, now, now)
                 for url in BAD_HOSTS[:4]]
        for hook in hooks:
            assert await stores.webhooks.create_webhook(hook, 20)
        alice = await person(client, app.app_id, app.api_key, "alice")
        conversation = await alice.create()
        await alice.send(conversation.name, "to nowhere")
        for hook in hooks:
            name = f"{app.name}/webhooks/{hook.webhook_id}"
            (letter,) = await _dead_letters(client, app, name, 1)
            assert letter.attempts == ATTEMPTS
            assert letter.last_error.startswith("invalid host: "), letter.last_error
            attempts = await _attempts(client, app, name, ATTEMPTS)
            assert [a.attempt_number for a in attempts] == [3, 2, 1]
            assert all((a.succeeded, a.status_code, a.error) == (False, 0, letter.last_error)
                       for a in attempts)
        # Nothing is left waiting or claimed, even once every claim would have run out.
        later = datetime.now(UTC) + timedelta(hours=1)
        assert await stores.webhooks.claim(later, later, 100, 100) == []
        assert [e for e in caas.logs() if "exception" in e or e["level"] == "ERROR"] == []
    finally:
        await client.close()
        await stores.close()
        assert caas.process.stop() == 0


async def test_an_app_has_at_most_its_limit_of_endpoints(client: Client, app: AppHandle
                                                         ) -> None:
    for n in range(20):
        await create_webhook(client, app, f"https://example.com/{n}")
    got = await expect_error(create_webhook(client, app, "https://example.com/21"),
                             grpc.StatusCode.FAILED_PRECONDITION, "LIMIT_EXCEEDED")
    assert got.metadata["limit"] == "max_webhooks_per_app"


async def test_only_the_apps_own_backend_manages_its_endpoints(
        client: Client, app: AppHandle, other_app: AppHandle, alice: Person) -> None:
    created = await create_webhook(client, app, "https://example.com/mine")
    hook = created.webhook.name
    await expect_error(client.webhooks.CreateWebhook(pb.CreateWebhookRequest(
        parent=app.name, webhook=res.Webhook(url="https://evil.example/x")),
        metadata=alice.auth), grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    await expect_error(client.webhooks.ListWebhooks(pb.ListWebhooksRequest(parent=app.name),
                                                    metadata=alice.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    theirs = other_app.auth
    calls = [
        client.webhooks.CreateWebhook(pb.CreateWebhookRequest(
            parent=app.name, webhook=res.Webhook(url="https://evil.example/x")), metadata=theirs),
        client.webhooks.GetWebhook(pb.GetWebhookRequest(name=hook), metadata=theirs),
        client.webhooks.ListWebhooks(pb.ListWebhooksRequest(parent=app.name), metadata=theirs),
        client.webhooks.UpdateWebhook(pb.UpdateWebhookRequest(
            webhook=res.Webhook(name=hook, url="https://evil.example/x"),
            update_mask=field_mask_pb2.FieldMask(paths=["url"])), metadata=theirs),
        client.webhooks.RotateWebhookSecret(pb.RotateWebhookSecretRequest(name=hook),
                                            metadata=theirs),
        client.webhooks.ListDeliveryAttempts(pb.ListDeliveryAttemptsRequest(parent=hook),
                                             metadata=theirs),
        client.webhooks.ListDeadLetters(pb.ListDeadLettersRequest(parent=hook),
                                        metadata=theirs),
        client.webhooks.ReplayDeadLetters(pb.ReplayDeadLettersRequest(parent=hook),
                                          metadata=theirs),
        client.webhooks.DeleteWebhook(pb.DeleteWebhookRequest(name=hook), metadata=theirs),
    ]
    for call in calls:
        await expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    # The other app's own parent does not reach our endpoint either.
    await expect_error(client.webhooks.GetWebhook(pb.GetWebhookRequest(
        name=hook.replace(app.name, other_app.name)), metadata=theirs),
        grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    after = (await client.webhooks.GetWebhook(pb.GetWebhookRequest(name=hook),
                                              metadata=app.auth)).webhook
    assert after == created.webhook  # untouched


async def test_what_was_committed_before_a_crash_is_delivered_after_the_restart(
        tmp_path: Path, receiver: Receiver) -> None:
    """Embedded store: the server is killed (no goodbye) as soon as the last send
    returns, with events anywhere between the log, the delivery queue (some claimed by
    the dead process) and the receiver; after the restart every one arrives."""
    first = start_caas(tmp_path, config=TEST_CONFIG)
    url = receiver.url("ok")
    client = Client(first.address)
    sent = [f"c{n}" for n in range(30)]
    try:
        app = await create_app(client, first.operator_token)
        await create_webhook(client, app, url, "message.created")
        alice = await person(client, app.app_id, app.api_key, "alice")
        conversation = await alice.create()
        for text in sent:
            await alice.send(conversation.name, text)
    finally:
        await client.close()
        first.process.stop(signum=signal.SIGKILL)
    second = start_caas(tmp_path, config=TEST_CONFIG, port=first.port)
    try:
        got = await receiver.wait(url, lambda got: set(texts(got)) >= set(sent), within=60)
    finally:
        assert second.process.stop() == 0
    assert sorted(set(texts(got))) == sorted(sent)  # at least once each, nothing else


async def test_media_events_reach_the_apps_webhooks(
        client: Client, app: AppHandle, alice: Person, receiver: Receiver) -> None:
    url = receiver.url("ok")
    await create_webhook(client, app, url, "media.*")
    conversation = await alice.create()
    ready = await upload(alice, Stream(alice), conversation.name, b"plain words", "text/plain",
                         "a.txt")
    refused = await upload(alice, Stream(alice), conversation.name, samples.elf(),
                           "text/plain", "b.txt")
    got = events(await receiver.wait(url, delivered(2)))
    assert [(e["type"], e.get("userId")) for e in got] == [("media.ready", "alice"),
                                                           ("media.failed", "alice")]
    assert got[0]["mediaReady"]["name"] == ready.name  # type: ignore[index]
    assert got[0]["mediaReady"]["uri"].startswith("http")  # type: ignore[index]
    assert got[1]["mediaFailed"]["failureReason"] == "CONTENT_TYPE_NOT_ALLOWED"  # type: ignore[index]
    assert got[1]["mediaFailed"]["name"] == refused.name  # type: ignore[index]
