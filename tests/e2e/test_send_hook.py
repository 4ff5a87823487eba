"""The pre-send hook against a running server, on both stores, calling a real local
endpoint: allow, reject, modify, failures open and closed, what it is sent and how it is
signed, and who may set it."""

from __future__ import annotations

import json
import time

import grpc
import httpx
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res
from google.protobuf import duration_pb2, field_mask_pb2

from services.webhooks.signing import HEADER, verify
from tests.conftest import AppHandle, expect_error
from tests.e2e.test_http import error_body
from tests.e2e.test_moderation import DENIED
from tests.support.chat import CHANNEL, GROUP, Person
from tests.support.client import Client
from tests.support.webhook_receiver import Receiver

CLOSED = mod_res.SendHook.FAILURE_POLICY_CLOSED
Auth = tuple[tuple[str, str], ...]


async def set_hook(client: Client, app: AppHandle, paths: list[str], by: Auth | None = None,
                   allow_missing: bool = True, **fields: object
                   ) -> mod_pb.UpdateSendHookResponse:
    return await client.moderation.UpdateSendHook(mod_pb.UpdateSendHookRequest(
        send_hook=mod_res.SendHook(name=f"{app.name}/sendHook", **fields),  # type: ignore[arg-type]
        update_mask=field_mask_pb2.FieldMask(paths=paths), allow_missing=allow_missing),
        metadata=by or app.auth)


async def texts(person: Person, conversation: str) -> list[str]:
    return [m.text for m in (await person.messages(conversation)).messages]


async def test_the_hook_allows_rejects_and_changes_messages(
        client: Client, app: AppHandle, alice: Person, bob: Person,
        receiver: Receiver) -> None:
    url = receiver.url("hook")
    made = await set_hook(client, app, ["url"], url=url)
    assert made.secret.startswith("whsec_") and made.send_hook.secret_hint == made.secret[:10]
    assert made.send_hook.timeout.ToTimedelta().total_seconds() == 1
    group = await alice.create(GROUP, ("bob",))
    sent = (await bob.send(group.name, "hello", request_id="h1")).message
    assert sent.text == "hello"
    call = receiver.to(url)[-1]
    assert verify(call.headers[HEADER], call.body, made.secret, time.time())
    body = json.loads(call.body)
    assert {k: body[k] for k in ("type", "app", "conversation", "conversationKind",
                                 "senderId", "requestId", "text")} == {
        "type": "message.presend", "app": app.name, "conversation": group.name,
        "conversationKind": "group", "senderId": "bob", "requestId": "h1", "text": "hello"}
    refused = await expect_error(bob.send(group.name, "please reject this"), DENIED,
                                 "MESSAGE_REJECTED")
    assert refused.metadata == {"reason": "not here"}
    changed = (await bob.send(group.name, "modify me")).message
    assert changed.text == "changed me"
    # An answer that is not one is a failure: the app lets messages go then (the default).
    assert (await bob.send(group.name, "garbage in")).message.text == "garbage in"
    assert await texts(alice, group.name) == ["hello", "changed me", "garbage in"]
    # The secret is shown once; later changes keep it.
    again = await set_hook(client, app, ["timeout"], timeout=duration_pb2.Duration(seconds=2))
    assert (again.secret, again.send_hook.secret_hint) == ("", made.send_hook.secret_hint)
    assert again.send_hook.url == url


async def test_a_closed_hook_that_fails_refuses_the_send(
        client: Client, app: AppHandle, alice: Person, receiver: Receiver) -> None:
    await set_hook(client, app, ["url", "timeout", "failure_policy"], url=receiver.url("hang"),
                   timeout=duration_pb2.Duration(nanos=100_000_000), failure_policy=CLOSED)
    group = await alice.create(GROUP)
    refused = await expect_error(alice.send(group.name, "anyone?"),
                                 grpc.StatusCode.UNAVAILABLE, "SEND_HOOK_UNAVAILABLE")
    assert refused.retry_seconds is not None
    await set_hook(client, app, ["url"], url=receiver.url("fail"))  # a 500
    await expect_error(alice.send(group.name, "anyone?"), grpc.StatusCode.UNAVAILABLE,
                       "SEND_HOOK_UNAVAILABLE")
    assert await texts(alice, group.name) == []
    await client.moderation.DeleteSendHook(mod_pb.DeleteSendHookRequest(
        name=f"{app.name}/sendHook"), metadata=app.auth)
    assert (await alice.send(group.name, "anyone?")).message.text == "anyone?"


async def test_the_hook_sees_only_the_kinds_it_covers(
        client: Client, app: AppHandle, alice: Person, receiver: Receiver) -> None:
    url = receiver.url("hook")
    await set_hook(client, app, ["url", "conversation_kinds"], url=url,
                   conversation_kinds=[conv_res.Conversation.KIND_CHANNEL])
    group = await alice.create(GROUP)
    channel = await alice.create(CHANNEL)
    assert (await alice.send(group.name, "reject me")).message.text == "reject me"
    assert receiver.to(url) == []
    await expect_error(alice.send(channel.name, "reject me"), DENIED, "MESSAGE_REJECTED")
    assert len(receiver.to(url)) == 1


async def test_only_the_apps_backend_sets_the_hook(
        client: Client, app: AppHandle, other_app: AppHandle, alice: Person,
        receiver: Receiver) -> None:
    name = f"{app.name}/sendHook"
    await expect_error(client.moderation.GetSendHook(mod_pb.GetSendHookRequest(name=name),
                                                     metadata=app.auth),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    await expect_error(set_hook(client, app, ["url"], allow_missing=False,
                                url=receiver.url("hook")),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    await expect_error(set_hook(client, app, ["timeout"], timeout=duration_pb2.Duration(
        seconds=1)), grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")  # no url
    await expect_error(set_hook(client, app, ["url"], url="ftp://hooks.example/x"),
                       grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_NOT_ALLOWED")
    await expect_error(set_hook(client, app, ["url"], by=alice.auth, url=receiver.url("hook")),
                       DENIED, "PRINCIPAL_NOT_ALLOWED")
    await expect_error(set_hook(client, app, ["url"], by=other_app.auth,
                                url=receiver.url("hook")), DENIED, "APP_MISMATCH")
    await set_hook(client, app, ["url"], url=receiver.url("hook"))
    await expect_error(client.moderation.DeleteSendHook(mod_pb.DeleteSendHookRequest(
        name=name), metadata=other_app.auth), DENIED, "APP_MISMATCH")
    got = await client.moderation.GetSendHook(mod_pb.GetSendHookRequest(name=name),
                                              metadata=app.auth)
    assert got.send_hook.failure_policy == mod_res.SendHook.FAILURE_POLICY_OPEN


async def test_the_hook_over_json(http: httpx.AsyncClient, app: AppHandle, alice: Person,
                                  receiver: Receiver) -> None:
    key = {"authorization": f"Bearer {app.api_key}"}
    made = await http.patch(f"/v1/{app.name}/sendHook", headers=key,
                            params={"update_mask": "url,failurePolicy", "allow_missing": "true"},
                            json={"url": receiver.url("hook"),
                                  "failurePolicy": "FAILURE_POLICY_CLOSED"})
    assert made.status_code == 200, made.text
    assert made.json()["secret"].startswith("whsec_")
    group = await alice.create(GROUP)
    refused = await http.post(f"/v1/{group.name}/messages", params={"request_id": "j1"},
                              headers={"authorization": f"Bearer {alice.token}"},
                              json={"text": "reject"})
    assert refused.status_code == 403 and error_body(refused)[1] == "MESSAGE_REJECTED"
    got = await http.get(f"/v1/{app.name}/sendHook", headers=key)
    assert got.json()["sendHook"]["failurePolicy"] == "FAILURE_POLICY_CLOSED"
