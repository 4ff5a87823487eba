"""The compliance API against a running server, on both stores: retention policies and
legal holds over native gRPC, JSON through Envoy and grpcurl; the app's backend and
the operator only, each app its own; changes recorded in the audit log. (The sweep
itself, with a clock the test moves: tests/compliance/test_retention.py.)"""

from __future__ import annotations

import asyncio
import json
import subprocess

import grpc
import httpx
from caas.audit.v1 import audit_service_pb2 as audit_pb
from caas.compliance.v1 import compliance_service_pb2 as pb
from caas.compliance.v1 import resources_pb2 as res
from google.protobuf import duration_pb2

from tests.conftest import AppHandle, expect_error
from tests.support.chat import person
from tests.support.client import Client, bearer
from tests.support.servers import BIN, CaasServer

DAY = 86400


def days(n: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=n * DAY)


async def test_retention_policy_round_trip(client: Client, app: AppHandle) -> None:
    name = f"{app.name}/retentionPolicy"
    empty = await client.compliance.GetRetentionPolicy(
        pb.GetRetentionPolicyRequest(name=name), metadata=app.auth)
    assert not empty.retention_policy.HasField("message_retention")  # kept for ever
    put = await client.compliance.UpdateRetentionPolicy(pb.UpdateRetentionPolicyRequest(
        retention_policy=res.RetentionPolicy(
            name=name, message_retention=days(30),
            conversation_types={"direct": days(7)})), metadata=app.auth)
    got = await client.compliance.GetRetentionPolicy(
        pb.GetRetentionPolicyRequest(name=name), metadata=app.auth)
    assert got.retention_policy == put.retention_policy
    assert got.retention_policy.message_retention.seconds == 30 * DAY
    assert dict(got.retention_policy.conversation_types)["direct"].seconds == 7 * DAY
    assert got.retention_policy.HasField("update_time")
    await expect_error(client.compliance.UpdateRetentionPolicy(pb.UpdateRetentionPolicyRequest(
        retention_policy=res.RetentionPolicy(
            name=name, conversation_types={"no-such-type": days(7)})), metadata=app.auth),
        grpc.StatusCode.FAILED_PRECONDITION, "CONVERSATION_TYPE_UNKNOWN")
    again = await client.compliance.GetRetentionPolicy(
        pb.GetRetentionPolicyRequest(name=name), metadata=app.auth)
    assert again.retention_policy == put.retention_policy  # the refused one changed nothing


async def test_legal_holds(client: Client, app: AppHandle, other_app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    conversation = await alice.create()
    on_conversation = await client.compliance.CreateLegalHold(pb.CreateLegalHoldRequest(
        parent=app.name, legal_hold=res.LegalHold(conversation=conversation.name,
                                                  reason="case 42")), metadata=app.auth)
    on_user = await client.compliance.CreateLegalHold(pb.CreateLegalHoldRequest(
        parent=app.name, legal_hold=res.LegalHold(user=alice.name)), metadata=app.auth)
    assert on_conversation.legal_hold.conversation == conversation.name
    assert on_user.legal_hold.user == alice.name
    listed = await client.compliance.ListLegalHolds(
        pb.ListLegalHoldsRequest(parent=app.name, page_size=1), metadata=app.auth)
    rest = await client.compliance.ListLegalHolds(pb.ListLegalHoldsRequest(
        parent=app.name, page_size=1, page_token=listed.next_page_token), metadata=app.auth)
    assert [h.name for h in [*listed.legal_holds, *rest.legal_holds]] == [
        on_conversation.legal_hold.name, on_user.legal_hold.name]
    assert not rest.next_page_token

    for missing in (res.LegalHold(conversation=f"{app.name}/conversations/nope"),
                    res.LegalHold(user=f"{app.name}/users/nobody")):
        await expect_error(client.compliance.CreateLegalHold(pb.CreateLegalHoldRequest(
            parent=app.name, legal_hold=missing), metadata=app.auth),
            grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    # A target of another app, named under this one's parent: refused.
    await expect_error(client.compliance.CreateLegalHold(pb.CreateLegalHoldRequest(
        parent=other_app.name, legal_hold=res.LegalHold(user=alice.name)),
        metadata=other_app.auth), grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")

    await client.compliance.DeleteLegalHold(pb.DeleteLegalHoldRequest(
        name=on_user.legal_hold.name), metadata=app.auth)
    await expect_error(client.compliance.DeleteLegalHold(pb.DeleteLegalHoldRequest(
        name=on_user.legal_hold.name), metadata=app.auth),
        grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    audited = await client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
        parent=app.name, action="caas.compliance.v1.ComplianceService/DeleteLegalHold"),
        metadata=app.auth)
    assert [(r.target, r.code) for r in audited.audit_records] == [
        (on_user.legal_hold.name, "NOT_FOUND"), (on_user.legal_hold.name, "OK")]


async def test_only_the_apps_backend_and_the_operator(client: Client, server: CaasServer,
                                                      app: AppHandle, other_app: AppHandle
                                                      ) -> None:
    name = f"{app.name}/retentionPolicy"
    await expect_error(client.compliance.GetRetentionPolicy(
        pb.GetRetentionPolicyRequest(name=name), metadata=other_app.auth),
        grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    await expect_error(client.compliance.UpdateRetentionPolicy(pb.UpdateRetentionPolicyRequest(
        retention_policy=res.RetentionPolicy(name=name, message_retention=days(1))),
        metadata=other_app.auth), grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    await expect_error(client.compliance.ListLegalHolds(
        pb.ListLegalHoldsRequest(parent=app.name), metadata=other_app.auth),
        grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    alice = await person(client, app.app_id, app.api_key, "alice")
    await expect_error(client.compliance.GetRetentionPolicy(
        pb.GetRetentionPolicyRequest(name=name), metadata=alice.auth),
        grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    untouched = await client.compliance.GetRetentionPolicy(
        pb.GetRetentionPolicyRequest(name=name), metadata=bearer(server.operator_token))
    assert not untouched.retention_policy.HasField("message_retention")


async def test_json_through_envoy_and_grpcurl(server: CaasServer, app: AppHandle,
                                              http: httpx.AsyncClient) -> None:
    headers = {"authorization": f"Bearer {app.api_key}"}
    put = await http.put(f"/v1/{app.name}/retentionPolicy", headers=headers,
                         json={"name": f"{app.name}/retentionPolicy",
                               "messageRetention": "864000s",
                               "conversationTypes": {"group": "172800s"}})
    assert put.status_code == 200, put.text
    assert put.json()["retentionPolicy"]["messageRetention"] == "864000s"
    bad = await http.put(f"/v1/{app.name}/retentionPolicy", headers=headers,
                         json={"name": f"{app.name}/retentionPolicy",
                               "messageRetention": "60s"})
    assert bad.status_code == 400

    done = await asyncio.to_thread(subprocess.run, [
        str(BIN / "grpcurl"), "-plaintext", "-H", f"authorization: Bearer {app.api_key}",
        "-d", json.dumps({"name": f"{app.name}/retentionPolicy"}), server.address,
        "caas.compliance.v1.ComplianceService/GetRetentionPolicy"],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)["retentionPolicy"]
    assert (got["messageRetention"], got["conversationTypes"]) == (
        "864000s", {"group": "172800s"})
