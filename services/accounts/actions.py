"""What developers do with their accounts: sign up, verify, log in (with TOTP),
reset a password, manage their sessions and second factor."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from services.accounts.models import (
    PORTAL_KEYS,
    RECOVERY_CODES,
    SESSION_REVOKED,
    Account,
    AccountSession,
    AccountToken,
    LoginEvent,
    Outcome,
    Purpose,
    session_token,
)
from services.accounts.passwords import BreachCheck, Passwords, check_password
from services.accounts.store import AccountStore, Position
from services.accounts.totp import (
    Enrollment,
    accepted_step,
    new_enrollment,
    new_recovery_codes,
    recovery_hash,
)
from services.core.clock import Clock
from services.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    not_found,
)
from services.core.events import DomainEvent, EventBus
from services.core.ids import new_id, new_secret, secret_hash
from services.core.mail import Email, Mailer
from services.core.principal import Developer, Principal, require_account
from services.core.settings import Settings
from services.edge.portal import PortalAddress
from services.gateway.callers import Client
from services.gateway.gateway import spend
from services.gateway.ratelimit import Bucket, RateLimiter
from services.keys.keyring import Keyring

log = logging.getLogger("caas.accounts")

VERIFY_LIFETIME = timedelta(days=2)
RESET_LIFETIME = timedelta(hours=1)
LOGIN_HISTORY = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class Login:
    account: Account
    session: AccountSession
    token: str


def normal_email(email: str) -> str:
    return email.strip().lower()


def _mfa_on() -> FailedPrecondition:
    return FailedPrecondition("MFA_ALREADY_ENABLED", "two-factor authentication is on already")


def _token_invalid() -> InvalidArgument:
    return InvalidArgument("ACCOUNT_TOKEN_INVALID",
                           "the link is invalid, expired or used already: ask for a new one")


class Accounts:
    def __init__(self, store: AccountStore, passwords: Passwords, breaches: BreachCheck,
                 mailer: Mailer, keyring: Keyring, clock: Clock, limiter: RateLimiter,
                 bus: EventBus, settings: Settings, portal: PortalAddress,
                 mfa_required_by: Callable[[str], Awaitable[str | None]]) -> None:
        """`mfa_required_by(account_id)`: an organization of the account that requires
        MFA (its name), if any."""
        self._store = store
        self._passwords = passwords
        self._breaches = breaches
        self._mailer = mailer
        self._keyring = keyring
        self._clock = clock
        self._limiter = limiter
        self._bus = bus
        self._settings = settings
        self._mfa_required_by = mfa_required_by
        self._portal = portal

    # -- limits ------------------------------------------------------------------

    async def _limit(self, action: str, client: Client, email: str | None) -> None:
        settings = self._settings
        buckets = [Bucket(f"{{portal}}:{action}:ip:{client.ip_address}",
                          settings.login_attempts_per_address, f"address:{client.ip_address}")]
        if email is not None:
            buckets.append(Bucket(f"{{portal}}:{action}:email:{secret_hash(email)}",
                                  settings.login_attempts_per_email, "email"))
        await spend(self._limiter, buckets, f"too many {action} attempts", {"action": action},
                    f"{action} attempts per window")

    async def _send(self, email: Email) -> None:
        """Emails are best effort: an SMTP failure is logged, the call goes on (the
        developer can ask again)."""
        try:
            await self._mailer.send(email)
        except Exception:
            log.exception("email to %s failed", email.to)

    def _link(self, page: str, token: str) -> str:
        return f"{self._portal.url}{page}?token={token}"

    async def _emailed_token(self, account: Account, purpose: Purpose,
                             lifetime: timedelta) -> str:
        token = new_secret()
        now = self._clock.now()
        await self._store.put_token(AccountToken(secret_hash(token), purpose,
                                                 account.account_id, now, now + lifetime))
        return token

    # -- sign-up and verification -------------------------------------------------

    async def sign_up(self, email: str, password: str, display_name: str,
                      client: Client) -> None:
        email = normal_email(email)
        await self._limit("sign-up", client, email)  # each may email the address
        await check_password(password, [email, email.split("@")[0], display_name],
                             "password", self._breaches)
        account = Account(new_id(), email, display_name.strip(),
                          await self._passwords.hash(password), self._clock.now())
        if not await self._store.create_account(account):
            await self._send(Email(email, "You already have a CAAS account", (
                "Someone (you?) tried to sign up to CAAS with this address, which has an "
                "account already. Log in, or reset your password here:\n\n"
                f"{self._portal.url}reset-password\n")))
            return
        await self.send_verification(account)

    async def send_verification(self, account: Account) -> None:
        token = await self._emailed_token(account, Purpose.VERIFY_EMAIL, VERIFY_LIFETIME)
        await self._send(Email(account.email, "Verify your email address for CAAS", (
            f"Hello {account.display_name},\n\nOpen this link to verify your email "
            f"address (it works for 48 hours):\n\n{self._link('verify-email', token)}\n")))

    async def resend_verification(self, principal: Principal, account_id: str,
                                  client: Client) -> None:
        account = await self._own(principal, account_id)
        await self._limit("verification", client, account.email)
        if not account.email_verified:
            await self.send_verification(account)

    async def verify_email(self, token: str) -> Account:
        taken = await self._store.take_token(Purpose.VERIFY_EMAIL, secret_hash(token),
                                             self._clock.now())
        if taken is None:
            raise _token_invalid()
        account = await self._store.update_account(
            taken.account_id, lambda a: replace(a, email_verified=True))
        if account is None:
            raise _token_invalid()
        return account

    # -- login ---------------------------------------------------------------------

    async def _attempt(self, account: Account, outcome: Outcome, client: Client) -> None:
        await self._store.add_login_event(LoginEvent(
            account.account_id, f"{time.time_ns():020d}{new_id()[:6]}", self._clock.now(),
            outcome, client.ip_address, client.user_agent))

    async def _failed(self, account: Account, outcome: Outcome, client: Client) -> None:
        """Count a failure; the Nth in a row locks the account."""
        settings = self._settings
        now = self._clock.now()

        def count(a: Account) -> Account:
            failures = a.failed_logins + 1
            if failures >= settings.login_lockout_failures:
                return replace(a, failed_logins=0,
                               locked_until=now + settings.login_lockout_duration)
            return replace(a, failed_logins=failures)

        await self._store.update_account(account.account_id, count)
        await self._attempt(account, outcome, client)

    async def login(self, email: str, password: str, totp_code: str, recovery_code: str,
                    client: Client) -> Login:
        email = normal_email(email)
        await self._limit("login", client, email)
        now = self._clock.now()
        account = await self._store.account_by_email(email)
        if account is not None and account.locked_until is not None and (
                now < account.locked_until):
            await self._attempt(account, Outcome.LOCKED, client)
            raise ResourceExhausted(
                "ACCOUNT_LOCKED", "too many failed logins: the account is locked for a while",
                retry_after=account.locked_until - now)
        if not await self._passwords.verify(
                None if account is None else account.password_hash, password):
            if account is not None:
                await self._failed(account, Outcome.WRONG_PASSWORD, client)
            raise Unauthenticated("LOGIN_FAILED", "wrong email or password")
        assert account is not None
        mfa = False
        if account.mfa_enabled:
            if not totp_code and not recovery_code:
                await self._attempt(account, Outcome.MFA_REQUIRED, client)
                raise Unauthenticated("MFA_REQUIRED",
                                      "enter the code of your authenticator app")
            if not await self._second_factor(account, totp_code or recovery_code):
                await self._failed(account, Outcome.WRONG_MFA_CODE, client)
                raise Unauthenticated("MFA_CODE_INVALID", "wrong or used code")
            mfa = True
        rehash = (await self._passwords.hash(password)
                  if self._passwords.outdated(account.password_hash) else None)
        account = await self._store.update_account(
            account.account_id, lambda a: replace(
                a, failed_logins=0, locked_until=None,
                password_hash=rehash or a.password_hash)) or account
        secret = new_secret()
        session = AccountSession(
            account.account_id, new_id(), secret_hash(secret), now,
            now + self._settings.portal_session_lifetime, mfa, client.ip_address,
            client.user_agent)
        await self._store.create_session(session)
        await self._attempt(account, Outcome.SUCCEEDED, client)
        return Login(account, session, session_token(session, secret))

    async def _second_factor(self, account: Account, code: str) -> bool:
        """Use `code` (TOTP, or a recovery code) if it is right and unused: True."""
        if len(code) == 6 and code.isdigit():
            secret = await self._totp_secret(account)
            now = self._clock.now()

            def use_step(a: Account) -> Account:
                step = accepted_step(secret, code, now, a.totp_last_step)
                if step is None:
                    raise _WrongCode
                return replace(a, totp_last_step=step)
            change = use_step
        else:
            digest = recovery_hash(code)

            def use_code(a: Account) -> Account:
                if digest not in a.recovery_hashes:
                    raise _WrongCode
                return replace(a, recovery_hashes=tuple(
                    h for h in a.recovery_hashes if h != digest))
            change = use_code
        try:
            return await self._store.update_account(account.account_id, change) is not None
        except _WrongCode:
            return False

    async def _totp_secret(self, account: Account) -> str:
        return await self._keyring.open_text(PORTAL_KEYS, "account.totp", account.totp_secret,
                                             owner=f"account:{account.account_id}")

    # -- password reset --------------------------------------------------------------

    async def request_reset(self, email: str, client: Client) -> None:
        email = normal_email(email)
        await self._limit("password reset", client, email)
        account = await self._store.account_by_email(email)
        if account is None:
            return
        token = await self._emailed_token(account, Purpose.RESET_PASSWORD, RESET_LIFETIME)
        await self._send(Email(account.email, "Reset your CAAS password", (
            "Open this link to choose a new password (it works for one hour):\n\n"
            f"{self._link('reset-password', token)}\n\n"
            "If you did not ask for it, ignore this email: your password stays.\n")))

    async def reset_password(self, token: str, new_password: str) -> None:
        now = self._clock.now()
        taken = await self._store.take_token(Purpose.RESET_PASSWORD, secret_hash(token), now)
        account = None if taken is None else await self._store.get_account(taken.account_id)
        if taken is None or account is None:
            raise _token_invalid()
        try:
            await check_password(new_password, [account.email, account.display_name],
                                 "new_password", self._breaches)
        except InvalidArgument:
            await self._store.put_token(taken)  # the link still works for a better one
            raise
        password_hash = await self._passwords.hash(new_password)
        await self._store.update_account(account.account_id, lambda a: replace(
            a, password_hash=password_hash, failed_logins=0, locked_until=None,
            email_verified=True))  # the link reached the address
        await self._revoked(account.account_id,
                            await self._store.revoke_sessions(account.account_id, now))

    # -- the account and its sessions ---------------------------------------------------

    async def _own(self, principal: Principal, account_id: str, *,
                   operator: bool = False) -> Account:
        require_account(principal, account_id, operator=operator)
        account = await self._store.get_account(account_id)
        if account is None:
            raise not_found("caas.dev/Account", f"accounts/{account_id}")
        return account

    async def get(self, principal: Principal, account_id: str) -> Account:
        return await self._own(principal, account_id, operator=True)

    async def list_sessions(self, principal: Principal, account_id: str, limit: int,
                            after: Position | None) -> list[AccountSession]:
        require_account(principal, account_id)
        return await self._store.list_sessions(account_id, self._clock.now(), limit, after)

    async def revoke_session(self, principal: Principal, account_id: str,
                             session_id: str) -> AccountSession:
        require_account(principal, account_id)
        await self._revoked(account_id, await self._store.revoke_sessions(
            account_id, self._clock.now(), session_id))
        session = await self._store.get_session(account_id, session_id)
        if session is None:
            raise not_found("caas.dev/AccountSession",
                            f"accounts/{account_id}/sessions/{session_id}")
        return session

    async def _revoked(self, account_id: str, session_ids: list[str]) -> None:
        for session_id in session_ids:
            await self._bus.publish(DomainEvent(
                SESSION_REVOKED, PORTAL_KEYS, self._clock.now(),
                {"account": account_id, "session": session_id}))

    async def login_events(self, principal: Principal, account_id: str, limit: int,
                           after: Position | None) -> list[LoginEvent]:
        require_account(principal, account_id)
        since = self._clock.now() - LOGIN_HISTORY
        return await self._store.list_login_events(account_id, since, limit, after)

    # -- two-factor authentication ------------------------------------------------------

    async def start_totp(self, principal: Principal, account_id: str) -> Enrollment:
        account = await self._own(principal, account_id)
        if account.mfa_enabled:
            raise _mfa_on()
        enrollment = new_enrollment(account.email)
        sealed = await self._keyring.seal_text(PORTAL_KEYS, "account.totp", enrollment.secret,
                                               owner=f"account:{account_id}")

        def start(a: Account) -> Account:
            if a.mfa_enabled:
                raise _mfa_on()
            return replace(a, totp_secret=sealed, totp_last_step=0)
        await self._store.update_account(account_id, start)
        return enrollment

    async def confirm_totp(self, principal: Principal, account_id: str, code: str
                           ) -> tuple[Account, list[str]]:
        account = await self._own(principal, account_id)
        if account.mfa_enabled:
            raise _mfa_on()
        if not account.totp_secret:
            raise FailedPrecondition("MFA_NOT_ENABLED",
                                     "start the enrollment first (StartTotpEnrollment)")
        secret = await self._totp_secret(account)
        step = accepted_step(secret, code, self._clock.now(), account.totp_last_step)
        if step is None:
            raise Unauthenticated("MFA_CODE_INVALID", "wrong code: check the phone's clock")
        codes = new_recovery_codes(RECOVERY_CODES)

        def enable(a: Account) -> Account:
            if a.mfa_enabled or a.totp_secret != account.totp_secret:
                raise FailedPrecondition("MFA_ALREADY_ENABLED",
                                         "two-factor authentication changed meanwhile")
            return replace(a, mfa_enabled=True, totp_last_step=step,
                           recovery_hashes=tuple(recovery_hash(c) for c in codes))
        enabled = await self._store.update_account(account_id, enable)
        assert enabled is not None and isinstance(principal, Developer)
        await self._store.verify_session_mfa(account_id, principal.session_id)
        # Authenticators forget the session's cached state (it passed a second factor).
        await self._revoked(account_id, [principal.session_id])
        return enabled, codes

    async def disable_totp(self, principal: Principal, account_id: str, code: str) -> Account:
        account = await self._own(principal, account_id)
        if not account.mfa_enabled:
            raise FailedPrecondition("MFA_NOT_ENABLED", "two-factor authentication is off")
        organization = await self._mfa_required_by(account_id)
        if organization is not None:
            raise PermissionDenied(
                "MFA_REQUIRED_BY_ORGANIZATION",
                f"{organization} requires two-factor authentication of its members",
                metadata={"organization": organization})
        if not await self._second_factor(account, code):
            raise Unauthenticated("MFA_CODE_INVALID", "wrong or used code")
        disabled = await self._store.update_account(account_id, lambda a: replace(
            a, mfa_enabled=False, totp_secret="", totp_last_step=0, recovery_hashes=()))
        assert disabled is not None
        return disabled


class _WrongCode(Exception):
    """Inside an account update: the code is wrong or used (nothing is written)."""
