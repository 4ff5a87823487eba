"""caas.accounts.v1.AccountsService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from typing import Any

from caas.accounts.v1 import accounts_service_pb2 as pb
from caas.accounts.v1 import resources_pb2 as res

from services.accounts.actions import Accounts
from services.accounts.models import Account, AccountSession, LoginEvent, Outcome
from services.core.clock import to_ms
from services.core.pagination import time_id_page
from services.core.principal import Developer
from services.core.protoconv import timestamp
from services.gateway.callers import client_of
from services.gateway.gateway import Call

OUTCOMES = {Outcome.SUCCEEDED: res.LoginEvent.OUTCOME_SUCCEEDED,
            Outcome.WRONG_PASSWORD: res.LoginEvent.OUTCOME_WRONG_PASSWORD,
            Outcome.MFA_REQUIRED: res.LoginEvent.OUTCOME_MFA_REQUIRED,
            Outcome.WRONG_MFA_CODE: res.LoginEvent.OUTCOME_WRONG_MFA_CODE,
            Outcome.LOCKED: res.LoginEvent.OUTCOME_LOCKED}


def account_proto(a: Account) -> res.Account:
    return res.Account(name=f"accounts/{a.account_id}", email=a.email,
                       display_name=a.display_name, email_verified=a.email_verified,
                       mfa_enabled=a.mfa_enabled, recovery_codes_left=len(a.recovery_hashes),
                       create_time=timestamp(a.create_time))


def session_proto(s: AccountSession, current: str = "") -> res.AccountSession:
    return res.AccountSession(
        name=f"accounts/{s.account_id}/sessions/{s.session_id}",
        create_time=timestamp(s.create_time), expire_time=timestamp(s.expire_time),
        revoke_time=timestamp(s.revoke_time), mfa_verified=s.mfa_verified,
        ip_address=s.ip_address, user_agent=s.user_agent, current=s.session_id == current)


def login_event_proto(e: LoginEvent) -> res.LoginEvent:
    return res.LoginEvent(time=timestamp(e.time), outcome=OUTCOMES[e.outcome],
                          ip_address=e.ip_address, user_agent=e.user_agent)


def _account_id(name: str) -> str:
    return name.split("/")[1]


def _current(call: Call) -> str:
    return call.principal.session_id if isinstance(call.principal, Developer) else ""


class AccountsServicer:
    def __init__(self, actions: Accounts) -> None:
        self._actions = actions

    async def SignUp(self, request: pb.SignUpRequest, call: Call) -> pb.SignUpResponse:
        await self._actions.sign_up(request.email, request.password, request.display_name,
                                    client_of(call))
        return pb.SignUpResponse()

    async def VerifyEmail(self, request: pb.VerifyEmailRequest, call: Call
                          ) -> pb.VerifyEmailResponse:
        return pb.VerifyEmailResponse(
            account=account_proto(await self._actions.verify_email(request.token)))

    async def SendVerificationEmail(self, request: pb.SendVerificationEmailRequest, call: Call
                                    ) -> pb.SendVerificationEmailResponse:
        await self._actions.resend_verification(call.principal, _account_id(request.name),
                                                client_of(call))
        return pb.SendVerificationEmailResponse()

    async def Login(self, request: pb.LoginRequest, call: Call) -> pb.LoginResponse:
        login = await self._actions.login(request.email, request.password, request.totp_code,
                                          request.recovery_code, client_of(call))
        return pb.LoginResponse(account=account_proto(login.account),
                                session=session_proto(login.session, login.session.session_id),
                                token=login.token)

    async def RequestPasswordReset(self, request: pb.RequestPasswordResetRequest, call: Call
                                   ) -> pb.RequestPasswordResetResponse:
        await self._actions.request_reset(request.email, client_of(call))
        return pb.RequestPasswordResetResponse()

    async def ResetPassword(self, request: pb.ResetPasswordRequest, call: Call
                            ) -> pb.ResetPasswordResponse:
        await self._actions.reset_password(request.token, request.new_password)
        return pb.ResetPasswordResponse()

    async def GetAccount(self, request: pb.GetAccountRequest, call: Call
                         ) -> pb.GetAccountResponse:
        account = await self._actions.get(call.principal, _account_id(request.name))
        return pb.GetAccountResponse(account=account_proto(account))

    async def StartTotpEnrollment(self, request: pb.StartTotpEnrollmentRequest, call: Call
                                  ) -> pb.StartTotpEnrollmentResponse:
        enrollment = await self._actions.start_totp(call.principal, _account_id(request.name))
        return pb.StartTotpEnrollmentResponse(secret=enrollment.secret,
                                              otpauth_uri=enrollment.uri,
                                              qr_code_svg=enrollment.qr_svg)

    async def ConfirmTotpEnrollment(self, request: pb.ConfirmTotpEnrollmentRequest, call: Call
                                    ) -> pb.ConfirmTotpEnrollmentResponse:
        account, codes = await self._actions.confirm_totp(
            call.principal, _account_id(request.name), request.code)
        return pb.ConfirmTotpEnrollmentResponse(account=account_proto(account),
                                                recovery_codes=codes)

    async def DisableTotp(self, request: pb.DisableTotpRequest, call: Call
                          ) -> pb.DisableTotpResponse:
        account = await self._actions.disable_totp(call.principal, _account_id(request.name),
                                                   request.code)
        return pb.DisableTotpResponse(account=account_proto(account))

    async def ListAccountSessions(self, request: pb.ListAccountSessionsRequest, call: Call
                                  ) -> pb.ListAccountSessionsResponse:
        account_id = _account_id(request.parent)
        page = await time_id_page(
            request.page_size, request.page_token, [request.parent, "sessions"],
            lambda limit, after: self._actions.list_sessions(call.principal, account_id,
                                                             limit, after),
            lambda s: (to_ms(s.create_time), s.session_id))
        current = _current(call)
        return pb.ListAccountSessionsResponse(
            sessions=[session_proto(s, current) for s in page.items],
            next_page_token=page.next_page_token)

    async def RevokeAccountSession(self, request: pb.RevokeAccountSessionRequest, call: Call
                                   ) -> pb.RevokeAccountSessionResponse:
        parts: list[Any] = request.name.split("/")
        session = await self._actions.revoke_session(call.principal, parts[1], parts[3])
        return pb.RevokeAccountSessionResponse(session=session_proto(session, _current(call)))

    async def ListLoginEvents(self, request: pb.ListLoginEventsRequest, call: Call
                              ) -> pb.ListLoginEventsResponse:
        account_id = _account_id(request.parent)
        page = await time_id_page(
            request.page_size, request.page_token, [request.parent, "loginEvents"],
            lambda limit, after: self._actions.login_events(call.principal, account_id,
                                                            limit, after),
            lambda e: (to_ms(e.time), e.event_id))
        return pb.ListLoginEventsResponse(
            login_events=[login_event_proto(e) for e in page.items],
            next_page_token=page.next_page_token)
