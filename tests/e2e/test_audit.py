"""The audit log against a running server, on both stores: administrative actions are
recorded with actor, target, request id and outcome (refusals too), in the caller's
own app only; the log is read over gRPC, JSON through Envoy and grpcurl; tampering
with the stored records is found by VerifyAuditLog and `caas admin audit-verify`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import uuid
from datetime import UTC
from typing import Any

import grpc
import httpx
import pytest
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.audit.v1 import audit_service_pb2 as audit_pb
from caas.audit.v1 import resources_pb2 as audit_res
from caas.auth.v1 import auth_service_pb2 as auth_pb
from caas.compliance.v1 import compliance_service_pb2 as compliance_pb
from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res
from caas.type.v1 import access_pb2
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from caas.webhooks.v1 import resources_pb2 as hook_res
from caas.webhooks.v1 import webhooks_service_pb2 as hook_pb
from google.protobuf import field_mask_pb2
from pymongo import MongoClient

from services.audit.models import ActorKind, AuditEntry, record_hash
from services.server import contract_services
from tests.conftest import AppHandle, create_app, expect_error
from tests.support.chat import person
from tests.support.client import Client, bearer
from tests.support.servers import BIN, CaasServer

Actor = audit_res.AuditRecord.Actor
APPS = "caas.apps.v1.AppsService"
USERS = "caas.users.v1.UsersService"
MODERATION = "caas.moderation.v1.ModerationService"
WEBHOOKS = "caas.webhooks.v1.WebhooksService"


def with_id(auth: tuple[tuple[str, str], ...], request_id: str) -> tuple[tuple[str, str], ...]:
    return (*auth, ("x-request-id", request_id))


async def records(client: Client, app: AppHandle, **query: Any
                  ) -> list[audit_res.AuditRecord]:
    listed = await client.audit.ListAuditRecords(
        audit_pb.ListAuditRecordsRequest(parent=app.name, page_size=200, **query),
        metadata=app.auth)
    return list(listed.audit_records)


async def key_id(client: Client, server: CaasServer, app: AppHandle) -> str:
    keys = await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                         metadata=bearer(server.operator_token))
    return str(keys.api_keys[0].name.rsplit("/", 1)[1])


async def test_administrative_actions_are_recorded_as_they_ended(
        client: Client, server: CaasServer, app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    await client.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=f"{app.name}/users/bob", role="moderator"),
        update_mask=field_mask_pb2.FieldMask(paths=["role"])),
        metadata=with_id(app.auth, "req-role-1"))
    await client.moderation.CreateRestriction(mod_pb.CreateRestrictionRequest(
        parent=app.name, restriction=mod_res.Restriction(
            user_id="alice", type=mod_res.Restriction.TYPE_BAN, reason="spam")),
        metadata=with_id(app.auth, "req-ban-1"))
    hook = await client.webhooks.CreateWebhook(hook_pb.CreateWebhookRequest(
        parent=app.name, webhook=hook_res.Webhook(url="https://example.com/hook")),
        metadata=with_id(app.auth, "req-hook-1"))
    # The ban ended alice's sessions: a call with her old token fails authentication,
    # which the access log records, not the audit log (no caller, no app's log).
    await expect_error(client.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=f"{app.name}/users/bob", role="admin"),
        update_mask=field_mask_pb2.FieldMask(paths=["role"])),
        metadata=with_id(alice.auth, "req-denied-1")),
        grpc.StatusCode.UNAUTHENTICATED, "SESSION_REVOKED")
    # Reads are not recorded.
    await client.webhooks.ListWebhooks(hook_pb.ListWebhooksRequest(parent=app.name),
                                       metadata=app.auth)

    got = await records(client, app)
    kid = await key_id(client, server, app)
    summary = [(r.action, r.target, r.request_id, r.code, r.actor.kind, r.actor.id)
               for r in got]
    by_key = (Actor.KIND_API_KEY, kid)
    assert summary == [
        (f"{WEBHOOKS}/CreateWebhook", app.name, "req-hook-1", "OK", *by_key),
        (f"{MODERATION}/CreateRestriction", app.name, "req-ban-1", "OK", *by_key),
        (f"{USERS}/UpdateUser", f"{app.name}/users/bob", "req-role-1", "OK", *by_key),
        # The backend made (upserted) bob and alice.
        (f"{USERS}/UpdateUser", f"{app.name}/users/bob", summary[3][2], "OK", *by_key),
        (f"{USERS}/UpdateUser", f"{app.name}/users/alice", summary[4][2], "OK", *by_key),
        # The operator made the app: the first record of its log.
        (f"{APPS}/CreateApp", app.name, summary[5][2], "OK", Actor.KIND_OPERATOR, ""),
    ]
    assert dict(got[1].details) == {"user_id": "alice", "type": "TYPE_BAN"}
    assert dict(got[2].details) == {"update_mask": "role", "role": "moderator"}
    assert dict(got[3].details) == {"update_mask": "display_name"}
    assert hook.secret not in str(got)  # no secret reaches the log
    assert [r.sequence for r in got] == [6, 5, 4, 3, 2, 1]
    assert all(r.name == f"{app.name}/auditRecords/{r.sequence}" for r in got)
    assert [r.previous_hash for r in got[:-1]] == [r.hash for r in got[1:]]


async def test_refused_calls_are_recorded_in_the_callers_app(
        client: Client, server: CaasServer, app: AppHandle, other_app: AppHandle) -> None:
    await person(client, app.app_id, app.api_key, "carol")
    dave = await person(client, app.app_id, app.api_key, "dave")
    # A user who is no admin tries to make themself one.
    await expect_error(client.users.UpdateUser(user_pb.UpdateUserRequest(
        user=user_res.User(name=f"{app.name}/users/dave", role="admin"),
        update_mask=field_mask_pb2.FieldMask(paths=["role"])),
        metadata=with_id(dave.auth, "req-escalate")),
        grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    # Another app's key tries to ban carol here: refused, and recorded in ITS log.
    await expect_error(client.moderation.CreateRestriction(mod_pb.CreateRestrictionRequest(
        parent=app.name, restriction=mod_res.Restriction(
            user_id="carol", type=mod_res.Restriction.TYPE_BAN)),
        metadata=with_id(other_app.auth, "req-cross")),
        grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")

    mine = await records(client, app, code="PERMISSION_DENIED")
    assert [(r.request_id, r.reason, r.actor.kind, r.actor.id) for r in mine] == [
        ("req-escalate", "PRINCIPAL_NOT_ALLOWED", Actor.KIND_USER, "dave")]
    assert "req-cross" not in {r.request_id for r in await records(client, app)}
    theirs = await records(client, other_app, code="PERMISSION_DENIED")
    assert [(r.request_id, r.target, r.reason) for r in theirs] == [
        ("req-cross", app.name, "APP_MISMATCH")]


async def test_the_log_is_the_apps_backends_and_operators_only(
        client: Client, server: CaasServer, app: AppHandle, other_app: AppHandle) -> None:
    eve = await person(client, app.app_id, app.api_key, "eve")
    for call in (client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
                     parent=app.name), metadata=other_app.auth),
                 client.audit.VerifyAuditLog(audit_pb.VerifyAuditLogRequest(
                     parent=app.name), metadata=other_app.auth)):
        await expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    await expect_error(client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
        parent=app.name), metadata=eve.auth),
        grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    narrow = await client.apps.CreateApiKey(apps_pb.CreateApiKeyRequest(
        parent=app.name, api_key={"scopes": ["apps:read"]}), metadata=app.auth)
    await expect_error(client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
        parent=app.name), metadata=bearer(narrow.secret)),
        grpc.StatusCode.PERMISSION_DENIED, "API_KEY_SCOPE_MISSING")
    await expect_error(client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
        parent="apps/no-such-app"), metadata=bearer(server.operator_token)),
        grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    operator_view = await client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
        parent=app.name), metadata=bearer(server.operator_token))
    assert operator_view.audit_records[0].action == f"{APPS}/CreateApiKey"


async def test_pages_and_filters(client: Client, app: AppHandle) -> None:
    for n in range(5):
        await client.webhooks.CreateWebhook(hook_pb.CreateWebhookRequest(
            parent=app.name, webhook=hook_res.Webhook(url=f"https://example.com/{n}")),
            metadata=with_id(app.auth, f"req-page-{n}"))
    seen: list[str] = []
    token = ""
    while True:
        page = await client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
            parent=app.name, action=f"{WEBHOOKS}/CreateWebhook", page_size=2,
            page_token=token), metadata=app.auth)
        seen += [r.request_id for r in page.audit_records]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"req-page-{n}" for n in reversed(range(5))]
    await expect_error(client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
        parent=app.name, action=f"{APPS}/CreateApp", page_size=2, page_token=token or "x"),
        metadata=app.auth), grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")


async def test_json_through_envoy_and_grpcurl(client: Client, server: CaasServer,
                                              app: AppHandle, http: httpx.AsyncClient) -> None:
    headers = {"authorization": f"Bearer {app.api_key}"}
    listed = await http.get(f"/v1/{app.name}/auditRecords",
                            params={"actorKind": "KIND_OPERATOR"}, headers=headers)
    assert listed.status_code == 200, listed.text
    [made] = listed.json()["auditRecords"]
    assert (made["action"], made["actor"]["kind"], made["sequence"]) == (
        f"{APPS}/CreateApp", "KIND_OPERATOR", "1")
    verified = await http.post(f"/v1/{app.name}/auditRecords:verify", json={},
                               headers=headers)
    assert verified.status_code == 200, verified.text
    assert verified.json()["intact"] is True
    assert verified.json()["headHash"] == made["hash"]

    done = await asyncio.to_thread(subprocess.run, [
        str(BIN / "grpcurl"), "-plaintext", "-H", f"authorization: Bearer {app.api_key}",
        "-d", json.dumps({"parent": app.name}), server.address,
        "caas.audit.v1.AuditService/VerifyAuditLog"],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == "1"


# --- tampering, found ----------------------------------------------------------------------

def tamper(server: CaasServer, app_id: str, sequence: int, change: dict[str, Any] | None
           ) -> None:
    """Change (or, with None, delete) a stored record behind the server's back."""
    if server.env.get("CAAS_STORE") == "mongodb":
        mongo: MongoClient[dict[str, Any]] = MongoClient(server.env["CAAS_MONGODB_URL"])
        try:
            collection = mongo[server.env["CAAS_MONGODB_DATABASE"]]["audit_records"]
            where = {"app_id": app_id, "sequence": sequence}
            if change is None:
                collection.delete_one(where)
            else:
                collection.update_one(where, {"$set": change})
        finally:
            mongo.close()
        return
    with sqlite3.connect(server.data_dir / "caas.db", timeout=30) as db:
        where_sql = "WHERE app_id = ? AND sequence = ?"
        if change is None:
            db.execute(f"DELETE FROM audit_records {where_sql}", (app_id, sequence))
        else:
            sets = ", ".join(f"{column} = ?" for column in change)
            db.execute(f"UPDATE audit_records SET {sets} {where_sql}",
                       (*change.values(), app_id, sequence))


def audit_verify(server: CaasServer, app_id: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in server.env.items()
           if key.startswith("CAAS_") and key not in ("CAAS_LISTEN", "CAAS_HTTP_LISTEN")}
    return subprocess.run([str(BIN / "caas"), "admin", "audit-verify", app_id],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**env, "PATH": str(BIN)}, cwd=server.data_dir)


async def verify(client: Client, app: AppHandle) -> audit_pb.VerifyAuditLogResponse:
    response: audit_pb.VerifyAuditLogResponse = await client.audit.VerifyAuditLog(
        audit_pb.VerifyAuditLogRequest(parent=app.name), metadata=app.auth)
    return response


REHASHED = {"target": "apps/someone-else"}  # and the record's hash computed anew


@pytest.mark.parametrize(("change", "problem", "broken"), [
    ({"target": "apps/someone-else"}, "hash", 3),  # content changed
    ({"hash": "f" * 64}, "hash", 3),  # its hash forged
    ({"previous_hash": "0" * 64}, "link", 3),  # cut from the one before
    (REHASHED, "link", 4),  # changed and made consistent: the next no longer links
    (None, "gap", 4),  # removed
])
async def test_tampering_is_found(client: Client, server: CaasServer,
                                  change: dict[str, Any] | None, problem: str,
                                  broken: int) -> None:
    app = await create_app(client, server.operator_token)
    for n in range(4):
        await client.webhooks.CreateWebhook(hook_pb.CreateWebhookRequest(
            parent=app.name, webhook=hook_res.Webhook(url=f"https://example.com/{n}")),
            metadata=app.auth)
    intact = await verify(client, app)
    assert (intact.intact, intact.records, intact.head_sequence) == (True, 5, 5)
    exported = await asyncio.to_thread(audit_verify, server, app.app_id)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["headHash"] == intact.head_hash

    if change is REHASHED:
        [third] = [r for r in await records(client, app) if r.sequence == 3]
        entry = AuditEntry(app.app_id, third.time.ToDatetime(tzinfo=UTC), ActorKind.API_KEY,
                           third.actor.id, third.action, change["target"], third.request_id,
                           third.code, third.reason, dict(third.details))
        change = {**change, "hash": record_hash(entry, 3, third.previous_hash)}
    await asyncio.to_thread(tamper, server, app.app_id, 3, change)
    found = await verify(client, app)
    assert (found.intact, found.broken_sequence, found.problem) == (False, broken, problem)
    cli = await asyncio.to_thread(audit_verify, server, app.app_id)
    assert cli.returncode == 1
    assert json.loads(cli.stdout)["brokenSequence"] == str(broken)


async def test_the_cli_exports_every_record_in_order(client: Client, server: CaasServer
                                                     ) -> None:
    app = await create_app(client, server.operator_token)
    request_ids = [f"req-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for request_id in request_ids:
        await client.apps.UpdateApp(apps_pb.UpdateAppRequest(
            app={"name": app.name, "display_name": request_id},
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"])),
            metadata=with_id(bearer(server.operator_token), request_id))
    env = {key: value for key, value in server.env.items() if key.startswith("CAAS_")}
    done = await asyncio.to_thread(
        subprocess.run, [str(BIN / "caas"), "admin", "audit-export", app.app_id],
        capture_output=True, text=True, timeout=60, check=False,
        env={**env, "PATH": str(BIN)}, cwd=server.data_dir)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["sequence"] for line in lines] == ["1", "2", "3", "4"]
    assert [line["requestId"] for line in lines[1:]] == request_ids
    assert all(line["details"] == {"update_mask": "display_name"} for line in lines[1:])


async def test_the_operators_actions_go_in_the_log_of_the_app_they_name(
        client: Client, server: CaasServer) -> None:
    """The operator's own actions on an app land in that app's log, by target."""
    app = await create_app(client, server.operator_token)
    await client.apps.UpdateApp(apps_pb.UpdateAppRequest(
        app={"name": app.name, "plan": "flood"},
        update_mask=field_mask_pb2.FieldMask(paths=["plan"])),
        metadata=with_id(bearer(server.operator_token), "req-op-plan"))
    [latest, *_] = await records(client, app)
    assert (latest.request_id, latest.actor.kind, dict(latest.details)) == (
        "req-op-plan", Actor.KIND_OPERATOR, {"update_mask": "plan", "plan": "flood"})



# Writes of the administrative services that are not administrative actions: sign-ins
# (the access log's), a user's own blocks and reports, a moderator taking a flag.
NOT_AUDITED = {"CreateSession", "RefreshSession", "CreateGuestSession", "CreateBlock",
               "DeleteBlock", "CreateFlag", "ClaimFlag", "VerifyAuditLog"}
READS = ("Get", "List", "Search", "BatchGet")


def test_every_administrative_write_is_audited() -> None:
    services = [module.DESCRIPTOR.services_by_name[name] for module, name in (
        (apps_pb, "AppsService"), (auth_pb, "AuthService"), (user_pb, "UsersService"),
        (mod_pb, "ModerationService"), (hook_pb, "WebhooksService"),
        (audit_pb, "AuditService"), (compliance_pb, "ComplianceService"))]
    writes = {method.name for service in services for method in service.methods
              if not method.name.startswith(READS)} - NOT_AUDITED
    audited = {method.name for service in [*services, *contract_services()]
               for method in service.methods
               if method.GetOptions().Extensions[access_pb2.access].audited}
    # Beyond those services, deleting a whole conversation is one too, and so are
    # changing an app's plan and rotating its Web Push key.
    assert audited == writes | {"DeleteConversation", "ChangePlan", "RotateWebPushKey",
                                "UpdatePushConfig"}
