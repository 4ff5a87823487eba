"""Local stand-ins for the push providers: APNs (its sandbox and production services)
and FCM's HTTP v1 API with Google's OAuth 2 token endpoint. Each is an HTTP/2 server
over TLS (ALPN `h2` only: a client that cannot speak HTTP/2 is refused, as APNs does)
on 127.0.0.1, in a thread of its own, so that tests in this process and a CAAS server
in another (trusting the certificate file of `provider_tls`) reach it alike.

They check what the real services check before anything is delivered — APNs: the ES256
provider token (signed by a trusted key, `kid` and `iss` matching, `iat` within the last
hour), the topic, push type, priority, expiration, collapse id and payload; the token
endpoint: the RS256 assertion of a known service account (signature, `kid`, audience,
scope, times); FCM: a bearer token the endpoint issued, still valid, and a well-formed
message — answering with the providers' documented errors. They record every request
(`ProviderRequest`: path, headers, body, what was answered) and answer a device token
as a test says (`answer`), 200 otherwise.

    tls, ca_file = provider_tls(tmp_path)
    with running_apns(tls) as apns, running_fcm(tls) as fcm:
        credentials = apns.new_credentials()  # a .p8 key APNs trusts
        account_json = fcm.new_service_account()  # token_uri: this stand-in
        apns.answer("ab12…", Answer(410, "Unregistered"))
        fcm.answer("tok", Answer(429, "QUOTA_EXCEEDED", retry_after=30), Answer(200))
        …
        apns.to("ab12…")  # the requests for that device token

A stand-in's time is its `clock` (time.time unless a test sets another).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset
from h2.exceptions import ProtocolError

from services.push.apns import ApnsCredentials
from tests.support.webhook_receiver import self_signed

APNS_MAX_BODY = 4096
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
CANONICAL = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
             503: "UNAVAILABLE"}
PUSH_TYPES = frozenset({"alert", "background", "voip", "complication", "fileprovider", "mdm",
                        "location", "liveactivity", "pushtotalk", "widgets", "controls"})
SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
HEX = re.compile(r"[0-9A-Fa-f]+")

Response = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Answer:
    """What to answer a device token: the status, the reason (APNs `reason`, FCM
    `errorCode`) and a `retry-after` header (seconds)."""

    status: int
    reason: str = ""
    retry_after: int | None = None


@dataclass(frozen=True)
class ProviderRequest:
    """One request a stand-in got, and what it answered."""

    service: str  # "sandbox" or "production" (APNs), "fcm", "oauth" (the token endpoint)
    connection: int  # the HTTP/2 connection it came on (numbered from 1 per stand-in)
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; no pseudo-headers
    body: bytes
    status: int
    reason: str  # APNs reason, FCM errorCode or status, OAuth error; "" when accepted

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def token(self) -> str:
        """The device token it was for (APNs: from the path; FCM: the message's)."""
        if self.path.startswith("/3/device/"):
            return self.path.removeprefix("/3/device/")
        try:
            message = self.json()["message"]
            return str(message["token"])
        except (ValueError, KeyError, TypeError):
            return ""


def provider_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 (a fresh self-signed certificate, TLS 1.2 or
    later, ALPN `h2` only), and the certificate's file: the CA file a client trusts."""
    context, certificate = self_signed(directory)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    return context, certificate


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """A compact JWS's header, claims, signing input and signature; ValueError if it is
    not one. (Written here, not with PyJWT, which the senders sign with.)"""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    try:
        header, claims = json.loads(_unb64url(parts[0])), json.loads(_unb64url(parts[1]))
        signature = _unb64url(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a JWT") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a JWT")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature


def _es256_signed(signing_input: bytes, signature: bytes,
                  key: ec.EllipticCurvePublicKey) -> bool:
    if len(signature) != 64:  # r and s, 32 bytes each (RFC 7518 §3.4), not DER
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _rs256_signed(signing_input: bytes, signature: bytes, key: rsa.RSAPublicKey) -> bool:
    try:
        key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Http2(asyncio.Protocol):
    """One server connection: HTTP/2 frames in, each complete request handed to the
    stand-in, its answer sent back on the stream."""

    def __init__(self, stand_in: _StandIn, service: str) -> None:
        self._stand_in = stand_in
        self._service = service
        self._connection = 0
        self._h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self._streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            self._stand_in._refused()  # HTTP/1.1 only: APNs closes such connections
            transport.close()
            return
        self._connection = self._stand_in._connected(transport)
        self._h2.initiate_connection()
        transport.write(self._h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        if self._transport is None or not self._connection:
            return
        try:
            events = self._h2.receive_data(data)
        except ProtocolError:
            self._transport.write(self._h2.data_to_send())
            self._transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived) and event.stream_id is not None:
                headers = {_text(name): _text(value) for name, value in event.headers or []}
                self._streams[event.stream_id] = (headers, bytearray())
            elif isinstance(event, DataReceived) and event.stream_id in self._streams:
                self._streams[event.stream_id][1].extend(event.data or b"")
                self._h2.acknowledge_received_data(event.flow_controlled_length or 0,
                                                   event.stream_id)
            elif isinstance(event, StreamEnded) and event.stream_id in self._streams:
                self._respond(event.stream_id, *self._streams.pop(event.stream_id))
            elif isinstance(event, StreamReset) and event.stream_id is not None:
                self._streams.pop(event.stream_id, None)
            elif isinstance(event, ConnectionTerminated):
                self._transport.close()
        self._transport.write(self._h2.data_to_send())

    def _respond(self, stream_id: int, headers: dict[str, str], body: bytearray) -> None:
        status, answer_headers, answer = self._stand_in._request(
            self._service, self._connection, headers, bytes(body))
        self._h2.send_headers(stream_id, [(":status", str(status)),
                                          ("content-length", str(len(answer))),
                                          *answer_headers.items()],
                              end_stream=not answer)
        if answer:
            self._h2.send_data(stream_id, answer, end_stream=True)


class _StandIn:
    """What both stand-ins share: the server thread, the records, the answers set."""

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time
        self.refused_connections = 0  # connections that did not negotiate HTTP/2
        self._changed = threading.Condition()
        self._requests: list[ProviderRequest] = []
        self._answers: dict[str, list[Answer]] = {}
        self._connections: list[asyncio.Transport] = []
        self._urls: dict[str, str] = {}

    # What tests use.

    def answer(self, token: str, *answers: Answer) -> None:
        """Answer the requests for `token` with `answers`, one each, the last one for
        all those after; none: as usual again (200)."""
        with self._changed:
            if answers:
                self._answers[token] = list(answers)
            else:
                self._answers.pop(token, None)

    @property
    def requests(self) -> list[ProviderRequest]:
        with self._changed:
            return list(self._requests)

    def to(self, token: str) -> list[ProviderRequest]:
        """The requests for device token `token`, in arrival order."""
        return [request for request in self.requests if request.token == token]

    async def wait(self, done: Callable[[list[ProviderRequest]], bool],
                   within: float = 30) -> list[ProviderRequest]:
        """All the requests once `done` holds for them (another process sending);
        AssertionError after `within` seconds."""

        def until() -> list[ProviderRequest]:
            with self._changed:
                ok = self._changed.wait_for(lambda: done(list(self._requests)), within)
                got = list(self._requests)
            assert ok, f"{len(got)} requests, not what was awaited"
            return got

        return await asyncio.to_thread(until)

    # The server side.

    def _next_answer(self, token: str) -> Answer | None:
        with self._changed:
            queue = self._answers.get(token)
            if not queue:
                return None
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _refused(self) -> None:
        with self._changed:
            self.refused_connections += 1

    def _connected(self, transport: asyncio.Transport) -> int:
        with self._changed:
            self._connections.append(transport)
            return len(self._connections)

    def _request(self, service: str, connection: int, headers: dict[str, str],
                 body: bytes) -> Response:
        method, path = headers.get(":method", ""), headers.get(":path", "")
        plain = {name: value for name, value in headers.items() if not name.startswith(":")}
        status, answer_headers, answer = self._handle(service, method, path, plain, body)
        reason = ""
        if status >= 300 and answer:
            reason = self._reason_of(json.loads(answer))
        with self._changed:
            self._requests.append(ProviderRequest(service, connection, method, path, plain,
                                                  body, status, reason))
            self._changed.notify_all()
        return status, answer_headers, answer

    def _handle(self, service: str, method: str, path: str, headers: dict[str, str],
                body: bytes) -> Response:
        raise NotImplementedError

    def _reason_of(self, answer: Any) -> str:
        raise NotImplementedError

    @contextmanager
    def _serving(self, tls: ssl.SSLContext, host: str, ports: dict[str, int]
                 ) -> Iterator[None]:
        """Listen on `ports` (service: port, 0 for a free one) in a thread of its own."""
        loop = asyncio.new_event_loop()
        servers: list[asyncio.Server] = []
        started = threading.Event()
        failure: list[BaseException] = []

        async def start() -> None:
            for service, port in ports.items():
                server = await loop.create_server(partial(_Http2, self, service), host, port,
                                                  ssl=tls)
                servers.append(server)
                self._urls[service] = f"https://{host}:{server.sockets[0].getsockname()[1]}"

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(start())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        async def stop() -> None:
            for server in servers:
                server.close()
            with self._changed:
                connections = list(self._connections)
            for transport in connections:
                transport.close()
            for server in servers:
                await server.wait_closed()

        thread = threading.Thread(target=run, name="push-provider", daemon=True)
        thread.start()
        started.wait()
        if failure:
            loop.close()
            raise failure[0]
        try:
            yield
        finally:
            asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def _apns_error(status: int, reason: str, retry_after: int | None = None,
                timestamp: float | None = None) -> Response:
    body: dict[str, object] = {"reason": reason}
    if timestamp is not None:
        body["timestamp"] = int(timestamp * 1000)
    headers = {"content-type": "application/json", "apns-id": str(uuid.uuid4())}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return status, headers, json.dumps(body).encode()


def apns_credentials(topic: str = "com.example.caas", team_id: str = "TEAM000001",
                     key_id: str | None = None) -> ApnsCredentials:
    """A new APNs key (P-256, as the `.p8` file Apple hands out: PKCS#8 PEM) with a key
    id of its own; no stand-in trusts it until `ApnsStandIn.trust`."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    key_id = key_id or secrets.token_hex(5).upper()
    return ApnsCredentials(key_id=key_id, team_id=team_id, topic=topic, private_key_pem=pem)


@dataclass
class _ApnsKey:
    team_id: str
    public_key: ec.EllipticCurvePublicKey
    topics: set[str] = field(default_factory=set)


class ApnsStandIn(_StandIn):
    """APNs: `POST /3/device/<token>` on `sandbox_url` and `production_url` (each
    request's `service` says which), authorized by provider tokens of trusted keys."""

    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[str, _ApnsKey] = {}

    @property
    def sandbox_url(self) -> str:
        return self._urls["sandbox"]

    @property
    def production_url(self) -> str:
        return self._urls["production"]

    def trust(self, credentials: ApnsCredentials) -> None:
        """Take the provider tokens of `credentials`' key, for its team and topic (as
        uploading the key in Apple's developer account does)."""
        key = serialization.load_pem_private_key(credentials.private_key_pem.encode(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        with self._changed:
            known = self._keys.setdefault(credentials.key_id,
                                          _ApnsKey(credentials.team_id, key.public_key()))
            known.topics.add(credentials.topic)

    def new_credentials(self, topic: str = "com.example.caas",
                        team_id: str = "TEAM000001") -> ApnsCredentials:
        """A new key, trusted."""
        credentials = apns_credentials(topic, team_id)
        self.trust(credentials)
        return credentials

    def _reason_of(self, answer: Any) -> str:
        return str(answer.get("reason", ""))

    def _authorized(self, authorization: str) -> tuple[_ApnsKey | None, Response | None]:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, _apns_error(403, "MissingProviderToken")
        try:
            header, claims, signing_input, signature = _jwt(token)
        except ValueError:
            return None, _apns_error(403, "InvalidProviderToken")
        with self._changed:
            key = self._keys.get(str(header.get("kid")))
        if (key is None or header.get("alg") != "ES256"
                or not _es256_signed(signing_input, signature, key.public_key)):
            return None, _apns_error(403, "InvalidProviderToken")
        if claims.get("iss") != key.team_id:
            return None, _apns_error(403, "InvalidProviderToken")
        issued, now = claims.get("iat"), self.clock()
        if not isinstance(issued, int) or issued > now + 60:
            return None, _apns_error(403, "InvalidProviderToken")
        if issued < now - 3600:
            return None, _apns_error(403, "ExpiredProviderToken")
        return key, None

    def _handle(self, service: str, method: str, path: str, headers: dict[str, str],
                body: bytes) -> Response:
        if not path.startswith("/3/device/"):
            return _apns_error(404, "BadPath")
        if method != "POST":
            return _apns_error(405, "MethodNotAllowed")
        key, refused = self._authorized(headers.get("authorization", ""))
        if refused is not None or key is None:
            return refused or _apns_error(403, "InvalidProviderToken")
        token = path.removeprefix("/3/device/")
        refusal = self._refusal(token, key, headers, body)
        if refusal:
            return _apns_error(413 if refusal == "PayloadTooLarge" else 400, refusal)
        answer = self._next_answer(token) or Answer(200)
        if answer.status != 200:
            gone_at = self.clock() if answer.status == 410 else None
            return _apns_error(answer.status, answer.reason, answer.retry_after, gone_at)
        return 200, {"apns-id": headers.get("apns-id") or str(uuid.uuid4())}, b""

    def _refusal(self, token: str, key: _ApnsKey, headers: dict[str, str],
                 body: bytes) -> str:
        """The reason APNs would refuse this request for, if any."""
        push_type, priority = headers.get("apns-push-type"), headers.get("apns-priority", "10")
        reason = ""
        if not token:
            reason = "MissingDeviceToken"
        elif not HEX.fullmatch(token):
            reason = "BadDeviceToken"
        elif "apns-topic" not in headers:
            reason = "MissingTopic"
        elif headers["apns-topic"] not in key.topics:
            reason = "TopicDisallowed"
        elif push_type not in PUSH_TYPES:
            reason = "InvalidPushType"
        elif priority not in ("1", "5", "10") or (push_type == "background"
                                                  and priority == "10"):
            reason = "BadPriority"
        elif not headers.get("apns-expiration", "0").isdigit():
            reason = "BadExpirationDate"
        elif len(headers.get("apns-collapse-id", "").encode()) > 64:
            reason = "BadCollapseId"
        elif "apns-id" in headers and not _is_uuid(headers["apns-id"]):
            reason = "BadMessageId"
        elif not body:
            reason = "PayloadEmpty"
        elif len(body) > APNS_MAX_BODY:
            reason = "PayloadTooLarge"
        elif not _has_aps(body):
            reason = "BadPayload"  # not a reason Apple documents: a body it cannot read
        return reason


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def _has_aps(body: bytes) -> bool:
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and isinstance(payload.get("aps"), dict)


def service_account_json(token_uri: str, project_id: str = "caas-test",
                         client_email: str | None = None) -> str:
    """A Google service account's JSON key file with a new RSA 2048 key; no stand-in
    knows it until `FcmStandIn.trust`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    email = client_email or f"push-{secrets.token_hex(4)}@{project_id}.iam.gserviceaccount.com"
    return json.dumps({
        "type": "service_account", "project_id": project_id,
        "private_key_id": secrets.token_hex(20), "private_key": pem, "client_email": email,
        "client_id": str(secrets.randbelow(10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + email,
        "universe_domain": "googleapis.com"})


@dataclass(frozen=True)
class _Account:
    project_id: str
    private_key_id: str
    public_key: rsa.RSAPublicKey


@dataclass(frozen=True)
class _AccessToken:
    client_email: str
    project_id: str
    expires: float


def _fcm_error(status: int, message: str, error_code: str = "",
               retry_after: int | None = None) -> Response:
    error: dict[str, object] = {"code": status, "message": message,
                                "status": CANONICAL.get(status, "UNKNOWN")}
    if error_code:
        error["details"] = [{"@type": FCM_ERROR, "errorCode": error_code}]
    headers = {"content-type": "application/json; charset=UTF-8"}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return status, headers, json.dumps({"error": error}).encode()


def _oauth_error(error: str, description: str) -> Response:
    return 400, {"content-type": "application/json; charset=utf-8"}, json.dumps(
        {"error": error, "error_description": description}).encode()


class FcmStandIn(_StandIn):
    """FCM's HTTP v1 `messages:send` at `url`, and the OAuth 2 token endpoint at
    `token_uri` (the same server), for the service accounts it knows."""

    def __init__(self) -> None:
        super().__init__()
        self.token_lifetime = 3600  # seconds an access token is good for
        self._accounts: dict[str, _Account] = {}
        self._tokens: dict[str, _AccessToken] = {}
        self._message_ids = itertools.count(1)

    @property
    def url(self) -> str:
        return self._urls["fcm"]

    @property
    def token_uri(self) -> str:
        return f"{self._urls['fcm']}/token"

    def trust(self, account_json: str) -> None:
        """Know a service account (as Google knows the keys it made)."""
        account = json.loads(account_json)
        key = serialization.load_pem_private_key(account["private_key"].encode(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        with self._changed:
            self._accounts[account["client_email"]] = _Account(
                account["project_id"], account["private_key_id"], key.public_key())

    def new_service_account(self, project_id: str = "caas-test") -> str:
        """A new service account's JSON key file, known, its `token_uri` this stand-in."""
        account = service_account_json(self.token_uri, project_id)
        self.trust(account)
        return account

    def revoke_tokens(self) -> None:
        """Make every access token issued so far invalid (FCM answers 401 to them)."""
        with self._changed:
            self._tokens.clear()

    @property
    def token_requests(self) -> list[ProviderRequest]:
        return [request for request in self.requests if request.service == "oauth"]

    def _reason_of(self, answer: Any) -> str:
        if "error" in answer and isinstance(answer["error"], str):
            return str(answer["error"])
        error = answer.get("error", {})
        for detail in error.get("details", []):
            return str(detail.get("errorCode", ""))
        return str(error.get("status", ""))

    def _request(self, service: str, connection: int, headers: dict[str, str],
                 body: bytes) -> Response:
        is_token = headers.get(":path", "").split("?")[0] == "/token"
        return super()._request("oauth" if is_token else service, connection, headers, body)

    def _handle(self, service: str, method: str, path: str, headers: dict[str, str],
                body: bytes) -> Response:
        if service == "oauth":
            return self._token_endpoint(method, headers, body)
        match = SEND_PATH.fullmatch(path)
        if match is None or method != "POST":
            return _fcm_error(404, f"{method} {path}: not found")
        token = self._access(headers.get("authorization", ""))
        if token is None:
            return _fcm_error(401, "Request had invalid authentication credentials. "
                                   "Expected OAuth 2 access token, login cookie or other "
                                   "valid authentication credential.")
        if token.project_id != match[1]:
            return _fcm_error(403, "Permission 'cloudmessaging.messages.create' denied on "
                                   f"resource '//cloudresourcemanager.googleapis.com/"
                                   f"projects/{match[1]}'")
        problem, device = _message_problem(body)
        if problem:
            return _fcm_error(400, problem, "INVALID_ARGUMENT")
        answer = self._next_answer(device) or Answer(200)
        if answer.status != 200:
            return _fcm_error(answer.status, f"{answer.reason or 'error'} (stand-in)",
                              answer.reason, answer.retry_after)
        name = f"projects/{match[1]}/messages/0:{next(self._message_ids)}"
        return 200, {"content-type": "application/json; charset=UTF-8"}, json.dumps(
            {"name": name}).encode()

    def _access(self, authorization: str) -> _AccessToken | None:
        scheme, _, value = authorization.partition(" ")
        with self._changed:
            token = self._tokens.get(value) if scheme.lower() == "bearer" else None
        return token if token is not None and token.expires > self.clock() else None

    def _token_endpoint(self, method: str, headers: dict[str, str], body: bytes) -> Response:
        if method != "POST" or not headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            return _oauth_error("invalid_request", "a form-encoded POST is expected")
        form = parse_qs(body.decode())
        if form.get("grant_type") != [JWT_BEARER]:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type")
        try:
            header, claims, signing_input, signature = _jwt(form.get("assertion", [""])[0])
        except ValueError:
            return _oauth_error("invalid_grant", "Invalid JWT: not a JWT")
        with self._changed:
            account = self._accounts.get(str(claims.get("iss")))
        if (account is None or header.get("alg") != "RS256"
                or header.get("kid", account.private_key_id) != account.private_key_id
                or not _rs256_signed(signing_input, signature, account.public_key)):
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != self.token_uri:
            return _oauth_error("invalid_grant", "Invalid JWT: audience")
        if FCM_SCOPE not in str(claims.get("scope", "")).split():
            return _oauth_error("invalid_scope", "firebase.messaging is not in the scope")
        issued, expires, now = claims.get("iat"), claims.get("exp"), self.clock()
        if (not isinstance(issued, int) or not isinstance(expires, int)
                or issued > now + 60 or expires <= now or expires - issued > 3600):
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived "
                                                 "token (60 minutes) and in a reasonable "
                                                 "timeframe.")
        access = f"ya29.{secrets.token_urlsafe(32)}"
        with self._changed:
            self._tokens[access] = _AccessToken(str(claims["iss"]), account.project_id,
                                                now + self.token_lifetime)
        return 200, {"content-type": "application/json; charset=utf-8"}, json.dumps(
            {"access_token": access, "expires_in": self.token_lifetime - 1,
             "token_type": "Bearer"}).encode()


def _message_problem(body: bytes) -> tuple[str, str]:
    """What FCM would refuse in a `messages:send` body (or ""), and the message's
    registration token."""
    try:
        message = json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        return "Invalid JSON payload received.", ""
    if not isinstance(message, dict):
        return "message: not an object", ""
    token = message.get("token")
    if not isinstance(token, str) or not token:
        return "message: one target (token, topic or condition) is required", ""
    data = message.get("data", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return "data: values must be strings", token
    if any(k in ("from", "message_type") or k.startswith(("google", "gcm")) for k in data):
        return "data: a key is a reserved word", token
    android = message.get("android", {})
    if not isinstance(android, dict):
        return "android: not an object", token
    if android.get("priority", "normal") not in ("normal", "high"):
        return "android.priority: normal or high", token
    if not re.fullmatch(r"\d+(\.\d{1,9})?s", str(android.get("ttl", "0s"))):
        return "android.ttl: a duration such as 3.5s", token
    notification = message.get("notification", {})
    if not isinstance(notification, dict) or not all(
            isinstance(v, str) for v in notification.values()):
        return "notification: title and body are strings", token
    size = len(json.dumps({k: message.get(k) for k in ("data", "notification")},
                          separators=(",", ":"), ensure_ascii=False).encode())
    if size > 4096:
        return "Message is too big", token
    return "", token


@contextmanager
def running_apns(tls: ssl.SSLContext, host: str = "127.0.0.1", sandbox_port: int = 0,
                 production_port: int = 0) -> Iterator[ApnsStandIn]:
    """An APNs stand-in serving the sandbox and production services on two ports (free
    ones unless given), with `tls` (see `provider_tls`)."""
    apns = ApnsStandIn()
    with apns._serving(tls, host, {"sandbox": sandbox_port, "production": production_port}):
        yield apns


@contextmanager
def running_fcm(tls: ssl.SSLContext, host: str = "127.0.0.1",
                port: int = 0) -> Iterator[FcmStandIn]:
    """An FCM stand-in (and its token endpoint) on `port` (a free one unless given),
    with `tls` (see `provider_tls`)."""
    fcm = FcmStandIn()
    with fcm._serving(tls, host, {"fcm": port}):
        yield fcm
