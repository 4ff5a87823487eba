"""FlagStore contract, on every engine."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.moderation.models import (
    REPORTS_SHOWN,
    Flag,
    FlagState,
    Report,
    ReportReason,
    Resolution,
)
from services.runtime import Stores

T0 = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
OPEN, RESOLVED = FlagState.OPEN, FlagState.RESOLVED


def message_flag(flag_id: str, sequence: int = 7, conversation_id: str = "c1",
                 app_id: str = "alpha") -> Flag:
    return Flag(app_id, flag_id, conversation_id, sequence, "bob", "buy now", OPEN, T0, T0)


def user_flag(flag_id: str, user_id: str = "bob") -> Flag:
    return Flag("alpha", flag_id, "", 0, user_id, "", OPEN, T0, T0)


def report(reporter: str, at: datetime = T0, reason: ReportReason = ReportReason.SPAM,
           details: str = "") -> Report:
    return Report(reporter, reason, details, at)


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def test_reports_of_one_target_join_its_open_flag(stores: Stores) -> None:
    first = await stores.flags.report(message_flag("f1"), report("apps/alpha/users/ann"))
    assert (first.flag_id, first.state, first.report_count, first.message_text) == (
        "f1", OPEN, 1, "buy now")
    assert first.reports == (report("apps/alpha/users/ann"),)
    # Another reporter joins f1 (the id offered is not used); the newest report first.
    second = await stores.flags.report(message_flag("f2"),
                                       report("apps/alpha/users/cy", later(1)))
    assert (second.flag_id, second.report_count) == ("f1", 2)
    assert [r.reporter for r in second.reports] == ["apps/alpha/users/cy",
                                                    "apps/alpha/users/ann"]
    assert second.update_time == later(1) and second.create_time == T0
    # A reporter reporting again replaces their report.
    again = await stores.flags.report(
        message_flag("f3"), report("apps/alpha/users/ann", later(2), ReportReason.HATE, "x"))
    assert (again.flag_id, again.report_count) == ("f1", 2)
    assert again.reports[0] == report("apps/alpha/users/ann", later(2), ReportReason.HATE, "x")
    assert await stores.flags.get_report("alpha", "f1", "apps/alpha/users/ann") == (
        again.reports[0])
    assert await stores.flags.get_report("alpha", "f1", "apps/alpha/users/zed") is None
    # Other targets are other flags: another message, a user, another app.
    assert (await stores.flags.report(message_flag("f4", sequence=8), report("x"))).flag_id == "f4"
    assert (await stores.flags.report(user_flag("f5"), report("x"))).flag_id == "f5"
    assert (await stores.flags.report(message_flag("f6", app_id="beta"), report("x"))
            ).flag_id == "f6"
    assert await stores.flags.get_flag("beta", "f1") is None
    logged = await stores.events.read("alpha", 0, 10)
    assert [(e.type, e.conversation_id, e.user_id, e.private) for e in logged] == [
        ("flag.reported", "c1", "", True)] * 4 + [("flag.reported", "", "", True)]


async def test_a_flag_shows_its_latest_reports_and_counts_them_all(stores: Stores) -> None:
    for n in range(REPORTS_SHOWN + 5):
        flag = await stores.flags.report(message_flag("f1"), report(f"r{n:02}", later(n)))
    assert flag.report_count == REPORTS_SHOWN + 5
    assert [r.reporter for r in flag.reports] == [
        f"r{n:02}" for n in reversed(range(5, REPORTS_SHOWN + 5))]


async def test_concurrent_first_reports_open_one_flag(stores: Stores) -> None:
    flags = await asyncio.gather(*(stores.flags.report(message_flag(f"f{n}"),
                                                       report(f"r{n}")) for n in range(6)))
    assert len({f.flag_id for f in flags}) == 1
    assert (await stores.flags.get_flag("alpha", flags[0].flag_id)).report_count == 6


async def test_a_claim_keeps_others_off_until_it_lapses(stores: Stores) -> None:
    await stores.flags.report(message_flag("f1"), report("r"))
    held = await stores.flags.claim("alpha", "f1", "mod-a", later(10), later(0))
    assert (held.claimer, held.claim_expire_time, held.update_time) == (
        "mod-a", later(10), later(0))
    assert held.held_by_other("mod-b", later(9)) and not held.held_by_other("mod-a", later(9))
    assert await stores.flags.claim("alpha", "f1", "mod-b", later(10), later(9)) is None
    assert await stores.flags.claim("beta", "f1", "mod-a", later(10), later(9)) is None
    # The holder renews it; once it lapses, another takes it.
    assert (await stores.flags.claim("alpha", "f1", "mod-a", later(20), later(9))
            ).claim_expire_time == later(20)
    taken = await stores.flags.claim("alpha", "f1", "mod-b", later(30), later(20))
    assert taken.claimer == "mod-b"
    # Releasing: only by the holder.
    assert await stores.flags.claim("alpha", "f1", "mod-a", None, later(21)) is None
    released = await stores.flags.claim("alpha", "f1", "mod-b", None, later(21))
    assert (released.claimer, released.claim_expire_time) == ("", None)


async def test_resolving_records_the_decision_and_frees_the_target(stores: Stores) -> None:
    await stores.flags.report(message_flag("f1"), report("r"))
    await stores.flags.claim("alpha", "f1", "mod-a", later(10), later(0))
    decision = Resolution("mod-b", "spam", True, "r123", later(5))
    assert await stores.flags.resolve("alpha", "f1", decision) is None  # mod-a holds it
    decision = replace(decision, resolver="mod-a")
    resolved = await stores.flags.resolve("alpha", "f1", decision)
    assert (resolved.state, resolved.resolution, resolved.claimer) == (RESOLVED, decision, "")
    assert await stores.flags.get_flag("alpha", "f1") == resolved
    assert await stores.flags.resolve("alpha", "f1", decision) is None  # resolved already
    assert await stores.flags.claim("alpha", "f1", "mod-a", later(20), later(6)) is None
    # A new report of the same message opens a new flag.
    again = await stores.flags.report(message_flag("f2"), report("r", later(7)))
    assert (again.flag_id, again.state, again.report_count) == ("f2", OPEN, 1)
    logged = await stores.events.read("alpha", 0, 10)
    assert [e.type for e in logged] == ["flag.reported", "flag.resolved", "flag.reported"]


async def test_flags_list_in_order_with_filters(stores: Stores) -> None:
    for n, flag in enumerate([message_flag("f1"), user_flag("f2", "cy"),
                              message_flag("f3", conversation_id="c2"), user_flag("f4")]):
        await stores.flags.report(replace(flag, create_time=later(n)), report("r", later(n)))
    await stores.flags.resolve("alpha", "f3", Resolution("m", "ok", False, "", later(9)))

    async def ids(**filters: object) -> list[str]:
        flags = await stores.flags.list_flags("alpha", 10, None, **filters)  # type: ignore[arg-type]
        return [f.flag_id for f in flags]

    assert await ids() == ["f1", "f2", "f3", "f4"]
    assert await ids(state=OPEN) == ["f1", "f2", "f4"]
    assert await ids(state=RESOLVED) == ["f3"]
    assert await ids(conversation_id="c1") == ["f1"]
    assert await ids(conversation_id="") == ["f2", "f4"]  # flags of users
    assert await ids(user_id="bob") == ["f1", "f3", "f4"]
    assert await ids(not_user_id="bob") == ["f2"]
    first = await stores.flags.list_flags("alpha", 2, None)
    rest = await stores.flags.list_flags(
        "alpha", 10, (int(first[-1].create_time.timestamp() * 1000), first[-1].flag_id))
    assert [f.flag_id for f in rest] == ["f3", "f4"]
    assert await stores.flags.list_flags("beta", 10, None) == []
