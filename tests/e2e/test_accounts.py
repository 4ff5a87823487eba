"""Developer accounts against a running server, on both stores: sign-up with the
emailed verification link (a real SMTP server), password strength and breach checks,
login, lockout and rate limits, the login history, TOTP two-factor authentication with
recovery codes, password reset, portal sessions; over gRPC, JSON through Envoy,
gRPC-Web and grpcurl."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess

import grpc
import httpx
from caas.accounts.v1 import accounts_service_pb2 as acc_pb
from caas.accounts.v1 import resources_pb2 as acc_res

from tests.conftest import expect_error, unique_id
from tests.e2e.test_http import grpc_web_frame, grpc_web_frames
from tests.support.client import Client
from tests.support.mail import BREACHED, SmtpServer
from tests.support.portal import PASSWORD, Developer, code, sign_up
from tests.support.servers import BIN, CaasServer

Outcome = acc_res.LoginEvent


def email() -> str:
    return f"{unique_id('dev')}@example.com"


async def login(client: Client, address: str, password: str = PASSWORD, **factor: str
                ) -> acc_pb.LoginResponse:
    response: acc_pb.LoginResponse = await client.accounts.Login(
        acc_pb.LoginRequest(email=address, password=password, **factor))
    return response


async def test_sign_up_verify_and_log_in(client: Client, smtp: SmtpServer,
                                         server: CaasServer) -> None:
    address = email()
    await client.accounts.SignUp(acc_pb.SignUpRequest(
        email=address.upper(), password=PASSWORD, display_name="Ada"))
    mail = await smtp.inbox.wait_for(address, "Verify your email")
    # The link leads to the portal on this server's HTTP port.
    assert f"{server.http_url}/portal/verify-email?token=" in mail.text
    session = await login(client, address)
    assert session.token.startswith("caasp_")
    assert (session.account.email, session.account.email_verified) == (address, False)
    me = Developer(session.account.name, address, session.token)

    verified = await client.accounts.VerifyEmail(
        acc_pb.VerifyEmailRequest(token=mail.link_token()))
    assert verified.account.email_verified
    # The link works once.
    await expect_error(client.accounts.VerifyEmail(
        acc_pb.VerifyEmailRequest(token=mail.link_token())),
        grpc.StatusCode.INVALID_ARGUMENT, "ACCOUNT_TOKEN_INVALID")
    got = await client.accounts.GetAccount(acc_pb.GetAccountRequest(name=me.account),
                                           metadata=me.auth)
    assert got.account.email_verified and got.account.display_name == "Ada"


async def test_a_taken_address_answers_the_same_and_warns_its_owner(
        client: Client, smtp: SmtpServer) -> None:
    address = email()
    await sign_up(client, smtp.inbox, address)
    again = await client.accounts.SignUp(acc_pb.SignUpRequest(
        email=address, password="another-long-passphrase-77", display_name="Eve"))
    assert again == acc_pb.SignUpResponse()
    await smtp.inbox.wait_for(address, "You already have a CAAS account")
    # The first password still works; the second never became one.
    await login(client, address)
    await expect_error(login(client, address, "another-long-passphrase-77"),
                       grpc.StatusCode.UNAUTHENTICATED, "LOGIN_FAILED")


async def test_weak_and_breached_passwords_are_refused_with_the_field(
        client: Client, smtp: SmtpServer) -> None:
    address = email()
    weak = await expect_error(client.accounts.SignUp(acc_pb.SignUpRequest(
        email=address, password="password12", display_name="Weak")),
        grpc.StatusCode.INVALID_ARGUMENT, "PASSWORD_WEAK")
    assert "password" in weak.field_violations
    breached = await expect_error(client.accounts.SignUp(acc_pb.SignUpRequest(
        email=address, password=BREACHED[0], display_name="Breached")),
        grpc.StatusCode.INVALID_ARGUMENT, "PASSWORD_BREACHED")
    assert breached.field_violations == {"password": "password.breached"}
    short = await expect_error(client.accounts.SignUp(acc_pb.SignUpRequest(
        email=address, password="short", display_name="Short")),
        grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    assert "password" in short.field_violations
    # Nothing was created: the address is free.
    assert smtp.inbox.to(address) == []
    await expect_error(login(client, address, "password12"),
                       grpc.StatusCode.UNAUTHENTICATED, "LOGIN_FAILED")


async def test_wrong_passwords_lock_the_account_and_the_history_says_so(
        client: Client, smtp: SmtpServer) -> None:
    address = email()
    me = await sign_up(client, smtp.inbox, address)
    for _ in range(4):
        await expect_error(login(client, address, "not-the-password-1"),
                           grpc.StatusCode.UNAUTHENTICATED, "LOGIN_FAILED")
    await login(client, address)  # a success resets the count
    for _ in range(5):
        await expect_error(login(client, address, "not-the-password-2"),
                           grpc.StatusCode.UNAUTHENTICATED, "LOGIN_FAILED")
    locked = await expect_error(login(client, address),  # even the right password
                                grpc.StatusCode.RESOURCE_EXHAUSTED, "ACCOUNT_LOCKED")
    assert locked.retry_seconds is not None and 800 < locked.retry_seconds <= 900
    history = await client.accounts.ListLoginEvents(
        acc_pb.ListLoginEventsRequest(parent=me.account, page_size=3), metadata=me.auth)
    assert [e.outcome for e in history.login_events] == [
        Outcome.OUTCOME_LOCKED, Outcome.OUTCOME_WRONG_PASSWORD, Outcome.OUTCOME_WRONG_PASSWORD]
    assert history.login_events[0].ip_address == "127.0.0.1"
    rest = await client.accounts.ListLoginEvents(acc_pb.ListLoginEventsRequest(
        parent=me.account, page_size=100, page_token=history.next_page_token),
        metadata=me.auth)
    outcomes = [e.outcome for e in rest.login_events]
    assert outcomes.count(Outcome.OUTCOME_SUCCEEDED) == 2  # sign_up's login, and one more
    assert len(outcomes) == 3 + 4 + 2 + 3 - 3  # all 12 attempts over the two pages


async def test_logins_per_email_are_rate_limited(client: Client) -> None:
    address = email()  # no account: the limit holds all the same
    for _ in range(15):  # login_attempts_per_email of the tests' configuration
        await expect_error(login(client, address, "whatever-it-is"),
                           grpc.StatusCode.UNAUTHENTICATED, "LOGIN_FAILED")
    limited = await expect_error(login(client, address, "whatever-it-is"),
                                 grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert limited.retry_seconds is not None and limited.quota_subjects == ["email"]


async def test_emails_to_one_address_are_rate_limited(client: Client,
                                                     smtp: SmtpServer) -> None:
    """Sign-ups and verification emails each write to the address: a budget per address
    (login_attempts_per_email), so that nobody can flood someone's inbox through CAAS."""
    address = email()
    me = await sign_up(client, smtp.inbox, address, verify=False)
    for _ in range(14):  # 15 of the tests' configuration, one spent by sign_up
        await client.accounts.SignUp(acc_pb.SignUpRequest(
            email=address, password=PASSWORD, display_name="Again"))
    await expect_error(client.accounts.SignUp(acc_pb.SignUpRequest(
        email=address, password=PASSWORD, display_name="Again")),
        grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    for _ in range(15):
        await client.accounts.SendVerificationEmail(
            acc_pb.SendVerificationEmailRequest(name=me.account), metadata=me.auth)
    await expect_error(client.accounts.SendVerificationEmail(
        acc_pb.SendVerificationEmailRequest(name=me.account), metadata=me.auth),
        grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    # Only the last verification link works.
    last = smtp.inbox.to(address)[-1]
    first = (await smtp.inbox.wait_for(address, "Verify your email")).link_token()
    await expect_error(client.accounts.VerifyEmail(acc_pb.VerifyEmailRequest(token=first)),
                       grpc.StatusCode.INVALID_ARGUMENT, "ACCOUNT_TOKEN_INVALID")
    await client.accounts.VerifyEmail(acc_pb.VerifyEmailRequest(token=last.link_token()))


async def test_totp_enrollment_login_and_recovery_codes(client: Client,
                                                        smtp: SmtpServer) -> None:
    address = email()
    me = await sign_up(client, smtp.inbox, address)
    name = acc_pb.StartTotpEnrollmentRequest(name=me.account)
    started = await client.accounts.StartTotpEnrollment(name, metadata=me.auth)
    assert started.otpauth_uri.startswith("otpauth://totp/CAAS:")
    assert started.qr_code_svg.lstrip().startswith("<svg")
    secret = started.secret
    await expect_error(client.accounts.ConfirmTotpEnrollment(
        acc_pb.ConfirmTotpEnrollmentRequest(name=me.account, code=code(secret, 5)),
        metadata=me.auth), grpc.StatusCode.UNAUTHENTICATED, "MFA_CODE_INVALID")
    confirmed = await client.accounts.ConfirmTotpEnrollment(
        acc_pb.ConfirmTotpEnrollmentRequest(name=me.account, code=code(secret)),
        metadata=me.auth)
    assert confirmed.account.mfa_enabled and confirmed.account.recovery_codes_left == 10
    recovery = list(confirmed.recovery_codes)
    assert len(set(recovery)) == 10
    await expect_error(client.accounts.StartTotpEnrollment(name, metadata=me.auth),
                       grpc.StatusCode.FAILED_PRECONDITION, "MFA_ALREADY_ENABLED")

    await expect_error(login(client, address), grpc.StatusCode.UNAUTHENTICATED,
                       "MFA_REQUIRED")
    await expect_error(login(client, address, totp_code="000000" if code(secret) != "000000"
                             else "111111"),
                       grpc.StatusCode.UNAUTHENTICATED, "MFA_CODE_INVALID")
    # The code confirming the enrollment was used: only a later one works, once.
    await expect_error(login(client, address, totp_code=code(secret, -1)),
                       grpc.StatusCode.UNAUTHENTICATED, "MFA_CODE_INVALID")
    later = code(secret, 1)  # once: the 30 s step may turn between the two logins
    with_code = await login(client, address, totp_code=later)
    assert with_code.session.mfa_verified
    await expect_error(login(client, address, totp_code=later),
                       grpc.StatusCode.UNAUTHENTICATED, "MFA_CODE_INVALID")
    # A recovery code works once, in any case and spacing.
    rescued = await login(client, address, recovery_code=recovery[0].upper())
    assert rescued.account.recovery_codes_left == 9
    await expect_error(login(client, address, recovery_code=recovery[0]),
                       grpc.StatusCode.UNAUTHENTICATED, "MFA_CODE_INVALID")
    # Turning it off takes a code too.
    second = Developer(me.account, address, rescued.token)
    await expect_error(client.accounts.DisableTotp(
        acc_pb.DisableTotpRequest(name=me.account, code="nothing-like-it"),
        metadata=second.auth), grpc.StatusCode.UNAUTHENTICATED, "MFA_CODE_INVALID")
    off = await client.accounts.DisableTotp(
        acc_pb.DisableTotpRequest(name=me.account, code=recovery[1]), metadata=second.auth)
    assert not off.account.mfa_enabled
    assert (await login(client, address)).token


async def test_password_reset_ends_every_session(client: Client, smtp: SmtpServer) -> None:
    address = email()
    me = await sign_up(client, smtp.inbox, address)
    await client.accounts.RequestPasswordReset(acc_pb.RequestPasswordResetRequest(email=address))
    # An unknown address gets the same answer, and no email.
    nobody = email()
    await client.accounts.RequestPasswordReset(acc_pb.RequestPasswordResetRequest(email=nobody))
    mail = await smtp.inbox.wait_for(address, "Reset your CAAS password")
    await expect_error(client.accounts.ResetPassword(acc_pb.ResetPasswordRequest(
        token=mail.link_token(), new_password="qwertyuiop")),
        grpc.StatusCode.INVALID_ARGUMENT, "PASSWORD_WEAK")
    # A refused password leaves the link working; a good one spends it.
    await client.accounts.ResetPassword(acc_pb.ResetPasswordRequest(
        token=mail.link_token(), new_password="granite-lantern-harbor-51"))
    await expect_error(client.accounts.ResetPassword(acc_pb.ResetPasswordRequest(
        token=mail.link_token(), new_password="granite-lantern-harbor-52")),
        grpc.StatusCode.INVALID_ARGUMENT, "ACCOUNT_TOKEN_INVALID")
    await expect_error(client.accounts.GetAccount(acc_pb.GetAccountRequest(name=me.account),
                                                  metadata=me.auth),
                       grpc.StatusCode.UNAUTHENTICATED, "ACCOUNT_SESSION_INVALID")
    await expect_error(login(client, address), grpc.StatusCode.UNAUTHENTICATED, "LOGIN_FAILED")
    assert (await login(client, address, "granite-lantern-harbor-51")).token
    assert smtp.inbox.to(nobody) == []


async def test_sessions_are_listed_and_revoked(client: Client, smtp: SmtpServer) -> None:
    address = email()
    me = await sign_up(client, smtp.inbox, address)
    other = await login(client, address)
    listed = await client.accounts.ListAccountSessions(
        acc_pb.ListAccountSessionsRequest(parent=me.account), metadata=me.auth)
    assert len(listed.sessions) == 2
    assert [s.current for s in listed.sessions] == [False, True]  # newest first
    revoked = await client.accounts.RevokeAccountSession(
        acc_pb.RevokeAccountSessionRequest(name=other.session.name), metadata=me.auth)
    assert revoked.session.HasField("revoke_time")
    await expect_error(client.accounts.GetAccount(acc_pb.GetAccountRequest(name=me.account),
                                                  metadata=(("authorization",
                                                             f"Bearer {other.token}"),)),
                       grpc.StatusCode.UNAUTHENTICATED, "ACCOUNT_SESSION_INVALID")
    # A forged secret of a live session is refused too.
    forged = me.token[:-4] + ("aaaa" if not me.token.endswith("aaaa") else "bbbb")
    await expect_error(client.accounts.GetAccount(acc_pb.GetAccountRequest(name=me.account),
                                                  metadata=(("authorization",
                                                             f"Bearer {forged}"),)),
                       grpc.StatusCode.UNAUTHENTICATED, "ACCOUNT_SESSION_INVALID")


async def test_a_developer_reaches_only_their_own_account(client: Client,
                                                          smtp: SmtpServer,
                                                          server: CaasServer) -> None:
    ada = await sign_up(client, smtp.inbox, email())
    bob = await sign_up(client, smtp.inbox, email())
    for call in (
        client.accounts.GetAccount(acc_pb.GetAccountRequest(name=bob.account),
                                   metadata=ada.auth),
        client.accounts.ListAccountSessions(
            acc_pb.ListAccountSessionsRequest(parent=bob.account), metadata=ada.auth),
        client.accounts.ListLoginEvents(
            acc_pb.ListLoginEventsRequest(parent=bob.account), metadata=ada.auth),
        client.accounts.StartTotpEnrollment(
            acc_pb.StartTotpEnrollmentRequest(name=bob.account), metadata=ada.auth),
    ):
        await expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "USER_MISMATCH")
    bobs = await client.accounts.ListAccountSessions(
        acc_pb.ListAccountSessionsRequest(parent=bob.account), metadata=bob.auth)
    await expect_error(client.accounts.RevokeAccountSession(
        acc_pb.RevokeAccountSessionRequest(name=bobs.sessions[0].name), metadata=ada.auth),
        grpc.StatusCode.PERMISSION_DENIED, "USER_MISMATCH")
    # The operator reads any account; a developer's session is no operator's.
    operator = (("authorization", f"Bearer {server.operator_token}"),)
    got = await client.accounts.GetAccount(acc_pb.GetAccountRequest(name=bob.account),
                                           metadata=operator)
    assert got.account.email == bob.email
    # An app's key is no developer.
    await expect_error(client.accounts.ListAccountSessions(
        acc_pb.ListAccountSessionsRequest(parent=bob.account), metadata=operator),
        grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")


async def test_json_grpc_web_and_grpcurl(http: httpx.AsyncClient, server: CaasServer,
                                         smtp: SmtpServer) -> None:
    address = email()
    signed = await http.post("/v1/accounts:signUp", json={
        "email": address, "password": PASSWORD, "displayName": "Json"})
    assert signed.status_code == 200, signed.text
    mail = await smtp.inbox.wait_for(address, "Verify your email")
    verified = await http.post("/v1/accounts:verifyEmail", json={"token": mail.link_token()})
    assert verified.json()["account"]["emailVerified"] is True
    bad = await http.post("/v1/accounts:login", json={"email": address, "password": "nope"})
    assert bad.status_code == 401
    assert bad.json()["details"][0]["reason"] == "LOGIN_FAILED"
    logged = await http.post("/v1/accounts:login", json={"email": address,
                                                          "password": PASSWORD},
                             headers={"user-agent": "portal-test/1.0"})
    body = logged.json()
    assert body["session"]["userAgent"] == "portal-test/1.0"
    # Envoy's address of this machine (Envoy names a loopback caller by it), not Envoy's
    # own hop: a caller's real address.
    assert ipaddress.ip_address(body["session"]["ipAddress"])
    headers = {"authorization": f"Bearer {body['token']}"}
    history = await http.get(f"/v1/{body['account']['name']}/loginEvents", headers=headers)
    assert history.json()["loginEvents"][0]["outcome"] == "OUTCOME_SUCCEEDED"

    web = await http.post(
        "/caas.accounts.v1.AccountsService/GetAccount",
        content=grpc_web_frame(acc_pb.GetAccountRequest(
            name=body["account"]["name"]).SerializeToString()),
        headers={**headers, "content-type": "application/grpc-web+proto"})
    frames = grpc_web_frames(web.content)
    assert {**web.headers, **frames[1]}.get("grpc-status") == "0"
    assert acc_pb.GetAccountResponse.FromString(frames[0][0]).account.email == address

    done = await asyncio.to_thread(subprocess.run, [
        str(BIN / "grpcurl"), "-plaintext", "-H", f"authorization: Bearer {body['token']}",
        "-d", json.dumps({"name": body["account"]["name"]}), server.address,
        "caas.accounts.v1.AccountsService/GetAccount"],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["account"]["email"] == address
