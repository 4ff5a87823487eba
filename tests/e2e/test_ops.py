"""What operators use: health checks, reflection with grpcurl, JSON logs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from grpc_health.v1 import health_pb2

from services.server import contract_services
from tests.conftest import AppHandle, sign_in
from tests.support.client import Client
from tests.support.servers import CaasServer

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
# grpcurl reaches the server directly and through Envoy (its listener speaks gRPC too).
ROUTES = pytest.mark.parametrize("route", ["direct", "envoy"])


def target(server: CaasServer, route: str) -> str:
    return server.address if route == "direct" else f"127.0.0.1:{server.http_port}"


@pytest.mark.parametrize("service", ["", "caas.apps.v1.AppsService", "caas.auth.v1.AuthService",
                                     "caas.webhooks.v1.WebhooksService"])
async def test_health_reports_serving_per_service(client: Client, service: str) -> None:
    response = await client.health.Check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_of_an_unknown_service_is_not_found(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.health.Check(health_pb2.HealthCheckRequest(service="caas.nope.v1.X"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@ROUTES
def test_grpcurl_lists_and_describes_services(server: CaasServer, route: str) -> None:
    listed = subprocess.run([GRPCURL, "-plaintext", target(server, route), "list"],
                            capture_output=True, text=True, timeout=30, check=True)
    served = {service.full_name for service in contract_services()}
    assert "caas.webhooks.v1.WebhooksService" in served
    assert set(listed.stdout.split()) >= served | {"grpc.health.v1.Health"}
    described = subprocess.run(
        [GRPCURL, "-plaintext", target(server, route), "describe", "caas.apps.v1.CreateAppRequest"],
        capture_output=True, text=True, timeout=30, check=True)
    assert "string app_id = 1" in described.stdout
    assert "buf.validate.field" in described.stdout  # the limits travel with the contract


@ROUTES
def test_grpcurl_calls_an_authenticated_rpc(server: CaasServer, app: AppHandle, route: str) -> None:
    done = subprocess.run(
        [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}",
         "-d", json.dumps({"name": app.name}), target(server, route),
         "caas.apps.v1.AppsService/GetApp"],
        capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(done.stdout)["app"]["name"] == app.name


@ROUTES
def test_grpcurl_manages_webhooks(server: CaasServer, app: AppHandle, route: str) -> None:
    created = subprocess.run(
        [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}",
         "-d", json.dumps({"parent": app.name, "webhook": {
             "url": "https://crm.example.com/caas", "event_types": ["message.*"]}}),
         target(server, route), "caas.webhooks.v1.WebhooksService/CreateWebhook"],
        capture_output=True, text=True, timeout=30, check=True)
    body = json.loads(created.stdout)
    assert body["secret"].startswith("whsec_")
    assert body["webhook"]["eventTypes"] == ["message.*"]


@ROUTES
def test_grpcurl_shows_error_details(server: CaasServer, app: AppHandle, route: str) -> None:
    done = subprocess.run(
        [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}",
         "-d", json.dumps({"parent": app.name, "page_size": 999}), target(server, route),
         "caas.apps.v1.AppsService/ListApiKeys"],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0
    assert "InvalidArgument" in done.stderr
    assert '"reason":"REQUEST_INVALID"' in done.stderr.replace(" ", "")
    assert '"field":"page_size"' in done.stderr.replace(" ", "")


async def test_every_call_writes_one_json_access_log_line(
        client: Client, server: CaasServer, app: AppHandle) -> None:
    start = len(server.process.lines)
    await client.apps.GetApp(apps_pb.GetAppRequest(name=app.name),
                             metadata=(*app.auth, ("x-request-id", "log-probe-1")))
    line = server.process.wait_for_line(lambda text: "log-probe-1" in text, 10, start)
    entry = json.loads(line)
    assert entry["logger"] == "caas.access"
    assert (entry["method"], entry["code"], entry["app"], entry["principal"]) == (
        "caas.apps.v1.AppsService/GetApp", "OK", app.app_id, "api_key")
    assert app.api_key not in line  # credentials never reach the log


@ROUTES
async def test_grpcurl_follows_a_stream(client: Client, server: CaasServer,
                                        app: AppHandle, route: str) -> None:
    alice = await sign_in(client, app, "alice")
    done = await asyncio.to_thread(
        subprocess.run,
        [GRPCURL, "-plaintext", "-max-time", "2.5",
         "-H", f"authorization: Bearer {alice.credentials.access_token}",
         "-d", json.dumps({"name": f"{app.name}/users/alice"}), target(server, route),
         "caas.realtime.v1.RealtimeService/Subscribe"],
        capture_output=True, text=True, timeout=30, check=False)
    items = [json.loads(chunk) for chunk in done.stdout.replace("}\n{", "}\x00{").split("\x00")
             if chunk.strip()]
    assert "ready" in items[0] and items[0]["resumeToken"]
    assert any("heartbeat" in item for item in items[1:])  # every second on this server
    assert "DeadlineExceeded" in done.stderr  # grpcurl's own time limit ended it


@ROUTES
def test_grpcurl_uploads_media_and_reads_the_usage(server: CaasServer, app: AppHandle,
                                                   route: str) -> None:
    def call(method: str, body: dict[str, object], token: str) -> dict[str, object]:
        done = subprocess.run(
            [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {token}",
             "-d", json.dumps(body), target(server, route), f"caas.media.v1.MediaService/{method}"],
            capture_output=True, text=True, timeout=30, check=True)
        answer: dict[str, object] = json.loads(done.stdout)
        return answer

    usage = call("GetMediaUsage", {"name": f"{app.name}/mediaUsage"}, app.api_key)["usage"]
    assert isinstance(usage, dict) and usage["quotaBytes"] == str(5 * 1024 ** 3)
    assert "image/*" in usage["allowedContentTypes"]
    for method, body in (
            ("caas.users.v1.UsersService/CreateUser", {"parent": app.name, "user_id": "op1"}),
            ("caas.conversations.v1.ConversationsService/CreateConversation", {
                "parent": app.name, "conversation": {"kind": "KIND_GROUP"},
                "member_ids": ["op1"], "owner_id": "op1"})):
        done = subprocess.run(
            [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}",
             "-d", json.dumps(body), target(server, route), method],
            check=False, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    name = json.loads(done.stdout)["conversation"]["name"]
    created = call("CreateUpload", {"parent": app.name, "request_id": "grpcurl-1", "media": {
        "conversation": name, "file_name": "notes.txt", "size_bytes": 5,
        "declared_content_type": "text/plain"}}, app.api_key)
    media = created["media"]
    assert isinstance(media, dict) and media["state"] == "STATE_UPLOADING"
    assert media.get("uploaderId", "") == ""  # the app's backend uploaded it
