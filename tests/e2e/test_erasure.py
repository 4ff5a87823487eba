"""EraseUser against a running server, on both stores: a long-running operation that
erases the profile, sessions, messages (tombstones keep sequences), reactions,
memberships and every copy of the user's content (events, flags, search), after
which the user's unique text is nowhere in the embedded store's files; over gRPC,
JSON through Envoy and grpcurl; another app cannot erase or read the operation.
(A crash mid-erasure, resumed: tests/compliance/test_erasure.py.)"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import grpc
import httpx
from caas.compliance.v1 import compliance_service_pb2 as pb
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res
from caas.search.v1 import search_service_pb2 as search_pb
from caas.users.v1 import users_service_pb2 as user_pb
from google.longrunning import operations_pb2

from tests.conftest import AppHandle, expect_error
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client
from tests.support.servers import BIN, CaasServer
from tests.support.waiting import eventually


async def finished(client: Client, app: AppHandle, name: str) -> operations_pb2.Operation:
    """The operation once done (the server's worker carries it out)."""
    done: list[operations_pb2.Operation] = []

    async def check() -> bool:
        op = await client.compliance.GetOperation(pb.GetOperationRequest(name=name),
                                                  metadata=app.auth)
        done[:] = [op]
        return bool(op.done)

    await eventually(check, within=60, every=0.1)
    return done[0]


def erased_counts(op: operations_pb2.Operation) -> pb.EraseUserResponse:
    response = pb.EraseUserResponse()
    assert op.response.Unpack(response)
    return response


async def searchable(bob: Person, text: str) -> bool:
    found = await bob.client.search.SearchMessages(search_pb.SearchMessagesRequest(
        parent=f"apps/{bob.app_id}", query=text), metadata=bob.auth)
    return bool(found.hits)


def on_disk(data_dir: Path) -> bytes:
    """Every byte of the embedded store's and search index's files, WALs included."""
    return b"".join(p.read_bytes() for pattern in ("caas.db*", "search.db*")
                    for p in sorted(data_dir.glob(pattern)) if p.is_file())


async def test_a_user_is_erased_everywhere(client: Client, server: CaasServer,
                                           app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    bob = await person(client, app.app_id, app.api_key, "bob")
    group = await alice.create(GROUP, ("bob",))
    secret = f"zebra{uuid.uuid4().hex[:12]}quartz"
    sent = [await alice.send(group.name, f"{secret} number {n}") for n in range(3)]
    await alice.client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message={"name": sent[0].message.name, "text": f"{secret} edited"},
        update_mask={"paths": ["text"]}), metadata=alice.auth)
    from_bob = await bob.send(group.name, "hello from bob")
    await alice.client.messages.AddReaction(msg_pb.AddReactionRequest(
        name=from_bob.message.name, emoji="👍"), metadata=alice.auth)
    await client.moderation.CreateFlag(mod_pb.CreateFlagRequest(
        parent=app.name, message=sent[1].message.name, reason=mod_res.Report.REASON_SPAM),
        metadata=bob.auth)
    await eventually(lambda: searchable(bob, secret), within=30)

    started = await client.compliance.EraseUser(pb.EraseUserRequest(
        name=f"{app.name}/users/alice"), metadata=app.auth)
    assert started.name.startswith(f"{app.name}/operations/")
    metadata = pb.OperationMetadata()
    assert started.metadata.Unpack(metadata)
    assert metadata.type == "erase_user" and metadata.target == f"{app.name}/users/alice"
    op = await finished(client, app, started.name)
    counts = erased_counts(op)
    assert (counts.messages_erased, counts.reactions_removed, counts.conversations_left) == (
        3, 1, 1)
    assert counts.events_redacted >= 4  # three sends and an edit
    assert counts.keys_destroyed == 1  # their content key: crypto-shredding

    listed = await bob.messages(group.name)
    assert [(m.sequence, m.text, m.state) for m in listed.messages][:3] == [
        (n, "", msg_res.Message.STATE_DELETED) for n in (1, 2, 3)]
    assert [m.text for m in listed.messages][3] == "hello from bob"
    assert not listed.messages[3].reactions
    assert not await searchable(bob, secret)
    user = await client.users.GetUser(user_pb.GetUserRequest(name=f"{app.name}/users/alice"),
                                      metadata=app.auth)
    assert user.user.HasField("delete_time") and not user.user.display_name
    await expect_error(alice.messages(group.name), grpc.StatusCode.UNAUTHENTICATED,
                       "SESSION_REVOKED")
    flags = await client.moderation.ListFlags(mod_pb.ListFlagsRequest(parent=app.name),
                                              metadata=app.auth)
    assert [f.message_text for f in flags.flags] == [""]
    if server.env.get("CAAS_STORE") != "mongodb":
        assert secret.encode() not in on_disk(server.data_dir)

    again = await client.compliance.EraseUser(pb.EraseUserRequest(
        name=f"{app.name}/users/alice"), metadata=app.auth)
    assert again.name != started.name  # a new one, which finds nothing left
    nothing = erased_counts(await finished(client, app, again.name))
    assert (nothing.messages_erased, nothing.reactions_removed, nothing.keys_destroyed) == (
        0, 0, 0)


async def test_another_app_cannot_erase_or_follow(client: Client, app: AppHandle,
                                                  other_app: AppHandle) -> None:
    await person(client, app.app_id, app.api_key, "carol")
    await expect_error(client.compliance.EraseUser(pb.EraseUserRequest(
        name=f"{app.name}/users/carol"), metadata=other_app.auth),
        grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    await expect_error(client.compliance.EraseUser(pb.EraseUserRequest(
        name=f"{app.name}/users/nobody"), metadata=app.auth),
        grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    started = await client.compliance.EraseUser(pb.EraseUserRequest(
        name=f"{app.name}/users/carol"), metadata=app.auth)
    await expect_error(client.compliance.GetOperation(pb.GetOperationRequest(
        name=started.name), metadata=other_app.auth),
        grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    await expect_error(client.compliance.ListOperations(pb.ListOperationsRequest(
        parent=app.name), metadata=other_app.auth),
        grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    theirs = await client.compliance.ListOperations(pb.ListOperationsRequest(
        parent=other_app.name), metadata=other_app.auth)
    assert not theirs.operations
    mine = await client.compliance.ListOperations(pb.ListOperationsRequest(
        parent=app.name), metadata=app.auth)
    assert [op.name for op in mine.operations] == [started.name]
    carol = await client.users.GetUser(user_pb.GetUserRequest(
        name=f"{app.name}/users/carol"), metadata=app.auth)
    assert carol.user.name  # the refused calls changed nothing before the real one


async def test_json_through_envoy_and_grpcurl(client: Client, server: CaasServer,
                                              app: AppHandle, http: httpx.AsyncClient) -> None:
    await person(client, app.app_id, app.api_key, "dave")
    headers = {"authorization": f"Bearer {app.api_key}"}
    started = await http.post(f"/v1/{app.name}/users/dave:erase", json={}, headers=headers)
    assert started.status_code == 200, started.text
    name = started.json()["name"]
    await finished(client, app, name)
    got = await http.get(f"/v1/{name}", headers=headers)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["done"] is True
    assert body["response"]["@type"].endswith("caas.compliance.v1.EraseUserResponse")
    assert body["metadata"]["stage"] == "done"

    done = await asyncio.to_thread(subprocess.run, [
        str(BIN / "grpcurl"), "-plaintext", "-H", f"authorization: Bearer {app.api_key}",
        "-d", json.dumps({"name": name}), server.address,
        "caas.compliance.v1.ComplianceService/GetOperation"],
        capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["done"] is True


async def test_a_users_data_is_exported_for_them_only(
        client: Client, server: CaasServer, app: AppHandle, other_app: AppHandle,
        http: httpx.AsyncClient) -> None:
    erin = await person(client, app.app_id, app.api_key, "erin")
    frank = await person(client, app.app_id, app.api_key, "frank")
    group = await erin.create(GROUP, ("frank",))
    await erin.send(group.name, "first of erin")
    await erin.send(group.name, "second of erin")
    from_frank = await frank.send(group.name, "frank here")
    await erin.client.messages.AddReaction(msg_pb.AddReactionRequest(
        name=from_frank.message.name, emoji="🎉"), metadata=erin.auth)
    await client.users.CreateBlock(user_pb.CreateBlockRequest(
        parent=f"{app.name}/users/erin", block={"blocked_user_id": "frank"}),
        metadata=erin.auth)
    await expect_error(client.compliance.ExportUserData(pb.ExportUserDataRequest(
        name=f"{app.name}/users/erin"), metadata=other_app.auth),
        grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")

    started = await client.compliance.ExportUserData(pb.ExportUserDataRequest(
        name=f"{app.name}/users/erin"), metadata=app.auth)
    done = await finished(client, app, started.name)
    response = pb.ExportUserDataResponse()
    assert done.response.Unpack(response)
    assert (response.messages, response.conversations) == (2, 1)
    assert response.archive_bytes > 0 and response.HasField("archive_expire_time")
    path = response.archive_uri.split("://", 1)[1].split("/", 1)[1]
    archive = await http.get(f"/{path}")  # no credentials: the link is signed
    assert archive.status_code == 200, archive.text
    assert archive.headers["content-type"] == "application/json"
    exported = archive.json()
    assert exported["format"] == "caas.export.v1"
    assert exported["user"] == f"{app.name}/users/erin"
    assert exported["profile"]["user_id"] == "erin"
    assert [m["text"] for m in exported["messages_sent"]] == ["first of erin", "second of erin"]
    assert "frank here" not in archive.text  # others' messages are theirs
    assert [r["emoji"] for r in exported["reactions"]] == ["🎉"]
    assert [b["blocked_id"] for b in exported["blocks"]] == ["frank"]
    assert exported["sessions"] and exported["memberships"][0]["conversation"] == group.name
    forged = await http.get(f"/{path.replace('erin', 'frank')}")
    assert forged.status_code == 403

    # Erasing the user deletes their exports too.
    erased = await client.compliance.EraseUser(pb.EraseUserRequest(
        name=f"{app.name}/users/erin"), metadata=app.auth)
    await finished(client, app, erased.name)
    gone = await http.get(f"/{path}")
    assert gone.status_code == 404
