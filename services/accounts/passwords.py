"""Passwords: argon2id hashes, a strength check and a breach check.

- Hashing uses argon2-cffi's defaults (RFC 9106's second recommended profile: argon2id,
  64 MiB, 3 passes), in a worker thread: a hash takes tens of milliseconds of CPU that
  must not stall the event loop. Hashes of older parameters are upgraded at login.
- Strength: zxcvbn's estimate (dictionaries of common passwords, names, keyboard
  walks, dates, l33t), score 3 of 4 at least, with the email and name as hints.
- Breaches: Have I Been Pwned's range API (k-anonymity: only the first 5 hex
  characters of the SHA-1 leave). When it cannot be reached the check is skipped and
  logged: an outage of a third party must not stop sign-ups.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Protocol

import aiohttp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from services.core.errors import FieldViolation, InvalidArgument

log = logging.getLogger("caas.accounts")

MIN_SCORE = 3  # zxcvbn: "safely unguessable: moderate protection from offline attacks"
# zxcvbn's time grows with the length; the contract stops passwords at 128 characters.
CHECKED_LENGTH = 100


class Passwords:
    def __init__(self) -> None:
        self._hasher = PasswordHasher()
        # Verified against when the email is unknown, so that a login takes as long
        # whether or not the account exists.
        self._dummy = self._hasher.hash("not a password of anyone")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches (`password_hash` None: no account; still as slow)."""
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy, password) and (
                    password_hash is not None)
            except (VerificationError, InvalidHashError):
                return False
        return await asyncio.to_thread(check)

    def outdated(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


def check_strength(password: str, hints: list[str], field: str) -> None:
    """Raise INVALID_ARGUMENT (PASSWORD_WEAK, naming `field`) for a guessable password."""
    verdict = zxcvbn(password[:CHECKED_LENGTH], user_inputs=hints)
    if verdict["score"] >= MIN_SCORE:
        return
    feedback = verdict.get("feedback") or {}
    advice = " ".join(filter(None, [feedback.get("warning") or "",
                                    *feedback.get("suggestions", [])]))
    raise InvalidArgument(
        "PASSWORD_WEAK", "the password is too easy to guess",
        metadata={"score": str(verdict["score"])},
        field_violations=(FieldViolation(
            field, advice or "too easy to guess: use a longer passphrase",
            "password.weak"),))


class BreachCheck(Protocol):
    async def breached(self, password: str) -> bool:
        """Whether the password is known from breaches (False when it cannot tell)."""


class NoBreachCheck:
    async def breached(self, password: str) -> bool:
        return False


class PwnedPasswords:
    """Have I Been Pwned's range API (`GET <url><first 5 of SHA-1>`: lines of
    `<other 35>:<count>`), with `Add-Padding` so the answer's size tells nothing."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def breached(self, password: str) -> bool:
        digest = hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as session, \
                    session.get(self._url + digest[:5], headers={"Add-Padding": "true"}
                                ) as response:
                response.raise_for_status()
                body = await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("breached-password check skipped: %s", type(error).__name__)
            return False
        for line in body.splitlines():
            suffix, _, count = line.strip().partition(":")
            if suffix == digest[5:] and count.strip() not in ("", "0"):
                return True
        return False


async def check_password(password: str, hints: list[str], field: str,
                         breaches: BreachCheck) -> None:
    """Strength, then breaches: raise PASSWORD_WEAK or PASSWORD_BREACHED."""
    check_strength(password, hints, field)
    if await breaches.breached(password):
        raise InvalidArgument("PASSWORD_BREACHED",
                              "the password appears in known data breaches: choose another",
                              field_violations=(FieldViolation(
                                  field, "appears in known data breaches",
                                  "password.breached"),))
