"""Content filters against a running server, on both stores: managing them, what each
action does to a message, the Unicode tricks that must not get past them, the patterns
refused when saved, and who may manage them."""

from __future__ import annotations

import json
import subprocess

import grpc
import httpx
import pytest
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res
from google.protobuf import field_mask_pb2

from tests.conftest import AppHandle, expect_error
from tests.e2e.test_http import error_body
from tests.e2e.test_moderation import DENIED
from tests.e2e.test_ops import GRPCURL, ROUTES, target
from tests.support.chat import CHANNEL, GROUP, Person
from tests.support.client import Client
from tests.support.servers import CaasServer
from tests.support.stream import subscribed

INVALID = grpc.StatusCode.INVALID_ARGUMENT
BLOCK = mod_res.Filter.ACTION_BLOCK
FLAG = mod_res.Filter.ACTION_FLAG
MASK = mod_res.Filter.ACTION_MASK
Auth = tuple[tuple[str, str], ...]


async def create_filter(client: Client, app: AppHandle, filter_id: str, action: int,
                        by: Auth | None = None, **rules: object) -> mod_res.Filter:
    response = await client.moderation.CreateFilter(mod_pb.CreateFilterRequest(
        parent=app.name, filter_id=filter_id,
        filter=mod_res.Filter(action=action, **rules)),  # type: ignore[arg-type]
        metadata=by or app.auth)
    return response.filter


async def texts(person: Person, conversation: str) -> list[str]:
    return [m.text for m in (await person.messages(conversation)).messages]


async def test_filters_are_managed_by_the_apps_backend(
        client: Client, app: AppHandle, other_app: AppHandle, alice: Person) -> None:
    made = await create_filter(client, app, "words", BLOCK, words=["darn", "heck it"],
                               display_name="Mild", conversation_kinds=[
                                   conv_res.Conversation.KIND_CHANNEL])
    assert (made.name, list(made.words), made.action) == (
        f"{app.name}/filters/words", ["darn", "heck it"], BLOCK)
    assert list(made.conversation_kinds) == [conv_res.Conversation.KIND_CHANNEL]
    await expect_error(create_filter(client, app, "words", MASK), grpc.StatusCode.ALREADY_EXISTS,
                       "RESOURCE_ALREADY_EXISTS")
    await create_filter(client, app, "links", FLAG, blocked_domains=["spam.example"])
    got = await client.moderation.GetFilter(mod_pb.GetFilterRequest(name=made.name),
                                            metadata=app.auth)
    assert got.filter == made
    first = await client.moderation.ListFilters(mod_pb.ListFiltersRequest(
        parent=app.name, page_size=1), metadata=app.auth)
    rest = await client.moderation.ListFilters(mod_pb.ListFiltersRequest(
        parent=app.name, page_size=1, page_token=first.next_page_token), metadata=app.auth)
    assert [f.name for f in (*first.filters, *rest.filters)] == [
        f"{app.name}/filters/links", made.name]
    updated = (await client.moderation.UpdateFilter(mod_pb.UpdateFilterRequest(
        filter=mod_res.Filter(name=made.name, words=["gosh"]),
        update_mask=field_mask_pb2.FieldMask(paths=["words"])), metadata=app.auth)).filter
    assert (list(updated.words), updated.action, updated.display_name) == (["gosh"], BLOCK,
                                                                          "Mild")
    await expect_error(client.moderation.UpdateFilter(mod_pb.UpdateFilterRequest(
        filter=mod_res.Filter(name=made.name), update_mask=field_mask_pb2.FieldMask(
            paths=["action"])), metadata=app.auth), INVALID, "REQUEST_INVALID")
    # Users, and other apps, manage none.
    await expect_error(create_filter(client, app, "mine", BLOCK, by=alice.auth), DENIED,
                       "PRINCIPAL_NOT_ALLOWED")
    await expect_error(client.moderation.GetFilter(mod_pb.GetFilterRequest(name=made.name),
                                                   metadata=other_app.auth), DENIED,
                       "APP_MISMATCH")
    await expect_error(client.moderation.DeleteFilter(mod_pb.DeleteFilterRequest(
        name=made.name), metadata=other_app.auth), DENIED, "APP_MISMATCH")
    await client.moderation.DeleteFilter(mod_pb.DeleteFilterRequest(name=made.name),
                                         metadata=app.auth)
    await expect_error(client.moderation.GetFilter(mod_pb.GetFilterRequest(name=made.name),
                                                   metadata=app.auth),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


async def test_an_app_has_at_most_twenty_filters(client: Client, app: AppHandle) -> None:
    for n in range(20):
        await create_filter(client, app, f"f{n}", MASK, words=[f"w{n}"])
    refused = await expect_error(create_filter(client, app, "f20", MASK),
                                 grpc.StatusCode.FAILED_PRECONDITION, "LIMIT_EXCEEDED")
    assert refused.metadata == {"limit": "filters per app", "maximum": "20"}


@pytest.mark.parametrize("pattern", [
    r"(a*)*\1",  # a backreference: exponential under a backtracking engine
    r"(?=x)x",  # lookahead
    r"((a{100}){100}){100}",  # a program too large
    r"[z-a]",
])
async def test_patterns_re2_refuses_are_refused_when_saved(
        client: Client, app: AppHandle, pattern: str) -> None:
    refused = await expect_error(
        create_filter(client, app, "bomb", BLOCK, patterns=[r"\bok\b", pattern]), INVALID,
        "REQUEST_INVALID")
    assert list(refused.field_violations) == ["filter.patterns[1]"]
    made = await create_filter(client, app, "fine", BLOCK, patterns=[r"(a+)+$"])
    await expect_error(client.moderation.UpdateFilter(mod_pb.UpdateFilterRequest(
        filter=mod_res.Filter(name=made.name, patterns=[pattern]),
        update_mask=field_mask_pb2.FieldMask(paths=["patterns"])), metadata=app.auth),
        INVALID, "REQUEST_INVALID")
    # The nested quantifier runs in linear time on RE2: a send against it completes.
    assert (await client.moderation.GetFilter(mod_pb.GetFilterRequest(name=made.name),
                                              metadata=app.auth)).filter.patterns == [
        r"(a+)+$"]


async def test_a_block_refuses_the_message_and_keeps_nothing(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    await create_filter(client, app, "slurs", BLOCK, words=["badword", "go die"])
    group = await alice.create(GROUP, ("bob",))
    await bob.send(group.name, "hello")
    tricks = ["BADWORD", "b a d w o r d", "b.a.d.w.o.r.d", "b\u0430dword",  # Cyrillic a
              "\uff42\uff41\uff44\uff57\uff4f\uff52\uff44",  # fullwidth
              "bädwörd", "b4dw0rd", "baaaadword", "bad\u200bword", "so GO, die!"]
    for text in tricks:
        refused = await expect_error(bob.send(group.name, f"you {text}"), DENIED,
                                     "MESSAGE_BLOCKED")
        assert refused.metadata == {"filter": f"{app.name}/filters/slurs"}, text
    await expect_error(alice.send(group.name, "badword", request_id="r1"), DENIED,
                       "MESSAGE_BLOCKED")
    # Backends are held to the app's filters too: the words would be the user's.
    await expect_error(client.messages.CreateMessage(msg_pb.CreateMessageRequest(
        parent=group.name, request_id="b1",
        message=msg_res.Message(sender_id="bob", text="badword")),
        metadata=app.auth), DENIED, "MESSAGE_BLOCKED")
    assert await texts(bob, group.name) == ["hello"]
    # Edits are checked as sends are.
    said = (await bob.send(group.name, "fine")).message
    await expect_error(bob.client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=said.name, text="badword"),
        update_mask=field_mask_pb2.FieldMask(paths=["text"])), metadata=bob.auth),
        DENIED, "MESSAGE_BLOCKED")
    assert await texts(bob, group.name) == ["hello", "fine"]
    # Words that only look alike go through.
    await bob.send(group.name, "bad words, badwords and a b c")
    assert (await texts(bob, group.name))[-1] == "bad words, badwords and a b c"


async def test_a_mask_hides_the_words_from_everyone(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    await create_filter(client, app, "mild", MASK, words=["darn"], patterns=[r"\d{4}-\d{4}"],
                        blocked_domains=["spam.example"])
    group = await alice.create(GROUP, ("bob",))
    alices = await subscribed(alice)
    sent = (await bob.send(group.name, "DARN, call 5555-1234 or see www.spam.example/x")).message
    assert sent.text == "***, call *** or see www.***/x"
    event = await alices.event()
    assert event.message_created.text == sent.text
    assert await texts(alice, group.name) == [sent.text]


async def test_a_flag_lets_it_through_and_queues_it_for_review(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    await create_filter(client, app, "links", FLAG, allowed_domains=["docs.example.com"],
                        conversation_kinds=[conv_res.Conversation.KIND_CHANNEL])
    channel = await alice.create(CHANNEL)
    group = await alice.create(GROUP, ("bob",))
    await bob.client.conversations.JoinConversation(
        conv_pb.JoinConversationRequest(name=channel.name), metadata=bob.auth)
    await bob.send(channel.name, "read https://docs.example.com/a")  # allowed
    await bob.send(group.name, "see https://elsewhere.net")  # groups are not filtered
    said = (await bob.send(channel.name, "see https://elsewhere.net now")).message
    assert said.text == "see https://elsewhere.net now"
    flags = (await client.moderation.ListFlags(mod_pb.ListFlagsRequest(parent=app.name),
                                               metadata=app.auth)).flags
    assert [(f.message, f.user_id, f.message_text) for f in flags] == [
        (said.name, "bob", said.text)]
    assert [r.reporter for r in flags[0].reports] == [f"{app.name}/filters/links"]


async def test_filter_changes_apply_at_once(client: Client, app: AppHandle,
                                            alice: Person) -> None:
    group = await alice.create(GROUP)
    made = await create_filter(client, app, "later", BLOCK, words=["first"])
    await expect_error(alice.send(group.name, "first"), DENIED, "MESSAGE_BLOCKED")
    await client.moderation.UpdateFilter(mod_pb.UpdateFilterRequest(
        filter=mod_res.Filter(name=made.name, action=MASK),
        update_mask=field_mask_pb2.FieldMask(paths=["action"])), metadata=app.auth)
    assert (await alice.send(group.name, "first")).message.text == "***"
    await client.moderation.DeleteFilter(mod_pb.DeleteFilterRequest(name=made.name),
                                         metadata=app.auth)
    assert (await alice.send(group.name, "first")).message.text == "first"


async def test_filters_over_json(http: httpx.AsyncClient, app: AppHandle, alice: Person
                                 ) -> None:
    key = {"authorization": f"Bearer {app.api_key}"}
    made = await http.post(f"/v1/{app.name}/filters", params={"filter_id": "json"},
                           headers=key, json={"words": ["nope"], "action": "ACTION_BLOCK"})
    assert made.status_code == 200, made.text
    assert made.json()["filter"]["name"] == f"{app.name}/filters/json"
    bomb = await http.post(f"/v1/{app.name}/filters", params={"filter_id": "bomb"},
                           headers=key, json={"patterns": ["(x+)+\\1"], "action": "ACTION_BLOCK"})
    assert bomb.status_code == 400 and error_body(bomb)[1] == "REQUEST_INVALID"
    group = await alice.create(GROUP)
    sent = await http.post(f"/v1/{group.name}/messages", params={"request_id": "j1"},
                           headers={"authorization": f"Bearer {alice.token}"},
                           json={"text": "NOPE"})
    assert sent.status_code == 403 and error_body(sent)[1] == "MESSAGE_BLOCKED"
    listed = await http.get(f"/v1/{app.name}/filters", headers=key)
    assert [f["name"] for f in listed.json()["filters"]] == [f"{app.name}/filters/json"]


@ROUTES
def test_grpcurl_creates_a_filter(server: CaasServer, app: AppHandle, route: str) -> None:
    done = subprocess.run(
        [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}", "-d",
         json.dumps({"parent": app.name, "filterId": "cli",
                     "filter": {"words": ["x"], "action": "ACTION_MASK"}}),
         target(server, route), "caas.moderation.v1.ModerationService/CreateFilter"],
        capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(done.stdout)["filter"]["action"] == "ACTION_MASK"
