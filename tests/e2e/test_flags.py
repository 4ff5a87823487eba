"""Flags and the review queue against a running server, on both stores: reporting, what
each caller sees, claiming, resolving (dismiss, delete, mute or ban), the events, and
attempts to review what one may not."""

from __future__ import annotations

import json
import subprocess

import grpc
import httpx
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res

from tests.conftest import AppHandle, expect_error
from tests.e2e.test_http import error_body, grpc_web_frame, grpc_web_frames
from tests.e2e.test_moderation import BAN, DENIED, MUTE, make_role
from tests.e2e.test_ops import GRPCURL, ROUTES, target
from tests.e2e.test_webhooks import create_webhook, delivered, events
from tests.support.chat import CHANNEL, GROUP, Person, person
from tests.support.client import Client
from tests.support.servers import CaasServer
from tests.support.stream import subscribed
from tests.support.webhook_receiver import Receiver

NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED = grpc.StatusCode.FAILED_PRECONDITION
SPAM = mod_res.Report.REASON_SPAM
HATE = mod_res.Report.REASON_HATE
OPEN = mod_res.Flag.STATE_OPEN
RESOLVED = mod_res.Flag.STATE_RESOLVED
Auth = tuple[tuple[str, str], ...]


async def flag(client: Client, app: AppHandle, by: Auth, message: str = "",
               user_id: str = "", reason: int = SPAM, details: str = "") -> mod_res.Flag:
    target = {"message": message} if message else {"user_id": user_id}
    response = await client.moderation.CreateFlag(mod_pb.CreateFlagRequest(
        parent=app.name, reason=reason, details=details, **target),  # type: ignore[arg-type]
        metadata=by)
    return response.flag


async def get(client: Client, name: str, by: Auth) -> mod_res.Flag:
    return (await client.moderation.GetFlag(mod_pb.GetFlagRequest(name=name),
                                            metadata=by)).flag


async def claim(client: Client, name: str, by: Auth, release: bool = False) -> mod_res.Flag:
    return (await client.moderation.ClaimFlag(
        mod_pb.ClaimFlagRequest(name=name, release=release), metadata=by)).flag


async def resolve(client: Client, name: str, by: Auth, note: str = "checked",
                  **fields: object) -> mod_res.Flag:
    return (await client.moderation.ResolveFlag(mod_pb.ResolveFlagRequest(
        name=name, note=note, **fields), metadata=by)).flag  # type: ignore[arg-type]


async def listed(client: Client, app: AppHandle, by: Auth, **fields: object) -> list[str]:
    response = await client.moderation.ListFlags(mod_pb.ListFlagsRequest(
        parent=app.name, **fields), metadata=by)  # type: ignore[arg-type]
    return [f.name for f in response.flags]


async def test_reports_join_one_flag_and_each_caller_sees_their_share(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    spam = (await bob.send(group.name, "buy cheap pills")).message
    bobs = await subscribed(bob)
    mine = await flag(client, app, carol.auth, spam.name, details="again")
    assert (mine.message, mine.conversation, mine.user_id, mine.state) == (
        spam.name, group.name, "bob", OPEN)
    assert [(r.reporter, r.reason, r.details) for r in mine.reports] == [
        (f"{app.name}/users/carol", SPAM, "again")]
    backend = await flag(client, app, app.auth, spam.name, reason=HATE)
    assert backend.name == mine.name  # one flag per message
    assert (backend.report_count, backend.message_text) == (2, "buy cheap pills")
    assert backend.reports[0].reporter.startswith(f"{app.name}/apiKeys/")
    # Carol reports again: her report is replaced, not added.
    again = await flag(client, app, carol.auth, spam.name, reason=HATE)
    assert (again.name, again.report_count, [r.reason for r in again.reports]) == (
        mine.name, 1, [HATE])  # she sees her own report only
    whole = await get(client, mine.name, alice.auth)  # the owner reviews it
    assert whole.report_count == 2
    assert sorted(r.reason for r in whole.reports) == [HATE, HATE]
    assert (await get(client, mine.name, carol.auth)).report_count == 1
    # The flagged user is not told, neither by Get nor on their stream.
    await expect_error(get(client, mine.name, bob.auth), NOT_FOUND, "RESOURCE_NOT_FOUND")
    after = await bob.send(group.name, "sync")
    event = await bobs.event()
    assert (event.type, event.message_created.name) == ("message.created",
                                                        after.message.name)


async def test_no_one_flags_themself_or_what_they_cannot_read(
        client: Client, app: AppHandle, other_app: AppHandle, alice: Person, bob: Person,
        carol: Person, mallory: Person) -> None:
    group = await alice.create(GROUP, ("bob",))
    channel = await alice.create(CHANNEL)
    said = (await bob.send(group.name, "mine")).message
    announced = (await alice.send(channel.name, "news")).message
    await expect_error(flag(client, app, bob.auth, said.name), DENIED, "FLAG_NOT_ALLOWED")
    await expect_error(flag(client, app, bob.auth, user_id="bob"), DENIED, "FLAG_NOT_ALLOWED")
    # Carol is not in the group: it does not exist for her; nor is she in the channel.
    await expect_error(flag(client, app, carol.auth, said.name), NOT_FOUND,
                       "RESOURCE_NOT_FOUND")
    await expect_error(flag(client, app, carol.auth, announced.name), DENIED, "NOT_A_MEMBER")
    await expect_error(flag(client, app, carol.auth, f"{group.name}/messages/99"), NOT_FOUND,
                       "RESOURCE_NOT_FOUND")
    await expect_error(flag(client, app, carol.auth, user_id="nobody"), NOT_FOUND,
                       "RESOURCE_NOT_FOUND")
    # Another app's user, key and messages stay out.
    await expect_error(flag(client, app, mallory.auth, said.name), DENIED, "APP_MISMATCH")
    await expect_error(flag(client, app, other_app.auth, user_id="bob"), DENIED,
                       "APP_MISMATCH")
    await expect_error(flag(client, other_app, other_app.auth, said.name),
                       grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    await bob.client.messages.DeleteMessage(msg_pb.DeleteMessageRequest(name=said.name),
                                            metadata=bob.auth)
    await expect_error(flag(client, app, alice.auth, said.name), FAILED, "MESSAGE_DELETED")
    assert await listed(client, app, app.auth) == []


async def test_only_the_conversations_moderators_review_its_flags(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    dave = await person(client, app.app_id, app.api_key, "dave")
    group = await alice.create(GROUP, ("bob", "carol", "dave"))
    elsewhere = await dave.create(GROUP, ("carol",))  # dave owns another group
    said = (await bob.send(group.name, "rude")).message
    flagged = await flag(client, app, carol.auth, said.name)
    # A member who reported it reads their share, and may not review.
    await expect_error(claim(client, flagged.name, carol.auth), DENIED, "PERMISSION_MISSING")
    await expect_error(resolve(client, flagged.name, carol.auth), DENIED, "PERMISSION_MISSING")
    await expect_error(listed(client, app, carol.auth, conversation=group.name), DENIED,
                       "PERMISSION_MISSING")
    await expect_error(listed(client, app, carol.auth), DENIED, "FLAG_NOT_ALLOWED")
    # A moderator of another conversation gets nothing here.
    await expect_error(get(client, flagged.name, dave.auth), NOT_FOUND, "RESOURCE_NOT_FOUND")
    await expect_error(claim(client, flagged.name, dave.auth), NOT_FOUND,
                       "RESOURCE_NOT_FOUND")
    assert await listed(client, app, dave.auth, conversation=elsewhere.name) == []
    # A moderator who is the flagged user does not review their own flags.
    await make_role(alice, group.name, "bob", conv_res.Member.ROLE_MODERATOR)
    await expect_error(get(client, flagged.name, bob.auth), NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert await listed(client, app, bob.auth, conversation=group.name) == []
    await expect_error(listed(client, app, bob.auth, conversation=group.name, user_id="bob"),
                       DENIED, "FLAG_NOT_ALLOWED")
    # Flags of users are for the app's backend.
    of_user = await flag(client, app, carol.auth, user_id="dave")
    await expect_error(claim(client, of_user.name, carol.auth), DENIED, "FLAG_NOT_ALLOWED")
    await expect_error(get(client, of_user.name, alice.auth), NOT_FOUND, "RESOURCE_NOT_FOUND")
    await make_role(alice, group.name, "dave", conv_res.Member.ROLE_MODERATOR)
    assert await listed(client, app, dave.auth, conversation=group.name) == [flagged.name]
    assert await listed(client, app, app.auth) == [flagged.name, of_user.name]


async def test_a_claim_keeps_other_moderators_off_until_released(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    dave = await person(client, app.app_id, app.api_key, "dave")
    group = await alice.create(GROUP, ("bob", "carol", "dave"))
    await make_role(alice, group.name, "dave", conv_res.Member.ROLE_MODERATOR)
    said = (await bob.send(group.name, "spam spam")).message
    flagged = await flag(client, app, carol.auth, said.name)
    held = await claim(client, flagged.name, alice.auth)
    assert held.claimer == f"{app.name}/users/alice" and held.HasField("claim_expire_time")
    refused = await expect_error(claim(client, flagged.name, dave.auth), FAILED,
                                 "FLAG_CLAIMED")
    assert refused.metadata["claimer"] == f"{app.name}/users/alice"
    await expect_error(resolve(client, flagged.name, dave.auth), FAILED, "FLAG_CLAIMED")
    await expect_error(resolve(client, flagged.name, app.auth), FAILED, "FLAG_CLAIMED")
    assert (await claim(client, flagged.name, dave.auth, release=True)).claimer == (
        f"{app.name}/users/alice")  # releasing what one does not hold changes nothing
    released = await claim(client, flagged.name, alice.auth, release=True)
    assert (released.claimer, released.HasField("claim_expire_time")) == ("", False)
    assert (await claim(client, flagged.name, dave.auth)).claimer == f"{app.name}/users/dave"


async def test_resolving_deletes_mutes_and_records_who_and_why(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    said = (await bob.send(group.name, "awful")).message
    flagged = await flag(client, app, carol.auth, said.name)
    await claim(client, flagged.name, alice.auth)
    done = await resolve(client, flagged.name, alice.auth, "insults", delete_message=True,
                         restrict=mod_pb.FlagRestriction(type=MUTE, reason="cool off"))
    assert done.state == RESOLVED and done.claimer == ""
    r = done.resolution
    assert (r.resolver, r.note, r.message_deleted) == (f"{app.name}/users/alice", "insults",
                                                       True)
    restriction = (await client.moderation.GetRestriction(
        mod_pb.GetRestrictionRequest(name=r.restriction), metadata=app.auth)).restriction
    assert (restriction.user_id, restriction.conversation, restriction.type,
            restriction.reason) == ("bob", group.name, MUTE, "cool off")
    shown = await bob.client.messages.GetMessage(msg_pb.GetMessageRequest(name=said.name),
                                                 metadata=bob.auth)
    assert shown.message.HasField("delete_time") and shown.message.text == ""
    await expect_error(bob.send(group.name, "still"), DENIED, "USER_MUTED")
    await expect_error(resolve(client, flagged.name, alice.auth), FAILED, "FLAG_RESOLVED")
    await expect_error(claim(client, flagged.name, alice.auth), FAILED, "FLAG_RESOLVED")
    assert await listed(client, app, app.auth, state=OPEN) == []
    assert await listed(client, app, app.auth, state=RESOLVED) == [flagged.name]
    assert (await get(client, flagged.name, app.auth)).resolution == r


async def test_a_refused_sanction_leaves_the_flag_open(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    said = (await bob.send(group.name, "meh")).message
    flagged = await flag(client, app, carol.auth, said.name)
    # A moderator does not ban app-wide; a user's flag deletes no message.
    await expect_error(resolve(client, flagged.name, alice.auth,
                               restrict=mod_pb.FlagRestriction(type=BAN, app_wide=True)),
                       DENIED, "RESTRICTION_NOT_ALLOWED")
    assert (await get(client, flagged.name, app.auth)).state == OPEN
    of_user = await flag(client, app, carol.auth, user_id="bob")
    await expect_error(resolve(client, of_user.name, app.auth, delete_message=True),
                       grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    # The app's backend bans the user app-wide from a flag of them.
    banned = await resolve(client, of_user.name, app.auth, "ban evasion",
                           restrict=mod_pb.FlagRestriction(type=BAN))
    restriction = (await client.moderation.GetRestriction(mod_pb.GetRestrictionRequest(
        name=banned.resolution.restriction), metadata=app.auth)).restriction
    assert (restriction.conversation, restriction.type) == ("", BAN)
    await expect_error(bob.send(group.name, "hi"), grpc.StatusCode.UNAUTHENTICATED,
                       "SESSION_REVOKED")
    # Dismissing: nothing done, the reason recorded.
    dismissed = await resolve(client, flagged.name, app.auth, "not spam")
    assert (dismissed.resolution.message_deleted, dismissed.resolution.restriction) == (
        False, "")


async def test_a_new_report_after_resolution_opens_a_new_flag(
        client: Client, app: AppHandle, alice: Person, bob: Person, carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    said = (await bob.send(group.name, "hmm")).message
    first = await flag(client, app, carol.auth, said.name)
    await resolve(client, first.name, app.auth, "fine")
    second = await flag(client, app, carol.auth, said.name)
    assert second.name != first.name and second.state == OPEN
    page = await client.moderation.ListFlags(mod_pb.ListFlagsRequest(
        parent=app.name, page_size=1), metadata=app.auth)
    rest = await client.moderation.ListFlags(mod_pb.ListFlagsRequest(
        parent=app.name, page_size=1, page_token=page.next_page_token), metadata=app.auth)
    assert [f.name for f in (*page.flags, *rest.flags)] == [first.name, second.name]
    assert rest.next_page_token == ""
    await expect_error(client.moderation.ListFlags(mod_pb.ListFlagsRequest(
        parent=app.name, state=OPEN, page_token=page.next_page_token), metadata=app.auth),
        grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")


async def test_the_apps_webhooks_hear_of_flags(client: Client, app: AppHandle,
                                               alice: Person, bob: Person, carol: Person,
                                               receiver: Receiver) -> None:
    url = receiver.url("flags")
    await create_webhook(client, app, url, "flag.*")
    group = await alice.create(GROUP, ("bob", "carol"))
    said = (await bob.send(group.name, "boo")).message
    flagged = await flag(client, app, carol.auth, said.name, details="see")
    await resolve(client, flagged.name, app.auth, "dismissed")
    got = {str(e["type"]): e for e in events(await receiver.wait(url, delivered(2)))}
    assert sorted(got) == ["flag.reported", "flag.resolved"]
    reported = got["flag.reported"]
    assert reported["conversation"] == group.name
    assert reported["flagReported"]["reports"][0]["details"] == "see"  # type: ignore[index]
    assert got["flag.resolved"]["flagResolved"]["resolution"]["note"] == "dismissed"  # type: ignore[index]


async def test_flags_over_json_and_grpc_web(http: httpx.AsyncClient, app: AppHandle,
                                            alice: Person, bob: Person,
                                            carol: Person) -> None:
    group = await alice.create(GROUP, ("bob", "carol"))
    said = (await bob.send(group.name, "json")).message
    carols = {"authorization": f"Bearer {carol.token}"}
    alices = {"authorization": f"Bearer {alice.token}"}
    made = await http.post(f"/v1/{app.name}/flags", headers=carols,
                           json={"message": said.name, "reason": "REASON_SPAM"})
    assert made.status_code == 200, made.text
    name = made.json()["flag"]["name"]
    refused = await http.post(f"/v1/{app.name}/flags", headers=carols,
                              json={"userId": "carol", "reason": "REASON_SPAM"})
    assert refused.status_code == 403 and error_body(refused)[1] == "FLAG_NOT_ALLOWED"
    missing = await http.post(f"/v1/{app.name}/flags", headers=carols,
                              json={"userId": "bob"})  # no reason
    assert missing.status_code == 400
    claimed = await http.post(f"/v1/{name}:claim", headers=alices, json={})
    assert claimed.json()["flag"]["claimer"] == f"{app.name}/users/alice"
    done = await http.post(f"/v1/{name}:resolve", headers=alices, json={"note": "ok"})
    assert done.json()["flag"]["state"] == "STATE_RESOLVED"
    web = await http.post(
        "/caas.moderation.v1.ModerationService/GetFlag",
        content=grpc_web_frame(mod_pb.GetFlagRequest(name=name).SerializeToString()),
        headers={**carols, "content-type": "application/grpc-web+proto"})
    frames = grpc_web_frames(web.content)
    assert {**web.headers, **frames[1]}.get("grpc-status") == "0"
    shown = mod_pb.GetFlagResponse.FromString(frames[0][0]).flag
    assert (shown.name, shown.report_count) == (name, 1)


@ROUTES
def test_grpcurl_lists_the_review_queue(server: CaasServer, app: AppHandle,
                                        route: str) -> None:
    def grpcurl(method: str, request: dict[str, object]) -> dict[str, object]:
        done = subprocess.run(
            [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}", "-d",
             json.dumps(request), target(server, route),
             f"caas.{method}"], capture_output=True, text=True, timeout=30, check=True)
        result: dict[str, object] = json.loads(done.stdout or "{}")
        return result

    grpcurl("users.v1.UsersService/CreateUser", {"parent": app.name, "userId": "zed"})
    made = grpcurl("moderation.v1.ModerationService/CreateFlag",
                   {"parent": app.name, "userId": "zed", "reason": "REASON_IMPERSONATION"})
    name = made["flag"]["name"]  # type: ignore[index]
    queue = grpcurl("moderation.v1.ModerationService/ListFlags",
                    {"parent": app.name, "state": "STATE_OPEN"})
    assert [f["name"] for f in queue["flags"]] == [name]  # type: ignore[attr-defined]
    grpcurl("moderation.v1.ModerationService/ResolveFlag", {"name": name, "note": "ok"})
    assert grpcurl("moderation.v1.ModerationService/ListFlags",
                   {"parent": app.name, "state": "STATE_OPEN"}) == {}
