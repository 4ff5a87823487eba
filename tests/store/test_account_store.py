"""The account and organization stores' contract, on both engines: updates are atomic
read-modify-writes that no concurrent update loses, emailed tokens and invitations are
taken once, sessions list newest first and revoke once, and an organization never loses
its last owner, even to concurrent changes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.accounts.models import (
    Account,
    AccountSession,
    AccountToken,
    LoginEvent,
    Outcome,
    Purpose,
)
from services.organizations.models import Invitation, Member, Organization, Role
from services.organizations.store import Outcome as Change
from services.runtime import Stores

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def account(account_id: str, email: str) -> Account:
    return Account(account_id, email, "Ada", "$argon2id$hash", NOW)


async def test_an_email_has_one_account(stores: Stores) -> None:
    assert await stores.accounts.create_account(account("a" * 16, "ada@example.com"))
    assert not await stores.accounts.create_account(account("b" * 16, "ada@example.com"))
    found = await stores.accounts.account_by_email("ada@example.com")
    assert found is not None and found.account_id == "a" * 16
    assert await stores.accounts.get_account("b" * 16) is None


async def test_concurrent_updates_are_all_kept(stores: Stores) -> None:
    await stores.accounts.create_account(account("a" * 16, "ada@example.com"))

    async def fail_once() -> None:
        await stores.accounts.update_account(
            "a" * 16, lambda a: replace(a, failed_logins=a.failed_logins + 1))

    await asyncio.gather(*(fail_once() for _ in range(20)))
    stored = await stores.accounts.get_account("a" * 16)
    assert stored is not None
    assert (stored.failed_logins, stored.version) == (20, 20)


async def test_a_refused_change_writes_nothing(stores: Stores) -> None:
    await stores.accounts.create_account(account("a" * 16, "ada@example.com"))

    def refuse(_: Account) -> Account:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await stores.accounts.update_account("a" * 16, refuse)
    stored = await stores.accounts.get_account("a" * 16)
    assert stored is not None and stored.version == 0
    assert await stores.accounts.update_account("z" * 16, lambda a: a) is None


async def test_a_token_is_taken_once_and_replaces_the_earlier_one(stores: Stores) -> None:
    first = AccountToken("h1", Purpose.VERIFY_EMAIL, "a" * 16, NOW, NOW + timedelta(hours=1))
    await stores.accounts.put_token(first)
    await stores.accounts.put_token(replace(first, token_hash="h2"))
    assert await stores.accounts.take_token(Purpose.VERIFY_EMAIL, "h1", NOW) is None
    # Another purpose's token is not this one.
    assert await stores.accounts.take_token(Purpose.RESET_PASSWORD, "h2", NOW) is None
    taken = await asyncio.gather(*(stores.accounts.take_token(Purpose.VERIFY_EMAIL, "h2", NOW)
                                   for _ in range(5)))
    assert sum(t is not None for t in taken) == 1
    expired = AccountToken("h3", Purpose.RESET_PASSWORD, "a" * 16, NOW, NOW + timedelta(hours=1))
    await stores.accounts.put_token(expired)
    assert await stores.accounts.take_token(Purpose.RESET_PASSWORD, "h3",
                                            NOW + timedelta(hours=2)) is None


async def test_sessions_list_newest_first_and_revoke_once(stores: Stores) -> None:
    for n in range(3):
        await stores.accounts.create_session(AccountSession(
            "a" * 16, f"s{n:015d}", "hash", NOW + timedelta(minutes=n),
            NOW + timedelta(hours=12), False, "127.0.0.1", "test"))
    listed = await stores.accounts.list_sessions("a" * 16, NOW, 2, None)
    assert [s.session_id for s in listed] == [f"s{2:015d}", f"s{1:015d}"]
    rest = await stores.accounts.list_sessions(
        "a" * 16, NOW, 2, (int(listed[-1].create_time.timestamp() * 1000), listed[-1].session_id))
    assert [s.session_id for s in rest] == [f"s{0:015d}"]
    assert await stores.accounts.revoke_sessions("a" * 16, NOW, f"s{1:015d}") == [f"s{1:015d}"]
    assert await stores.accounts.revoke_sessions("a" * 16, NOW, f"s{1:015d}") == []
    assert sorted(await stores.accounts.revoke_sessions("a" * 16, NOW)) == [
        f"s{0:015d}", f"s{2:015d}"]
    await stores.accounts.verify_session_mfa("a" * 16, f"s{0:015d}")
    session = await stores.accounts.get_session("a" * 16, f"s{0:015d}")
    assert session is not None and session.mfa_verified and session.revoke_time == NOW
    # Expired sessions are not listed.
    assert await stores.accounts.list_sessions("a" * 16, NOW + timedelta(days=1), 10, None) == []


async def test_login_events_newest_first_since(stores: Stores) -> None:
    for n in range(3):
        await stores.accounts.add_login_event(LoginEvent(
            "a" * 16, f"e{n}", NOW + timedelta(minutes=n), Outcome.WRONG_PASSWORD, "ip", "ua"))
    events = await stores.accounts.list_login_events("a" * 16, NOW + timedelta(minutes=1),
                                                     10, None)
    assert [e.event_id for e in events] == ["e2", "e1"]


async def test_an_organization_keeps_an_owner(stores: Stores) -> None:
    org = Organization("acme", "Acme", False, NOW)
    owners = [Member("acme", f"{c}" * 16, Role.OWNER, NOW) for c in "ab"]
    assert await stores.organizations.create_organization(org, owners[0])
    assert not await stores.organizations.create_organization(org, owners[1])
    assert await stores.organizations.add_member(owners[1])
    assert not await stores.organizations.add_member(owners[1])
    # Two owners demote each other at once: one of them stays owner.
    results = await asyncio.gather(
        stores.organizations.set_role("acme", "a" * 16, Role.VIEWER),
        stores.organizations.set_role("acme", "b" * 16, Role.VIEWER))
    assert sorted(r.value for r in results) == sorted([Change.DONE.value,
                                                       Change.LAST_OWNER.value])
    members = await stores.organizations.list_members("acme", 10, None)
    assert [m.role for m in members].count(Role.OWNER) == 1
    [owner] = [m for m in members if m.role is Role.OWNER]
    assert await stores.organizations.remove_member("acme", owner.account_id) \
        is Change.LAST_OWNER
    assert await stores.organizations.remove_member("acme", "z" * 16) is Change.MISSING
    assert await stores.organizations.set_role("acme", "z" * 16, Role.ADMIN) is Change.MISSING


async def test_invitations_replace_and_are_taken_once(stores: Stores) -> None:
    invitation = Invitation("acme", "i" * 16, "bob@example.com", Role.VIEWER, "a" * 16, "t1",
                            NOW, NOW + timedelta(days=7))
    await stores.organizations.put_invitation(invitation)
    await stores.organizations.put_invitation(replace(invitation, invitation_id="j" * 16,
                                                      token_hash="t2"))
    listed = await stores.organizations.list_invitations("acme", NOW, 10, None)
    assert [i.invitation_id for i in listed] == ["j" * 16]
    assert await stores.organizations.take_invitation("t1", NOW) is None
    taken = await asyncio.gather(*(stores.organizations.take_invitation("t2", NOW)
                                   for _ in range(4)))
    assert sum(t is not None for t in taken) == 1
    assert not await stores.organizations.delete_invitation("acme", "j" * 16)
