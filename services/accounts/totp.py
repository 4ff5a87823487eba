"""Two-factor authentication: TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, the
defaults every authenticator app reads) and single-use recovery codes."""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno

from services.core.ids import same_secret, secret_hash

ISSUER = "CAAS"
STEP_SECONDS = 30
WINDOW = 1  # steps accepted either side of now (clock drift of the phone)
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)


@dataclass(frozen=True, slots=True)
class Enrollment:
    secret: str  # base32
    uri: str
    qr_svg: str


def new_enrollment(email: str) -> Enrollment:
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)
    qr = segno.make(uri, error="m")
    out = io.BytesIO()
    # A standalone document (its namespace declared), so it also works as an <img>.
    qr.save(out, kind="svg", scale=4, dark="#111", light="#fff", xmldecl=False, svgns=True,
            title=f"{ISSUER}: {email}")
    return Enrollment(secret, uri, out.getvalue().decode())


def accepted_step(secret: str, code: str, now: datetime, after_step: int) -> int | None:
    """The time step `code` belongs to (within the window around `now`), if it is one
    after `after_step` (a code is never accepted twice); else None."""
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - WINDOW, current + WINDOW + 1):
        if step > after_step and same_secret(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes(count: int) -> list[str]:
    def code() -> str:
        letters = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        return "-".join(letters[i:i + 4] for i in range(0, 16, 4))
    return [code() for _ in range(count)]


def recovery_hash(code: str) -> str:
    """Recovery codes are 79 random bits: a fast hash is enough, as for other secrets
    (spaces and case do not matter; the dashes do not either)."""
    return secret_hash(code.strip().lower().replace(" ", "").replace("-", ""))
