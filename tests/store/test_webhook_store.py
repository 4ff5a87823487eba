"""The webhooks store contract, on every engine."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from services.runtime import Stores
from services.webhooks.models import DeadLetter, Delivery, DeliveryAttempt, Webhook

T0 = datetime(2026, 1, 1, tzinfo=UTC)
APP = "acme"


def hook(webhook_id: str = "aaaaaaaaaaaaaaaa", app_id: str = APP, *, ordered: bool = False,
         active: bool = True, at: datetime = T0) -> Webhook:
    return Webhook(app_id, webhook_id, "https://example.com/hook", ("message.*",), ordered,
                   active, "", "whsec_x", None, None, at, at)


def delivery(position: int, webhook_id: str = "aaaaaaaaaaaaaaaa", *, app_id: str = APP,
             conversation: str = "c1", due: datetime = T0) -> Delivery:
    return Delivery(app_id, webhook_id, f"apps/{app_id}/events/{position}", "message.created",
                    f"apps/{app_id}/conversations/{conversation}", position,
                    b'{"n":%d}' % position, 0, due, T0)


def attempt(d: Delivery, attempt_id: str, ok: bool, at: datetime = T0) -> DeliveryAttempt:
    return DeliveryAttempt(d.app_id, d.webhook_id, attempt_id, d.event, d.event_type,
                           d.failures + 1, ok, 200 if ok else 500, "" if ok else "status 500",
                           12, "x", at)


def dead(d: Delivery, dead_letter_id: str, at: datetime = T0) -> DeadLetter:
    return DeadLetter(d.app_id, d.webhook_id, dead_letter_id, d.event, d.event_type,
                      d.conversation, d.position, d.body, 3, "status 500", at)


async def claim(stores: Stores, limit: int = 50, per_webhook: int = 4,
                now: datetime = T0) -> list[int]:
    taken = await stores.webhooks.claim(now, now + timedelta(seconds=40), limit, per_webhook)
    assert all((d.app_id, d.webhook_id) == (h.app_id, h.webhook_id) for d, h in taken)
    return [d.position for d, _ in taken]


async def test_endpoints_are_created_listed_changed_and_deleted_per_app(stores: Stores
                                                                        ) -> None:
    store = stores.webhooks
    assert await store.create_webhook(hook("aaaaaaaaaaaaaaaa"), limit=2)
    assert await store.create_webhook(hook("bbbbbbbbbbbbbbbb", at=T0 + timedelta(1)), limit=2)
    assert not await store.create_webhook(hook("cccccccccccccccc"), limit=2)  # the limit
    assert await store.create_webhook(hook("cccccccccccccccc", app_id="other"), limit=2)
    listed = await store.list_webhooks(APP, 10, None)
    assert [h.webhook_id for h in listed] == ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]
    assert [h.webhook_id for h in await store.list_webhooks(APP, 10, (int(T0.timestamp() * 1000),
                                                                     "aaaaaaaaaaaaaaaa"))] \
        == ["bbbbbbbbbbbbbbbb"]
    assert await store.get_webhook("other", "aaaaaaaaaaaaaaaa") is None  # per app

    first = listed[0]
    changed = dataclasses.replace(first, url="https://example.org/x", event_types=(),
                                  previous_secret="whsec_old",
                                  previous_secret_expire_time=T0 + timedelta(hours=1),
                                  revision=first.revision + 1)
    assert await store.update_webhook(changed)
    assert await store.get_webhook(APP, first.webhook_id) == changed
    assert not await store.update_webhook(changed)  # a stale revision loses
    assert not await store.update_webhook(dataclasses.replace(changed, app_id="other"))

    assert await store.delete_webhook(APP, first.webhook_id)
    assert not await store.delete_webhook(APP, first.webhook_id)
    assert await store.get_webhook(APP, first.webhook_id) is None


async def test_claims_take_due_deliveries_once_and_cap_each_endpoint(stores: Stores) -> None:
    store = stores.webhooks
    await store.create_webhook(hook("aaaaaaaaaaaaaaaa"), 10)
    await store.create_webhook(hook("bbbbbbbbbbbbbbbb"), 10)
    await store.enqueue([delivery(p) for p in range(1, 8)])
    await store.enqueue([delivery(p, "bbbbbbbbbbbbbbbb") for p in (20, 21)])
    await store.enqueue([delivery(1)])  # handed over twice: still one delivery
    await store.enqueue([delivery(30, due=T0 + timedelta(minutes=1))])  # not due yet

    first = await claim(stores, per_webhook=3)
    assert sorted(first) == [1, 2, 3, 20, 21]  # at most 3 of the busy endpoint
    assert await claim(stores, per_webhook=3) == []  # taken ones stay taken
    assert sorted(await claim(stores, per_webhook=5)) == [4, 5]  # 3 in flight + 2
    later = T0 + timedelta(minutes=2)  # the claims ran out: taken again, and 30 is due
    assert sorted(await claim(stores, per_webhook=100, now=later)) == [
        1, 2, 3, 4, 5, 6, 7, 20, 21, 30]


async def test_paused_endpoints_get_nothing_and_ordered_ones_only_each_conversations_head(
        stores: Stores) -> None:
    store = stores.webhooks
    paused = hook("aaaaaaaaaaaaaaaa", active=False)
    await store.create_webhook(paused, 10)
    await store.create_webhook(hook("bbbbbbbbbbbbbbbb", ordered=True), 10)
    await store.enqueue([delivery(1), delivery(2)])
    await store.enqueue([delivery(p, "bbbbbbbbbbbbbbbb", conversation=c)
                         for p, c in ((3, "c1"), (4, "c2"), (5, "c1"), (6, "c2"))])
    assert sorted(await claim(stores)) == [3, 4]

    taken = await store.claim(T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), 50, 4)
    head = next(d for d, _ in taken if d.position == 3)
    await store.finish(head, attempt(head, "a1", ok=True), None, None)
    assert await claim(stores, now=T0 + timedelta(minutes=3)) in ([5, 4], [4, 5])

    resumed = dataclasses.replace(paused, active=True, revision=2)
    assert await store.update_webhook(resumed)
    assert sorted(await claim(stores, now=T0 + timedelta(minutes=5))) == [1, 2, 4, 5]


async def test_finish_records_the_attempt_and_retries_or_buries_at_once(stores: Stores
                                                                        ) -> None:
    store = stores.webhooks
    await store.create_webhook(hook(), 10)
    await store.enqueue([delivery(1), delivery(2)])
    (one, _), (two, _) = await store.claim(T0, T0 + timedelta(seconds=40), 10, 4)
    retry = T0 + timedelta(seconds=10)
    await store.finish(one, attempt(one, "a1", ok=False), retry, None)
    await store.finish(two, attempt(two, "a2", ok=False), None, dead(two, "d" * 16))
    assert await claim(stores, now=T0 + timedelta(seconds=5)) == []  # 1 waits, 2 is dead
    again = await store.claim(retry, retry + timedelta(seconds=40), 10, 4)
    assert [(d.position, d.failures) for d, _ in again] == [(1, 1)]

    attempts = await store.list_attempts(APP, one.webhook_id, "", 10, None)
    assert {a.attempt_id for a in attempts} == {"a1", "a2"}
    only = await store.list_attempts(APP, one.webhook_id, one.event, 10, None)
    assert [a.attempt_id for a in only] == ["a1"]
    letters = await store.list_dead_letters(APP, one.webhook_id, 10, None)
    assert [(d.event, d.body, d.attempts) for d in letters] == [(two.event, two.body, 3)]
    assert await store.list_dead_letters("other", one.webhook_id, 10, None) == []


async def test_attempts_list_newest_first_and_page(stores: Stores) -> None:
    store = stores.webhooks
    await store.create_webhook(hook(), 10)
    for n in range(3):
        await store.enqueue([delivery(n + 1)])
        ((d, _),) = await store.claim(T0, T0 + timedelta(seconds=40), 10, 4)
        await store.finish(d, attempt(d, f"a{n}", True, T0 + timedelta(seconds=n)), None, None)
    newest = await store.list_attempts(APP, "aaaaaaaaaaaaaaaa", "", 2, None)
    assert [a.attempt_id for a in newest] == ["a2", "a1"]
    after = (int((T0 + timedelta(seconds=1)).timestamp() * 1000), "a1")
    assert [a.attempt_id for a in await store.list_attempts(
        APP, "aaaaaaaaaaaaaaaa", "", 2, after)] == ["a0"]


async def test_replay_turns_dead_letters_back_into_deliveries(stores: Stores) -> None:
    store = stores.webhooks
    await store.create_webhook(hook(), 10)
    await store.enqueue([delivery(1), delivery(2), delivery(3)])
    for n, (d, _) in enumerate(await store.claim(T0, T0 + timedelta(seconds=40), 10, 4)):
        await store.finish(d, attempt(d, f"a{n}", False), None, dead(d, f"{'d' * 15}{n}"))
    assert await store.replay(APP, "aaaaaaaaaaaaaaaa", ["d" * 15 + "0"], T0) == 1
    assert await store.replay("other", "aaaaaaaaaaaaaaaa", None, T0) == 0  # per app
    assert [d.position for d, _ in await store.claim(T0, T0, 10, 4)] == [1]
    assert await store.replay(APP, "aaaaaaaaaaaaaaaa", None, T0) == 2
    assert await store.list_dead_letters(APP, "aaaaaaaaaaaaaaaa", 10, None) == []
    replayed = await store.claim(T0 + timedelta(seconds=1), T0, 10, 10)
    assert sorted((d.position, d.failures) for d, _ in replayed) == [(1, 0), (2, 0), (3, 0)]


async def test_deleting_an_endpoint_drops_its_records_and_late_outcomes(stores: Stores
                                                                       ) -> None:
    store = stores.webhooks
    await store.create_webhook(hook(), 10)
    await store.enqueue([delivery(1), delivery(2)])
    (one, _), (two, _) = await store.claim(T0, T0 + timedelta(seconds=40), 10, 4)
    await store.finish(one, attempt(one, "a1", False), None, dead(one, "d" * 16))
    await store.delete_webhook(APP, one.webhook_id)
    await store.finish(two, attempt(two, "a2", True), None, None)  # in flight meanwhile
    await store.create_webhook(hook(), 10)  # the same id again: nothing of the old one
    assert await store.list_attempts(APP, one.webhook_id, "", 10, None) == []
    assert await store.list_dead_letters(APP, one.webhook_id, 10, None) == []
    assert await claim(stores, now=T0 + timedelta(minutes=5)) == []


async def test_purge_drops_old_records_and_buries_old_deliveries(stores: Stores) -> None:
    store = stores.webhooks
    await store.create_webhook(hook(), 10)
    await store.enqueue([delivery(1), delivery(2), delivery(3)])
    (one, _), (two, _), _ = await store.claim(T0, T0 + timedelta(seconds=40), 10, 4)
    await store.finish(one, attempt(one, "a1", True), None, None)
    late = T0 + timedelta(days=2)
    await store.finish(two, attempt(two, "a2", False, late), None, dead(two, "d" * 16, late))
    # 3 waited all along (say its endpoint was paused): not lost, a dead letter.
    assert await store.purge(T0 + timedelta(days=1), late) == 2  # a1 went, 3 turned
    assert [a.attempt_id for a in await store.list_attempts(APP, one.webhook_id, "", 10,
                                                              None)] == ["a2"]
    letters = await store.list_dead_letters(APP, one.webhook_id, 10, None)
    assert sorted((d.position, d.last_error) for d in letters) == [
        (2, "status 500"), (3, "expired: not delivered within the retention")]
    assert await claim(stores, now=late) == []


async def test_a_blocked_endpoint_is_skipped_until_its_block_ends(stores: Stores) -> None:
    store = stores.webhooks
    await store.create_webhook(hook("aaaaaaaaaaaaaaaa"), 10)
    await store.create_webhook(hook("bbbbbbbbbbbbbbbb"), 10)
    await store.enqueue([delivery(1), delivery(2, "bbbbbbbbbbbbbbbb")])
    await store.block_webhook(APP, "aaaaaaaaaaaaaaaa", T0 + timedelta(seconds=30))
    blocked = await store.get_webhook(APP, "aaaaaaaaaaaaaaaa")
    assert blocked is not None and blocked.blocked_until == T0 + timedelta(seconds=30)
    assert await claim(stores) == [2]
    assert await claim(stores, now=T0 + timedelta(seconds=30)) == [1]
