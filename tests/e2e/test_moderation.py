"""Mutes and bans against a running server, on both stores: what each stops, who may
set and lift them, the events the restricted user gets, and every way we could think
of to get around them."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC

import grpc
import httpx
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.auth.v1 import auth_service_pb2 as auth_pb
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res
from google.protobuf import duration_pb2, field_mask_pb2

from tests.conftest import AppHandle, create_app, expect_error, sign_in
from tests.e2e.test_http import error_body
from tests.e2e.test_ops import GRPCURL, ROUTES, target
from tests.e2e.test_search import found
from tests.e2e.test_webhooks import create_webhook, delivered, events
from tests.support.chat import CHANNEL, GROUP, Person, person
from tests.support.client import Client, bearer
from tests.support.clock import from_now
from tests.support.servers import CaasServer
from tests.support.stream import subscribed
from tests.support.webhook_receiver import Receiver

DENIED = grpc.StatusCode.PERMISSION_DENIED
MUTE = mod_res.Restriction.TYPE_MUTE
BAN = mod_res.Restriction.TYPE_BAN
SHADOW_BAN = mod_res.Restriction.TYPE_SHADOW_BAN


async def restrict(client: Client, app: AppHandle, user_id: str, kind: int,
                   conversation: str = "", by: tuple[tuple[str, str], ...] | None = None,
                   **fields: object) -> mod_res.Restriction:
    response = await client.moderation.CreateRestriction(mod_pb.CreateRestrictionRequest(
        parent=app.name, restriction=mod_res.Restriction(
            user_id=user_id, conversation=conversation, type=kind, **fields)),  # type: ignore[arg-type]
        metadata=by or app.auth)
    return response.restriction


async def lift(client: Client, name: str, by: tuple[tuple[str, str], ...]
               ) -> mod_res.Restriction:
    response = await client.moderation.DeleteRestriction(
        mod_pb.DeleteRestrictionRequest(name=name), metadata=by)
    return response.restriction


async def react(person: Person, message: str) -> msg_pb.AddReactionResponse:
    return await person.client.messages.AddReaction(
        msg_pb.AddReactionRequest(name=message, emoji="👍"), metadata=person.auth)


async def make_role(owner: Person, conversation: str, user_id: str, role: int) -> None:
    await owner.client.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{conversation}/members/{user_id}", role=role),
        update_mask=field_mask_pb2.FieldMask(paths=["role"])), metadata=owner.auth)


async def test_a_mute_stops_writes_not_reads_and_tells_the_user_alone(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    hello = await alice.send(group.name, "hello")
    bobs = await subscribed(bob)
    alices = await subscribed(alice)
    muted = await restrict(client, app, "bob", MUTE, group.name, reason="calm down",
                           expire_time=from_now(hours=1))
    assert (muted.user_id, muted.conversation, muted.type, muted.reason) == (
        "bob", group.name, MUTE, "calm down")
    assert muted.creator.startswith(f"{app.name}/apiKeys/")
    event = await bobs.event()
    assert (event.type, event.restriction_created.name) == ("restriction.created", muted.name)

    refused = await expect_error(bob.send(group.name, "but"), DENIED, "USER_MUTED")
    assert refused.metadata == {"restriction": muted.name, "restriction_reason": "calm down",
                                "expire_time": muted.expire_time.ToDatetime(UTC).isoformat()}
    await expect_error(react(bob, hello.message.name), DENIED, "USER_MUTED")
    # Nor through the app's backend: the words would still be bob's.
    await expect_error(client.messages.CreateMessage(msg_pb.CreateMessageRequest(
        parent=group.name, message=msg_res.Message(text="relayed", sender_id="bob"),
        request_id="relay-1"), metadata=app.auth), DENIED, "USER_MUTED")
    assert [m.text for m in (await bob.messages(group.name)).messages] == ["hello"]
    await alice.send(group.name, "alice still talks")
    assert (await alices.event()).message_created.text == "alice still talks"  # no ban event

    await lift(client, muted.name, app.auth)
    assert (await bobs.event()).message_created.text == "alice still talks"
    lifted = await bobs.event()
    assert (lifted.type, lifted.restriction_deleted.name) == ("restriction.deleted", muted.name)
    await bob.send(group.name, "thanks")
    await expect_error(lift(client, muted.name, app.auth), grpc.StatusCode.NOT_FOUND,
                       "RESOURCE_NOT_FOUND")
    await bobs.close()
    await alices.close()


async def test_an_app_wide_mute_applies_everywhere_and_replaces_itself(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    first = await alice.create(GROUP, ("bob",))
    second = await alice.create(CHANNEL, ("bob",))
    bobs = await subscribed(bob)
    muted = await restrict(client, app, "bob", MUTE, reason="spam")
    event = await bobs.event()
    assert (event.type, event.conversation, event.restriction_created.name) == (
        "restriction.created", "", muted.name)
    for conversation in (first, second):
        await expect_error(bob.send(conversation.name, "x"), DENIED, "USER_MUTED")
    await expect_error(bob.create(GROUP, ("alice",)), DENIED, "USER_MUTED")
    again = await restrict(client, app, "bob", MUTE, reason="more spam")
    assert (again.name, again.reason) == (muted.name, "more spam")
    refused = await expect_error(bob.send(first.name, "x"), DENIED, "USER_MUTED")
    assert refused.metadata["restriction_reason"] == "more spam"
    await bobs.close()


async def test_a_ban_removes_the_member_and_keeps_them_out(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    channel = await alice.create(CHANNEL, ("bob",))
    bobs = await subscribed(bob)
    banned = await restrict(client, app, "bob", BAN, channel.name, reason="trolling")
    assert [(e.type) for e in await bobs.events(2)] == ["restriction.created",
                                                        "member.removed"]
    await expect_error(bob.send(channel.name, "back"), DENIED, "USER_BANNED")
    await expect_error(bob.client.conversations.JoinConversation(
        conv_pb.JoinConversationRequest(name=channel.name), metadata=bob.auth),
        DENIED, "USER_BANNED")
    await expect_error(alice.client.conversations.AddMembers(
        conv_pb.AddMembersRequest(conversation=channel.name, user_ids=["bob"]),
        metadata=alice.auth), DENIED, "USER_BANNED")
    await expect_error(bob.messages(channel.name), DENIED, "NOT_A_MEMBER")
    await lift(client, banned.name, app.auth)
    await bob.client.conversations.JoinConversation(
        conv_pb.JoinConversationRequest(name=channel.name), metadata=bob.auth)
    await bob.send(channel.name, "sorry")
    await bobs.close()


async def test_an_app_wide_ban_ends_sessions_and_refuses_sign_in(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    signed = await sign_in(client, app, "bob")
    banned = await restrict(client, app, "bob", BAN, reason="fraud")
    await expect_error(bob.inbox(), grpc.StatusCode.UNAUTHENTICATED, "SESSION_REVOKED")
    await expect_error(client.auth.RefreshSession(auth_pb.RefreshSessionRequest(
        refresh_token=signed.credentials.refresh_token)), DENIED, "USER_BANNED")
    await expect_error(sign_in(client, app, "bob"), DENIED, "USER_BANNED")
    await expect_error(alice.create(GROUP, ("bob",)), DENIED, "USER_BANNED")
    # The user reads their own restriction with a token… they cannot get: the backend can.
    got = await client.moderation.GetRestriction(
        mod_pb.GetRestrictionRequest(name=banned.name), metadata=app.auth)
    assert got.restriction.reason == "fraud"
    await lift(client, banned.name, app.auth)
    await sign_in(client, app, "bob")


async def test_a_conversation_moderator_restricts_there_only(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    other = await alice.create(GROUP, ("bob",))
    await make_role(alice, group.name, "carol", conv_res.Member.ROLE_MODERATOR)
    muted = await restrict(client, app, "bob", MUTE, group.name, by=carol.auth)
    assert muted.creator == f"{app.name}/users/carol"
    await expect_error(bob.send(group.name, "x"), DENIED, "USER_MUTED")
    await bob.send(other.name, "elsewhere I may")  # the mute is of `group` only
    listed = await client.moderation.ListRestrictions(mod_pb.ListRestrictionsRequest(
        parent=app.name, conversation=group.name), metadata=carol.auth)
    assert [r.name for r in listed.restrictions] == [muted.name]
    own = await client.moderation.ListRestrictions(mod_pb.ListRestrictionsRequest(
        parent=app.name, user_id="bob"), metadata=bob.auth)
    assert [r.name for r in own.restrictions] == [muted.name]
    # carol is no moderator of `other`: not there.
    await expect_error(restrict(client, app, "bob", MUTE, other.name, by=carol.auth),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    # The muted user cannot lift it, nor list the conversation's.
    await expect_error(lift(client, muted.name, bob.auth), DENIED, "PERMISSION_MISSING")
    await expect_error(client.moderation.ListRestrictions(mod_pb.ListRestrictionsRequest(
        parent=app.name, conversation=group.name), metadata=bob.auth), DENIED, "PERMISSION_MISSING")
    await lift(client, muted.name, carol.auth)
    await bob.send(group.name, "free again")


@pytest.mark.parametrize(("target", "target_role", "where", "reason"), [
    ("alice", None, "group", "RESTRICTION_NOT_ALLOWED"),  # the owner
    ("dave", conv_res.Member.ROLE_ADMIN, "group", "RESTRICTION_NOT_ALLOWED"),
    ("dave", conv_res.Member.ROLE_MODERATOR, "group", "RESTRICTION_NOT_ALLOWED"),  # a peer
    ("carol", None, "group", "RESTRICTION_NOT_ALLOWED"),  # themself
    ("bob", None, "app", "RESTRICTION_NOT_ALLOWED"),  # app-wide, as a user
])
async def test_a_moderator_cannot_reach_beyond_their_rank(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person,
        target: str, target_role: int | None, where: str, reason: str) -> None:
    await sign_in(client, app, "dave")
    group = await alice.create(GROUP, ("bob", "carol", "dave"))
    await make_role(alice, group.name, "carol", conv_res.Member.ROLE_MODERATOR)
    if target_role is not None:
        await make_role(alice, group.name, target, target_role)
    await expect_error(restrict(client, app, target, MUTE,
                                group.name if where == "group" else "", by=carol.auth),
                       DENIED, reason)
    listed = await client.moderation.ListRestrictions(
        mod_pb.ListRestrictionsRequest(parent=app.name), metadata=app.auth)
    assert list(listed.restrictions) == []  # nothing was written


async def test_members_and_outsiders_cannot_restrict(
        client: Client, app: AppHandle, other_app: AppHandle, alice: Person, bob: Person,
        carol: Person, mallory: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    channel = await alice.create(CHANNEL)
    await expect_error(restrict(client, app, "carol", MUTE, group.name, by=bob.auth),
                       DENIED, "PERMISSION_MISSING")
    await expect_error(restrict(client, app, "alice", MUTE, channel.name, by=bob.auth),
                       DENIED, "NOT_A_MEMBER")
    for outsider in (mallory.auth, other_app.auth):  # a user, a key of another app
        await expect_error(restrict(client, app, "bob", MUTE, group.name, by=outsider),
                           DENIED, "APP_MISMATCH")
    narrow = await client.apps.CreateApiKey(apps_pb.CreateApiKeyRequest(
        parent=app.name, api_key=apps_res.ApiKey(scopes=["messages:read"])),
        metadata=app.auth)
    await expect_error(restrict(client, app, "bob", MUTE, by=bearer(narrow.secret)),
                       DENIED, "API_KEY_SCOPE_MISSING")
    elsewhere = f"apps/{other_app.app_id}/conversations/{group.name.rsplit('/', 1)[1]}"
    refused = await expect_error(restrict(client, app, "bob", MUTE, elsewhere),
                                 grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    assert "restriction.conversation" in refused.field_violations
    await expect_error(restrict(client, app, "nobody", MUTE), grpc.StatusCode.NOT_FOUND,
                       "RESOURCE_NOT_FOUND")
    direct = await alice.create(conv_res.Conversation.KIND_DIRECT, ("bob",))
    await expect_error(restrict(client, app, "bob", BAN, direct.name),
                       grpc.StatusCode.FAILED_PRECONDITION, "WRONG_CONVERSATION_KIND")


async def test_restrictions_are_seen_only_by_whom_they_concern(
        client: Client, app: AppHandle, other_app: AppHandle, alice: Person, bob: Person,
        carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    app_wide = await restrict(client, app, "bob", MUTE)
    there = await restrict(client, app, "bob", MUTE, group.name)
    for name in (app_wide.name, there.name):
        await expect_error(client.moderation.GetRestriction(
            mod_pb.GetRestrictionRequest(name=name), metadata=carol.auth),
            grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
        await expect_error(client.moderation.GetRestriction(
            mod_pb.GetRestrictionRequest(name=name), metadata=other_app.auth),
            DENIED, "APP_MISMATCH")
        mine = await client.moderation.GetRestriction(
            mod_pb.GetRestrictionRequest(name=name), metadata=bob.auth)
        assert mine.restriction.name == name
    await expect_error(client.moderation.ListRestrictions(mod_pb.ListRestrictionsRequest(
        parent=app.name, user_id="bob"), metadata=carol.auth), DENIED, "USER_MISMATCH")
    owner_view = await client.moderation.GetRestriction(  # alice owns `group`
        mod_pb.GetRestrictionRequest(name=there.name), metadata=alice.auth)
    assert owner_view.restriction.name == there.name


async def test_restrictions_over_json(http: httpx.AsyncClient, app: AppHandle,
                                      alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    key = {"authorization": f"Bearer {app.api_key}"}
    made = await http.post(f"/v1/{app.name}/restrictions", headers=key, json={
        "userId": "bob", "conversation": group.name, "type": "TYPE_MUTE", "reason": "json"})
    assert made.status_code == 200, made.text
    name = made.json()["restriction"]["name"]
    sent = await http.post(f"/v1/{group.name}/messages", params={"request_id": "j1"},
                           headers={"authorization": f"Bearer {bob.token}"},
                           json={"text": "hi"})
    assert sent.status_code == 403
    code, reason, body = error_body(sent)
    assert (code, reason) == (7, "USER_MUTED")
    assert "json" in body["message"]
    listed = await http.get(f"/v1/{app.name}/restrictions", params={"user_id": "bob"},
                            headers=key)
    assert [r["name"] for r in listed.json()["restrictions"]] == [name]
    assert (await http.delete(f"/v1/{name}", headers=key)).status_code == 200
    assert (await http.delete(f"/v1/{name}", headers=key)).status_code == 404


@ROUTES
def test_grpcurl_restricts_and_lifts(server: CaasServer, app: AppHandle, route: str) -> None:
    def grpcurl(method: str, request: dict[str, object]) -> dict[str, object]:
        done = subprocess.run(
            [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}", "-d",
             json.dumps(request), target(server, route),
             f"caas.moderation.v1.ModerationService/{method}"],
            capture_output=True, text=True, timeout=30, check=True)
        result: dict[str, object] = json.loads(done.stdout or "{}")
        return result

    subprocess.run([GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}",
                    "-d", json.dumps({"parent": app.name, "userId": "zed"}),
                    target(server, route), "caas.users.v1.UsersService/CreateUser"],
                   capture_output=True, text=True, timeout=30, check=True)
    made: dict[str, str] = grpcurl("CreateRestriction", {  # type: ignore[assignment]
        "parent": app.name, "restriction": {"userId": "zed", "type": "TYPE_BAN",
                                            "reason": "grpcurl"}})["restriction"]
    assert (made["type"], made["reason"]) == ("TYPE_BAN", "grpcurl")
    listed = grpcurl("ListRestrictions", {"parent": app.name})
    assert [r["name"] for r in listed["restrictions"]] == [made["name"]]  # type: ignore[attr-defined]
    grpcurl("DeleteRestriction", {"name": made["name"]})
    assert grpcurl("ListRestrictions", {"parent": app.name}) == {}


async def test_the_apps_webhooks_hear_of_restrictions(client: Client, app: AppHandle,
                                                      alice: Person, bob: Person,
                                                      receiver: Receiver) -> None:
    url = receiver.url("ok")
    await create_webhook(client, app, url, "restriction.*")
    muted = await restrict(client, app, "bob", MUTE, reason="hooked")
    await lift(client, muted.name, app.auth)
    got = events(await receiver.wait(url, delivered(2)))  # in any order: not an ordered endpoint
    by_type = {str(e["type"]): e for e in got}
    assert sorted(by_type) == ["restriction.created", "restriction.deleted"]
    assert all(e.get("conversation", "") == "" for e in got)  # app-wide
    created = by_type["restriction.created"]["restrictionCreated"]
    assert created["reason"] == "hooked"  # type: ignore[index]


async def set_slow_mode(person: Person, conversation: str, seconds: int
                        ) -> conv_res.Conversation:
    response = await person.client.conversations.UpdateConversation(
        conv_pb.UpdateConversationRequest(
            conversation=conv_res.Conversation(
                name=conversation, slow_mode=duration_pb2.Duration(seconds=seconds)),
            update_mask=field_mask_pb2.FieldMask(paths=["slow_mode"])), metadata=person.auth)
    return response.conversation


async def test_slow_mode_spaces_each_members_messages(
        http: httpx.AsyncClient, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    await expect_error(set_slow_mode(bob, group.name, 60), DENIED, "PERMISSION_MISSING")
    slowed = await set_slow_mode(alice, group.name, 60)
    assert slowed.slow_mode.seconds == 60
    first = await bob.send(group.name, "one", request_id="b1")
    refused = await expect_error(bob.send(group.name, "two"),
                                 grpc.StatusCode.RESOURCE_EXHAUSTED, "SLOW_MODE")
    assert refused.metadata == {"slow_mode_seconds": "60"}
    assert refused.retry_seconds is not None and 1 <= refused.retry_seconds <= 60
    retried = await bob.send(group.name, "one", request_id="b1")  # a retry is no new send
    assert retried.message.name == first.message.name
    over_json = await http.post(f"/v1/{group.name}/messages", params={"request_id": "j2"},
                                headers={"authorization": f"Bearer {bob.token}"},
                                json={"text": "two"})
    assert over_json.status_code == 429
    assert error_body(over_json)[:2] == (8, "SLOW_MODE")
    await carol.send(group.name, "carol one")  # everyone has their own interval
    await make_role(alice, group.name, "carol", conv_res.Member.ROLE_MODERATOR)
    for text in ("owner one", "owner two"):  # the owner is not slowed, nor moderators
        await alice.send(group.name, text)
    await carol.send(group.name, "carol two")
    await set_slow_mode(alice, group.name, 0)
    await bob.send(group.name, "two")
    texts = [m.text for m in (await bob.messages(group.name)).messages]
    assert texts == ["one", "carol one", "owner one", "owner two", "carol two", "two"]


async def test_a_shadow_bans_words_reach_no_one_else_and_nobody_tells_them(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    bobs, carols = await subscribed(bob), await subscribed(carol)
    banned = await restrict(client, app, "bob", SHADOW_BAN, group.name, reason="spammer")
    # Bob is not told: neither on his stream nor when he asks.
    await expect_error(client.moderation.GetRestriction(mod_pb.GetRestrictionRequest(
        name=banned.name), metadata=bob.auth), grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    mine = await client.moderation.ListRestrictions(mod_pb.ListRestrictionsRequest(
        parent=app.name, user_id="bob"), metadata=bob.auth)
    assert list(mine.restrictions) == []
    spam = (await bob.send(group.name, "zebra spam", mention_ids=["carol"])).message
    assert (spam.text, spam.shadowed) == ("zebra spam", False)  # as if nothing happened
    event = await bobs.event()  # his own stream shows it (no restriction event first)
    assert (event.type, event.message_created.name) == ("message.created", spam.name)
    fine = (await alice.send(group.name, "zebra fine")).message
    event = await carols.event()  # carol's next event is alice's, not bob's
    assert event.message_created.name == fine.name
    # Carol cannot list, read, react to, reply to or search it; it counts nothing for her.
    assert [m.text for m in (await carol.messages(group.name)).messages] == ["zebra fine"]
    assert [m.text for m in (await bob.messages(group.name)).messages] == [
        "zebra spam", "zebra fine"]
    await expect_error(carol.client.messages.GetMessage(msg_pb.GetMessageRequest(
        name=spam.name), metadata=carol.auth), grpc.StatusCode.NOT_FOUND,
        "RESOURCE_NOT_FOUND")
    await expect_error(react(carol, spam.name), grpc.StatusCode.NOT_FOUND,
                       "RESOURCE_NOT_FOUND")
    await expect_error(carol.send(group.name, "re", thread_root_sequence=spam.sequence),
                       grpc.StatusCode.INVALID_ARGUMENT, "THREAD_ROOT_INVALID")
    inbox = await carol.inbox()
    mine_there = next(c for c in inbox.conversations if c.name == group.name)
    assert (mine_there.last_message.text, mine_there.membership.unread_count,
            mine_there.membership.unread_mention_count) == ("zebra fine", 1, 0)
    await found(client, carol.auth, app.app_id, "zebra", ["zebra fine"])
    # The app's backend sees it, marked.
    listed = await client.messages.ListMessages(msg_pb.ListMessagesRequest(
        parent=group.name), metadata=app.auth)
    assert [(m.text, m.shadowed) for m in listed.messages] == [("zebra spam", True),
                                                                ("zebra fine", False)]
    # Lifted: what he sends next is seen again (what he sent before stays his alone).
    await lift(client, banned.name, app.auth)
    await bob.send(group.name, "sorry")
    assert [m.text for m in (await carol.messages(group.name)).messages] == [
        "zebra fine", "sorry"]


async def test_a_user_floods_no_conversation(client: Client, server: CaasServer) -> None:
    # The "flood" plan of the test server: 3 messages a minute per user per conversation.
    flooded = await create_app(client, server.operator_token, plan="flood")
    ann = await person(client, flooded.app_id, flooded.api_key, "ann")
    await person(client, flooded.app_id, flooded.api_key, "ben")
    first, second = await ann.create(GROUP, ("ben",)), await ann.create(GROUP, ("ben",))
    for n in range(3):
        await ann.send(first.name, f"one {n}")
    refused = await expect_error(ann.send(first.name, "one more"),
                                 grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert refused.metadata == {"conversation": first.name.rsplit("/", 1)[1]}
    assert refused.retry_seconds is not None and 0 <= refused.retry_seconds <= 60
    assert refused.quota_subjects == [f"user:{flooded.app_id}/ann"]
    await ann.send(second.name, "elsewhere")  # another conversation has its own budget
    ben = await person(client, flooded.app_id, flooded.api_key, "ben")
    await ben.send(first.name, "others too")
    await client.messages.CreateMessage(msg_pb.CreateMessageRequest(  # the backend: not
        parent=first.name, request_id="b1",                            # held to it
        message=msg_res.Message(sender_id="ann", text="from the backend")),
        metadata=flooded.auth)
    texts = [m.text for m in (await ben.messages(first.name)).messages]
    assert texts == ["one 0", "one 1", "one 2", "others too", "from the backend"]
