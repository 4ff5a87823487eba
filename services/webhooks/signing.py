"""Webhook signatures: how CAAS signs a delivery, and the reference verifier an app's
receiver can copy.

    caas-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>[,v1=…]

Each active secret of the endpoint signs (two during a rotation, so a receiver holding
either verifies). The timestamp is inside the signed bytes: a receiver refuses
deliveries whose `t` is further than its tolerance (5 minutes) from its clock, which
bounds replays, and may also remember the `caas-event-id` values it has processed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "caas-signature"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                    hashlib.sha256).hexdigest()


def sign(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The header value for `body`, signed with every secret in `secrets`."""
    return ",".join([f"t={timestamp}",
                     *(f"v1={signature(s, timestamp, body)}" for s in secrets)])


def verify(header: str, body: bytes, secret: str, now: float,
           tolerance: float = TOLERANCE_SECONDS) -> bool:
    """The reference verifier: whether `header` signs `body` with `secret`, recently."""
    timestamp, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)
