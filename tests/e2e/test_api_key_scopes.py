"""Scoped, expiring API keys against a running server: a key does what its scopes name
and nothing else, over native gRPC, JSON and gRPC-Web through Envoy, and grpcurl; a
key cannot make a key that does more or lives longer than itself."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.users.v1 import resources_pb2 as users_res
from caas.users.v1 import users_service_pb2 as users_pb
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from tests.conftest import AppHandle, expect_error
from tests.e2e.test_http import error_body, grpc_web_frame, grpc_web_frames
from tests.e2e.test_ops import GRPCURL, ROUTES, target
from tests.support.client import Client, bearer
from tests.support.clock import from_now
from tests.support.servers import CaasServer

DENIED = grpc.StatusCode.PERMISSION_DENIED


async def new_key(client: Client, app: AppHandle, *scopes: str, by: str | None = None,
                  expire_time: Timestamp | None = None) -> apps_pb.CreateApiKeyResponse:
    key = apps_res.ApiKey(display_name="scoped", scopes=scopes, expire_time=expire_time)
    response: apps_pb.CreateApiKeyResponse = await client.apps.CreateApiKey(
        apps_pb.CreateApiKeyRequest(parent=app.name, api_key=key),
        metadata=bearer(by or app.api_key))
    return response


async def test_a_key_does_what_its_scopes_name_and_nothing_else(client: Client,
                                                                app: AppHandle) -> None:
    created = await new_key(client, app, "users:read", "users:write")
    assert sorted(created.api_key.scopes) == ["users:read", "users:write"]
    assert created.api_key.state == apps_res.ApiKey.STATE_ACTIVE
    scoped = bearer(created.secret)
    await client.users.CreateUser(users_pb.CreateUserRequest(
        parent=app.name, user_id="ann", user=users_res.User(display_name="Ann")),
        metadata=scoped)
    got = await client.users.GetUser(users_pb.GetUserRequest(name=f"{app.name}/users/ann"),
                                     metadata=scoped)
    assert got.user.display_name == "Ann"
    for call, scope in (
            (client.apps.GetApp(apps_pb.GetAppRequest(name=app.name), metadata=scoped),
             "apps:read"),
            (client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                     metadata=scoped), "api_keys:admin")):
        refused = await expect_error(call, DENIED, "API_KEY_SCOPE_MISSING")
        assert refused.metadata["scope"] == scope


async def test_keys_made_without_scopes_and_the_apps_first_key_hold_every_scope(
        client: Client, app: AppHandle) -> None:
    plain = await new_key(client, app)
    assert list(plain.api_key.scopes) == ["*"]
    listed = await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                           metadata=bearer(plain.secret))
    assert {tuple(k.scopes) for k in listed.api_keys} == {("*",)}


@pytest.mark.parametrize(("creator", "wanted"), [
    (("api_keys:admin", "users:read"), ("messages:write",)),  # a scope it lacks
    (("api_keys:admin", "users:read"), ("*",)),  # every scope
    (("api_keys:admin", "users:read"), ()),  # no scopes: every scope
    (("api_keys:admin", "users:read"), ("users:read", "users:write")),
])
async def test_a_key_cannot_grant_a_scope_it_lacks(client: Client, app: AppHandle,
                                                   creator: tuple[str, ...],
                                                   wanted: tuple[str, ...]) -> None:
    by = (await new_key(client, app, *creator)).secret
    before = await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                           metadata=app.auth)
    await expect_error(new_key(client, app, *wanted, by=by), DENIED, "API_KEY_SCOPE_ESCALATION")
    after = await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                          metadata=app.auth)
    assert len(after.api_keys) == len(before.api_keys)  # nothing was written
    narrower = await new_key(client, app, "users:read", by=by)
    assert list(narrower.api_key.scopes) == ["users:read"]


async def test_a_key_made_by_an_expiring_key_expires_no_later(client: Client,
                                                             app: AppHandle) -> None:
    expiry = from_now(hours=1)
    creator = await new_key(client, app, "*", expire_time=expiry)
    assert creator.api_key.expire_time == expiry
    await expect_error(new_key(client, app, "users:read", by=creator.secret), DENIED,
                       "API_KEY_SCOPE_ESCALATION")  # never expiring
    await expect_error(new_key(client, app, "users:read", by=creator.secret,
                               expire_time=from_now(hours=2)), DENIED, "API_KEY_SCOPE_ESCALATION")
    sooner = await new_key(client, app, "users:read", by=creator.secret,
                           expire_time=from_now(minutes=30))
    assert sooner.api_key.expire_time.ToDatetime(UTC) < expiry.ToDatetime(UTC)


async def test_a_key_of_another_app_is_refused_whatever_its_scopes(
        client: Client, app: AppHandle, other_app: AppHandle) -> None:
    outsider = await new_key(client, other_app, "*")
    await expect_error(client.apps.GetApp(apps_pb.GetAppRequest(name=app.name),
                                          metadata=bearer(outsider.secret)),
                       DENIED, "APP_MISMATCH")
    narrow = await new_key(client, other_app, "api_keys:admin")
    await expect_error(new_key(client, app, "*", by=narrow.secret), DENIED, "APP_MISMATCH")


async def test_scopes_over_json_and_grpc_web(http: httpx.AsyncClient, client: Client,
                                             app: AppHandle) -> None:
    expiry = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = await http.post(f"/v1/{app.name}/apiKeys", headers={
        "authorization": f"Bearer {app.api_key}"}, json={
        "displayName": "reader", "scopes": ["apps:read"], "expireTime": expiry})
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["apiKey"]["scopes"], body["apiKey"]["expireTime"]) == (["apps:read"], expiry)
    reader = {"authorization": f"Bearer {body['secret']}"}
    assert (await http.get(f"/v1/{app.name}", headers=reader)).status_code == 200

    refused = await http.get(f"/v1/{app.name}/apiKeys", headers=reader)
    assert refused.status_code == 403
    code, reason, error = error_body(refused)
    assert (code, reason) == (7, "API_KEY_SCOPE_MISSING")
    info = next(d for d in error["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["metadata"]["scope"] == "api_keys:admin"

    web = await http.post(
        "/caas.apps.v1.AppsService/ListApiKeys",
        content=grpc_web_frame(apps_pb.ListApiKeysRequest(parent=app.name).SerializeToString()),
        headers={**reader, "content-type": "application/grpc-web+proto"})
    trailers = {**web.headers, **grpc_web_frames(web.content)[1]}
    assert trailers["grpc-status"] == "7"
    encoded = trailers["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    info_pb = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info_pb) and info_pb.reason == "API_KEY_SCOPE_MISSING"


@ROUTES
def test_grpcurl_makes_a_scoped_key_that_is_refused_beyond_it(
        server: CaasServer, app: AppHandle, route: str) -> None:
    def grpcurl(secret: str, method: str, request: dict[str, object]
                ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {secret}", "-d",
             json.dumps(request), target(server, route), f"caas.apps.v1.AppsService/{method}"],
            capture_output=True, text=True, timeout=30, check=False)

    made = grpcurl(app.api_key, "CreateApiKey",
                   {"parent": app.name, "apiKey": {"scopes": ["apps:read"]}})
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["apiKey"]["scopes"] == ["apps:read"]
    assert grpcurl(created["secret"], "GetApp", {"name": app.name}).returncode == 0
    refused = grpcurl(created["secret"], "ListApiKeys", {"parent": app.name})
    assert refused.returncode != 0
    assert "PermissionDenied" in refused.stderr and "API_KEY_SCOPE_MISSING" in refused.stderr
