"""Rate limits per app and per user, on a running server (the `tiny` plan: 5 per app, 3 per
user, per RPC per minute)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.auth.v1 import auth_service_pb2 as auth_pb
from google.protobuf import field_mask_pb2

from tests.conftest import AppHandle, create_app, expect_error, sign_in
from tests.support.client import Client, bearer
from tests.support.servers import CaasServer, start_caas


async def test_app_budget_counts_down_then_refuses_with_retry_info(
        client: Client, server: CaasServer) -> None:
    app = await create_app(client, server.operator_token, plan="tiny")
    request = apps_pb.GetAppRequest(name=app.name)
    remaining = []
    for _ in range(5):
        call = client.apps.GetApp(request, metadata=app.auth)
        await call
        headers = dict(await call.initial_metadata())
        assert headers["x-ratelimit-limit"] == "5"
        remaining.append(int(headers["x-ratelimit-remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    got = await expect_error(client.apps.GetApp(request, metadata=app.auth),
                             grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert got.quota_subjects == [f"app:{app.app_id}"]
    assert got.retry_seconds is not None and 1 <= got.retry_seconds <= 60
    assert got.trailers["x-ratelimit-remaining"] == "0"
    assert int(got.trailers["x-ratelimit-reset"]) == got.retry_seconds
    # Budgets are per RPC: another RPC of the same app still has its own.
    await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                  metadata=app.auth)


async def test_user_budget_is_per_user_and_inside_the_app_budget(
        client: Client, server: CaasServer) -> None:
    app = await create_app(client, server.operator_token, plan="tiny")
    alice = bearer((await sign_in(client, app, "alice")).credentials.access_token)
    bob = bearer((await sign_in(client, app, "bob")).credentials.access_token)

    def list_for(user: str) -> auth_pb.ListSessionsRequest:
        return auth_pb.ListSessionsRequest(parent=f"{app.name}/users/{user}")

    for _ in range(3):
        await client.auth.ListSessions(list_for("alice"), metadata=alice)
    got = await expect_error(client.auth.ListSessions(list_for("alice"), metadata=alice),
                             grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert got.quota_subjects == [f"user:{app.app_id}/alice"]
    # Alice's refused call cost nothing: the app has used 3 of 5, so Bob gets 2 more.
    for _ in range(2):
        await client.auth.ListSessions(list_for("bob"), metadata=bob)
    got = await expect_error(client.auth.ListSessions(list_for("bob"), metadata=bob),
                             grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert got.quota_subjects == [f"app:{app.app_id}"]


async def test_apps_do_not_share_budgets(client: Client, server: CaasServer,
                                         app: AppHandle) -> None:
    tiny = await create_app(client, server.operator_token, plan="tiny")
    for _ in range(5):
        await client.apps.GetApp(apps_pb.GetAppRequest(name=tiny.name), metadata=tiny.auth)
    await expect_error(client.apps.GetApp(apps_pb.GetAppRequest(name=tiny.name),
                                          metadata=tiny.auth),
                       grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    await client.apps.GetApp(apps_pb.GetAppRequest(name=app.name), metadata=app.auth)


async def test_plan_change_applies_to_the_running_server(
        client: Client, server: CaasServer) -> None:
    app = await create_app(client, server.operator_token, plan="tiny")
    for _ in range(5):
        await client.apps.GetApp(apps_pb.GetAppRequest(name=app.name), metadata=app.auth)
    await client.apps.UpdateApp(apps_pb.UpdateAppRequest(
        app=apps_res.App(name=app.name, plan="free"),
        update_mask=field_mask_pb2.FieldMask(paths=["plan"])),
        metadata=bearer(server.operator_token))
    call = client.apps.GetApp(apps_pb.GetAppRequest(name=app.name), metadata=app.auth)
    await call
    assert dict(await call.initial_metadata())["x-ratelimit-limit"] == "6000"


async def test_sign_ins_count_against_the_signed_in_user(
        client: Client, server: CaasServer) -> None:
    app = await create_app(client, server.operator_token, plan="tiny")
    for _ in range(3):
        await sign_in(client, app, "carol")
    got = await expect_error(sign_in(client, app, "carol"),
                             grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert got.quota_subjects == [f"user:{app.app_id}/carol"]
    await sign_in(client, app, "dan")  # the app's budget (5) still has room


async def test_anonymous_refreshes_count_against_the_session_user(
        client: Client, server: CaasServer) -> None:
    app = await create_app(client, server.operator_token, plan="tiny")
    token = (await sign_in(client, app, "erin")).credentials.refresh_token
    for _ in range(3):
        call = client.auth.RefreshSession(auth_pb.RefreshSessionRequest(refresh_token=token))
        token = (await call).credentials.refresh_token
        assert dict(await call.initial_metadata())["x-ratelimit-limit"] == "3"
    got = await expect_error(
        client.auth.RefreshSession(auth_pb.RefreshSessionRequest(refresh_token=token)),
        grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert got.quota_subjects == [f"user:{app.app_id}/erin"]


async def limit_of(call: Any) -> str:
    """The `x-ratelimit-limit` of a call that succeeds."""
    await call
    return str(dict(await call.initial_metadata())["x-ratelimit-limit"])


async def test_plan_variables_set_limits_and_keep_the_other_defaults(tmp_path: Path) -> None:
    """`caas serve` with no settings file and per-plan variables: the changed limits
    hold, everything else is the published defaults."""
    server = start_caas(tmp_path, env={
        "CAAS_PLANS__FREE__DEFAULT__PER_APP": "4",
        # The method's name in the variable's name (env and Docker pass it) ...
        "CAAS_PLANS__FREE__METHODS__caas.apps.v1.AppsService/ListApiKeys__PER_APP": "2",
        "CAAS_PLANS__FREE__METHODS__caas.apps.v1.AppsService/ListApiKeys__PER_USER": "2",
        # ... or in JSON, for shells and Kubernetes.
        "CAAS_PLANS__STANDARD__METHODS": json.dumps(
            {"caas.apps.v1.AppsService/GetApp": {"per_app": 3, "per_user": 1}})})
    client = Client(server.address)
    try:
        app = await create_app(client, server.operator_token)  # the default plan, free
        get_app = apps_pb.GetAppRequest(name=app.name)
        assert [await limit_of(client.apps.GetApp(get_app, metadata=app.auth))
                for _ in range(4)] == ["4"] * 4
        await expect_error(client.apps.GetApp(get_app, metadata=app.auth),
                           grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
        list_keys = apps_pb.ListApiKeysRequest(parent=app.name)
        assert [await limit_of(client.apps.ListApiKeys(list_keys, metadata=app.auth))
                for _ in range(2)] == ["2"] * 2
        got = await expect_error(client.apps.ListApiKeys(list_keys, metadata=app.auth),
                                 grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
        assert got.quota_subjects == [f"app:{app.app_id}"]
        # Signing in keeps free's published limits (60 per user, the tightest) ...
        assert await limit_of(client.auth.CreateSession(auth_pb.CreateSessionRequest(
            parent=f"{app.name}/users/ann"), metadata=app.auth)) == "60"
        # ... and the other plans are there, one with its changed method.
        standard = await create_app(client, server.operator_token, plan="standard")
        assert await limit_of(client.apps.GetApp(apps_pb.GetAppRequest(
            name=standard.name), metadata=standard.auth)) == "3"
        assert await limit_of(client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(
            parent=standard.name), metadata=standard.auth)) == "60000"
        await create_app(client, server.operator_token, plan="enterprise")
    finally:
        await client.close()
        assert server.process.stop() == 0
