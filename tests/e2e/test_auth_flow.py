"""Apps, keys, sessions and tokens against a running `caas serve`, from generated clients."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import grpc
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.auth.v1 import auth_service_pb2 as auth_pb
from caas.auth.v1 import resources_pb2 as auth_res
from google.protobuf import duration_pb2, field_mask_pb2

from tests.conftest import AppHandle, expect_error, sign_in, unique_id
from tests.support.client import Client, bearer
from tests.support.servers import CaasServer
from tests.support.tokens import header_of, tamper

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


async def test_walkthrough_app_key_session_and_authenticated_call(
        client: Client, server: CaasServer) -> None:
    app_id = unique_id("walk-")
    created = await client.apps.CreateApp(
        apps_pb.CreateAppRequest(app_id=app_id, app=apps_res.App(display_name="Walk")),
        metadata=bearer(server.operator_token))
    assert created.app.name == f"apps/{app_id}"
    assert created.app.plan == "free"
    assert created.api_key_secret.startswith(f"caask_{app_id}_")
    assert created.api_key.state == apps_res.ApiKey.STATE_ACTIVE

    signed_in = await client.auth.CreateSession(
        auth_pb.CreateSessionRequest(parent=f"apps/{app_id}/users/alice",
                                     session=auth_res.Session(device_name="phone")),
        metadata=bearer(created.api_key_secret))
    assert signed_in.session.name.startswith(f"apps/{app_id}/users/alice/sessions/")
    assert signed_in.session.state == auth_res.Session.STATE_ACTIVE

    call = client.auth.ListSessions(
        auth_pb.ListSessionsRequest(parent=f"apps/{app_id}/users/alice"),
        metadata=bearer(signed_in.credentials.access_token))
    listed = await call
    assert [s.name for s in listed.sessions] == [signed_in.session.name]
    assert listed.sessions[0].device_name == "phone"
    headers = dict(await call.initial_metadata())
    trailers = dict(await call.trailing_metadata())
    assert headers["x-request-id"] == trailers["x-request-id"]
    assert headers["x-ratelimit-limit"] == "600"  # the user's budget is the tightest
    assert int(headers["x-ratelimit-remaining"]) == 599
    assert 1 <= int(headers["x-ratelimit-reset"]) <= 60


async def test_client_request_id_is_echoed(client: Client, app: AppHandle) -> None:
    call = client.apps.GetApp(apps_pb.GetAppRequest(name=app.name),
                              metadata=(*app.auth, ("x-request-id", "abc-123")))
    await call
    assert dict(await call.trailing_metadata())["x-request-id"] == "abc-123"


async def test_request_id_is_returned_with_errors(client: Client, app: AppHandle) -> None:
    got = await expect_error(
        client.apps.GetApp(apps_pb.GetAppRequest(name=app.name),
                           metadata=(("authorization", "Bearer caask_nope_x_y"),
                                     ("x-request-id", "req-err-1"))),
        UNAUTHENTICATED, "API_KEY_INVALID")
    assert got.trailers["x-request-id"] == "req-err-1"


async def test_missing_and_malformed_credentials(client: Client, app: AppHandle) -> None:
    request = apps_pb.GetAppRequest(name=app.name)
    await expect_error(client.apps.GetApp(request), UNAUTHENTICATED, "CREDENTIALS_MISSING")
    await expect_error(client.apps.GetApp(request, metadata=(("authorization", app.api_key),)),
                       UNAUTHENTICATED, "CREDENTIALS_MALFORMED")
    await expect_error(client.apps.GetApp(request, metadata=bearer("hello")),
                       UNAUTHENTICATED, "CREDENTIALS_MALFORMED")


async def test_wrong_api_key_secret_is_rejected(client: Client, app: AppHandle) -> None:
    request = apps_pb.GetAppRequest(name=app.name)
    tampered = app.api_key[:-4] + ("AAAA" if not app.api_key.endswith("AAAA") else "BBBB")
    await expect_error(client.apps.GetApp(request, metadata=bearer(tampered)),
                       UNAUTHENTICATED, "API_KEY_INVALID")
    unknown_key = f"caask_{app.app_id}_aaaaaaaaaaaaaaaa_{'x' * 43}"
    await expect_error(client.apps.GetApp(request, metadata=bearer(unknown_key)),
                       UNAUTHENTICATED, "API_KEY_INVALID")


async def test_wrong_operator_token_is_rejected(client: Client) -> None:
    await expect_error(
        client.apps.ListApps(apps_pb.ListAppsRequest(), metadata=bearer("caaso_" + "x" * 40)),
        UNAUTHENTICATED, "OPERATOR_TOKEN_INVALID")


async def test_revoked_api_key_stops_at_once(client: Client, app: AppHandle) -> None:
    second = await client.apps.CreateApiKey(
        apps_pb.CreateApiKeyRequest(parent=app.name,
                                    api_key=apps_res.ApiKey(display_name="ci")),
        metadata=app.auth)
    request = apps_pb.GetAppRequest(name=app.name)
    await client.apps.GetApp(request, metadata=bearer(second.secret))  # works, and is cached
    revoked = await client.apps.RevokeApiKey(
        apps_pb.RevokeApiKeyRequest(name=second.api_key.name), metadata=app.auth)
    assert revoked.api_key.state == apps_res.ApiKey.STATE_REVOKED
    assert revoked.api_key.HasField("revoke_time")
    await expect_error(client.apps.GetApp(request, metadata=bearer(second.secret)),
                       UNAUTHENTICATED, "API_KEY_REVOKED")
    again = await client.apps.RevokeApiKey(
        apps_pb.RevokeApiKeyRequest(name=second.api_key.name), metadata=app.auth)
    assert again.api_key.revoke_time == revoked.api_key.revoke_time  # idempotent
    await client.apps.GetApp(request, metadata=app.auth)  # the first key still works


async def test_api_key_secret_is_shown_once_and_listed_without_it(
        client: Client, app: AppHandle) -> None:
    listed = await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                           metadata=app.auth)
    assert len(listed.api_keys) == 1
    listed_bytes = listed.SerializeToString()
    assert app.api_key.encode() not in listed_bytes
    prefix, random_part = app.api_key[:len(app.api_key) - 43], app.api_key[-43:]
    assert random_part.encode() not in listed_bytes
    assert listed.api_keys[0].secret_hint + "_" == prefix


async def test_principal_kinds_outside_the_policy_are_refused(
        client: Client, app: AppHandle) -> None:
    await expect_error(
        client.apps.CreateApp(apps_pb.CreateAppRequest(
            app_id=unique_id("x-"), app=apps_res.App(display_name="x")), metadata=app.auth),
        PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    await expect_error(client.apps.ListApps(apps_pb.ListAppsRequest(), metadata=app.auth),
                       PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    user = await sign_in(client, app, "alice")
    await expect_error(
        client.apps.CreateApiKey(apps_pb.CreateApiKeyRequest(parent=app.name),
                                 metadata=bearer(user.credentials.access_token)),
        PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    await expect_error(
        client.auth.RotateSigningKey(auth_pb.RotateSigningKeyRequest(parent=app.name),
                                     metadata=bearer(user.credentials.access_token)),
        PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")


async def test_operator_manages_apps(client: Client, server: CaasServer) -> None:
    operator = bearer(server.operator_token)
    app_id = unique_id("op-")
    await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Op")), metadata=operator)
    await expect_error(client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Again")), metadata=operator),
        grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")
    updated = await client.apps.UpdateApp(apps_pb.UpdateAppRequest(
        app=apps_res.App(name=f"apps/{app_id}", display_name="Renamed", plan="tiny"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])), metadata=operator)
    assert (updated.app.display_name, updated.app.plan) == ("Renamed", "free")
    assert updated.app.update_time.ToDatetime() >= updated.app.create_time.ToDatetime()
    got = await client.apps.GetApp(apps_pb.GetAppRequest(name=f"apps/{app_id}"),
                                   metadata=operator)
    assert got.app.display_name == "Renamed"
    await expect_error(client.apps.GetApp(apps_pb.GetAppRequest(name="apps/no-such-app"),
                                          metadata=operator),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    await expect_error(client.apps.UpdateApp(apps_pb.UpdateAppRequest(
        app=apps_res.App(name=f"apps/{app_id}", plan="platinum"),
        update_mask=field_mask_pb2.FieldMask(paths=["plan"])), metadata=operator),
        grpc.StatusCode.INVALID_ARGUMENT, "PLAN_UNKNOWN")


async def test_operator_sets_and_clears_an_apps_media_retention(
        client: Client, server: CaasServer) -> None:
    operator = bearer(server.operator_token)
    app_id = unique_id("keep-")
    name = f"apps/{app_id}"
    month = duration_pb2.Duration(seconds=30 * 86_400)
    created = await client.apps.CreateApp(apps_pb.CreateAppRequest(app_id=app_id, app=apps_res.App(
        display_name="Keeps", media_retention=month)), metadata=operator)
    assert created.app.media_retention == month
    # The app's own backend reads it; only the operator changes it.
    api_key = bearer(created.api_key_secret)
    got = await client.apps.GetApp(apps_pb.GetAppRequest(name=name), metadata=api_key)
    assert got.app.media_retention == month

    def update(app: apps_res.App, *paths: str) -> apps_pb.UpdateAppRequest:
        return apps_pb.UpdateAppRequest(app=app, update_mask=field_mask_pb2.FieldMask(paths=paths))

    await expect_error(client.apps.UpdateApp(update(apps_res.App(
        name=name, media_retention=duration_pb2.Duration()), "media_retention"),
        metadata=api_key), PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    # Outside the mask it stays, even when the request carries another value.
    renamed = await client.apps.UpdateApp(update(apps_res.App(
        name=name, display_name="Renamed", media_retention=duration_pb2.Duration(seconds=5)),
        "display_name"), metadata=operator)
    assert (renamed.app.display_name, renamed.app.media_retention) == ("Renamed", month)
    # 0 s is a value of its own (delete at once), not "unset"; kept to the millisecond.
    zero = await client.apps.UpdateApp(update(apps_res.App(
        name=name, media_retention=duration_pb2.Duration()), "media_retention"),
        metadata=operator)
    assert zero.app.HasField("media_retention") and zero.app.media_retention.ToSeconds() == 0
    precise = await client.apps.UpdateApp(update(apps_res.App(
        name=name, media_retention=duration_pb2.Duration(seconds=1, nanos=1_500_000)),
        "media_retention"), metadata=operator)
    assert precise.app.media_retention == duration_pb2.Duration(seconds=1, nanos=1_000_000)
    # Named in the mask and unset: back to the server's default.
    cleared = await client.apps.UpdateApp(update(apps_res.App(name=name), "media_retention"),
                                          metadata=operator)
    assert not cleared.app.HasField("media_retention")
    got = await client.apps.GetApp(apps_pb.GetAppRequest(name=name), metadata=operator)
    assert not got.app.HasField("media_retention") and got.app.display_name == "Renamed"


async def test_refresh_rotates_and_reuse_revokes_the_session(
        client: Client, app: AppHandle) -> None:
    first = await sign_in(client, app, "bob")
    second = await client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token=first.credentials.refresh_token))
    assert second.credentials.refresh_token != first.credentials.refresh_token
    assert second.session.name == first.session.name
    new_access = bearer(second.credentials.access_token)
    parent = f"{app.name}/users/bob"
    await client.auth.ListSessions(auth_pb.ListSessionsRequest(parent=parent),
                                   metadata=new_access)
    # The first refresh token is used up: presenting it again means it was stolen.
    await expect_error(client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token=first.credentials.refresh_token)),
        UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    # ... which revoked the whole session: its newest tokens are dead too.
    await expect_error(client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token=second.credentials.refresh_token)),
        UNAUTHENTICATED, "SESSION_REVOKED")
    await expect_error(client.auth.ListSessions(auth_pb.ListSessionsRequest(parent=parent),
                                                metadata=new_access),
                       UNAUTHENTICATED, "SESSION_REVOKED")
    session = await client.auth.GetSession(auth_pb.GetSessionRequest(name=first.session.name),
                                           metadata=app.auth)
    assert session.session.state == auth_res.Session.STATE_REVOKED
    assert session.session.revoke_reason == auth_res.Session.REVOKE_REASON_REFRESH_TOKEN_REUSED


async def test_unknown_refresh_token_and_refresh_token_as_credential(
        client: Client, app: AppHandle) -> None:
    await expect_error(client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token=f"caasr_{app.app_id}_{'z' * 43}")),
        UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    await expect_error(client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token="not-a-token")),
        UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    user = await sign_in(client, app, "carol")
    await expect_error(client.apps.GetApp(
        apps_pb.GetAppRequest(name=app.name), metadata=bearer(user.credentials.refresh_token)),
        UNAUTHENTICATED, "CREDENTIALS_MALFORMED")


async def test_signing_out_ends_the_session_at_once(client: Client, app: AppHandle) -> None:
    user = await sign_in(client, app, "dave")
    access = bearer(user.credentials.access_token)
    parent = f"{app.name}/users/dave"
    await client.auth.ListSessions(auth_pb.ListSessionsRequest(parent=parent), metadata=access)
    revoked = await client.auth.RevokeSession(
        auth_pb.RevokeSessionRequest(name=user.session.name), metadata=access)
    assert revoked.session.revoke_reason == auth_res.Session.REVOKE_REASON_SIGNED_OUT
    await expect_error(client.auth.ListSessions(auth_pb.ListSessionsRequest(parent=parent),
                                                metadata=access),
                       UNAUTHENTICATED, "SESSION_REVOKED")
    await expect_error(client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token=user.credentials.refresh_token)),
        UNAUTHENTICATED, "SESSION_REVOKED")


async def test_expired_access_token(client: Client, app: AppHandle) -> None:
    user = await sign_in(client, app, "erin",
                         access_token_ttl=duration_pb2.Duration(seconds=1))
    expiry = user.credentials.access_token_expire_time.ToDatetime().timestamp()
    assert expiry - time.time() <= 1.5
    request = auth_pb.ListSessionsRequest(parent=f"{app.name}/users/erin")
    access = bearer(user.credentials.access_token)
    await client.auth.ListSessions(request, metadata=access)
    # Poll until the server clock passes the expiry (token_leeway is 0 on this server).
    deadline = time.monotonic() + 10
    while True:
        try:
            await client.auth.ListSessions(request, metadata=access)
        except grpc.aio.AioRpcError:
            break
        assert time.monotonic() < deadline, "token never expired"
        await asyncio.sleep(0.2)
    await expect_error(client.auth.ListSessions(request, metadata=access),
                       UNAUTHENTICATED, "ACCESS_TOKEN_EXPIRED")
    refreshed = await client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token=user.credentials.refresh_token))
    await client.auth.ListSessions(request, metadata=bearer(refreshed.credentials.access_token))


async def test_tampered_access_tokens_are_rejected(client: Client, app: AppHandle) -> None:
    user = await sign_in(client, app, "frank")
    request = auth_pb.ListSessionsRequest(parent=f"{app.name}/users/mallory")
    token = user.credentials.access_token
    await expect_error(client.auth.ListSessions(
        request, metadata=bearer(tamper(token, sub="mallory"))),
        UNAUTHENTICATED, "ACCESS_TOKEN_INVALID")
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    await expect_error(client.auth.ListSessions(
        request, metadata=bearer(f"{header}.{payload}.{flipped}")),
        UNAUTHENTICATED, "ACCESS_TOKEN_INVALID")
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","kid":"x"}').decode().rstrip("=")
    await expect_error(client.auth.ListSessions(
        request, metadata=bearer(f"{unsigned}.{payload}.")),
        UNAUTHENTICATED, "ACCESS_TOKEN_INVALID")


async def test_signing_key_rotation_keeps_old_tokens_valid(
        client: Client, app: AppHandle) -> None:
    before = await sign_in(client, app, "gina")
    rotated = await client.auth.RotateSigningKey(
        auth_pb.RotateSigningKeyRequest(parent=app.name), metadata=app.auth)
    assert rotated.signing_key.state == auth_res.SigningKey.STATE_PRIMARY
    after = await sign_in(client, app, "gina")
    kid = header_of(after.credentials.access_token)["kid"]
    assert rotated.signing_key.name.endswith(f"/signingKeys/{kid}")
    request = auth_pb.ListSessionsRequest(parent=f"{app.name}/users/gina")
    for tokens in (before, after):
        await client.auth.ListSessions(request,
                                       metadata=bearer(tokens.credentials.access_token))
    keys = await client.auth.ListSigningKeys(
        auth_pb.ListSigningKeysRequest(parent=app.name), metadata=app.auth)
    states = [k.state for k in keys.signing_keys]
    assert states == [auth_res.SigningKey.STATE_PRIMARY, auth_res.SigningKey.STATE_VERIFY_ONLY]
    assert keys.signing_keys[1].HasField("expire_time")
    jwk = json.loads(keys.signing_keys[0].public_jwk)
    assert (jwk["kty"], jwk["crv"], jwk["kid"]) == ("OKP", "Ed25519", kid)


async def test_refresh_ignores_a_stale_access_token_sent_along(
        client: Client, app: AppHandle) -> None:
    """Clients often attach their (expired) access token to every call, refresh included."""
    user = await sign_in(client, app, "stale")
    expired = tamper(user.credentials.access_token, exp=1)
    refreshed = await client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token=user.credentials.refresh_token),
        metadata=bearer(expired))
    assert refreshed.credentials.access_token
