"""Through Envoy with a plain HTTP client: JSON transcoded from the `google.api.http`
rules (unary and the server-streaming Subscribe), gRPC-Web (binary and text), CORS, and
errors that keep their meaning (gRPC status → HTTP status, `google.rpc.Status` as the
JSON body)."""

from __future__ import annotations

import base64
import json
import re
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.realtime.v1 import realtime_service_pb2 as rt_pb
from google.api import annotations_pb2
from google.rpc import status_pb2

from services.server import contract_services
from tests.conftest import AppHandle, create_app
from tests.support.chat import Person
from tests.support.client import Client
from tests.support.servers import CaasServer


def auth(person: Person) -> dict[str, str]:
    return {"authorization": f"Bearer {person.token}"}


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


async def json_items(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The objects of a streamed JSON array (`[{…}` then `,{…}` … `]`) as they arrive."""
    decoder = json.JSONDecoder()
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        while True:
            buffer = buffer.lstrip("[,\n ")
            if not buffer or buffer.startswith("]"):
                break
            try:
                item, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError:
                break  # the rest of this object is still on its way
            buffer = buffer[end:]
            yield item


async def next_event(items: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """The next durable event of a JSON stream (batches expanded; heartbeats skipped)."""
    async for item in items:
        if "event" in item:
            return dict(item["event"])
        if "events" in item:
            return dict(item["events"]["events"][0])
    raise AssertionError("the stream ended")


async def test_a_conversation_over_json(http: httpx.AsyncClient, app: AppHandle,
                                        alice: Person, bob: Person) -> None:
    conversation = ok(await http.post(
        f"/v1/{app.name}/conversations", params={"member_ids": ["bob"]},
        json={"kind": "KIND_GROUP", "title": "Over JSON"}, headers=auth(alice)))["conversation"]
    name = conversation["name"]
    assert conversation["kind"] == "KIND_GROUP" and conversation["title"] == "Over JSON"

    async with http.stream("POST", f"/v1/{bob.name}:subscribe", json={},
                           headers=auth(bob)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("application/json")
        items = json_items(stream)
        ready = await anext(items)
        assert "ready" in ready and ready["resumeToken"]

        request_id = uuid.uuid4().hex
        sent = ok(await http.post(f"/v1/{name}/messages", params={"request_id": request_id},
                                  json={"text": "hello over JSON"}, headers=auth(alice)))
        message = sent["message"]
        assert (message["text"], message["senderId"]) == ("hello over JSON", alice.user_id)
        again = ok(await http.post(f"/v1/{name}/messages", params={"request_id": request_id},
                                   json={"text": "hello over JSON"}, headers=auth(alice)))
        assert again["message"]["name"] == message["name"]  # a retry, not a second message

        event = await next_event(items)
        assert event["type"] == "message.created"
        assert event["messageCreated"]["name"] == message["name"]

        edited = ok(await http.patch(f"/v1/{message['name']}",
                                     params={"update_mask": "text"},
                                     json={"text": "hello, edited"}, headers=auth(alice)))
        assert edited["message"]["text"] == "hello, edited"
        assert (await next_event(items))["type"] == "message.updated"

        ok(await http.post(f"/v1/{message['name']}:addReaction", json={"emoji": "👍"},
                           headers=auth(bob)))
        reacted = await next_event(items)
        assert reacted["type"] == "reaction.added"

    listed = ok(await http.get(f"/v1/{name}/messages", headers=auth(bob)))
    assert [m["text"] for m in listed["messages"]] == ["hello, edited"]
    assert listed["messages"][0]["reactions"][0]["emoji"] == "👍"


async def test_a_json_stream_resumes_from_its_token(http: httpx.AsyncClient, app: AppHandle,
                                                    alice: Person, bob: Person) -> None:
    conversation = ok(await http.post(
        f"/v1/{app.name}/conversations", params={"member_ids": ["bob"]},
        json={"kind": "KIND_GROUP"}, headers=auth(alice)))["conversation"]["name"]
    async with http.stream("POST", f"/v1/{bob.name}:subscribe", json={},
                           headers=auth(bob)) as stream:
        token = (await anext(json_items(stream)))["resumeToken"]
    for text in ("one", "two", "three"):  # while bob's stream is closed
        ok(await http.post(f"/v1/{conversation}/messages", json={"text": text},
                           params={"request_id": uuid.uuid4().hex}, headers=auth(alice)))
    async with http.stream("POST", f"/v1/{bob.name}:subscribe",
                           json={"resumeToken": token}, headers=auth(bob)) as stream:
        texts: list[str] = []
        async for item in json_items(stream):
            events = item["events"]["events"] if "events" in item else (
                [item["event"]] if "event" in item else [])
            texts += [e["messageCreated"]["text"] for e in events
                      if e["type"] == "message.created"]
            if "ready" in item:
                break
    assert texts == ["one", "two", "three"]


def error_body(response: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    """(gRPC code, ErrorInfo reason, the JSON body) of a failed JSON call."""
    body = response.json()
    infos = [d for d in body.get("details", []) if d["@type"].endswith("google.rpc.ErrorInfo")]
    return body["code"], infos[0]["reason"] if infos else "", body


@pytest.mark.parametrize(("http_status", "grpc_code", "reason"), [
    (401, 16, "CREDENTIALS_MISSING"),
    (401, 16, "API_KEY_INVALID"),
])
async def test_json_errors_without_good_credentials(http: httpx.AsyncClient, app: AppHandle,
                                                    http_status: int, grpc_code: int,
                                                    reason: str) -> None:
    headers = {} if reason == "CREDENTIALS_MISSING" else {  # a malformed key
        "authorization": "Bearer caask_nope_nope_nope"}
    response = await http.get(f"/v1/{app.name}", headers=headers)
    assert response.status_code == http_status
    assert response.headers["content-type"] == "application/json"
    assert error_body(response)[:2] == (grpc_code, reason)


async def test_json_validation_errors_name_the_field(http: httpx.AsyncClient, app: AppHandle,
                                                     alice: Person) -> None:
    response = await http.get(f"/v1/{alice.name}/conversations", params={"page_size": 9999},
                              headers=auth(alice))
    assert response.status_code == 400
    code, reason, body = error_body(response)
    assert (code, reason) == (3, "REQUEST_INVALID")
    violations = [v for d in body["details"] if d["@type"].endswith("BadRequest")
                  for v in d["fieldViolations"]]
    assert [v["field"] for v in violations] == ["page_size"]
    assert "Traceback" not in response.text


async def test_json_not_found_and_forbidden(http: httpx.AsyncClient, app: AppHandle,
                                            alice: Person, bob: Person, mallory: Person) -> None:
    missing = await http.get(f"/v1/{app.name}/conversations/nope", headers=auth(alice))
    assert missing.status_code == 404
    assert error_body(missing)[0] == 5
    # Another app's user cannot reach this app through the JSON front either.
    foreign = await http.get(f"/v1/{alice.name}/conversations", headers=auth(mallory))
    assert foreign.status_code == 403
    assert error_body(foreign)[:2] == (7, "APP_MISMATCH")
    other = await http.get(f"/v1/{alice.name}/conversations", headers=auth(bob))
    assert other.status_code == 403  # bob may not read alice's inbox
    assert error_body(other)[0] == 7


async def test_bad_json_requests_get_4xx(http: httpx.AsyncClient, app: AppHandle,
                                         alice: Person) -> None:
    url = f"/v1/{app.name}/conversations"
    malformed = await http.post(url, content=b'{"kind": "KIND_GROUP",',
                                headers={**auth(alice), "content-type": "application/json"})
    assert malformed.status_code == 400
    unknown_parameter = await http.post(url, params={"colour": "red"},
                                        json={"kind": "KIND_GROUP"}, headers=auth(alice))
    assert unknown_parameter.status_code == 400
    assert "colour" in unknown_parameter.text
    wrong_type = await http.post(url, json={"kind": "KIND_GROUP", "title": {"no": 1}},
                                 headers=auth(alice))
    assert wrong_type.status_code == 400
    oversize = await http.post(f"/v1/{app.name}/conversations/x/messages",
                               json={"text": "x" * (5 * 1024 * 1024)}, headers=auth(alice))
    assert oversize.status_code == 413
    nowhere = await http.get("/v1/nothing/here", headers=auth(alice))
    assert nowhere.status_code == 404
    assert nowhere.json()["code"] == 5


def grpc_web_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def from_grpc_web_text(body: bytes) -> bytes:
    """gRPC-Web text: base64 runs, one per write, each padded on its own."""
    return b"".join(base64.b64decode(run + b"=" * (-len(run) % 4))
                    for run in re.findall(rb"[A-Za-z0-9+/]+=*", body))


def grpc_web_frames(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """The messages and the trailers of a gRPC-Web response body."""
    messages, trailers = [], {}
    while body:
        flags, length = body[0], struct.unpack(">I", body[1:5])[0]
        payload, body = body[5:5 + length], body[5 + length:]
        if flags & 0x80:
            for line in payload.decode().strip().split("\r\n"):
                key, _, value = line.partition(":")
                trailers[key.strip().lower()] = value.strip()
        else:
            messages.append(payload)
    return messages, trailers


async def test_grpc_web_binary_and_text(http: httpx.AsyncClient, app: AppHandle,
                                        alice: Person) -> None:
    conversation = await alice.create()
    await alice.send(conversation.name, "over gRPC-Web")
    request = msg_pb.ListMessagesRequest(parent=conversation.name).SerializeToString()
    path = "/caas.messages.v1.MessagesService/ListMessages"
    headers = {**auth(alice), "x-grpc-web": "1", "origin": "http://localhost:5173"}

    binary = await http.post(path, content=grpc_web_frame(request), headers={
        **headers, "content-type": "application/grpc-web+proto"})
    assert binary.status_code == 200
    assert binary.headers["access-control-allow-origin"] == "http://localhost:5173"
    messages, trailers = grpc_web_frames(binary.content)
    assert trailers["grpc-status"] == "0"
    listed = msg_pb.ListMessagesResponse.FromString(messages[0])
    assert [m.text for m in listed.messages] == ["over gRPC-Web"]

    text = await http.post(path, content=base64.b64encode(grpc_web_frame(request)), headers={
        **headers, "content-type": "application/grpc-web-text",
        "accept": "application/grpc-web-text"})
    assert text.status_code == 200
    messages, trailers = grpc_web_frames(from_grpc_web_text(text.content))
    assert trailers["grpc-status"] == "0"
    assert msg_pb.ListMessagesResponse.FromString(messages[0]) == listed


async def test_grpc_web_errors_carry_status_details(http: httpx.AsyncClient, app: AppHandle,
                                                    alice: Person) -> None:
    request = msg_pb.ListMessagesRequest(parent=f"{app.name}/conversations/nope", page_size=-1)
    response = await http.post(
        "/caas.messages.v1.MessagesService/ListMessages",
        content=grpc_web_frame(request.SerializeToString()),
        headers={**auth(alice), "content-type": "application/grpc-web+proto"})
    assert response.status_code == 200  # gRPC-Web reports the status in headers/trailers
    trailers = {**response.headers, **grpc_web_frames(response.content)[1]}
    assert trailers["grpc-status"] == "3"
    encoded = trailers["grpc-status-details-bin"]
    details = status_pb2.Status.FromString(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert details.code == 3 and details.details


async def test_grpc_web_text_streams_subscribe(http: httpx.AsyncClient, alice: Person) -> None:
    request = rt_pb.SubscribeRequest(name=alice.name).SerializeToString()
    async with http.stream(
            "POST", "/caas.realtime.v1.RealtimeService/Subscribe",
            content=base64.b64encode(grpc_web_frame(request)),
            headers={**auth(alice), "content-type": "application/grpc-web-text",
                     "accept": "application/grpc-web-text"}) as stream:
        assert stream.status_code == 200
        received = b""
        async for chunk in stream.aiter_bytes():
            received += chunk
            raw = from_grpc_web_text(received)
            if len(raw) >= 5 and len(raw) >= 5 + struct.unpack(">I", raw[1:5])[0]:
                break
    first = rt_pb.SubscribeResponse.FromString(raw[5:5 + struct.unpack(">I", raw[1:5])[0]])
    assert first.WhichOneof("item") == "ready" and first.resume_token


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://localhost:5173", True),
    ("http://127.0.0.1:8000", True),
    ("https://evil.example", False),
    ("http://localhost.evil.example", False),
])
async def test_cors_allows_configured_origins_only(http: httpx.AsyncClient, origin: str,
                                                   allowed: bool) -> None:
    preflight = await http.options(
        "/caas.messages.v1.MessagesService/ListMessages",
        headers={"origin": origin, "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization,content-type,x-grpc-web"})
    assert (preflight.headers.get("access-control-allow-origin") == origin) is allowed
    if allowed:
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        assert "grpc-status" in preflight.headers["access-control-expose-headers"]


async def test_json_rate_limits_are_429_with_retry_info(http: httpx.AsyncClient,
                                                        client: Client,
                                                        server: CaasServer) -> None:
    app = await create_app(client, server.operator_token, plan="tiny")  # 5 calls per app
    headers = {"authorization": f"Bearer {app.api_key}"}
    statuses = [(await http.get(f"/v1/{app.name}", headers=headers)) for _ in range(6)]
    assert [r.status_code for r in statuses] == [200] * 5 + [429]
    assert statuses[0].headers["x-ratelimit-remaining"] == "4"
    code, reason, body = error_body(statuses[-1])
    assert (code, reason) == (8, "RATE_LIMITED")
    retry = [d for d in body["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry and retry[0]["retryDelay"].endswith("s")


async def test_the_operator_sets_an_apps_media_retention_over_json(
        http: httpx.AsyncClient, server: CaasServer) -> None:
    operator = {"authorization": f"Bearer {server.operator_token}"}
    app_id = f"json-{uuid.uuid4().hex[:12]}"
    created = ok(await http.post("/v1/apps", params={"app_id": app_id}, headers=operator,
                                 json={"displayName": "Over JSON", "mediaRetention": "86400s"}))
    assert created["app"]["mediaRetention"] == "86400s"
    assert ok(await http.get(f"/v1/apps/{app_id}", headers={
        "authorization": f"Bearer {created['apiKeySecret']}"}))["app"]["mediaRetention"] == "86400s"
    changed = ok(await http.patch(f"/v1/apps/{app_id}", headers=operator,
                                  params={"update_mask": "mediaRetention"},
                                  json={"mediaRetention": "0.250s"}))["app"]
    assert changed["mediaRetention"] == "0.250s"
    cleared = ok(await http.patch(f"/v1/apps/{app_id}", headers=operator,
                                  params={"update_mask": "media_retention"}, json={}))["app"]
    assert "mediaRetention" not in cleared and cleared["displayName"] == "Over JSON"
    too_long = await http.patch(f"/v1/apps/{app_id}", headers=operator,
                                params={"update_mask": "mediaRetention"},
                                json={"mediaRetention": f"{3651 * 86_400}s"})
    assert too_long.status_code == 400
    assert error_body(too_long)[:2] == (3, "REQUEST_INVALID")


def http_requests() -> list[tuple[str, str, str, bool]]:
    """(RPC, HTTP method, path, has a body) for every RPC, from its google.api.http rule,
    with each path variable filled in the shape its template asks for."""
    requests = []
    for service in contract_services():
        for method in service.methods:
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            verb = rule.WhichOneof("pattern")
            template = getattr(rule, verb)
            path = re.sub(r"\{[^}=]+=([^}]+)\}", lambda m: m.group(1).replace("*", "x1"),
                          template)
            path = re.sub(r"\{[^}]+\}", "x1", path)
            requests.append((f"{service.name}/{method.name}", verb.upper(), path,
                             bool(rule.body)))
    return requests


async def test_every_rpc_answers_at_its_http_path(http: httpx.AsyncClient) -> None:
    """No route is kept by hand: each rule of the contract reaches its RPC through
    Envoy, which answers (here: without credentials) as the RPC would, not with 404."""
    requests = http_requests()
    assert len(requests) == sum(len(s.methods) for s in contract_services())
    for rpc, verb, path, has_body in requests:
        response = await http.request(verb, path, json={} if has_body else None)
        assert response.headers["content-type"].startswith("application/json"), rpc
        body = response.json()
        assert "no RPC has this HTTP path" not in body.get("message", ""), (rpc, verb, path)
        assert (response.status_code, body["code"]) in {(401, 16), (400, 3)}, (rpc, body)


@pytest.mark.parametrize(("body", "field"), [
    ({"text": "hi", "colour": "red"}, "colour"),
    ({"text": "hi", "attachments": [{"uri": "https://x.example/a.png", "urx": "y"}]},
     "attachments.urx"),
    ({"text": 'a "quoted" {brace}, [bracket]', "metadata": {"k": "v"}, "txet": "hi"}, "txet"),
])
async def test_unknown_json_fields_are_refused_by_name(
        http: httpx.AsyncClient, alice: Person, body: dict[str, Any], field: str) -> None:
    conversation = await alice.create()
    response = await http.post(f"/v1/{conversation.name}/messages", json=body,
                               params={"request_id": uuid.uuid4().hex}, headers=auth(alice))
    assert response.status_code == 400
    code, reason, details = error_body(response)
    assert (code, reason) == (3, "REQUEST_MALFORMED")
    violations = [v for d in details["details"] if d["@type"].endswith("BadRequest")
                  for v in d["fieldViolations"]]
    assert [v["field"] for v in violations] == [field]
    assert list((await alice.messages(conversation.name)).messages) == []  # nothing sent


async def test_known_json_fields_pass_in_either_spelling(http: httpx.AsyncClient,
                                                         alice: Person) -> None:
    conversation = await alice.create()
    sent = ok(await http.post(
        f"/v1/{conversation.name}/messages", params={"request_id": uuid.uuid4().hex},
        json={"text": 'a "quoted" {brace}, [bracket]: mention_ids',
              "mention_ids": [], "mentionIds": [],  # proto and JSON names
              "attachments": [{"kind": "KIND_IMAGE", "uri": "https://x.example/a.png"}],
              "metadata": {"any.key": "free-form: not fields"}},
        headers=auth(alice)))["message"]
    assert sent["text"] == 'a "quoted" {brace}, [bracket]: mention_ids'
    assert sent["metadata"] == {"any.key": "free-form: not fields"}


async def test_an_apps_backend_manages_webhooks_over_json(
        http: httpx.AsyncClient, app: AppHandle, alice: Person) -> None:
    key = {"authorization": f"Bearer {app.api_key}"}
    created = ok(await http.post(f"/v1/{app.name}/webhooks", headers=key, json={
        "url": "https://crm.example.com/caas", "eventTypes": ["message.*"], "ordered": True}))
    hook = created["webhook"]
    assert created["secret"].startswith("whsec_")
    assert (hook["state"], hook["eventTypes"], hook["ordered"]) == (
        "STATE_ACTIVE", ["message.*"], True)
    changed = ok(await http.patch(f"/v1/{hook['name']}", headers=key,
                                  params={"update_mask": "state"},
                                  json={"state": "STATE_PAUSED"}))["webhook"]
    assert changed["state"] == "STATE_PAUSED" and changed["url"] == hook["url"]
    rotated = ok(await http.post(f"/v1/{hook['name']}:rotateSecret", headers=key,
                                 json={"previousSecretTtl": "60s"}))
    assert rotated["secret"] != created["secret"] and rotated["webhook"]["secretHint"]
    listed = ok(await http.get(f"/v1/{app.name}/webhooks", headers=key))["webhooks"]
    assert [w["name"] for w in listed] == [hook["name"]]
    assert ok(await http.get(f"/v1/{hook['name']}/deadLetters", headers=key)) == {
        "deadLetters": [], "nextPageToken": ""}
    # A user of the app is refused; so is a URL to a private address.
    refused = await http.get(f"/v1/{app.name}/webhooks", headers=auth(alice))
    assert refused.status_code == 403
    assert error_body(refused)[1] == "PRINCIPAL_NOT_ALLOWED"
    bad = await http.post(f"/v1/{app.name}/webhooks", headers=key,
                          json={"url": "ftp://10.0.0.1/x"})
    assert bad.status_code == 400 and error_body(bad)[:2] == (3, "WEBHOOK_URL_NOT_ALLOWED")
    ok(await http.delete(f"/v1/{hook['name']}", headers=key))
    assert (await http.get(f"/v1/{hook['name']}", headers=key)).status_code == 404
