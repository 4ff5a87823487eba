"""Guests against a running server, on both stores: an app that admits guests lets anyone
sign in as a new guest (native gRPC and JSON through Envoy), one that does not (the
default) refuses alike whether or not it exists; guests do what the app's permission
policy grants the role `guest`, in their own app only; the budgets per client address
and per app; the app's backend turns guests on, and the audit log says so."""

from __future__ import annotations

import itertools
from datetime import timedelta

import grpc
import httpx
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.audit.v1 import resources_pb2 as audit_res
from caas.auth.v1 import auth_service_pb2 as auth_pb
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import duration_pb2, field_mask_pb2

from tests.conftest import AppHandle, create_app, expect_error
from tests.e2e.test_audit import records
from tests.e2e.test_http import error_body
from tests.e2e.test_permissions import CHANNEL_KIND, GROUP_KIND, P, grant, set_policy
from tests.support.chat import CHANNEL, GROUP, Person
from tests.support.client import Client, bearer
from tests.support.servers import CaasServer

DENIED = grpc.StatusCode.PERMISSION_DENIED
_addresses = itertools.count(1)


def from_address(address: str = "") -> tuple[tuple[str, str], ...]:
    """Call as a client at `address` (each call its own by default): behind a loopback
    peer the server reads the address from the last `x-forwarded-for` hop, as Envoy
    sets it, so the tests do not share the budget of 127.0.0.1."""
    n = next(_addresses)
    return (("x-forwarded-for", address or f"198.51.{n // 250}.{n % 250 + 1}"),)


async def admit_guests(client: Client, app: AppHandle, lifetime: timedelta | None = None,
                       *, enabled: bool = True,
                       by: tuple[tuple[str, str], ...] | None = None) -> apps_res.App:
    guests = apps_res.GuestAccess(enabled=enabled)
    if lifetime is not None:
        guests.session_lifetime.FromTimedelta(lifetime)
    response = await client.apps.UpdateApp(apps_pb.UpdateAppRequest(
        app=apps_res.App(name=app.name, guest_access=guests),
        update_mask=field_mask_pb2.FieldMask(paths=["guest_access"])),
        metadata=by or app.auth)
    return response.app


async def guest(client: Client, app: AppHandle, display_name: str = "Visitor",
                address: str = "") -> auth_pb.CreateGuestSessionResponse:
    response: auth_pb.CreateGuestSessionResponse = await client.auth.CreateGuestSession(
        auth_pb.CreateGuestSessionRequest(parent=app.name, display_name=display_name),
        metadata=from_address(address))
    return response


def person_of(client: Client, app: AppHandle, signed: auth_pb.CreateGuestSessionResponse
              ) -> Person:
    return Person(client, app.app_id, signed.user.name.rsplit("/", 1)[1],
                  signed.credentials.access_token)


async def test_apps_refuse_guests_unless_they_admit_them(client: Client, app: AppHandle,
                                                         server: CaasServer) -> None:
    got = await client.apps.GetApp(apps_pb.GetAppRequest(name=app.name), metadata=app.auth)
    assert not got.app.HasField("guest_access")  # off by default
    refused = await expect_error(guest(client, app), grpc.StatusCode.FAILED_PRECONDITION,
                                 "GUEST_ACCESS_DISABLED")
    # An unknown app, and an app turned off again, get the very same answer.
    unknown = await expect_error(guest(client, AppHandle("app-no-such-app", "")),
                                 grpc.StatusCode.FAILED_PRECONDITION, "GUEST_ACCESS_DISABLED")
    assert unknown.message.replace("app-no-such-app", app.app_id) == refused.message
    await admit_guests(client, app)
    await guest(client, app)
    off = await admit_guests(client, app, enabled=False)
    assert not off.guest_access.enabled
    await expect_error(guest(client, app), grpc.StatusCode.FAILED_PRECONDITION,
                       "GUEST_ACCESS_DISABLED")


async def test_a_guest_signs_in_without_credentials(client: Client, app: AppHandle) -> None:
    updated = await admit_guests(client, app, timedelta(hours=2))
    assert updated.guest_access.enabled
    assert updated.guest_access.session_lifetime.ToTimedelta() == timedelta(hours=2)
    signed = await guest(client, app, "Curious visitor")
    user, session, credentials = signed.user, signed.session, signed.credentials
    user_id = user.name.removeprefix(f"{app.name}/users/")
    assert user_id.startswith("guest-") and len(user_id) == len("guest-") + 16
    assert (user.role, user.display_name) == ("guest", "Curious visitor")
    assert session.name.startswith(f"{user.name}/sessions/")
    end = session.end_time.ToDatetime()
    assert end - session.create_time.ToDatetime() == timedelta(hours=2)
    assert credentials.refresh_token_expire_time.ToDatetime() <= end
    assert credentials.access_token_expire_time.ToDatetime() <= end
    # The guest is a user of the app: the app's backend sees them, they see themself.
    listed = await client.users.GetUser(user_pb.GetUserRequest(name=user.name),
                                        metadata=app.auth)
    assert listed.user.role == "guest"
    me = await client.users.GetUser(user_pb.GetUserRequest(name=user.name),
                                    metadata=bearer(credentials.access_token))
    assert me.user.display_name == "Curious visitor"
    # Refreshing never takes the session past its end.
    refreshed = await client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token=credentials.refresh_token))
    assert refreshed.session.end_time == session.end_time
    assert refreshed.credentials.refresh_token_expire_time.ToDatetime() <= end
    # Each call makes a new guest; the name is optional.
    other = await client.auth.CreateGuestSession(
        auth_pb.CreateGuestSessionRequest(parent=app.name), metadata=from_address())
    assert other.user.name != user.name and other.user.display_name == ""


async def test_a_guest_signs_in_over_json(http: httpx.AsyncClient, client: Client,
                                          app: AppHandle) -> None:
    refused = await http.post(f"/v1/{app.name}/guestSessions", json={"displayName": "Web"})
    assert refused.status_code == 400
    assert error_body(refused)[:2] == (9, "GUEST_ACCESS_DISABLED")
    await admit_guests(client, app)
    response = await http.post(f"/v1/{app.name}/guestSessions",
                               json={"displayName": "Web", "deviceName": "widget"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["role"] == "guest" and body["user"]["displayName"] == "Web"
    assert body["session"]["deviceName"] == "widget" and "endTime" in body["session"]
    me = await http.get(f"/v1/{body['user']['name']}",
                        headers={"authorization": f"Bearer {body['credentials']['accessToken']}"})
    assert me.status_code == 200 and me.json()["user"]["role"] == "guest"
    # Bad input names its fields.
    bad = await http.post(f"/v1/{app.name}/guestSessions", json={"displayName": "x" * 101})
    code, reason, error = error_body(bad)
    assert (bad.status_code, code, reason) == (400, 3, "REQUEST_INVALID")
    [violations] = [d for d in error["details"] if d["@type"].endswith("BadRequest")]
    assert [v["field"] for v in violations["fieldViolations"]] == ["display_name"]


async def test_bad_requests_are_invalid_arguments(client: Client, app: AppHandle) -> None:
    await admit_guests(client, app)
    for request, field in (
            (auth_pb.CreateGuestSessionRequest(parent=app.name, display_name="x" * 101),
             "display_name"),
            (auth_pb.CreateGuestSessionRequest(parent=f"{app.name}/users/u"), "parent"),
            (auth_pb.CreateGuestSessionRequest(parent="apps/Nope"), "parent")):
        got = await expect_error(client.auth.CreateGuestSession(request,
                                                                metadata=from_address()),
                                 grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
        assert list(got.field_violations) == [field]


async def test_guests_do_what_the_policy_grants_them(client: Client, app: AppHandle,
                                                     alice: Person) -> None:
    await admit_guests(client, app)
    visitor = person_of(client, app, await guest(client, app))
    # By default a guest creates no conversation but joins channels, where members send.
    refused = await expect_error(visitor.create(GROUP), DENIED, "PERMISSION_MISSING")
    assert refused.metadata == {"permission": "create_conversation", "role": "guest"}
    channel = await alice.create(CHANNEL)
    await client.conversations.JoinConversation(
        conv_pb.JoinConversationRequest(name=channel.name), metadata=visitor.auth)
    await visitor.send(channel.name, "hello from a guest")
    # The app takes joining from guests (grants to `guest` replace its set)…
    await set_policy(client, app, grant(CHANNEL_KIND, "guest", P.PERMISSION_READ_HISTORY))
    second = await alice.create(CHANNEL)
    await expect_error(client.conversations.JoinConversation(
        conv_pb.JoinConversationRequest(name=second.name), metadata=visitor.auth),
        DENIED, "PERMISSION_MISSING")
    # …and, in groups, keeps sending for users and the guests it grants it to.
    users_may = grant(GROUP_KIND, "user", P.PERMISSION_SEND_MESSAGE,
                      P.PERMISSION_CREATE_CONVERSATION)
    await set_policy(client, app,
                     grant(GROUP_KIND, "conversation:member", P.PERMISSION_REACT), users_may)
    group = await alice.create(GROUP, (visitor.user_id,))
    refused = await expect_error(visitor.send(group.name, "hi"), DENIED, "PERMISSION_MISSING")
    assert refused.metadata == {"permission": "send_message", "role": "guest"}
    await set_policy(client, app,
                     grant(GROUP_KIND, "conversation:member", P.PERMISSION_REACT), users_may,
                     grant(GROUP_KIND, "guest", P.PERMISSION_SEND_MESSAGE))
    await visitor.send(group.name, "now I may")


async def test_a_guests_token_stays_in_its_app(client: Client, app: AppHandle,
                                               other_app: AppHandle) -> None:
    await admit_guests(client, app)
    signed = await guest(client, app)
    auth = bearer(signed.credentials.access_token)
    user_id = signed.user.name.rsplit("/", 1)[1]
    await expect_error(client.users.GetUser(
        user_pb.GetUserRequest(name=f"{other_app.name}/users/alice"), metadata=auth),
        DENIED, "APP_MISMATCH")
    await expect_error(client.conversations.ListConversations(
        conv_pb.ListConversationsRequest(parent=f"{other_app.name}/users/{user_id}"),
        metadata=auth), DENIED, "APP_MISMATCH")
    # Nor does it make the guest anything more than a guest.
    await expect_error(admit_guests(client, app, by=auth), DENIED, "PRINCIPAL_NOT_ALLOWED")


async def test_guest_sessions_are_limited_per_client_address(
        client: Client, server: CaasServer) -> None:
    # guest_sessions_per_address is 5 in the tests' settings, every app together.
    first, second = [await create_app(client, server.operator_token) for _ in range(2)]
    for app in (first, second):
        await admit_guests(client, app)
    address = "203.0.113.77"
    for app in (first, second, first, second, first):
        await guest(client, app, address=address)
    refused = await expect_error(guest(client, second, address=address),
                                 grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert refused.retry_seconds is not None and refused.retry_seconds > 0
    assert refused.quota_subjects == [f"address:{address}"]
    await guest(client, second, address="203.0.113.78")  # another address has its own


async def test_guest_sessions_are_limited_per_app(client: Client, server: CaasServer) -> None:
    app = await create_app(client, server.operator_token, plan="tiny")  # 5 a window per RPC
    await admit_guests(client, app)
    for _ in range(5):
        await guest(client, app)
    refused = await expect_error(guest(client, app), grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 "RATE_LIMITED")
    assert refused.retry_seconds is not None
    assert refused.quota_subjects == [f"app:{app.app_id}"]


async def test_the_apps_backend_admits_guests_and_the_log_says_so(
        client: Client, app: AppHandle, other_app: AppHandle, server: CaasServer) -> None:
    await admit_guests(client, app, timedelta(minutes=30))
    [latest, *_] = await records(client, app)
    assert (latest.action, latest.target, latest.code) == (
        "caas.apps.v1.AppsService/UpdateApp", app.name, "OK")
    assert latest.actor.kind == audit_res.AuditRecord.Actor.KIND_API_KEY
    assert dict(latest.details) == {"update_mask": "guest_access"}
    # The operator too; the backend of another app may not.
    operator = bearer(server.operator_token)
    updated = await admit_guests(client, app, by=operator)
    assert not updated.guest_access.HasField("session_lifetime")  # back to 24 hours
    [latest, *_] = await records(client, app)
    assert latest.actor.kind == audit_res.AuditRecord.Actor.KIND_OPERATOR
    await expect_error(admit_guests(client, app, by=other_app.auth), DENIED, "APP_MISMATCH")
    # The backend keeps to its app's settings: the plan is the operator's.
    await expect_error(client.apps.UpdateApp(apps_pb.UpdateAppRequest(
        app=apps_res.App(name=app.name, plan="standard"),
        update_mask=field_mask_pb2.FieldMask(paths=["plan"])), metadata=app.auth),
        DENIED, "PRINCIPAL_NOT_ALLOWED")
    # A key needs `apps:write`.
    reader = await client.apps.CreateApiKey(apps_pb.CreateApiKeyRequest(
        parent=app.name, api_key=apps_res.ApiKey(scopes=["apps:read"])), metadata=app.auth)
    refused = await expect_error(admit_guests(client, app, by=bearer(reader.secret)), DENIED,
                                 "API_KEY_SCOPE_MISSING")
    assert refused.metadata["scope"] == "apps:write"
    # CreateApp takes the setting too.
    created = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=f"{app.app_id[:30]}-g", app=apps_res.App(
            display_name="Guests", guest_access=apps_res.GuestAccess(
                enabled=True, session_lifetime=duration_pb2.Duration(seconds=600)))),
        metadata=operator)
    assert created.app.guest_access.session_lifetime.seconds == 600
