"""caas.auth.v1.AuthService: protobuf in, domain calls, protobuf out — nothing else."""

from __future__ import annotations

from caas.auth.v1 import auth_service_pb2 as pb
from caas.auth.v1 import resources_pb2 as res

from services.auth import tokens
from services.auth.actions import AuthActions, Credentials
from services.auth.models import RevokeReason, Session, SessionState, SigningKey
from services.core.clock import Clock
from services.core.names import parse_app, parse_session, parse_user, session_name, signing_key_name
from services.core.protoconv import duration_or_none, timestamp
from services.gateway.callers import client_of
from services.gateway.gateway import Call
from services.users.servicer import user_proto

_STATES = {SessionState.ACTIVE: res.Session.STATE_ACTIVE,
           SessionState.REVOKED: res.Session.STATE_REVOKED,
           SessionState.EXPIRED: res.Session.STATE_EXPIRED}
_REASONS = {RevokeReason.SIGNED_OUT: res.Session.REVOKE_REASON_SIGNED_OUT,
            RevokeReason.REVOKED_BY_APP: res.Session.REVOKE_REASON_REVOKED_BY_APP,
            RevokeReason.REFRESH_TOKEN_REUSED: res.Session.REVOKE_REASON_REFRESH_TOKEN_REUSED}


def session_proto(session: Session, clock: Clock) -> res.Session:
    return res.Session(
        name=session_name(session.app_id, session.user_id, session.session_id),
        device_name=session.device_name, state=_STATES[session.state(clock.now())],
        create_time=timestamp(session.create_time), refresh_time=timestamp(session.refresh_time),
        expire_time=timestamp(session.expire_time), revoke_time=timestamp(session.revoke_time),
        revoke_reason=(res.Session.REVOKE_REASON_UNSPECIFIED if session.revoke_reason is None
                       else _REASONS[session.revoke_reason]),
        end_time=timestamp(session.end_time))


def credentials_proto(credentials: Credentials) -> res.Credentials:
    return res.Credentials(
        access_token=credentials.access_token,
        access_token_expire_time=timestamp(credentials.access_token_expire_time),
        refresh_token=credentials.refresh_token,
        refresh_token_expire_time=timestamp(credentials.refresh_token_expire_time))


def signing_key_proto(key: SigningKey) -> res.SigningKey:
    return res.SigningKey(
        name=signing_key_name(key.app_id, key.key_id), algorithm=tokens.ALGORITHM,
        public_jwk=tokens.public_jwk(key),
        state=res.SigningKey.STATE_PRIMARY if key.primary else res.SigningKey.STATE_VERIFY_ONLY,
        create_time=timestamp(key.create_time), expire_time=timestamp(key.expire_time))


class AuthServicer:
    def __init__(self, actions: AuthActions, clock: Clock) -> None:
        self._actions = actions
        self._clock = clock

    async def CreateSession(self, request: pb.CreateSessionRequest, call: Call
                            ) -> pb.CreateSessionResponse:
        app_id, user_id = parse_user(request.parent)
        session, credentials = await self._actions.do_create_session(
            call.principal, app_id, user_id, request.session.device_name,
            duration_or_none(request, "access_token_ttl"), call.charge)
        return pb.CreateSessionResponse(session=session_proto(session, self._clock),
                                        credentials=credentials_proto(credentials))

    async def CreateGuestSession(self, request: pb.CreateGuestSessionRequest, call: Call
                                 ) -> pb.CreateGuestSessionResponse:
        guest, session, credentials = await self._actions.do_create_guest_session(
            parse_app(request.parent, "parent"), request.display_name, request.device_name,
            client_of(call).ip_address, call.charge)
        return pb.CreateGuestSessionResponse(user=user_proto(guest),
                                             session=session_proto(session, self._clock),
                                             credentials=credentials_proto(credentials))

    async def RefreshSession(self, request: pb.RefreshSessionRequest, call: Call
                             ) -> pb.RefreshSessionResponse:
        session, credentials = await self._actions.do_refresh_session(request.refresh_token,
                                                                       call.charge)
        return pb.RefreshSessionResponse(session=session_proto(session, self._clock),
                                         credentials=credentials_proto(credentials))

    async def GetSession(self, request: pb.GetSessionRequest, call: Call
                         ) -> pb.GetSessionResponse:
        session = await self._actions.get_session(call.principal, *parse_session(request.name))
        return pb.GetSessionResponse(session=session_proto(session, self._clock))

    async def ListSessions(self, request: pb.ListSessionsRequest, call: Call
                           ) -> pb.ListSessionsResponse:
        app_id, user_id = parse_user(request.parent)
        page = await self._actions.list_sessions(call.principal, app_id, user_id,
                                                 request.page_size, request.page_token)
        return pb.ListSessionsResponse(
            sessions=[session_proto(s, self._clock) for s in page.items],
            next_page_token=page.next_page_token)

    async def RevokeSession(self, request: pb.RevokeSessionRequest, call: Call
                            ) -> pb.RevokeSessionResponse:
        session = await self._actions.do_revoke_session(call.principal,
                                                        *parse_session(request.name))
        return pb.RevokeSessionResponse(session=session_proto(session, self._clock))

    async def RotateSigningKey(self, request: pb.RotateSigningKeyRequest, call: Call
                               ) -> pb.RotateSigningKeyResponse:
        key = await self._actions.do_rotate_signing_key(call.principal,
                                                        parse_app(request.parent, "parent"))
        return pb.RotateSigningKeyResponse(signing_key=signing_key_proto(key))

    async def ListSigningKeys(self, request: pb.ListSigningKeysRequest, call: Call
                              ) -> pb.ListSigningKeysResponse:
        keys = await self._actions.list_signing_keys(call.principal,
                                                     parse_app(request.parent, "parent"))
        return pb.ListSigningKeysResponse(signing_keys=[signing_key_proto(k) for k in keys])
