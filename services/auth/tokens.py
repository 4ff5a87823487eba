"""Access tokens: EdDSA-signed JWTs (RFC 9068 shape), one signing key set per app."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from services.auth.models import SigningKey
from services.core.errors import Unauthenticated
from services.core.names import is_app_id, is_server_id

ISSUER = "caas"
ALGORITHM = "EdDSA"
_REQUIRED_CLAIMS = ["iss", "sub", "app", "sid", "iat", "exp"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    app_id: str
    user_id: str
    session_id: str
    expire_time: datetime


def new_key_pair() -> tuple[bytes, bytes]:
    """(private, public) raw Ed25519 key bytes."""
    private = Ed25519PrivateKey.generate()
    return (private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def public_jwk(key: SigningKey) -> str:
    """The public half as a JWK (RFC 8037), as JSON text."""
    return json.dumps({"kty": "OKP", "crv": "Ed25519", "alg": ALGORITHM, "use": "sig",
                       "kid": key.key_id,
                       "x": jwt.utils.base64url_encode(key.public_key).decode()},
                      separators=(",", ":"))


def issue(key: SigningKey, user_id: str, session_id: str, now: datetime, ttl: timedelta
          ) -> tuple[str, datetime]:
    """A signed access token for a user's session, and when it expires."""
    expire_time = now + ttl
    claims = {"iss": ISSUER, "sub": user_id, "app": key.app_id, "sid": session_id,
              "iat": int(now.timestamp()), "exp": int(expire_time.timestamp())}
    token = jwt.encode(claims, Ed25519PrivateKey.from_private_bytes(key.private_key),
                       algorithm=ALGORITHM, headers={"kid": key.key_id, "typ": "at+jwt"})
    return token, expire_time


def _invalid(why: str) -> Unauthenticated:
    return Unauthenticated("ACCESS_TOKEN_INVALID", f"access token rejected: {why}")


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a token claims about itself before its signature is checked."""

    app_id: str
    key_id: str
    issued_at: float  # seconds since the epoch


def peek(token: str) -> Claimed:
    """What a token claims, read WITHOUT checking its signature: only to find the key
    that will check it. The claims must be well-formed ids, so made-up values cannot
    reach the store or grow caches.

    Raises ACCESS_TOKEN_INVALID if the token is not shaped like a JWT of ours.
    """
    try:
        header = jwt.get_unverified_header(token)
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise _invalid("malformed") from exc
    kid, app_id, issued_at = header.get("kid"), claims.get("app"), claims.get("iat")
    if (header.get("alg") != ALGORITHM or not isinstance(kid, str) or not is_server_id(kid)
            or not isinstance(app_id, str) or not is_app_id(app_id)
            or not isinstance(issued_at, int) or isinstance(issued_at, bool)):
        raise _invalid("not a CAAS access token")
    return Claimed(app_id, kid, float(issued_at))


def verify(token: str, public_key: bytes, now: datetime, leeway: timedelta) -> AccessClaims:
    """Check signature, issuer, claims and expiry against `now` (with `leeway`).

    Raises ACCESS_TOKEN_INVALID, or ACCESS_TOKEN_EXPIRED once past its expiry.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token, Ed25519PublicKey.from_public_bytes(public_key), algorithms=[ALGORITHM],
            issuer=ISSUER, options={"require": _REQUIRED_CLAIMS, "verify_exp": False,
                                    "verify_iat": False})
    except jwt.PyJWTError as exc:
        raise _invalid("bad signature or claims") from exc
    expire_time = datetime.fromtimestamp(claims["exp"], now.tzinfo)
    if now >= expire_time + leeway:
        raise Unauthenticated("ACCESS_TOKEN_EXPIRED",
                              "access token expired: refresh it with AuthService.RefreshSession")
    values = (claims["app"], claims["sub"], claims["sid"])
    if not all(isinstance(v, str) and v for v in values):
        raise _invalid("bad claims")
    return AccessClaims(claims["app"], claims["sub"], claims["sid"], expire_time)
