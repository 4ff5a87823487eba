"""The call state machine (services/calls/models.py), as pure functions: a call starts
ringing with its caller joined; the first answer makes it active; it ends when the
caller hangs up before an answer (canceled), when nobody is left to ring before one
(declined, busy or missed), when at most one participant is left with nobody rung, or
when ended for everyone. Every change is a new call one version on; no change is the
same call; an ended call refuses to be answered, declined or left."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.calls import models
from services.calls.models import (
    ACTIVE,
    AUDIO,
    BUSY,
    CANCELED,
    COMPLETED,
    DECLINED,
    ENDED,
    JOINED,
    LEFT,
    MISSED,
    RINGING,
    VIDEO,
    Call,
    Participant,
)
from services.core.errors import FailedPrecondition

T0 = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
S = timedelta(seconds=1)
RING = timedelta(seconds=45)


def start(invitees: tuple[str, ...] = ("bob",), busy: tuple[str, ...] = (),
          max_participants: int = 8) -> Call:
    """alice calls from her phone at T0."""
    return models.start("alpha", "c1", "k1", AUDIO, "alice", "phone", list(invitees),
                        list(busy), max_participants, T0, RING)


def who(call: Call, user_id: str) -> Participant:
    p = call.participant(user_id)
    assert p is not None, user_id
    return p


def states(call: Call) -> dict[str, str]:
    return {p.user_id: p.state for p in call.participants}


def active(*others: str) -> Call:
    """alice's call answered by each of `others` in turn (a second apart, on "tab")."""
    call = start(others)
    for n, user in enumerate(others, start=1):
        call = models.accept(call, user, "tab", T0 + n * S)
    return call


def refused(reason: str, error: pytest.ExceptionInfo[FailedPrecondition]) -> None:
    assert error.value.reason == reason


# Starting.

def test_a_call_starts_ringing_with_its_caller_joined() -> None:
    call = start(("bob", "carol"))
    assert (call.state, call.version, call.outcome) == (RINGING, 1, "")
    assert (call.create_time, call.ring_deadline) == (T0, T0 + RING)
    assert call.answer_time is None and call.end_time is None and not call.ended
    alice = who(call, "alice")
    assert (alice.state, alice.device_id, alice.invited) == (JOINED, "phone", True)
    assert alice.join_time == T0 and alice.since == T0
    assert states(call) == {"alice": JOINED, "bob": RINGING, "carol": RINGING}
    assert who(call, "bob").invited and who(call, "bob").device_id == ""
    assert [p.user_id for p in call.joined()] == ["alice"]
    assert [p.user_id for p in call.ringing()] == ["bob", "carol"]
    assert call.in_call("alice", "phone") and not call.in_call("alice", "tab")
    assert call.duration == timedelta(0)


def test_those_in_another_call_are_busy_and_if_all_are_it_ends_at_once() -> None:
    call = start(("bob", "carol"), busy=("bob",))
    assert call.state == RINGING
    assert states(call) == {"alice": JOINED, "bob": BUSY, "carol": RINGING}
    everyone = start(("bob", "carol"), busy=("bob", "carol"))
    assert (everyone.state, everyone.outcome, everyone.end_time) == (ENDED, BUSY, T0)
    assert everyone.version == 1  # stored as it starts: ended
    alice = who(everyone, "alice")
    assert (alice.state, alice.leave_reason, alice.leave_time) == (LEFT, models.CALL_ENDED, T0)
    assert alice.time_in_call(T0 + 9 * S) == timedelta(0)
    assert states(everyone)["bob"] == BUSY


def test_a_start_retried_has_the_same_id() -> None:
    one = models.call_id_for("alpha", "c1", "alice", "r1")
    assert one == models.call_id_for("alpha", "c1", "alice", "r1")
    assert len({one, models.call_id_for("alpha", "c1", "alice", "r2"),
                models.call_id_for("alpha", "c1", "bob", "r1"),
                models.call_id_for("beta", "c1", "alice", "r1")}) == 4
    assert models.call_name("alpha", "c1", one) == f"apps/alpha/conversations/c1/calls/{one}"


# Answering and joining.

def test_the_first_answer_makes_the_call_active() -> None:
    call = start(("bob", "carol"))
    answered = models.accept(call, "bob", "tab", T0 + 5 * S)
    assert (answered.state, answered.answer_time, answered.version) == (ACTIVE, T0 + 5 * S, 2)
    bob = who(answered, "bob")
    assert (bob.state, bob.device_id, bob.invited) == (JOINED, "tab", True)
    assert bob.join_time == T0 + 5 * S and bob.since == T0 + 5 * S
    # A second answer joins: the answer time stays the first.
    both = models.accept(answered, "carol", "pc", T0 + 9 * S)
    assert (both.state, both.answer_time, both.version) == (ACTIVE, T0 + 5 * S, 3)
    assert states(both) == {"alice": JOINED, "bob": JOINED, "carol": JOINED}
    assert call.state == RINGING  # calls are values: the one changed is as it was


def test_answering_again_on_the_same_device_changes_nothing() -> None:
    call = active("bob")
    assert models.accept(call, "bob", "tab", T0 + 9 * S) is call
    assert models.accept(call, "alice", "phone", T0 + 9 * S) is call


def test_one_is_in_a_call_on_one_device_at_a_time() -> None:
    call = active("bob")
    with pytest.raises(FailedPrecondition) as error:
        models.accept(call, "bob", "laptop", T0 + 9 * S)
    refused("CALL_ALREADY_JOINED", error)
    assert error.value.metadata == {"device": "tab"}
    with pytest.raises(FailedPrecondition) as error:
        models.accept(start(), "alice", "laptop", T0 + S)  # the caller, still ringing
    refused("CALL_ALREADY_JOINED", error)
    assert error.value.metadata == {"device": "phone"}


def test_a_full_call_refuses_another_participant() -> None:
    call = models.accept(start(("bob", "carol"), max_participants=2), "bob", "tab", T0 + S)
    with pytest.raises(FailedPrecondition) as error:
        models.accept(call, "carol", "pc", T0 + 2 * S)
    refused("LIMIT_EXCEEDED", error)
    assert error.value.metadata == {"limit": "participants in a call", "maximum": "2"}
    # Once someone left, there is room again.
    left = models.leave(models.accept(
        start(("bob", "carol", "dan"), max_participants=3), "bob", "tab", T0 + S),
        "bob", T0 + 2 * S)
    full = models.accept(models.accept(left, "carol", "pc", T0 + 3 * S), "dan", "pc",
                         T0 + 4 * S)
    with pytest.raises(FailedPrecondition) as error:
        models.accept(full, "bob", "tab", T0 + 5 * S)
    refused("LIMIT_EXCEEDED", error)


def test_a_member_not_rung_may_join_late() -> None:
    call = active("bob")
    late = models.accept(call, "dan", "pc", T0 + 30 * S)
    dan = who(late, "dan")
    assert (dan.state, dan.invited, dan.join_time) == (JOINED, False, T0 + 30 * S)
    assert (late.state, late.answer_time, late.version) == (ACTIVE, T0 + S, call.version + 1)
    assert [p.user_id for p in late.participants] == ["alice", "bob", "dan"]
    # Joining a call still ringing answers it.
    early = models.accept(start(), "dan", "pc", T0 + 2 * S)
    assert (early.state, early.answer_time) == (ACTIVE, T0 + 2 * S)
    assert not who(early, "dan").invited and who(early, "bob").state == RINGING


# Declining.

def test_the_last_one_rung_declining_ends_the_call_declined() -> None:
    call = models.decline(start(), "bob", False, T0 + 3 * S)
    assert (call.state, call.outcome, call.end_time, call.version) == (
        ENDED, DECLINED, T0 + 3 * S, 2)
    assert states(call) == {"alice": LEFT, "bob": DECLINED}
    assert who(call, "alice").leave_reason == models.CALL_ENDED
    assert call.duration == timedelta(0)


def test_declining_again_or_unrung_changes_nothing() -> None:
    call = start(("bob", "carol"))
    once = models.decline(call, "bob", False, T0 + S)
    assert (once.state, once.version) == (RINGING, 2)  # carol is still rung
    assert states(once)["bob"] == DECLINED
    assert models.decline(once, "bob", False, T0 + 2 * S) is once
    assert models.decline(once, "bob", True, T0 + 2 * S) is once
    assert models.decline(once, "dan", False, T0 + 2 * S) is once  # never rung


def test_one_in_the_call_cannot_decline_it() -> None:
    with pytest.raises(FailedPrecondition) as error:
        models.decline(active("bob"), "bob", False, T0 + 9 * S)
    refused("CALL_ALREADY_JOINED", error)
    with pytest.raises(FailedPrecondition) as error:
        models.decline(start(), "alice", False, T0 + S)
    refused("CALL_ALREADY_JOINED", error)


def test_all_declining_busy_ends_the_call_busy() -> None:
    call = models.decline(start(("bob", "carol")), "bob", True, T0 + S)
    assert states(call)["bob"] == BUSY and call.state == RINGING
    call = models.decline(call, "carol", True, T0 + 2 * S)
    assert (call.state, call.outcome) == (ENDED, BUSY)
    # Busy and declined: declined.
    mixed = models.decline(models.decline(start(("bob", "carol")), "bob", True, T0 + S),
                           "carol", False, T0 + 2 * S)
    assert mixed.outcome == DECLINED


def test_declined_by_some_and_missed_by_the_others_is_declined() -> None:
    call = models.decline(start(("bob", "carol")), "bob", False, T0 + S)
    missed = models.expire_ringing(call, T0 + RING)
    assert (missed.state, missed.outcome) == (ENDED, DECLINED)
    assert states(missed) == {"alice": LEFT, "bob": DECLINED, "carol": MISSED}
    # Busy and missed: missed.
    busy = models.expire_ringing(start(("bob", "carol"), busy=("bob",)), T0 + RING)
    assert busy.outcome == MISSED


def test_declining_an_answered_call_leaves_it_to_those_in_it() -> None:
    answered = models.accept(start(("bob", "carol")), "bob", "tab", T0 + S)
    call = models.decline(answered, "carol", False, T0 + 2 * S)
    assert call.state == ACTIVE and states(call)["carol"] == DECLINED


# Leaving.

def test_the_caller_hanging_up_before_an_answer_cancels() -> None:
    call = models.leave(start(("bob", "carol")), "alice", T0 + 4 * S)
    assert (call.state, call.outcome, call.end_time, call.version) == (
        ENDED, CANCELED, T0 + 4 * S, 2)
    alice = who(call, "alice")
    assert (alice.state, alice.leave_reason, alice.leave_time) == (
        LEFT, models.HUNG_UP, T0 + 4 * S)
    assert alice.time_in_call(T0 + 60 * S) == 4 * S
    assert states(call) == {"alice": LEFT, "bob": MISSED, "carol": MISSED}


def test_a_one_to_one_call_completes_when_either_leaves() -> None:
    call = models.accept(start(), "bob", "tab", T0 + 5 * S)
    done = models.leave(call, "alice", T0 + 65 * S)
    assert (done.state, done.outcome, done.end_time) == (ENDED, COMPLETED, T0 + 65 * S)
    assert done.duration == 60 * S
    assert who(done, "alice").leave_reason == models.HUNG_UP
    bob = who(done, "bob")
    assert (bob.state, bob.leave_reason, bob.leave_time) == (LEFT, models.CALL_ENDED,
                                                             T0 + 65 * S)
    assert bob.time_in_call(T0 + 999 * S) == 60 * S
    assert who(done, "alice").time_in_call(T0 + 999 * S) == 65 * S
    # The callee hanging up too, with a reason.
    lost = models.leave(call, "bob", T0 + 20 * S, models.CONNECTION_LOST)
    assert (lost.outcome, lost.duration) == (COMPLETED, 15 * S)
    assert who(lost, "bob").leave_reason == models.CONNECTION_LOST


def test_a_group_call_goes_on_while_two_are_in_it() -> None:
    call = active("bob", "carol")
    left = models.leave(call, "bob", T0 + 30 * S)
    assert (left.state, left.version) == (ACTIVE, call.version + 1)
    assert states(left) == {"alice": JOINED, "bob": LEFT, "carol": JOINED}
    assert who(left, "bob").leave_reason == models.HUNG_UP
    done = models.leave(left, "alice", T0 + 40 * S)
    assert (done.state, done.outcome, done.duration) == (ENDED, COMPLETED, 39 * S)


def test_leaving_when_not_in_the_call_changes_nothing() -> None:
    call = models.accept(start(("bob", "carol")), "bob", "tab", T0 + S)
    assert models.leave(call, "carol", T0 + 2 * S) is call  # rung, not in it
    assert models.leave(call, "dan", T0 + 2 * S) is call  # not a participant
    assert models.leave(call, "bob", T0 + 2 * S, device_id="laptop") is call  # elsewhere
    left = models.leave(call, "bob", T0 + 2 * S, device_id="tab")
    assert states(left)["bob"] == LEFT
    assert models.leave(left, "bob", T0 + 3 * S) is left


# Ringing out.

def test_ringing_expires_at_the_deadline() -> None:
    call = start()
    assert models.expire_ringing(call, T0 + RING - S) is call
    missed = models.expire_ringing(call, T0 + RING)
    assert (missed.state, missed.outcome, missed.end_time, missed.version) == (
        ENDED, MISSED, T0 + RING, 2)
    assert states(missed) == {"alice": LEFT, "bob": MISSED}
    # Nobody rung any more: nothing to expire.
    answered = active("bob")
    assert models.expire_ringing(answered, T0 + 10 * RING) is answered


def test_one_left_alone_waits_for_the_rung_and_then_the_call_completes() -> None:
    call = models.accept(start(("bob", "carol")), "bob", "tab", T0 + S)
    alone = models.leave(call, "bob", T0 + 10 * S)
    assert alone.state == ACTIVE  # carol is still rung
    done = models.expire_ringing(alone, T0 + RING)
    assert (done.state, done.outcome, done.end_time) == (ENDED, COMPLETED, T0 + RING)
    assert states(done) == {"alice": LEFT, "bob": LEFT, "carol": MISSED}
    assert done.duration == RING - S
    # Still two in it: the call goes on without the one who missed it.
    both = models.expire_ringing(call, T0 + RING)
    assert both.state == ACTIVE
    assert states(both) == {"alice": JOINED, "bob": JOINED, "carol": MISSED}


# Ending for everyone.

def test_ending_a_call_cancels_or_completes_it() -> None:
    ringing = start(("bob", "carol"))
    canceled = models.end(ringing, T0 + 2 * S)
    assert (canceled.state, canceled.outcome, canceled.version) == (ENDED, CANCELED, 2)
    assert states(canceled) == {"alice": LEFT, "bob": MISSED, "carol": MISSED}
    assert who(canceled, "alice").leave_reason == models.CALL_ENDED
    call = models.accept(ringing, "bob", "tab", T0 + 5 * S)
    completed = models.end(call, T0 + 35 * S)
    assert (completed.outcome, completed.duration, completed.version) == (COMPLETED, 30 * S, 3)
    assert states(completed) == {"alice": LEFT, "bob": LEFT, "carol": MISSED}
    assert models.end(completed, T0 + 99 * S) is completed


def test_those_no_longer_members_are_out_of_the_call() -> None:
    call = models.accept(start(("bob", "carol", "dan")), "bob", "tab", T0 + S)
    assert models.drop_members(call, {"alice", "bob", "carol", "dan"}, T0 + 2 * S) is call
    dropped = models.drop_members(call, {"alice", "bob", "dan"}, T0 + 2 * S)
    assert (dropped.state, dropped.version) == (ACTIVE, call.version + 1)
    assert states(dropped)["carol"] == MISSED
    removed = models.drop_members(dropped, {"alice", "dan"}, T0 + 3 * S)
    bob = who(removed, "bob")
    assert (bob.state, bob.leave_reason, bob.leave_time) == (LEFT, models.REMOVED, T0 + 3 * S)
    assert removed.state == ACTIVE  # alice in it, dan still rung
    done = models.drop_members(removed, {"alice"}, T0 + 4 * S)
    assert (done.state, done.outcome) == (ENDED, COMPLETED)
    # The caller removed before an answer: canceled.
    gone = models.drop_members(start(), {"bob"}, T0 + S)
    assert (gone.state, gone.outcome) == (ENDED, CANCELED)
    assert who(gone, "alice").leave_reason == models.REMOVED
    assert models.drop_members(gone, set(), T0 + 2 * S) is gone


# Over time.

def test_time_in_the_call_adds_up_over_rejoins() -> None:
    call = models.accept(start(("bob", "carol")), "carol", "pc", T0 + S)
    call = models.accept(call, "bob", "tab", T0 + 10 * S)
    call = models.leave(call, "bob", T0 + 40 * S)
    bob = who(call, "bob")
    assert bob.time_in_call(T0 + 90 * S) == 30 * S  # not counting while out
    call = models.accept(call, "bob", "laptop", T0 + 100 * S)  # back, on another device
    bob = who(call, "bob")
    assert (bob.state, bob.device_id, bob.join_time, bob.invited) == (
        JOINED, "laptop", T0 + 10 * S, True)
    assert bob.leave_time is None and bob.leave_reason == ""
    assert bob.time_in_call(T0 + 130 * S) == 60 * S
    call = models.leave(call, "bob", T0 + 160 * S)
    assert who(call, "bob").time_in_call(T0 + 999 * S) == 90 * S
    done = models.end(models.accept(call, "bob", "tab", T0 + 200 * S), T0 + 210 * S)
    assert who(done, "bob").time_in_call(T0 + 999 * S) == 100 * S


def test_every_change_is_one_version_on() -> None:
    versions = []
    call = start(("bob", "carol", "dan"))
    changes: list[Callable[[Call], Call]] = [
        lambda c: models.accept(c, "bob", "tab", T0 + S),
        lambda c: models.decline(c, "carol", False, T0 + 2 * S),
        lambda c: models.accept(c, "carol", "pc", T0 + 3 * S),
        lambda c: models.leave(c, "bob", T0 + 4 * S),
        lambda c: models.expire_ringing(c, T0 + RING),
        lambda c: models.drop_members(c, {"alice"}, T0 + RING + S)]
    for change in changes:
        call = change(call)
        versions.append(call.version)
    assert versions == [2, 3, 4, 5, 6, 7]
    assert call.ended
    assert models.end(call, T0 + 99 * S).version == 7


def test_an_ended_call_cannot_be_answered_declined_or_left() -> None:
    ended = models.end(models.accept(start(("bob", "carol")), "bob", "tab", T0 + S),
                       T0 + 2 * S)
    refusals: list[Callable[[], Call]] = [
        lambda: models.accept(ended, "carol", "pc", T0 + 3 * S),
        lambda: models.accept(ended, "bob", "tab", T0 + 3 * S),
        lambda: models.decline(ended, "carol", False, T0 + 3 * S),
        lambda: models.leave(ended, "bob", T0 + 3 * S)]
    for refusal in refusals:
        with pytest.raises(FailedPrecondition) as error:
            refusal()
        refused("CALL_ENDED", error)
    # What only settles the call leaves it as it is.
    assert models.expire_ringing(ended, T0 + 10 * RING) is ended
    assert models.drop_members(ended, set(), T0 + 3 * S) is ended
    assert models.settle(ended, T0 + 3 * S) is ended


def test_a_call_record_says_how_it_ended() -> None:
    def ended(outcome: str, media: str = AUDIO) -> Call:
        return replace(models.end(start(), T0 + S), outcome=outcome, media=media)

    assert models.record_text(ended(COMPLETED)) == "Voice call"
    assert models.record_text(ended(COMPLETED, VIDEO)) == "Video call"
    assert models.record_text(ended(MISSED)) == "Missed voice call"
    assert models.record_text(ended(CANCELED, VIDEO)) == "Missed video call"
    assert models.record_text(ended(DECLINED)) == "Declined voice call"
    assert models.record_text(ended(BUSY)) == "Voice call: busy"
