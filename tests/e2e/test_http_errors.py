"""Errors at the edge, through Envoy, whichever layer answers — the transcoder, the body
limit, the gRPC-Web filter, the route table, the edge guard or the server: a JSON caller
gets a `google.rpc.Status` body with the matching HTTP status, a gRPC or gRPC-Web caller
a client-error status with its details, and nothing malformed reaches the server as a
fault (no 5xx, no gRPC core error in its log)."""

from __future__ import annotations

import base64
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from google.rpc import error_details_pb2, status_pb2

from tests.conftest import AppHandle
from tests.e2e.test_http import auth, error_body, json_items, ok
from tests.support.chat import Person
from tests.support.servers import CaasServer, start_caas

JSON = {"content-type": "application/json"}
GRPC_CORE_LOG = re.compile(r"^[EW]\d{4} \d")  # gRPC core's own log lines: E1203 02:05:…


def violations(body: dict[str, Any]) -> list[dict[str, str]]:
    return [v for d in body.get("details", []) if d["@type"].endswith("google.rpc.BadRequest")
            for v in d["fieldViolations"]]


def assert_status_body(response: httpx.Response, http_status: int, code: int,
                       reason: str) -> dict[str, Any]:
    """The answer is `http_status` with a google.rpc.Status JSON body of `code` and
    `reason`; returns the body."""
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"] == "application/json", response.text
    got_code, got_reason, body = error_body(response)
    assert (got_code, got_reason) == (code, reason), body
    assert set(body) == {"code", "message", "details"} and body["message"]
    assert "Traceback" not in response.text
    return body


# (case, method, path under /v1/<app or conversation>…, request options, HTTP status,
#  gRPC code, reason, the field a BadRequest violation names or None)
JSON_CASES: list[tuple[str, str, str, dict[str, Any], int, int, str, str | None]] = [
    ("truncated body", "POST", "{conversation}/messages",
     {"content": b'{"text": "hi", ', "params": {"request_id": "r1"}},
     400, 3, "REQUEST_MALFORMED", None),
    ("trailing garbage", "POST", "{conversation}/messages",
     {"content": b'{"text": "hi"} and more', "params": {"request_id": "r1"}},
     400, 3, "REQUEST_MALFORMED", None),
    ("wrong type", "POST", "{conversation}/messages",
     {"content": b'{"text": 5}', "params": {"request_id": "r1"}},
     400, 3, "REQUEST_MALFORMED", "message.text"),
    ("unknown enum name", "POST", "{app}/conversations",
     {"content": b'{"kind": "KIND_FOO"}'}, 400, 3, "REQUEST_MALFORMED", "conversation.kind"),
    ("a list for an object", "POST", "{app}/conversations", {"content": b"[1]"},
     400, 3, "REQUEST_MALFORMED", ""),
    ("an object for a string", "POST", "{conversation}/messages",
     {"content": b'{"text": {"a": 1}}', "params": {"request_id": "r1"}},
     400, 3, "REQUEST_MALFORMED", "message"),
    ("not UTF-8", "POST", "{conversation}/messages",
     {"content": b'{"text": "\xff\xfe"}', "params": {"request_id": "r1"}},
     400, 3, "REQUEST_MALFORMED", None),
    ("unknown query parameter", "GET", "{user}/conversations", {"params": {"foo": "1"}},
     400, 3, "REQUEST_MALFORMED", "foo"),
    ("a query value of the wrong type", "GET", "{user}/conversations",
     {"params": {"page_size": "many"}}, 400, 3, "REQUEST_MALFORMED", "page_size"),
    ("a query parameter sent in the body", "POST", "{conversation}/messages",
     {"content": b'{"text": "hi", "requestId": "r1"}'}, 400, 3, "REQUEST_MALFORMED",
     "requestId"),
    ("a body over the limit", "POST", "{conversation}/messages",
     {"content": b'{"text": "' + b"x" * 3_000_000 + b'"}', "params": {"request_id": "r1"}},
     413, 8, "REQUEST_TOO_LARGE", None),
    ("headers over the limit", "GET", "{user}/conversations",
     {"headers": {"x-padding": "p" * 40_000}}, 431, 8, "REQUEST_TOO_LARGE", None),
    ("a NUL in the path", "GET", "{user}/%00/x", {}, 400, 3, "REQUEST_MALFORMED", None),
    ("a broken percent-escape", "GET", "{user}/conversations%zz", {},
     400, 3, "REQUEST_MALFORMED", None),
    ("a malformed grpc-timeout", "GET", "{user}/conversations",
     {"headers": {"grpc-timeout": "1"}}, 400, 3, "REQUEST_MALFORMED", None),
    ("OPTIONS that is no preflight", "OPTIONS", "{app}/%3A/c", {},
     404, 5, "METHOD_NOT_FOUND", None),
    ("no RPC at this path", "GET", "{app}/nothing/here", {}, 404, 5, "METHOD_NOT_FOUND", None),
    ("no RPC for this method", "DELETE", "{user}/conversations", {},
     404, 5, "METHOD_NOT_FOUND", None),
]


@pytest.mark.parametrize(("method", "path", "options", "http_status", "code", "reason",
                          "field"), [pytest.param(*c[1:], id=c[0]) for c in JSON_CASES])
async def test_malformed_json_requests_get_a_status_body(
        http: httpx.AsyncClient, server: CaasServer, alice: Person, method: str, path: str,
        options: dict[str, Any], http_status: int, code: int, reason: str,
        field: str | None) -> None:
    log_start = len(server.process.lines)
    conversation = await alice.create()
    target = "/v1/" + path.format(app=f"apps/{alice.app_id}", user=alice.name,
                                  conversation=conversation.name)
    headers = {**JSON, **auth(alice), **options.get("headers", {})}
    response = await http.request(method, target, content=options.get("content"),
                                  params=options.get("params"), headers=headers)
    body = assert_status_body(response, http_status, code, reason)
    if field is None:
        assert violations(body) == []
    else:
        assert [v["field"] for v in violations(body)] == [field]
    assert list((await alice.messages(conversation.name)).messages) == []  # nothing written
    assert not [line for line in server.process.lines[log_start:] if GRPC_CORE_LOG.match(line)]


async def test_a_query_parameter_in_the_body_is_told_where_it_goes(
        http: httpx.AsyncClient, alice: Person) -> None:
    conversation = await alice.create()
    response = await http.post(f"/v1/{conversation.name}/messages", headers=auth(alice),
                               json={"text": "hi", "request_id": "r1"})
    body = assert_status_body(response, 400, 3, "REQUEST_MALFORMED")
    assert violations(body)[0]["description"] == (
        "a query parameter, not a field of the body: ?request_id=...")


def grpc_details(response: httpx.Response) -> tuple[int, str, str]:
    """(grpc-status, message, ErrorInfo reason) of a trailers-only gRPC answer."""
    assert response.status_code == 200, response.text
    status = status_pb2.Status.FromString(base64.b64decode(
        response.headers["grpc-status-details-bin"] + "=="))
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.domain == "caas.dev"
    assert int(response.headers["grpc-status"]) == status.code
    return status.code, status.message, info.reason


def frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


GET_APP = "/caas.apps.v1.AppsService/GetApp"
GET_APP_BODY = frame(apps_pb.GetAppRequest(name="apps/x1").SerializeToString())

# (case, method, path, headers, body, gRPC code, reason)
GRPC_CASES: list[tuple[str, str, str, dict[str, str], bytes, int, str]] = [
    ("not a POST", "GET", GET_APP, {"content-type": "application/grpc"}, b"",
     12, "METHOD_NOT_FOUND"),
    ("an unknown grpc-encoding", "POST", GET_APP,
     {"content-type": "application/grpc", "grpc-encoding": "bogus"}, GET_APP_BODY,
     12, "REQUEST_MALFORMED"),
    ("a malformed grpc-timeout", "POST", GET_APP,
     {"content-type": "application/grpc", "grpc-timeout": "soon"}, GET_APP_BODY,
     3, "REQUEST_MALFORMED"),
    ("a body that is no gRPC frame", "POST", GET_APP, {"content-type": "application/grpc"},
     b'{"name": "apps/x1"}', 3, "REQUEST_MALFORMED"),
    ("a compressed flag without encoding", "POST", GET_APP,
     {"content-type": "application/grpc"}, b"\x01" + GET_APP_BODY[1:], 3, "REQUEST_MALFORMED"),
    ("no body", "POST", GET_APP, {"content-type": "application/grpc"}, b"",
     3, "REQUEST_MALFORMED"),
    ("a NUL in the method", "POST", "/caas.apps.v1.AppsService/%00",
     {"content-type": "application/grpc"}, GET_APP_BODY, 3, "REQUEST_MALFORMED"),
    ("a path that is no method", "POST", "/v1/apps/x1", {"content-type": "application/grpc"},
     GET_APP_BODY, 12, "METHOD_NOT_FOUND"),
    ("an unknown method", "POST", "/caas.apps.v1.AppsService/Nope",
     {"content-type": "application/grpc"}, GET_APP_BODY, 12, "METHOD_NOT_FOUND"),
    ("a body over the limit", "POST", "/caas.apps.v1.AppsService/CreateApiKey",
     {"content-type": "application/grpc"}, frame(b"\x0a" + b"x" * 3_000_000),
     8, "REQUEST_TOO_LARGE"),
    ("gRPC-Web text that is not base64", "POST", GET_APP,
     {"content-type": "application/grpc-web-text"}, b"!!!not base64",
     3, "REQUEST_MALFORMED"),
    ("gRPC-Web with an unknown encoding", "POST", GET_APP,
     {"content-type": "application/grpc-web+proto", "grpc-encoding": "bogus"}, GET_APP_BODY,
     12, "REQUEST_MALFORMED"),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "code", "reason"),
                         [pytest.param(*c[1:], id=c[0]) for c in GRPC_CASES])
async def test_malformed_grpc_requests_get_a_client_error_with_details(
        http: httpx.AsyncClient, server: CaasServer, method: str, path: str,
        headers: dict[str, str], body: bytes, code: int, reason: str) -> None:
    log_start = len(server.process.lines)
    response = await http.request(method, path, content=body, headers={
        **headers, "authorization": f"Bearer {server.operator_token}", "te": "trailers"})
    got_code, message, got_reason = grpc_details(response)
    assert (got_code, got_reason) == (code, reason), message
    assert not [line for line in server.process.lines[log_start:] if GRPC_CORE_LOG.match(line)]


async def test_an_oversize_grpc_call_through_envoy_is_resource_exhausted(
        server: CaasServer, app: AppHandle) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.http_port}") as channel:
        create = channel.unary_unary(
            "/caas.apps.v1.AppsService/CreateApiKey",
            request_serializer=apps_pb.CreateApiKeyRequest.SerializeToString,
            response_deserializer=apps_pb.CreateApiKeyResponse.FromString)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await create(apps_pb.CreateApiKeyRequest(
                parent=app.name, api_key=apps_res.ApiKey(display_name="x" * 3_000_000)),
                metadata=app.auth)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = status_pb2.Status.FromString(dict(caught.value.trailing_metadata() or ())[
        "grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "REQUEST_TOO_LARGE"


async def test_a_preflight_from_another_origin_stays_at_the_edge(
        http: httpx.AsyncClient, server: CaasServer) -> None:
    log_start = len(server.process.lines)
    response = await http.options(GET_APP, headers={
        "origin": "https://evil.example", "access-control-request-method": "POST"})
    assert response.status_code < 500 and "grpc-status" not in response.headers
    assert "access-control-allow-origin" not in response.headers
    assert not [line for line in server.process.lines[log_start:] if GRPC_CORE_LOG.match(line)]


# JSON Subscribe: failures before the first item are HTTP errors; after it, a last item.

async def subscribe_error(http: httpx.AsyncClient, person: Person, name: str,
                          body: dict[str, Any]) -> httpx.Response:
    response = await http.post(f"/v1/{name}:subscribe", json=body, headers=auth(person))
    assert not response.text.startswith("["), response.text  # no stream began
    return response


async def ready_token(http: httpx.AsyncClient, person: Person) -> str:
    async with http.stream("POST", f"/v1/{person.name}:subscribe", json={},
                           headers=auth(person)) as stream:
        return str((await anext(json_items(stream)))["resumeToken"])


async def test_json_subscribe_refusals_are_http_errors(http: httpx.AsyncClient, alice: Person,
                                                      bob: Person) -> None:
    assert_status_body(await subscribe_error(http, alice, bob.name, {}),
                       403, 7, "USER_MISMATCH")
    malformed = assert_status_body(
        await subscribe_error(http, alice, alice.name, {"resumeToken": "not a token"}),
        400, 3, "REQUEST_INVALID")
    assert [v["field"] for v in violations(malformed)] == ["resume_token"]
    log_id, _, position = (await ready_token(http, alice)).partition(".")
    ahead = assert_status_body(await subscribe_error(
        http, alice, alice.name, {"resumeToken": f"{log_id}.{int(position) + 1000}"}),
        400, 11, "RESUME_TOKEN_AHEAD")
    assert "past the newest event" in ahead["message"]
    foreign = assert_status_body(await subscribe_error(
        http, alice, alice.name, {"resumeToken": f"someotherlog{uuid.uuid4().hex[:4]}.1"}),
        400, 3, "RESUME_TOKEN_FOREIGN")
    assert "another event log" in foreign["message"]


async def test_a_draining_server_ends_a_json_stream_with_unavailable(tmp_path: Path) -> None:
    server = start_caas(tmp_path / "data", http=True)
    try:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            app = (await http.post("/v1/apps", params={"app_id": "drain-app"},
                                   json={"displayName": "Drain"},
                                   headers={"authorization": f"Bearer {server.operator_token}"}))
            key = ok(app)["apiKeySecret"]
            session = ok(await http.post("/v1/apps/drain-app/users/ann/sessions", json={},
                                         headers={"authorization": f"Bearer {key}"}))
            token = session["credentials"]["accessToken"]
            async with http.stream("POST", "/v1/apps/drain-app/users/ann:subscribe", json={},
                                   headers={"authorization": f"Bearer {token}"}) as stream:
                assert stream.status_code == 200
                received = json_items(stream)
                assert "ready" in await anext(received)
                server.process.send_signal(signal.SIGTERM)
                rest = [item async for item in received]  # to the end of the array
        assert [set(item) - {"resumeToken"} for item in rest][-1] == {"error"}
        error = rest[-1]["error"]
        assert (error["code"], error["details"][0]["reason"]) == (14, "UNAVAILABLE")
        retry = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
        assert retry and retry[0]["retryDelay"] == "1s"
    finally:
        server.process.stop()

