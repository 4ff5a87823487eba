"""Developers of the portal, for tests: sign up, verify by the emailed link, log in."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyotp
from caas.accounts.v1 import accounts_service_pb2 as acc_pb

from tests.support.client import Client, bearer
from tests.support.mail import Inbox

PASSWORD = "plum-orchard-velvet-93"  # strong enough for zxcvbn, in no breach list


@dataclass
class Developer:
    account: str  # accounts/{id}
    email: str
    token: str  # the portal session's
    totp_secret: str = ""

    @property
    def auth(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.token)


async def sign_up(client: Client, inbox: Inbox, email: str, *, verify: bool = True,
                  name: str = "Dev Eloper") -> Developer:
    """A new developer, verified (unless not `verify`) and logged in."""
    await client.accounts.SignUp(acc_pb.SignUpRequest(email=email, password=PASSWORD,
                                                      display_name=name))
    if verify:
        mail = await inbox.wait_for(email, "Verify your email")
        await client.accounts.VerifyEmail(acc_pb.VerifyEmailRequest(token=mail.link_token()))
    login = await client.accounts.Login(acc_pb.LoginRequest(email=email, password=PASSWORD))
    return Developer(login.account.name, email, login.token)


def code(secret: str, steps_ahead: int = 0) -> str:
    """The TOTP code of `secret` now (or `steps_ahead` 30 s steps later)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)
