"""Roles and permissions against a running server, on both stores: the defaults, custom
roles granted more, guests granted less, per kind of conversation, refusals that name
the permission, and the attempts to escalate that must fail."""

from __future__ import annotations

import json
import subprocess

import grpc
import httpx
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import field_mask_pb2

from tests.conftest import AppHandle, expect_error
from tests.e2e.test_http import error_body
from tests.e2e.test_moderation import DENIED, MUTE, restrict
from tests.e2e.test_ops import GRPCURL, ROUTES, target
from tests.support.chat import CHANNEL, GROUP, Person, person
from tests.support.client import Client
from tests.support.servers import CaasServer

P = mod_res.Permission
GROUP_KIND = conv_res.Conversation.KIND_GROUP
CHANNEL_KIND = conv_res.Conversation.KIND_CHANNEL
Auth = tuple[tuple[str, str], ...]


def grant(kind: int, role: str, *permissions: int) -> mod_res.Grant:
    return mod_res.Grant(conversation_kind=kind, role=role, permissions=permissions)


async def set_policy(client: Client, app: AppHandle, *grants: mod_res.Grant,
                     roles: tuple[str, ...] = (), by: Auth | None = None,
                     conditions: tuple[mod_res.Condition, ...] = (),
                     conversation_types: tuple[mod_res.ConversationType, ...] = ()
                     ) -> mod_res.PermissionPolicy:
    response = await client.moderation.UpdatePermissionPolicy(
        mod_pb.UpdatePermissionPolicyRequest(policy=mod_res.PermissionPolicy(
            name=f"{app.name}/permissionPolicy", custom_roles=roles, grants=grants,
            conditions=conditions, conversation_types=conversation_types)),
        metadata=by or app.auth)
    return response.policy


async def set_role(client: Client, app: AppHandle, user_id: str, role: str,
                   by: Auth | None = None) -> user_res.User:
    response = await client.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=f"{app.name}/users/{user_id}", role=role),
        update_mask=field_mask_pb2.FieldMask(paths=["role"])), metadata=by or app.auth)
    return response.user


async def test_custom_roles_are_granted_what_members_are_not(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    # In channels, members may not send links; the app's "vip" role may.
    policy = await set_policy(
        client, app,
        grant(CHANNEL_KIND, "conversation:member", P.PERMISSION_SEND_MESSAGE,
              P.PERMISSION_REACT, P.PERMISSION_JOIN),
        grant(CHANNEL_KIND, "vip", P.PERMISSION_SEND_LINKS), roles=("vip",))
    assert (list(policy.custom_roles), len(policy.grants)) == (["vip"], 2)
    assert policy.HasField("update_time")
    channel = await alice.create(CHANNEL)
    group = await alice.create(GROUP, ("bob",))
    for member in (bob, carol):
        await member.client.conversations.JoinConversation(
            conv_pb.JoinConversationRequest(name=channel.name), metadata=member.auth)
    assert (await set_role(client, app, "carol", "vip")).role == "vip"
    refused = await expect_error(bob.send(channel.name, "see https://example.com"), DENIED,
                                 "PERMISSION_MISSING")
    assert refused.metadata == {"permission": "send_links", "role": "user"}
    await bob.send(channel.name, "no link")  # still a member who sends
    await bob.send(group.name, "https://example.com in a group")  # groups keep the defaults
    await carol.send(channel.name, "see https://example.com")
    # A grant changes its role only: the owner keeps what owners have.
    await alice.send(channel.name, "and www.example.com")


async def test_guests_get_less_and_no_user_raises_their_own_role(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    # Sending in groups is for users: members who are guests only read and react.
    await set_policy(client, app,
                     grant(GROUP_KIND, "conversation:member", P.PERMISSION_REACT),
                     grant(GROUP_KIND, "user", P.PERMISSION_SEND_MESSAGE,
                           P.PERMISSION_SEND_LINKS, P.PERMISSION_ATTACH_MEDIA,
                           P.PERMISSION_CREATE_CONVERSATION))
    group = await alice.create(GROUP, ("bob",))
    await set_role(client, app, "bob", "guest")
    refused = await expect_error(bob.send(group.name, "hi"), DENIED, "PERMISSION_MISSING")
    assert refused.metadata == {"permission": "send_message", "role": "guest"}
    await expect_error(bob.create(GROUP, ("alice",)), DENIED, "PERMISSION_MISSING")
    said = (await alice.send(group.name, "welcome")).message
    await bob.client.messages.AddReaction(msg_pb.AddReactionRequest(name=said.name,
                                                                    emoji="👋"),
                                          metadata=bob.auth)
    # Nobody raises their own role, nor writes the policy.
    await expect_error(set_role(client, app, "bob", "admin", by=bob.auth), DENIED,
                       "PRINCIPAL_NOT_ALLOWED")
    await expect_error(set_policy(client, app, grant(GROUP_KIND, "guest",
                                                     P.PERMISSION_SEND_MESSAGE), by=bob.auth),
                       DENIED, "PRINCIPAL_NOT_ALLOWED")
    await expect_error(client.moderation.GetPermissionPolicy(mod_pb.GetPermissionPolicyRequest(
        name=f"{app.name}/permissionPolicy"), metadata=alice.auth), DENIED,
        "PRINCIPAL_NOT_ALLOWED")
    await expect_error(bob.send(group.name, "hi"), DENIED, "PERMISSION_MISSING")
    # Back to user: what users have.
    await set_role(client, app, "bob", "")
    await bob.send(group.name, "hi")


async def test_app_moderators_moderate_where_they_are_members(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    said = (await carol.send(group.name, "rude")).message
    await expect_error(bob.client.messages.DeleteMessage(msg_pb.DeleteMessageRequest(
        name=said.name), metadata=bob.auth), DENIED, "PERMISSION_MISSING")
    await set_role(client, app, "bob", "moderator")  # the app's moderator, a plain member
    await bob.client.messages.DeleteMessage(msg_pb.DeleteMessageRequest(name=said.name),
                                            metadata=bob.auth)
    muted = await restrict(client, app, "carol", MUTE, group.name, by=bob.auth)
    assert muted.creator == f"{app.name}/users/bob"
    # Staff do not restrict the owner, nor other staff.
    await expect_error(restrict(client, app, "alice", MUTE, group.name, by=bob.auth), DENIED,
                       "RESTRICTION_NOT_ALLOWED")
    # A custom role is granted nothing until the policy says so; it cannot grant itself.
    await set_policy(client, app, roles=("helper",))
    await set_role(client, app, "carol", "helper")
    await expect_error(restrict(client, app, "bob", MUTE, group.name, by=carol.auth), DENIED,
                       "PERMISSION_MISSING")


async def test_unknown_roles_are_refused(client: Client, app: AppHandle, alice: Person
                                         ) -> None:
    refused = await expect_error(set_role(client, app, "alice", "wizard"),
                                 grpc.StatusCode.FAILED_PRECONDITION, "ROLE_UNKNOWN")
    assert refused.metadata == {"role": "wizard"}
    await expect_error(set_policy(client, app, grant(GROUP_KIND, "wizard")),
                       grpc.StatusCode.FAILED_PRECONDITION, "ROLE_UNKNOWN")
    await expect_error(set_policy(client, app, grant(GROUP_KIND, "user"),
                                  grant(GROUP_KIND, "user", P.PERMISSION_JOIN)),
                       grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    created = await client.users.CreateUser(user_pb.CreateUserRequest(
        parent=app.name, user_id="dan", user=user_res.User(role="moderator")),
        metadata=app.auth)
    assert created.user.role == "moderator"
    await expect_error(client.users.CreateUser(user_pb.CreateUserRequest(
        parent=app.name, user_id="eve", user=user_res.User(role="wizard")),
        metadata=app.auth), grpc.StatusCode.FAILED_PRECONDITION, "ROLE_UNKNOWN")
    # Removing a custom role leaves its users with no grant of it.
    await set_policy(client, app, grant(GROUP_KIND, "vip", P.PERMISSION_CREATE_CONVERSATION),
                     roles=("vip",))
    await set_role(client, app, "alice", "vip")
    await set_policy(client, app)
    policy = await client.moderation.GetPermissionPolicy(mod_pb.GetPermissionPolicyRequest(
        name=f"{app.name}/permissionPolicy"), metadata=app.auth)
    assert (list(policy.policy.custom_roles), list(policy.policy.grants)) == ([], [])


async def test_the_policy_over_json(http: httpx.AsyncClient, app: AppHandle,
                                    alice: Person) -> None:
    key = {"authorization": f"Bearer {app.api_key}"}
    put = await http.put(f"/v1/{app.name}/permissionPolicy", headers=key, json={
        "customRoles": ["vip"], "grants": [{"conversationKind": "KIND_GROUP",
                                            "role": "conversation:member",
                                            "permissions": ["PERMISSION_REACT"]}]})
    assert put.status_code == 200, put.text
    assert put.json()["policy"]["grants"][0]["permissions"] == ["PERMISSION_REACT"]
    group = await alice.create(GROUP)
    await person(alice.client, app.app_id, app.api_key, "zed")
    sent = await http.post(f"/v1/{group.name}/messages", params={"request_id": "j1"},
                           headers={"authorization": f"Bearer {alice.token}"},
                           json={"text": "hi"})
    assert sent.status_code == 200  # alice owns it: the owner's own grants stand
    refused = await http.post(f"/v1/{app.name}/permissionPolicy".replace("/v1/", "/v1/"),
                              headers={"authorization": f"Bearer {alice.token}"}, json={})
    assert refused.status_code in (403, 404, 405)
    got = await http.get(f"/v1/{app.name}/permissionPolicy", headers=key)
    assert got.json()["policy"]["customRoles"] == ["vip"]
    assert error_body(await http.get(f"/v1/{app.name}/permissionPolicy", headers={
        "authorization": f"Bearer {alice.token}"}))[1] == "PRINCIPAL_NOT_ALLOWED"


def condition(condition_id: str, permission: int, expression: str, *kinds: int,
              description: str = "") -> mod_res.Condition:
    return mod_res.Condition(id=condition_id, permission=permission, expression=expression,
                             conversation_kinds=kinds, description=description)


async def set_metadata(client: Client, app: AppHandle, user_id: str, **metadata: str
                       ) -> None:
    await client.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=f"{app.name}/users/{user_id}", metadata=metadata),
        update_mask=field_mask_pb2.FieldMask(paths=["metadata"])), metadata=app.auth)


async def test_conditions_decide_with_attributes(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    policy = await set_policy(client, app, conditions=(
        condition("same-team", P.PERMISSION_SEND_MESSAGE,
                  'user.metadata["team"] == conversation.metadata["team"]', CHANNEL_KIND,
                  description="your team's channels only"),
        condition("guests-in-support", P.PERMISSION_SEND_MESSAGE,
                  'user.role != "guest" || conversation.metadata["topic"] == "support"',
                  GROUP_KIND),
        condition("links-after-a-day", P.PERMISSION_SEND_LINKS,
                  "!request.has_links || user.age_seconds > 86400")))
    assert [c.id for c in policy.conditions] == ["same-team", "guests-in-support",
                                                 "links-after-a-day"]
    await set_metadata(client, app, "bob", team="red")
    await set_metadata(client, app, "carol", team="blue")
    red = await alice.create(CHANNEL, metadata={"team": "red"})
    for member in (bob, carol):
        await member.client.conversations.JoinConversation(
            conv_pb.JoinConversationRequest(name=red.name), metadata=member.auth)
    await bob.send(red.name, "hi team")
    refused = await expect_error(carol.send(red.name, "hi"), DENIED, "POLICY_DENIED")
    assert refused.metadata == {"condition": "same-team", "permission": "send_message",
                                "description": "your team's channels only"}
    # Alice has no team: the missing key counts as false.
    await expect_error(alice.send(red.name, "hi"), DENIED, "POLICY_DENIED")
    # Guests post in support groups only.
    support = await alice.create(GROUP, ("bob",), metadata={"topic": "support"})
    chat = await alice.create(GROUP, ("bob",))
    await set_role(client, app, "bob", "guest")
    await bob.send(support.name, "help")
    await expect_error(bob.send(chat.name, "hi"), DENIED, "POLICY_DENIED")
    # Users created just now send no links.
    refused = await expect_error(alice.send(chat.name, "see https://example.com"), DENIED,
                                 "POLICY_DENIED")
    assert refused.metadata["condition"] == "links-after-a-day"
    await alice.send(chat.name, "no links, fine")


async def test_broken_conditions_are_refused_when_saved(client: Client, app: AppHandle
                                                        ) -> None:
    for expression in ['user.metadata["team"] ==',  # does not parse
                       'account.tier == "gold"',  # no such variable
                       'user.metadata["tags"].split(",").size() > 1',  # no such function
                       "user.age_seconds + 1",  # not a bool
                       "1 == 1.0 &&"]:
        refused = await expect_error(set_policy(client, app, conditions=(
            condition("ok", P.PERMISSION_REACT, "true"),
            condition("broken", P.PERMISSION_SEND_MESSAGE, expression))),
            grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
        assert list(refused.field_violations) == ["policy.conditions[1].expression"], expression
    await expect_error(set_policy(client, app, conditions=(
        condition("twice", P.PERMISSION_REACT, "true"),
        condition("twice", P.PERMISSION_JOIN, "true"))),
        grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    policy = await client.moderation.GetPermissionPolicy(mod_pb.GetPermissionPolicyRequest(
        name=f"{app.name}/permissionPolicy"), metadata=app.auth)
    assert list(policy.policy.conditions) == []  # nothing of it was kept


@ROUTES
def test_grpcurl_reads_and_writes_the_policy(server: CaasServer, app: AppHandle,
                                             route: str) -> None:
    def grpcurl(method: str, request: dict[str, object]) -> dict[str, object]:
        done = subprocess.run(
            [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}", "-d",
             json.dumps(request), target(server, route),
             f"caas.moderation.v1.ModerationService/{method}"],
            capture_output=True, text=True, timeout=30, check=True)
        result: dict[str, object] = json.loads(done.stdout or "{}")
        return result

    name = f"{app.name}/permissionPolicy"
    grpcurl("UpdatePermissionPolicy", {"policy": {
        "name": name, "customRoles": ["vip"],
        "conditions": [{"id": "weekdays", "permission": "PERMISSION_SEND_MESSAGE",
                        "expression": "now.getDayOfWeek() < 7"}]}})
    got = grpcurl("GetPermissionPolicy", {"name": name})["policy"]
    assert got["customRoles"] == ["vip"]  # type: ignore[index]
    assert got["conditions"][0]["id"] == "weekdays"  # type: ignore[index]


async def test_app_defined_conversation_types_have_their_own_grants(
        client: Client, app: AppHandle, alice: Person, bob: Person) -> None:
    support = mod_res.ConversationType(id="support", kind=GROUP_KIND)
    policy = await set_policy(
        client, app,
        mod_res.Grant(conversation_kind=GROUP_KIND, conversation_type="support",
                      role="conversation:member",
                      permissions=[P.PERMISSION_SEND_MESSAGE, P.PERMISSION_REACT]),
        conversation_types=(support,), conditions=(
            condition("owners-announce", P.PERMISSION_SEND_MESSAGE,
                      'conversation.type != "support" || member.role != "owner" || '
                      "request.text_length <= 200"),))
    assert [t.id for t in policy.conversation_types] == ["support"]
    assert policy.grants[0].conversation_type == "support"
    desk = await alice.create(GROUP, ("bob",), conversation_type="support")
    plain = await alice.create(GROUP, ("bob",))
    assert (desk.type, plain.type) == ("support", "")
    refused = await expect_error(bob.send(desk.name, "see https://example.com"), DENIED,
                                 "PERMISSION_MISSING")
    assert refused.metadata["permission"] == "send_links"
    await bob.send(desk.name, "no links here")
    await bob.send(plain.name, "see https://example.com")  # the kind's grants
    await expect_error(alice.send(desk.name, "x" * 201), DENIED, "POLICY_DENIED")
    # Only the app's types, of their kind.
    for kind, name in ((GROUP, "sales"), (CHANNEL, "support")):
        got = await expect_error(alice.create(kind, conversation_type=name),
                                 grpc.StatusCode.FAILED_PRECONDITION,
                                 "CONVERSATION_TYPE_UNKNOWN")
        assert got.metadata == {"type": name}
    await expect_error(set_policy(client, app, mod_res.Grant(
        conversation_kind=CHANNEL_KIND, conversation_type="support", role="user")),
        grpc.StatusCode.FAILED_PRECONDITION, "CONVERSATION_TYPE_UNKNOWN")
    await expect_error(set_policy(client, app, conversation_types=(support, support)),
                       grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")


async def test_without_read_history_a_late_joiner_reads_from_their_joining(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("carol",))
    old = (await alice.send(group.name, "before bob")).message
    await alice.client.conversations.AddMembers(conv_pb.AddMembersRequest(
        conversation=group.name, user_ids=["bob"]), metadata=alice.auth)
    await alice.send(group.name, "after bob")
    assert [m.text for m in (await bob.messages(group.name)).messages] == [
        "before bob", "after bob"]  # the default: members read the history
    await set_policy(client, app, grant(
        GROUP_KIND, "conversation:member", P.PERMISSION_SEND_MESSAGE, P.PERMISSION_REACT))
    assert [m.text for m in (await bob.messages(group.name)).messages] == ["after bob"]
    await expect_error(bob.client.messages.GetMessage(msg_pb.GetMessageRequest(
        name=old.name), metadata=bob.auth), grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    # Carol was there from the start, and the owner keeps the owner's grants.
    assert [m.text for m in (await carol.messages(group.name)).messages] == [
        "before bob", "after bob"]
    assert len((await alice.messages(group.name)).messages) == 2
