"""The gateway: what every CAAS RPC goes through before and after its servicer.

For each call, in order: a request id (the caller's `x-request-id` when sane, else
a new one); authentication of the `authorization` header; the RPC's access policy
from the contract (`caas.type.v1.access`); rate limits; validation against the
contract's rules; then the servicer. Domain errors become gRPC statuses with
`google.rpc.Status` details; so do store failures that are no bug (an outage, a full
disk: UNAVAILABLE with a retry delay); any other exception is logged with its stack
and reaches the client as INTERNAL with only the request id. Every response carries
`x-request-id` (initial and trailing metadata) and the rate-limit budget
(`x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`), and every call
writes one JSON access-log line.

Servicers are plain classes with one `async def Method(self, request, call)` per
unary RPC, and one async generator `def Method(self, request, call)` per
server-streaming RPC, registered with `Gateway.handlers`; `call` is a `Call`. A
stream is admitted like a unary call before anything is sent, then sends its initial
metadata with its first item, then one message per item. A drain (`start_draining`,
`unary_calls_done`, `end_streams`) refuses new calls with UNAVAILABLE, lets the unary
calls in flight finish, then ends running streams with UNAVAILABLE. A stream that
fails after it started ends, for a JSON caller, with an item holding only its `error`
(the status), since JSON over HTTP/1.1 has no trailers. Client-streaming and
bidirectional RPCs are not served.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import grpc
from caas.type.v1 import access_pb2
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor as pb_descriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from services.core.budget import Charge
from services.core.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
    QuotaViolation,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from services.core.metrics import Metrics
from services.core.principal import (
    Anonymous,
    AppBackend,
    Developer,
    Operator,
    Principal,
    User,
)
from services.core.settings import Plan
from services.core.tracing import from_metadata
from services.gateway.ratelimit import Bucket, RateLimiter, Verdict
from services.gateway.status import STATUS_DETAILS_KEY, internal_status, rpc_status
from services.gateway.validation import RequestValidator

access_log = logging.getLogger("caas.access")
LAST_ITEM_ATTEMPTS = 20  # a JSON stream's last item, while a cancelled write finishes
LAST_ITEM_WAIT_SECONDS = 0.005
error_log = logging.getLogger("caas.gateway")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
DRAIN_QUIET = 0.1  # seconds without a new call before a drain takes the queue as empty
DRAIN_POLL = 0.01
TRANSCODED_HEADER = "caas-transcoded"  # services/edge/guard.py sets it on JSON requests
_PRINCIPALS: dict[type[Any], int] = {
    Anonymous: access_pb2.PRINCIPAL_ANONYMOUS,
    Operator: access_pb2.PRINCIPAL_OPERATOR,
    AppBackend: access_pb2.PRINCIPAL_API_KEY,
    User: access_pb2.PRINCIPAL_USER,
    Developer: access_pb2.PRINCIPAL_DEVELOPER,
}
_KIND = {Anonymous: "anonymous", Operator: "operator", AppBackend: "api_key", User: "user",
         Developer: "developer"}
# The request field an HTTP rule's path takes the app from: `{parent=apps/*/…}`.
_APP_VARIABLE = re.compile(r"\{([a-z_.]+)=apps/")


def app_field(method: pb_descriptor.MethodDescriptor) -> tuple[str, ...]:
    """The path of the request field that names the RPC's app (`("app", "name")`), from
    its HTTP rule; () when the RPC names no app in its path."""
    rule: http_pb2.HttpRule = method.GetOptions().Extensions[annotations_pb2.http]
    path = getattr(rule, rule.WhichOneof("pattern") or "get", "")
    found = _APP_VARIABLE.search(path if isinstance(path, str) else "")
    return tuple(found.group(1).split(".")) if found else ()


def app_of(request: Any, field: tuple[str, ...]) -> str:
    """The app id named by the request's `field` ("" when absent or malformed)."""
    value = request
    for part in field:
        value = getattr(value, part, "")
    parts = value.split("/") if isinstance(value, str) else []
    return parts[1] if len(parts) > 1 and parts[0] == "apps" else ""


class Authenticator(Protocol):
    async def authenticate(self, credential: str | None) -> Principal:
        """The caller behind `credential` (the bearer value, None if absent).

        Raises Unauthenticated for credentials that do not check out.
        """


class PlanSource(Protocol):
    async def plan_of(self, app_id: str) -> Plan:
        """The rate-limit plan of an app (cached by the implementation)."""


@dataclass(frozen=True, slots=True)
class Call:
    """What a servicer knows about the call besides its request.

    `charge` counts the call against a user's budget the gateway could not know
    from the credentials alone: the user an API key signs in, or the user behind
    an anonymous refresh token (and that user's app, if not counted yet).
    """

    principal: Principal
    request_id: str
    method: str  # "caas.apps.v1.AppsService/GetApp"
    context: grpc.aio.ServicerContext[Any, Any]
    charge: Charge
    proxy_hops: int = 0  # trusted proxies in front of Envoy (services/gateway/callers.py)

    def user(self) -> User:
        """The calling user, for RPCs whose access policy admits only users."""
        assert isinstance(self.principal, User), "the access policy admits only users"
        return self.principal


class _CallState:
    """One call as the gateway sees it: who, and how it was counted against budgets."""

    def __init__(self, gateway: Gateway, method: str, request_id: str) -> None:
        self._gateway = gateway
        self._method = method
        self.request_id = request_id
        self.principal: Principal = Anonymous()
        self._app_counted = False
        self._tightest: Verdict | None = None
        self.started = False  # a stream that has sent its headers and first item
        self.audited = False  # its audit record is written

    async def charge(self, app_id: str, user_id: str | None) -> None:
        """Count the call against the user's budget, and the app's unless counted already;
        raise RESOURCE_EXHAUSTED if one is spent."""
        verdict = await self._gateway.consume(self._method, app_id, user_id,
                                              with_app=not self._app_counted)
        self._app_counted = True
        if (self._tightest is None or not verdict.allowed
                or verdict.remaining < self._tightest.remaining):
            self._tightest = verdict
        if not verdict.allowed:
            raise _rate_limited(self._method, verdict)

    async def charge_user(self, app_id: str, user_id: str | None) -> None:
        await self.charge(app_id, user_id)

    def headers(self) -> list[tuple[str, str]]:
        """The request id and the tightest budget charged so far."""
        budget = [] if self._tightest is None else _budget_headers(self._tightest)
        return [("x-request-id", self.request_id), *budget]


Handler = Callable[[Any, Call], Awaitable[Message]]
# A stream's items are messages, or messages serialized already (bytes): a stream
# sending one item to many clients encodes it once.
StreamHandler = Callable[[Any, Call], AsyncIterator[Message | bytes]]
_Result = TypeVar("_Result")


@dataclass(frozen=True, slots=True)
class Policy:
    """An RPC's `caas.type.v1.access` option: the principals it accepts, the scope an
    API key needs, and whether its calls go in the audit log."""

    principals: frozenset[int]
    api_key_scope: str
    audited: bool = False
    app_field: tuple[str, ...] = ()  # the request field naming the app (see `app_field`)

    @property
    def for_members(self) -> bool:
        """A developer may call it as an app's backend: it takes API keys (not
        developers as such) and names its app."""
        return (access_pb2.PRINCIPAL_API_KEY in self.principals and bool(self.app_field)
                and access_pb2.PRINCIPAL_DEVELOPER not in self.principals)


class Members(Protocol):
    async def acting_for(self, developer: Developer, app_id: str) -> AppBackend:
        """The developer as the backend of `app_id`, with the scopes of their role in
        its organization; raises PERMISSION_DENIED when they are no member."""


class AuditTrail(Protocol):
    """Where an audited RPC's calls are recorded (services/audit/recorder.py)."""

    async def record(self, method: str, principal: Principal, request: Any,
                     request_id: str, code: str, reason: str) -> None: ...


class Malformed:
    """Stands for a request whose bytes do not parse as its message type."""


MALFORMED = Malformed()


def _pass_bytes(serialize: Callable[[Message], bytes]) -> Callable[[Message | bytes], bytes]:
    def serialize_item(item: Message | bytes) -> bytes:
        return item if isinstance(item, bytes) else serialize(item)

    return serialize_item


def deserializer(message_class: type[Message]) -> Callable[[bytes], Message | Malformed]:
    """A request deserializer that does not raise: bytes that do not parse give
    `MALFORMED`, for the handler to refuse (grpcio would answer UNKNOWN and log a
    traceback)."""
    def parse(data: bytes) -> Message | Malformed:
        try:
            return message_class.FromString(data)
        except DecodeError:
            return MALFORMED

    return parse


def _headers(metadata: Any) -> tuple[str, str | None, bool]:
    """The request's `x-request-id` ("" if none), `authorization` header (None if
    none), and whether it came as JSON through Envoy (the edge guard's
    `caas-transcoded: json`), read without keeping the rest (a stream holds its frame
    for hours)."""
    request_id, authorization, transcoded = "", None, False
    for key, value in metadata or ():
        if key == "x-request-id" and isinstance(value, str):
            request_id = value
        elif key == "authorization" and isinstance(value, str):
            authorization = value
        elif key == TRANSCODED_HEADER:
            transcoded = value == "json"
    return request_id, authorization, transcoded


def _bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthenticated("CREDENTIALS_MALFORMED",
                              "the authorization header must be `Bearer <credential>`")
    return credential.strip()


class Gateway:
    def __init__(self, authenticator: Authenticator, limiter: RateLimiter, plans: PlanSource,
                 validator: RequestValidator,
                 store_outage: Callable[[BaseException], DomainError | None] = lambda _: None,
                 metrics: Metrics | None = None, tracer: Tracer | None = None,
                 audit: AuditTrail | None = None, members: Members | None = None,
                 proxy_hops: int = 0) -> None:
        """`store_outage` tells store failures that are no bug — an outage, a full disk —
        by the error to answer with (UNAVAILABLE, with a retry delay) from bugs (None:
        answered INTERNAL). With `tracer` (tracing on), server-streaming calls get
        their server spans here (see `_traced_stream`)."""
        self._tracer = tracer
        self._proxy_hops = proxy_hops
        self._audit = audit
        self._members = members
        self._store_outage = store_outage
        self._metrics = metrics  # None: metrics are not served, so not recorded
        self._authenticator = authenticator
        self._limiter = limiter
        self._plans = plans
        self._validator = validator
        self._draining = False
        self._streams: set[asyncio.Task[Any]] = set()  # running stream calls
        self._drained: set[asyncio.Task[Any]] = set()  # those cancelled by draining
        self._unary_calls = 0  # unary calls running
        self._count_call: Callable[[Principal, str, str], None] | None = None
        self._admission: Callable[[str, Principal, Any], Awaitable[None]] | None = None
        self._last_arrival = 0.0  # event-loop time of the latest call's arrival

    def check_admission(self, check: Callable[[str, Principal, Any], Awaitable[None]]) -> None:
        """Ask `check(method, principal, request)` before every valid call reaches its
        servicer: it raises to refuse (billing's hard caps)."""
        self._admission = check

    def count_calls(self, count: Callable[[Principal, str, str], None]) -> None:
        """Tell `count` of every call's end: its caller, method and status code's name
        (usage analytics; a dictionary update, not a write)."""
        self._count_call = count

    def start_draining(self) -> None:
        """From now on refuse new calls with UNAVAILABLE (and RetryInfo); calls already
        running go on."""
        self._draining = True

    async def unary_calls_done(self, deadline: float) -> bool:
        """Wait, until the event-loop time `deadline` at the latest, for the unary calls
        in flight to finish and for calls to stop arriving (each gets its UNAVAILABLE:
        calls gRPC received but had not handed over yet would be cancelled by the
        server's stop); whether that happened in time."""
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            if self._unary_calls == 0 and loop.time() - self._last_arrival >= DRAIN_QUIET:
                return True
            await asyncio.sleep(DRAIN_POLL)
        return False

    def end_streams(self) -> None:
        """End every running stream with UNAVAILABLE (its client resumes elsewhere, or
        here after a restart, from its last resume token)."""
        self._draining = True
        for task in self._streams:
            self._drained.add(task)
            task.cancel()

    def handlers(self, service: pb_descriptor.ServiceDescriptor, servicer: object
                 ) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """The method handlers of `service`, served by `servicer` through the gateway.

        Raises TypeError at startup if the servicer lacks a method or an RPC lacks
        its access policy, so a gap in a service never reaches a client.
        """
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for method in service.methods:
            implementation = getattr(servicer, method.name, None)
            if implementation is None:
                raise TypeError(f"{type(servicer).__name__} does not implement {method.name}")
            policy = method.GetOptions().Extensions[access_pb2.access]
            if not policy.allow:
                raise TypeError(f"{method.full_name} declares no caas.type.v1.access policy")
            if method.client_streaming:
                raise TypeError(f"{method.full_name}: client-streaming and bidirectional "
                                "RPCs are not served")
            name = f"{service.full_name}/{method.name}"
            if access_pb2.PRINCIPAL_API_KEY in policy.allow and not policy.api_key_scope:
                raise TypeError(f"{method.full_name} allows API keys but names no "
                                "api_key_scope")
            access = Policy(frozenset(policy.allow), policy.api_key_scope, policy.audited,
                            app_field(method))
            parse = deserializer(GetMessageClass(method.input_type))
            serialize = GetMessageClass(method.output_type).SerializeToString
            if method.server_streaming:
                handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                    self._server_stream(name, access, implementation,
                                        _error_item(method.output_type)),
                    request_deserializer=parse, response_serializer=_pass_bytes(serialize))
            else:
                handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                    self._unary(name, access, implementation),
                    request_deserializer=parse, response_serializer=serialize)
        return handlers

    def _unary(self, method: str, access: Policy, handler: Handler
               ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]]:
        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
            async def respond(call: Call, state: _CallState) -> Message:
                response = await handler(request, call)
                await context.send_initial_metadata(state.headers())
                return response

            self._unary_calls += 1
            try:
                return await self._serve(method, access, request, context, respond)
            finally:
                self._unary_calls -= 1

        if self._tracer is not None:
            return _traced(self._tracer, method, behavior)
        return behavior

    def _server_stream(self, method: str, access: Policy, handler: StreamHandler,
                       error_item: Callable[[status_pb2.Status], bytes]
                       ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]:
        # A coroutine that writes with `context.write` rather than an async generator
        # handler: it runs through the same `_serve` as a unary call, and each write
        # waits for flow control instead of buffering ahead of a slow client.
        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            async def respond(call: Call, state: _CallState) -> None:
                await self._relay(handler(request, call), context, state)

            await self._serve(method, access, request, context, respond, error_item)

        if self._tracer is not None:
            return _traced(self._tracer, method, behavior)
        return behavior

    async def _relay(self, items: AsyncIterator[Message | bytes],
                     context: grpc.aio.ServicerContext[Any, Any], state: _CallState) -> None:
        """Write `items` until they end, or until the gateway drains (UNAVAILABLE, even
        while waiting for the next item); close them however the stream ends, so their
        servicer can clean up.

        The headers go with the first item: a stream that fails before it (another
        user's stream, a bad resume token) is a trailers-only error, which Envoy turns
        into an HTTP error status for JSON callers.

        A drain cancels the stream's task (see `end_streams`) rather than racing
        every item against a drain event: the per-item cost stays one `anext` and one
        write, which matters on the fan-out path."""
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            if self._draining:
                raise _shutting_down("reconnect")
            async for item in items:
                if not state.started:
                    await context.send_initial_metadata(state.headers())
                    state.started = True
                await context.write(item)
                if self._draining:
                    raise _shutting_down("reconnect")
        except asyncio.CancelledError:
            raise self._after_cancel(task) from None
        except Exception:
            if not task.cancelling():
                raise  # the servicer failed
            # The cancellation reached the servicer, whose clean-up then failed (a store
            # or Redis call cut short): the outcome stays the cancellation.
            error_log.warning("a cancelled stream's clean-up failed", exc_info=True)
            raise self._after_cancel(task) from None
        finally:
            self._streams.discard(task)
            self._drained.discard(task)
            try:
                await _close(items)
            except Exception:
                if not task.cancelling():
                    raise
                error_log.warning("a cancelled stream's clean-up failed", exc_info=True)

    def _after_cancel(self, task: asyncio.Task[Any]) -> BaseException:
        """What a cancelled stream ends with: UNAVAILABLE when a drain cancelled it,
        else the cancellation (the client went away)."""
        if task in self._drained:
            task.uncancel()
            return _shutting_down("reconnect")
        return asyncio.CancelledError()

    async def _serve(self, method: str, access: Policy, request: Any,
                     context: grpc.aio.ServicerContext[Any, Any],
                     respond: Callable[[Call, _CallState], Awaitable[_Result]],
                     error_item: Callable[[status_pb2.Status], bytes] | None = None
                     ) -> _Result:
        """What every call shares: its request id, admission, `respond` (which sends the
        initial metadata), errors as statuses, and the access-log line at its end.

        A JSON stream (through Envoy) that fails after it started ends with
        `error_item(status)` before its status: JSON callers get no trailers."""
        started = time.perf_counter()
        self._last_arrival = asyncio.get_running_loop().time()
        request_id, authorization, transcoded = _headers(context.invocation_metadata())
        last_item = error_item if transcoded else None
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = secrets.token_hex(12)
        if access_log.isEnabledFor(logging.DEBUG):
            access_log.debug("rpc started", extra={"method": method, "request_id": request_id})
        state = _CallState(self, method, request_id)
        status, reason = "OK", ""
        metrics = self._metrics
        if metrics is not None:
            metrics.started(method)
        try:
            await self._admit(state, method, access, authorization, request)
            authorization = None  # not held for the life of a stream (a token: ~0.4 KiB)
            result = await respond(Call(state.principal, request_id, method, context,
                                        state.charge_user, self._proxy_hops), state)
            context.set_trailing_metadata((("x-request-id", request_id),))
            await self._audited(method, access, state, request, status, reason)
            return result
        except DomainError as error:
            status, reason = error.code.name, error.reason
            await self._audited(method, access, state, request, status, reason)
            await _end(context, state, error.code, error.message, rpc_status(error),
                       state.headers(), last_item)
            raise  # unreachable: abort raises
        except asyncio.CancelledError:
            status = "CANCELLED"  # the client went away, or the server stopped
            raise
        except Exception as failure:
            if context.cancelled():
                status = "CANCELLED"
                raise
            outage = self._store_outage(failure)
            if outage is not None:
                status, reason = outage.code.name, outage.reason
                await self._audited(method, access, state, request, status, reason)
                _log_outage(method, request_id, state.principal, outage, failure)
                await _end(context, state, outage.code, outage.message, rpc_status(outage),
                           state.headers(), last_item)
            status, reason = "INTERNAL", "INTERNAL"
            await self._audited(method, access, state, request, status, reason)
            error_log.exception("unexpected error in %s", method,
                                extra={"request_id": request_id, "method": method,
                                       **_app_of(state.principal)})
            code, message, details = internal_status(request_id)
            await _end(context, state, code, message, details,
                       [("x-request-id", request_id)], last_item)
            raise
        finally:
            await self._finish(method, state, access, request, (status, reason), started)

    async def _audited(self, method: str, access: Policy, state: _CallState, request: Any,
                       status: str, reason: str) -> None:
        """The call's audit record, if its RPC is audited: written before its answer
        (or its error) leaves, so that a client that has it can find the record."""
        if access.audited and self._audit is not None and not state.audited:
            state.audited = True
            await self._audit.record(method, state.principal, request, state.request_id,
                                     status, reason)

    async def _finish(self, method: str, state: _CallState, access: Policy, request: Any,
                      outcome: tuple[str, str], started: float) -> None:
        """A call's end (`outcome`: its status and error reason): its metrics, its
        access-log line, and its audit record if none was written (a call cancelled)."""
        status, reason = outcome
        if self._metrics is not None:
            self._metrics.finished(method, status, time.perf_counter() - started)
        if self._count_call is not None:
            self._count_call(state.principal, method, status)
        _log_access(method, status, started, state.request_id, state.principal)
        await self._audited(method, access, state, request, status, reason)

    async def _admit(self, state: _CallState, method: str, access: Policy,
                     authorization: str | None, request: Any) -> None:
        """Everything between the wire and the servicer; raises the first refusal."""
        if self._draining:
            raise _shutting_down("retry")
        # Credentials sent to an RPC that takes none (RefreshSession) are ignored: an
        # expired access token must not stop the call that renews it.
        if access.principals != {access_pb2.PRINCIPAL_ANONYMOUS}:
            state.principal = await self._authenticator.authenticate(_bearer(authorization))
        principal = state.principal
        if isinstance(principal, Developer) and access.for_members and (
                self._members is not None) and not isinstance(request, Malformed):
            # A developer on an app of their organization: its backend, with their
            # role's scopes (another app's name: APP_MISMATCH, as for a key).
            state.principal = principal = await self._members.acting_for(
                principal, app_of(request, access.app_field))
        self._check_policy(method, access, principal)
        if isinstance(principal, AppBackend | User):
            await state.charge(principal.app_id,
                               principal.user_id if isinstance(principal, User) else None)
        if isinstance(request, Malformed):
            raise InvalidArgument("REQUEST_MALFORMED", "the request body does not parse as "
                                  f"{method.rsplit('/', maxsplit=1)[-1]}Request")
        self._validator.check(request)
        if self._admission is not None:
            await self._admission(method, principal, request)

    @staticmethod
    def _check_policy(method: str, access: Policy, principal: Principal) -> None:
        if _PRINCIPALS[type(principal)] not in access.principals:
            if isinstance(principal, Anonymous):
                raise Unauthenticated("CREDENTIALS_MISSING",
                                      "this RPC needs credentials: `authorization: Bearer <…>`")
            raise PermissionDenied("PRINCIPAL_NOT_ALLOWED",
                                   f"{method} does not accept {_KIND[type(principal)]} "
                                   "credentials", metadata={"method": method})
        if isinstance(principal, AppBackend) and not principal.has_scope(access.api_key_scope):
            if principal.member_role:
                raise PermissionDenied(
                    "API_KEY_SCOPE_MISSING",
                    f"your role ({principal.member_role}) in the app's organization does "
                    f"not allow {method} (scope {access.api_key_scope!r})",
                    metadata={"scope": access.api_key_scope, "method": method,
                              "role": principal.member_role})
            raise PermissionDenied("API_KEY_SCOPE_MISSING",
                                   f"this API key lacks the scope {access.api_key_scope!r} "
                                   f"that {method} needs",
                                   metadata={"scope": access.api_key_scope, "method": method})

    async def consume(self, method: str, app_id: str, user_id: str | None, *,
                       with_app: bool) -> Verdict:
        """Count one call to `method` against the user's budget and, if `with_app`, the
        app's. (The operator is never limited; anonymous calls are charged by their
        servicer once it knows whose they are.)"""
        plan = await self._plans.plan_of(app_id)
        limit = plan.limit_for(method)
        tag = "{" + app_id + "}"
        buckets = []
        if with_app:
            buckets.append(Bucket(f"{tag}:{method}", limit.per_app, f"app:{app_id}"))
        if user_id is not None:
            buckets.append(Bucket(f"{tag}:{user_id}:{method}", limit.per_user,
                                  f"user:{app_id}/{user_id}"))
        verdict = await self._limiter.consume(buckets, time.time())
        if not verdict.allowed and self._metrics is not None:
            self._metrics.rate_limited.labels(plan.name or "unnamed").inc()
        return verdict


# Server span status: these codes are the server's failure (OpenTelemetry's gRPC rules).
_SERVER_FAULTS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL,
                            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})
R = TypeVar("R")
Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]


def _traced(tracer: Tracer, method: str, behavior: Behavior[R]) -> Behavior[R]:
    """An RPC's behaviour (unary, or a stream's whole life) in its server span, as
    OpenTelemetry's gRPC server instrumentation makes them (name, kind, `rpc.*`
    attributes, the caller's `traceparent` as parent, status from the gRPC code).

    Made here rather than by that instrumentation's interceptor, measured with
    bench/observability.py: any interceptor takes grpcio off its path for registered
    methods and wraps every call, which cost 16 % more server CPU per send even with
    1 % of traces sampled (about nothing here); and it cannot wrap the gateway's
    streams, which are coroutines that write, not async generators."""
    service, _, name = method.partition("/")
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        parent = from_metadata(context.invocation_metadata())
        with tracer.start_as_current_span(f"/{method}", parent, SpanKind.SERVER,
                                          attributes, record_exception=False,
                                          set_status_on_exception=False) as span:
            code = grpc.StatusCode.OK
            try:
                return await behavior(request, context)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = context.code() or grpc.StatusCode.UNKNOWN  # an abort set it
                raise
            finally:
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if code in _SERVER_FAULTS:
                    span.set_status(Status(StatusCode.ERROR, code.name))

    return traced


def _error_item(output: pb_descriptor.Descriptor) -> Callable[[status_pb2.Status], bytes]:
    """How a stream of `output` items says, as its last item, that it failed: the
    message with only its `error` (google.rpc.Status) field set.

    Raises TypeError at startup for a stream whose items have no such field."""
    field = output.fields_by_name.get("error")
    if field is None or field.message_type is None or (
            field.message_type.full_name != status_pb2.Status.DESCRIPTOR.full_name):
        raise TypeError(f"{output.full_name}: a streamed item needs a `google.rpc.Status "
                        "error` field to end a JSON stream that fails")
    item_class = GetMessageClass(output)

    def item(status: status_pb2.Status) -> bytes:
        message: Any = item_class()
        message.error.ParseFromString(status.SerializeToString())  # any descriptor pool
        return bytes(message.SerializeToString())

    return item


async def _end(context: grpc.aio.ServicerContext[Any, Any], state: _CallState,
               code: grpc.StatusCode, message: str, details: status_pb2.Status,
               headers: list[tuple[str, str]],
               last_item: Callable[[status_pb2.Status], bytes] | None) -> None:
    """End the call with a status (raises AbortError): `details` and `headers` in its
    trailers; a stream that started, of a JSON caller, writes `last_item(details)`
    first (a client already gone is no failure of ours)."""
    if last_item is not None and state.started:
        await _write_last(context, last_item(details))
    await context.abort(code, message, trailing_metadata=(
        *headers, (STATUS_DETAILS_KEY, details.SerializeToString())))


async def _write_last(context: grpc.aio.ServicerContext[Any, Any], item: bytes) -> None:
    """Write a JSON stream's last item. A write that a drain cancelled may still be in
    flight in gRPC's core, and a second write fails at once (TOO_MANY_OPERATIONS; its
    exception type is private to grpc's Cython layer): wait for it, briefly. Any other
    failure is a client already gone, no failure of ours."""
    for _ in range(LAST_ITEM_ATTEMPTS):
        try:
            await context.write(item)
            return
        except Exception as error:
            if "TOO_MANY_OPERATIONS" not in str(error):
                return
            await asyncio.sleep(LAST_ITEM_WAIT_SECONDS)


async def _close(items: AsyncIterator[Message | bytes]) -> None:
    """Close a servicer's stream so that it cleans up (a no-op once closed)."""
    if isinstance(items, AsyncGenerator):
        await items.aclose()


def _reset_seconds(verdict: Verdict) -> int:
    return max(1, math.ceil(verdict.reset_after))


def _budget_headers(verdict: Verdict) -> list[tuple[str, str]]:
    return [("x-ratelimit-limit", str(verdict.tightest.limit)),
            ("x-ratelimit-remaining", str(verdict.remaining)),
            ("x-ratelimit-reset", str(_reset_seconds(verdict)))]


def _shutting_down(advice: str) -> Unavailable:
    return Unavailable("UNAVAILABLE", f"the server is shutting down: {advice}",
                       retry_after=timedelta(seconds=1))


def _rate_limited(method: str, verdict: Verdict) -> ResourceExhausted:
    return rate_limited(f"rate limit of {method} exceeded", {"method": method},
                        f"calls per window to {method}", verdict)


def rate_limited(message: str, metadata: dict[str, str], budget: str, verdict: Verdict
                 ) -> ResourceExhausted:
    """RESOURCE_EXHAUSTED, RATE_LIMITED: which budgets ran out (QuotaFailure, "<limit>
    <budget>") and when to retry (RetryInfo)."""
    return ResourceExhausted(
        "RATE_LIMITED", f"{message}; retry in {_reset_seconds(verdict)} s",
        metadata=metadata,
        quota_violations=tuple(QuotaViolation(b.subject, f"{b.limit} {budget}")
                               for b in verdict.exhausted),
        retry_after=timedelta(seconds=verdict.reset_after),
    )


async def spend(limiter: RateLimiter, buckets: Sequence[Bucket], message: str,
                metadata: dict[str, str], budget: str) -> None:
    """Count one use against every bucket (if all have room); RESOURCE_EXHAUSTED,
    RATE_LIMITED (see `rate_limited`) when one is spent."""
    verdict = await limiter.consume(buckets, time.time())
    if not verdict.allowed:
        raise rate_limited(message, metadata, budget, verdict)


def _log_outage(method: str, request_id: str, principal: Principal, outage: DomainError,
                failure: BaseException) -> None:
    fields = {"request_id": request_id, "method": method, "reason": outage.reason,
              **_app_of(principal)}
    if outage.reason == "STORAGE_FULL":  # an operator's matter, no bug: no stack
        error_log.warning("storage full in %s: %s", method, failure, extra=fields)
    else:
        error_log.warning("store unavailable in %s", method, exc_info=failure, extra=fields)


def _app_of(principal: Principal) -> dict[str, str]:
    """The app of the caller, for a log line (none for the operator or anonymous)."""
    return {"app": principal.app_id} if isinstance(principal, AppBackend | User) else {}


def _log_access(method: str, status: str, started: float, request_id: str,
                principal: Principal) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "method": method, "code": status, "request_id": request_id,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "principal": _KIND[type(principal)],
    }
    if isinstance(principal, AppBackend | User):
        fields["app"] = principal.app_id
    if isinstance(principal, User):
        fields["user"] = principal.user_id
    access_log.info("rpc", extra=fields)
