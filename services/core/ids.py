"""Identifiers and secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_id() -> str:
    """A random id of 16 characters of [a-z2-7] (80 bits): for keys, sessions."""
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()


def new_secret() -> str:
    """A random secret of 43 URL-safe characters (256 bits)."""
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """The stored form of a high-entropy secret (SHA-256, hex).

    A fast hash is right here: the secrets are 256-bit random values, not
    passwords, so there is nothing to brute-force.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
