"""Access tokens with a controlled clock: expiry, leeway, forgery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.auth import tokens
from services.auth.models import SigningKey
from services.core.errors import Unauthenticated
from tests.support.tokens import tamper

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


def key(app_id: str = "alpha", key_id: str = "kaaaaaaaaaaaaaaa") -> SigningKey:
    private, public = tokens.new_key_pair()
    return SigningKey(app_id, key_id, private, public, NOW)


def test_issue_then_verify() -> None:
    signing = key()
    token, expiry = tokens.issue(signing, "alice", "s1", NOW, timedelta(minutes=15))
    assert expiry == NOW + timedelta(minutes=15)
    claimed = tokens.peek(token)
    assert (claimed.app_id, claimed.key_id, claimed.issued_at) == (
        "alpha", "kaaaaaaaaaaaaaaa", NOW.timestamp())
    claims = tokens.verify(token, signing.public_key, NOW, timedelta(0))
    assert (claims.app_id, claims.user_id, claims.session_id) == ("alpha", "alice", "s1")


@pytest.mark.parametrize(("age", "leeway", "expired"), [
    (timedelta(seconds=59), timedelta(0), False),
    (timedelta(seconds=60), timedelta(0), True),
    (timedelta(seconds=64), timedelta(seconds=5), False),
    (timedelta(seconds=65), timedelta(seconds=5), True),
])
def test_expiry_with_leeway(age: timedelta, leeway: timedelta, expired: bool) -> None:
    signing = key()
    token, _ = tokens.issue(signing, "alice", "s1", NOW, timedelta(seconds=60))
    if expired:
        with pytest.raises(Unauthenticated) as caught:
            tokens.verify(token, signing.public_key, NOW + age, leeway)
        assert caught.value.reason == "ACCESS_TOKEN_EXPIRED"
    else:
        tokens.verify(token, signing.public_key, NOW + age, leeway)


def test_a_token_signed_by_another_key_is_invalid() -> None:
    token, _ = tokens.issue(key(), "alice", "s1", NOW, timedelta(minutes=1))
    with pytest.raises(Unauthenticated) as caught:
        tokens.verify(token, key().public_key, NOW, timedelta(0))
    assert caught.value.reason == "ACCESS_TOKEN_INVALID"


@pytest.mark.parametrize("garbage", ["", "a.b.c", "eyJ.eyJ.sig", "x" * 40])
def test_garbage_is_invalid(garbage: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        tokens.peek(garbage)
    assert caught.value.reason == "ACCESS_TOKEN_INVALID"


@pytest.mark.parametrize("claims", [{"app": "x" * 500}, {"app": "Bad_App"}, {"app": 7},
                                    {"iat": "yesterday"}])
def test_peek_refuses_claims_that_are_not_ids(claims: dict[str, object]) -> None:
    token, _ = tokens.issue(key(), "alice", "s1", NOW, timedelta(minutes=1))
    with pytest.raises(Unauthenticated):
        tokens.peek(tamper(token, **claims))
