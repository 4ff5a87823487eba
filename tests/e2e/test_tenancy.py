"""Every RPC that names an app refuses callers of another app, and leaves it untouched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.auth.v1 import auth_service_pb2 as auth_pb

from tests.conftest import AppHandle, expect_error, sign_in
from tests.support.client import Client, bearer
from tests.support.tokens import tamper

Attempt = Callable[[Client, AppHandle, str, tuple[tuple[str, str], ...]], Awaitable[Any]]

# Each attempt acts on the victim app (`victim`) with the attacker's credentials.
# `session` is the name of a session of the victim's user "vic".
ATTEMPTS: dict[str, Attempt] = {
    "GetApp": lambda c, v, s, md: c.apps.GetApp(
        apps_pb.GetAppRequest(name=v.name), metadata=md),
    "CreateApiKey": lambda c, v, s, md: c.apps.CreateApiKey(
        apps_pb.CreateApiKeyRequest(parent=v.name), metadata=md),
    "ListApiKeys": lambda c, v, s, md: c.apps.ListApiKeys(
        apps_pb.ListApiKeysRequest(parent=v.name), metadata=md),
    "RevokeApiKey": lambda c, v, s, md: c.apps.RevokeApiKey(
        apps_pb.RevokeApiKeyRequest(name=v.name + "/apiKeys/" + v.api_key.split("_")[2]),
        metadata=md),
    "CreateSession": lambda c, v, s, md: c.auth.CreateSession(
        auth_pb.CreateSessionRequest(parent=v.name + "/users/vic"), metadata=md),
    "GetSession": lambda c, v, s, md: c.auth.GetSession(
        auth_pb.GetSessionRequest(name=s), metadata=md),
    "ListSessions": lambda c, v, s, md: c.auth.ListSessions(
        auth_pb.ListSessionsRequest(parent=v.name + "/users/vic"), metadata=md),
    "RevokeSession": lambda c, v, s, md: c.auth.RevokeSession(
        auth_pb.RevokeSessionRequest(name=s), metadata=md),
    "RotateSigningKey": lambda c, v, s, md: c.auth.RotateSigningKey(
        auth_pb.RotateSigningKeyRequest(parent=v.name), metadata=md),
    "ListSigningKeys": lambda c, v, s, md: c.auth.ListSigningKeys(
        auth_pb.ListSigningKeysRequest(parent=v.name), metadata=md),
}
USER_RPCS = {"GetSession", "ListSessions", "RevokeSession"}


async def _victim_state(client: Client, victim: AppHandle, session: str) -> tuple[Any, ...]:
    keys = await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=victim.name),
                                         metadata=victim.auth)
    sessions = await client.auth.ListSessions(
        auth_pb.ListSessionsRequest(parent=victim.name + "/users/vic"), metadata=victim.auth)
    signing = await client.auth.ListSigningKeys(
        auth_pb.ListSigningKeysRequest(parent=victim.name), metadata=victim.auth)
    return (keys.SerializeToString(deterministic=True),
            sessions.SerializeToString(deterministic=True),
            signing.SerializeToString(deterministic=True))


@pytest.mark.parametrize("rpc", sorted(ATTEMPTS))
async def test_api_key_of_another_app_is_refused(
        client: Client, app: AppHandle, other_app: AppHandle, rpc: str) -> None:
    victim, attacker = app, other_app
    session = (await sign_in(client, victim, "vic")).session.name
    before = await _victim_state(client, victim, session)
    got = await expect_error(ATTEMPTS[rpc](client, victim, session, attacker.auth),
                             grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    assert victim.app_id not in got.message  # same answer whether or not the app exists
    assert await _victim_state(client, victim, session) == before


@pytest.mark.parametrize("rpc", sorted(USER_RPCS))
async def test_user_of_another_app_is_refused(
        client: Client, app: AppHandle, other_app: AppHandle, rpc: str) -> None:
    victim = app
    session = (await sign_in(client, victim, "vic")).session.name
    # Same user id, other app: ids are per app, so this is someone else.
    attacker = await sign_in(client, other_app, "vic")
    before = await _victim_state(client, victim, session)
    await expect_error(
        ATTEMPTS[rpc](client, victim, session, bearer(attacker.credentials.access_token)),
        grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    assert await _victim_state(client, victim, session) == before


@pytest.mark.parametrize("rpc", sorted(USER_RPCS))
async def test_other_user_of_the_same_app_is_refused(
        client: Client, app: AppHandle, rpc: str) -> None:
    session = (await sign_in(client, app, "vic")).session.name
    mallory = await sign_in(client, app, "mallory")
    before = await _victim_state(client, app, session)
    await expect_error(
        ATTEMPTS[rpc](client, app, session, bearer(mallory.credentials.access_token)),
        grpc.StatusCode.PERMISSION_DENIED, "USER_MISMATCH")
    assert await _victim_state(client, app, session) == before


async def test_session_name_under_the_wrong_user_is_not_found(
        client: Client, app: AppHandle) -> None:
    vic = await sign_in(client, app, "vic")
    mallory = await sign_in(client, app, "mallory")
    # Mallory names Vic's session id under her own user: it is not hers, so it does not exist.
    borrowed = f"{app.name}/users/mallory/sessions/{vic.session.name.rsplit('/', 1)[-1]}"
    for call in (
        client.auth.GetSession(auth_pb.GetSessionRequest(name=borrowed),
                               metadata=bearer(mallory.credentials.access_token)),
        client.auth.RevokeSession(auth_pb.RevokeSessionRequest(name=borrowed),
                                  metadata=bearer(mallory.credentials.access_token)),
    ):
        await expect_error(call, grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    still = await client.auth.GetSession(auth_pb.GetSessionRequest(name=vic.session.name),
                                         metadata=app.auth)
    assert not still.session.HasField("revoke_time")


async def test_token_of_one_app_cannot_be_replayed_as_another(
        client: Client, app: AppHandle, other_app: AppHandle) -> None:
    """A valid token whose `app` claim is rewritten fails: the signature covers the claim,
    and the other app has no key with that id."""
    user = await sign_in(client, app, "vic")
    forged = tamper(user.credentials.access_token, app=other_app.app_id)
    await expect_error(
        client.auth.ListSessions(
            auth_pb.ListSessionsRequest(parent=other_app.name + "/users/vic"),
            metadata=bearer(forged)),
        grpc.StatusCode.UNAUTHENTICATED, "ACCESS_TOKEN_INVALID")


async def test_refresh_token_of_one_app_is_unknown_in_another(
        client: Client, app: AppHandle, other_app: AppHandle) -> None:
    user = await sign_in(client, app, "vic")
    moved = user.credentials.refresh_token.replace(f"caasr_{app.app_id}_",
                                                   f"caasr_{other_app.app_id}_")
    await expect_error(
        client.auth.RefreshSession(auth_pb.RefreshSessionRequest(refresh_token=moved)),
        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID")
    # The genuine token was not consumed by the attempt.
    await client.auth.RefreshSession(
        auth_pb.RefreshSessionRequest(refresh_token=user.credentials.refresh_token))


async def test_api_key_of_one_app_cannot_claim_another(
        client: Client, app: AppHandle, other_app: AppHandle) -> None:
    """Rewriting the app id inside a key's secret does not move the key."""
    moved = app.api_key.replace(f"caask_{app.app_id}_", f"caask_{other_app.app_id}_")
    await expect_error(
        client.apps.GetApp(apps_pb.GetAppRequest(name=other_app.name), metadata=bearer(moved)),
        grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
