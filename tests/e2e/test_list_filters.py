"""`filter` and `order_by` on ListConversations, ListMembers, ListMessages and ListUsers,
against the running server: native gRPC and JSON through Envoy, page tokens bound to
their filter and order (AIP-158), bad filters refused with the position and the
problem, and no filter ever showing more than the caller may see."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import resources_pb2 as msg_res
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2

from tests.conftest import AppHandle, expect_error
from tests.support.chat import CHANNEL, DIRECT, GROUP, Person, person
from tests.support.client import Client, details

INVALID = grpc.StatusCode.INVALID_ARGUMENT
DENIED = grpc.StatusCode.PERMISSION_DENIED
CONVERSATION_FIELDS = ("kind, unread, unread_count, has_mentions, unread_mention_count, "
                       "muted, archived, pinned, role, last_activity_time, create_time")


@pytest.fixture
async def dave(client: Client, app: AppHandle) -> Person:
    return await person(client, app.app_id, app.api_key, "dave", "Dave D.")


def headers(credential: str) -> dict[str, str]:
    return {"authorization": f"Bearer {credential}"}


def violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(field, description) of each field violation of a failed call."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)  # type: ignore[arg-type]
            for packed in status.details:
                if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    packed.Unpack(bad)
                    return [(v.field, v.description) for v in bad.field_violations]
    return []


async def refused(call: Any, reason: str = "REQUEST_INVALID") -> list[tuple[str, str]]:
    """The field violations of a call that must fail with INVALID_ARGUMENT (`reason`)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    got = details(caught.value)
    assert (got.code, got.reason, got.domain) == (INVALID, reason, "caas.dev"), got
    return violations(caught.value)


def by_creation(conversations: Any) -> list[str]:
    """Names in create_time order (ties: by id), as `order_by: "create_time"` lists."""
    return [c.name for c in sorted(conversations, key=lambda c: (
        c.create_time.ToMilliseconds(), c.name.rsplit("/", 1)[1]))]


def names(conversations: Any) -> list[str]:
    return [c.name for c in conversations]


def promote(conversation: str, user_id: str, role: int) -> conv_pb.UpdateMemberRequest:
    return conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{conversation}/members/{user_id}",
                               role=role),  # type: ignore[arg-type]
        update_mask=field_mask_pb2.FieldMask(paths=["role"]))


async def test_conversations_by_kind_unread_and_settings(
        client: Client, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob",), title="group")
    direct = await alice.create(DIRECT, ("bob",))
    quiet = await alice.create(GROUP, ("carol",), title="quiet")
    await bob.create(GROUP, ("carol",), title="not alice's")
    await bob.send(group.name, "hi alice")
    await carol.send(quiet.name, "psst")
    await alice.client.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{quiet.name}/members/alice", muted=True),
        update_mask=field_mask_pb2.FieldMask(paths=["muted"])), metadata=alice.auth)

    async def inbox(text: str, order_by: str = "") -> list[str]:
        return names((await alice.inbox(filter=text, order_by=order_by)).conversations)

    assert await inbox("kind = group AND unread = true AND NOT muted = true") == [group.name]
    assert await inbox("kind = direct") == [direct.name]
    assert await inbox("unread = false") == [direct.name]
    assert await inbox("muted = true OR unread_count > 5") == [quiet.name]
    assert await inbox("kind = group", "create_time") == by_creation([group, quiet])
    assert await inbox("kind = group", "create_time desc") == by_creation([group, quiet])[::-1]
    # A filter that takes in everything still lists only alice's own conversations.
    everything = await inbox("kind = group OR kind != group")
    assert sorted(everything) == sorted([group.name, direct.name, quiet.name])
    # Someone else's inbox stays refused, whatever the filter.
    await expect_error(client.conversations.ListConversations(
        conv_pb.ListConversationsRequest(parent=bob.name, filter="kind = group"),
        metadata=alice.auth), DENIED, "USER_MISMATCH")


async def test_conversations_with_unread_mentions(
        client: Client, http: httpx.AsyncClient, app: AppHandle, alice: Person, bob: Person,
        carol: Person) -> None:
    mentioned = await alice.create(GROUP, ("bob", "carol"), title="mentioned")
    plain = await alice.create(GROUP, ("bob",), title="plain")
    await bob.send(mentioned.name, "@alice look", mention_ids=["alice"])
    await bob.send(plain.name, "no mention of anyone")
    await bob.send(mentioned.name, "@carol and me", mention_ids=["carol", "bob"])

    shown = await alice.inbox(filter="has_mentions = true")
    assert names(shown.conversations) == [mentioned.name]
    membership = shown.conversations[0].membership
    assert (membership.unread_count, membership.unread_mention_count) == (2, 1)
    assert names((await alice.inbox(filter="has_mentions = false AND unread = true")
                  ).conversations) == [plain.name]
    assert names((await alice.inbox(filter="unread_mention_count >= 2")).conversations) == []
    assert names((await bob.inbox(filter="has_mentions = true")).conversations) == []

    response = await http.get(f"/v1/{alice.name}/conversations",
                              params={"filter": "has_mentions = true"},
                              headers=headers(alice.token))
    assert response.status_code == 200, response.text
    listed = response.json()["conversations"]
    assert [c["name"] for c in listed] == [mentioned.name]
    assert listed[0]["membership"]["unreadMentionCount"] == "1"
    response = await http.get(f"/v1/{alice.name}/conversations",
                              params={"filter": "unread_mention_count = 0"},
                              headers=headers(alice.token))
    assert [c["name"] for c in response.json()["conversations"]] == [plain.name]

    # Another member sees nothing of alice's count; alice and the app's backend see it.
    async def counts(who: tuple[tuple[str, str], ...]) -> dict[str, int]:
        page = await client.conversations.ListMembers(
            conv_pb.ListMembersRequest(parent=mentioned.name), metadata=who)
        return {m.user_id: m.unread_mention_count for m in page.members}

    assert await counts(carol.auth) == {"alice": 0, "bob": 0, "carol": 1}
    assert await counts(alice.auth) == {"alice": 1, "bob": 0, "carol": 0}
    assert await counts(app.auth) == {"alice": 1, "bob": 0, "carol": 1}
    members = await http.get(f"/v1/{mentioned.name}/members", headers=headers(carol.token))
    assert members.status_code == 200, members.text
    assert {m["userId"]: m.get("unreadMentionCount", "0")
            for m in members.json()["members"]} == {"alice": "0", "bob": "0", "carol": "1"}
    own = await client.conversations.GetMember(
        conv_pb.GetMemberRequest(name=f"{mentioned.name}/members/alice"), metadata=alice.auth)
    assert own.member.unread_mention_count == 1
    seen_by_bob = await client.conversations.GetMember(
        conv_pb.GetMemberRequest(name=f"{mentioned.name}/members/alice"), metadata=bob.auth)
    assert seen_by_bob.member.user_id == "alice" and seen_by_bob.member.unread_mention_count == 0

    read = await alice.mark_read(mentioned.name)
    assert (read.unread_count, read.unread_mention_count) == (0, 0)
    assert names((await alice.inbox(filter="has_mentions = true")).conversations) == []


async def test_archived_conversations_follow_the_filter(alice: Person, bob: Person) -> None:
    kept = await alice.create(GROUP, ("bob",))
    shelved = await alice.create(GROUP, ("bob",))
    await alice.client.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{shelved.name}/members/alice", archived=True),
        update_mask=field_mask_pb2.FieldMask(paths=["archived"])), metadata=alice.auth)
    assert names((await alice.inbox(filter="kind = group")).conversations) == [kept.name]
    shown = await alice.inbox(filter="archived = true")
    assert names(shown.conversations) == [shelved.name]
    assert shown.conversations[0].membership.archived


async def test_page_tokens_are_bound_to_the_filter_and_the_order(
        alice: Person, bob: Person) -> None:
    groups = [await alice.create(GROUP, ("bob",), title=f"g{n}") for n in range(5)]
    await alice.create(DIRECT, ("bob",))
    seen: list[str] = []
    token = ""
    first_token = ""
    while True:
        page = await alice.inbox(filter="kind = group", order_by="create_time",
                                 page_size=2, page_token=token)
        seen += names(page.conversations)
        token = page.next_page_token
        first_token = first_token or token
        if not token:
            break
    assert seen == by_creation(groups)
    # The same filter spelled differently is the same filter.
    again = await alice.inbox(filter='kind="KIND_GROUP"', order_by="create_time  ASC",
                              page_size=2, page_token=first_token)
    assert names(again.conversations) == seen[2:4]
    for other in ({"filter": "kind = direct", "order_by": "create_time"},
                  {"filter": "", "order_by": "create_time"},
                  {"filter": "kind = group", "order_by": "create_time desc"},
                  {"filter": "kind = group", "order_by": ""}):
        await refused(alice.inbox(page_size=2, page_token=first_token, **other),
                      "PAGE_TOKEN_INVALID")


async def test_bad_filters_name_the_position_and_the_problem(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    got = await refused(alice.inbox(filter="kind = group AND colour = red"))
    assert got == [("filter", f'at 18: unknown field "colour"; allowed: {CONVERSATION_FIELDS}')]
    got = await refused(alice.inbox(filter="kind = purple"))
    assert got == [("filter", 'at 8: kind takes one of direct, group, channel, not "purple"')]
    got = await refused(alice.inbox(filter="(unread = true"))
    assert got == [("filter", 'at 1: this "(" is never closed')]
    got = await refused(alice.inbox(order_by="title"))
    assert got[0][0] == "order_by" and got[0][1].startswith('"title" is not an order')
    got = await refused(client.conversations.ListMembers(
        conv_pb.ListMembersRequest(parent=group.name, filter="muted = true"),
        metadata=alice.auth))  # what only each member may see of themself is no field
    assert got == [("filter", 'at 1: unknown field "muted"; allowed: role, user_id, '
                              "join_time")]
    got = await refused(alice.messages(group.name, filter='create_time > "yesterday"'))
    assert got == [("filter", 'at 15: create_time takes an RFC 3339 timestamp in double '
                              'quotes, such as "2026-01-02T15:04:05Z", not "yesterday"')]
    got = await refused(client.users.ListUsers(
        user_pb.ListUsersRequest(parent=app.name, filter="metadata = x"), metadata=app.auth))
    assert got[0] == ("filter", "at 12: name a key: metadata.<key> = value, or "
                                "metadata:<key> for a key that is present")
    too_many = " OR ".join(["unread = true"] * 21)
    got = await refused(alice.inbox(filter=too_many))
    assert got == [("filter", "at 341: more than 20 comparisons")]


async def test_members_by_role_and_id(client: Client, alice: Person, bob: Person,
                                      carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    await alice.client.conversations.UpdateMember(
        promote(group.name, "bob", conv_res.Member.ROLE_ADMIN), metadata=alice.auth)

    async def members(text: str, order_by: str = "", who: Person = carol) -> list[str]:
        page = await client.conversations.ListMembers(
            conv_pb.ListMembersRequest(parent=group.name, filter=text, order_by=order_by),
            metadata=who.auth)
        return [m.user_id for m in page.members]

    assert await members("role >= admin") == ["alice", "bob"]
    assert await members("role = ROLE_MEMBER") == ["carol"]
    assert await members('user_id = "ca*" OR role = owner', "join_time desc") == [
        "carol", "alice"]
    tokens: list[str] = []
    seen: list[str] = []
    while True:
        page = await client.conversations.ListMembers(conv_pb.ListMembersRequest(
            parent=group.name, filter="role != owner", page_size=1,
            page_token=tokens[-1] if tokens else ""), metadata=bob.auth)
        seen += [m.user_id for m in page.members]
        if not page.next_page_token:
            break
        tokens.append(page.next_page_token)
    assert seen == ["bob", "carol"]
    await refused(client.conversations.ListMembers(conv_pb.ListMembersRequest(
        parent=group.name, filter="role = owner", page_token=tokens[0]), metadata=bob.auth),
        "PAGE_TOKEN_INVALID")


async def test_filters_never_open_what_is_closed(
        client: Client, alice: Person, bob: Person, dave: Person, mallory: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    channel = await alice.create(CHANNEL, ("bob",))
    await alice.send(group.name, "for members")

    def list_members(conversation: str, who: Person, text: str) -> Any:
        return client.conversations.ListMembers(
            conv_pb.ListMembersRequest(parent=conversation, filter=text), metadata=who.auth)

    for text in ("role >= member", 'user_id = "*"', "colour = red"):
        await expect_error(list_members(group.name, dave, text), grpc.StatusCode.NOT_FOUND,
                           "RESOURCE_NOT_FOUND")
        await expect_error(list_members(channel.name, dave, text), DENIED, "NOT_A_MEMBER")
        await expect_error(list_members(group.name, mallory, text), DENIED, "APP_MISMATCH")
        await expect_error(dave.messages(group.name, filter=text), grpc.StatusCode.NOT_FOUND,
                           "RESOURCE_NOT_FOUND")
    assert names((await dave.inbox(filter="kind = group OR kind != group")).conversations) == []
    # Users are listed by the app's backend only, filter or not.
    await expect_error(client.users.ListUsers(user_pb.ListUsersRequest(
        parent=f"apps/{alice.app_id}", filter='user_id = "*"'), metadata=alice.auth),
        DENIED, "PRINCIPAL_NOT_ALLOWED")


async def test_messages_by_sender_mention_attachment_and_time(
        alice: Person, bob: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    await alice.send(group.name, "one")                                              # 1
    await bob.send(group.name, "@alice", mention_ids=["alice"])                      # 2
    await alice.send(group.name, "", attachments=[msg_res.Attachment(
        kind=msg_res.Attachment.KIND_IMAGE, uri="https://img.example/p.png")])       # 3
    await bob.send(group.name, "in thread", thread_root_sequence=1)                  # 4
    await bob.send(group.name, "two", metadata={"topic": "lunch"})                   # 5
    await alice.send(group.name, "three")                                            # 6

    async def sequences(text: str, **position: Any) -> tuple[list[int], bool, bool]:
        page = await alice.messages(group.name, filter=text, **position)
        return [m.sequence for m in page.messages], page.has_more_before, page.has_more_after

    assert await sequences('sender_id = "bob"') == ([2, 5], False, False)
    assert await sequences('mention_ids:"alice"') == ([2], False, False)
    assert await sequences("has_attachments = true") == ([3], False, False)
    assert await sequences('metadata.topic = "lunch" OR reply_count > 0') == ([1, 5],
                                                                              False, False)
    assert await sequences('sender_id = "bob"', thread_root_sequence=1) == ([4], False, False)
    assert await sequences('sender_id = "alice"', page_size=2) == ([3, 6], True, False)
    assert await sequences('sender_id = "alice"', before_sequence=3) == ([1], False, True)
    assert await sequences('sender_id = "alice"', after_sequence=1, page_size=1) == (
        [3], True, True)
    whole = (await alice.messages(group.name)).messages
    since = whole[3].create_time  # message 5's
    assert whole[3].sequence == 5
    later = [m.sequence for m in whole if m.create_time.ToMilliseconds() >= since.ToMilliseconds()]
    assert await sequences(f'create_time >= "{since.ToJsonString()}" AND state = active') == (
        later, False, False)
    assert await sequences(f'create_time < "{since.ToJsonString()}"') == (
        [s for s in (1, 2, 3) if s not in later], False, False)


async def test_users_by_id_name_and_metadata(client: Client, app: AppHandle, alice: Person,
                                             bob: Person, carol: Person) -> None:
    await client.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=f"{app.name}/users/carol", metadata={"plan": "pro"}),
        update_mask=field_mask_pb2.FieldMask(paths=["metadata"])), metadata=app.auth)

    async def users(text: str, order_by: str = "") -> list[str]:
        page = await client.users.ListUsers(
            user_pb.ListUsersRequest(parent=app.name, filter=text, order_by=order_by),
            metadata=app.auth)
        return [u.name.rsplit("/", 1)[1] for u in page.users]

    assert await users('user_id = "ca*"') == ["carol"]
    assert await users('metadata.plan = "pro"') == ["carol"]
    assert await users("NOT metadata:plan", "display_name desc") == ["bob", "alice"]
    assert await users('display_name = "Bob*" OR display_name = "Alice*"',
                       "display_name") == ["alice", "bob"]
    assert await users("state = deleted") == []


async def test_filters_over_json(http: httpx.AsyncClient, app: AppHandle, alice: Person,
                                 bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    await alice.create(DIRECT, ("bob",))
    await bob.send(group.name, "hello")
    await alice.client.conversations.UpdateMember(
        promote(group.name, "bob", conv_res.Member.ROLE_ADMIN), metadata=alice.auth)
    response = await http.get(f"/v1/{alice.name}/conversations",
                              params={"filter": "kind = group AND unread = true"},
                              headers=headers(alice.token))
    assert response.status_code == 200, response.text
    assert [c["name"] for c in response.json()["conversations"]] == [group.name]

    members = await http.get(f"/v1/{group.name}/members",
                             params={"filter": "role >= admin", "order_by": "join_time desc"},
                             headers=headers(carol.token))
    assert members.status_code == 200, members.text
    assert [m["userId"] for m in members.json()["members"]] == ["bob", "alice"]
    camel = await http.get(f"/v1/{group.name}/members",
                           params={"filter": "role >= admin", "orderBy": "join_time desc"},
                           headers=headers(carol.token))
    assert camel.status_code == 200, camel.text
    assert camel.json() == members.json()

    messages = await http.get(f"/v1/{group.name}/messages",
                              params={"filter": 'sender_id = "bob"'},
                              headers=headers(alice.token))
    assert messages.status_code == 200, messages.text
    assert [m["text"] for m in messages.json()["messages"]] == ["hello"]

    users = await http.get(f"/v1/{app.name}/users",
                           params={"filter": 'user_id = "b*" OR user_id = "c*"',
                                   "order_by": "create_time desc", "page_size": 1},
                           headers=headers(app.api_key))
    assert users.status_code == 200, users.text
    body = users.json()
    assert [u["name"] for u in body["users"]] == [f"{app.name}/users/carol"]
    rest = await http.get(f"/v1/{app.name}/users",
                          params={"filter": 'user_id = "b*" OR user_id = "c*"',
                                  "order_by": "create_time desc",
                                  "page_token": body["nextPageToken"]},
                          headers=headers(app.api_key))
    assert [u["name"] for u in rest.json()["users"]] == [f"{app.name}/users/bob"]

    bad = await http.get(f"/v1/{alice.name}/conversations", params={"filter": "colour = red"},
                         headers=headers(alice.token))
    assert bad.status_code == 400
    error = bad.json()
    assert error["code"] == 3
    info = next(d for d in error["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["reason"] == "REQUEST_INVALID"
    found = [(v["field"], v["description"]) for d in error["details"]
             if d["@type"].endswith("BadRequest") for v in d["fieldViolations"]]
    assert found == [("filter", f'at 1: unknown field "colour"; allowed: {CONVERSATION_FIELDS}')]
    stale = await http.get(f"/v1/{app.name}/users", headers=headers(app.api_key),
                           params={"filter": 'user_id = "b*"',
                                   "page_token": body["nextPageToken"]})
    assert stale.status_code == 400
    assert next(d for d in stale.json()["details"] if d["@type"].endswith("ErrorInfo"))[
        "reason"] == "PAGE_TOKEN_INVALID"

