"""DeleteApp against a running server (grace 0 here), on both stores: the operation
erases every record of the app from every table or collection (its own record kept as
the receipt), its search entries and media; another app is untouched; operator only.
(The grace period, its refusals and UndeleteApp: tests/compliance/test_offboarding.py.)"""

from __future__ import annotations

import sqlite3
from typing import Any

import grpc
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.compliance.v1 import compliance_service_pb2 as pb
from caas.webhooks.v1 import resources_pb2 as hook_res
from caas.webhooks.v1 import webhooks_service_pb2 as hook_pb
from pymongo import MongoClient

from tests.conftest import AppHandle, create_app, expect_error
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer, details
from tests.support.servers import CaasServer
from tests.support.waiting import eventually


def records_of(server: CaasServer, app_id: str) -> dict[str, int]:
    """Records of the app left in each table or collection (non-zero ones), the data
    keys' database included."""
    left: dict[str, int] = {}
    if server.env.get("CAAS_STORE") == "mongodb":
        mongo: MongoClient[dict[str, Any]] = MongoClient(server.env["CAAS_MONGODB_URL"])
        try:
            data = server.env["CAAS_MONGODB_DATABASE"]
            for db in (mongo[data], mongo[f"{data}_keys"]):
                for name in db.list_collection_names():
                    count = db[name].count_documents({"$or": [
                        {"app_id": app_id}, {"_id": app_id},
                        {"_id": {"$regex": f"^{app_id}/"}}]})
                    if count:
                        left[name] = count
        finally:
            mongo.close()
        return left
    for path in (server.data_dir / "caas.db", server.data_dir / "keys" / "keys.db"):
        with sqlite3.connect(path) as db:
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                columns = [c[1] for c in db.execute(f"PRAGMA table_info('{name}')")]
                if "app_id" in columns:
                    (count,) = db.execute(f'SELECT count(*) FROM "{name}" WHERE app_id = ?',
                                          (app_id,)).fetchone()
                    if count:
                        left[name] = count
    return left


async def test_a_deleted_app_leaves_nothing(client: Client, server: CaasServer,
                                            app: AppHandle, other_app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    group = await alice.create(GROUP, ("bob",))
    for n in range(3):
        await alice.send(group.name, f"goodbye {n}")
    await client.webhooks.CreateWebhook(hook_pb.CreateWebhookRequest(
        parent=app.name, webhook=hook_res.Webhook(url="https://example.com/hook")),
        metadata=app.auth)
    survivor = await person(client, other_app.app_id, other_app.api_key, "alice")
    kept = await survivor.create()
    await survivor.send(kept.name, "still here")
    before = records_of(server, app.app_id)
    assert before["messages"] == 3 if "messages" in before else before
    assert before.get("data_keys", 0) >= 2, before  # the app's, alice's (her content)

    await expect_error(client.apps.DeleteApp(apps_pb.DeleteAppRequest(name=app.name),
                                             metadata=app.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    operator = bearer(server.operator_token)
    started = await client.apps.DeleteApp(apps_pb.DeleteAppRequest(name=app.name),
                                          metadata=operator)
    assert started.name.startswith(f"{app.name}/operations/")
    done: list[Any] = []

    async def finished() -> bool:
        op = await client.compliance.GetOperation(pb.GetOperationRequest(name=started.name),
                                                  metadata=operator)
        done[:] = [op]
        return bool(op.done)

    await eventually(finished, within=60, every=0.1)
    response = apps_pb.DeleteAppResponse()
    assert done[0].response.Unpack(response)
    assert response.app == app.name and response.records_erased >= sum(before.values()) - 1
    assert records_of(server, app.app_id) == {"operations": 1}  # the receipt
    await expect_error(client.apps.GetApp(apps_pb.GetAppRequest(name=app.name),
                                          metadata=operator),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    # Her token no longer works. Which reason says so depends on the server's caches:
    # within CAAS_AUTH_CACHE_TTL of her last call, the app's deletion
    # (APP_UNAVAILABLE); after it, the purge of the app's signing keys or her session.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await alice.messages(group.name)
    gone = details(refused.value)
    assert gone.code == grpc.StatusCode.UNAUTHENTICATED
    assert gone.reason in {"APP_UNAVAILABLE", "ACCESS_TOKEN_INVALID", "SESSION_REVOKED"}
    assert [m.text for m in (await survivor.messages(kept.name)).messages] == ["still here"]
    assert records_of(server, other_app.app_id)


async def test_unknown_apps(client: Client, server: CaasServer) -> None:
    operator = bearer(server.operator_token)
    for call in (client.apps.DeleteApp(apps_pb.DeleteAppRequest(name="apps/no-such-app"),
                                       metadata=operator),
                 client.apps.UndeleteApp(apps_pb.UndeleteAppRequest(name="apps/no-such-app"),
                                         metadata=operator)):
        await expect_error(call, grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    fresh = await create_app(client, server.operator_token)
    await expect_error(client.apps.UndeleteApp(apps_pb.UndeleteAppRequest(name=fresh.name),
                                               metadata=fresh.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
