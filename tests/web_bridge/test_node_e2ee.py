"""End-to-end encryption from Node.js with the TypeScript SDK (E2eeDevice, MLS through
ts-mls), against the shared server on both stores: devices of two users form the group
of an encrypted conversation and exchange messages; two commits on one epoch (one
refused as stale, then rebuilt); a deleted device removed before anything else is sent,
then unable to read on; a late device reading only what follows; a device offline
while the group moved on, catching up in another process. Then the server's store,
read raw, and its own view of the conversation hold none of what was said."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import bson
import grpc
from caas.e2ee.v1 import e2ee_service_pb2 as e2ee_pb
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from pymongo import MongoClient

from tests.conftest import AppHandle, expect_error, sign_in
from tests.support.chat import person
from tests.support.client import Client, bearer
from tests.support.processes import Process
from tests.support.servers import CaasServer
from tests.web_bridge.nodejs import SDK, built_sdk

DEVICES = ("alice-phone", "alice-laptop", "bob-phone", "bob-laptop")


class Lines:
    """The JSON lines of a process, read in order: each step's after the last one's."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.next = 0

    async def read(self, key: str) -> Any:
        """The value of `key` in the next line that has it (within a minute)."""
        line = await asyncio.to_thread(
            self.process.wait_for_line, lambda text: text.startswith("{") and f'"{key}"' in text,
            60, self.next)
        self.next = self.process.lines.index(line, self.next) + 1
        return json.loads(line)[key]


def sqlite_bytes(data_dir: Path) -> bytes:
    """Every value of every table of the server's SQLite databases, read-only (with
    what their WAL holds), then the files themselves."""
    found: list[bytes] = []
    for path in sorted(data_dir.rglob("*.db")):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        if isinstance(value, bytes):
                            found.append(value)
                        elif isinstance(value, str):
                            found.append(value.encode())
        finally:
            db.close()
    found.extend(p.read_bytes() for p in sorted(data_dir.rglob("*.db*")) if p.is_file())
    return b"\n".join(found)


def mongodb_bytes(server: CaasServer) -> bytes:
    """Every document of every collection of the server's database, as BSON."""
    mongo: MongoClient[dict[str, Any]] = MongoClient(server.env["CAAS_MONGODB_URL"])
    try:
        database = mongo[server.env["CAAS_MONGODB_DATABASE"]]
        return b"\n".join(bson.encode(doc) for name in database.list_collection_names()
                          for doc in database[name].find())
    finally:
        mongo.close()


async def test_node_devices_encrypt_end_to_end(client: Client, server: CaasServer,
                                               app: AppHandle, tmp_path: Path) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    sessions = {}
    for device in DEVICES:  # a session of its own for each device
        signed = await sign_in(client, app, device.split("-")[0])
        sessions[device] = {"access": signed.credentials.access_token,
                            "refresh": signed.credentials.refresh_token}
    secret = f"zebra{uuid.uuid4().hex[:12]}"
    keys = tmp_path / "keys"
    keys.mkdir()
    process = Process([built_sdk(), "test/node_e2ee.mjs"], cwd=SDK, name="node", env={
        "CAAS_ADDRESS": server.address, "APP_NAME": app.name, "SECRET": secret,
        "SESSIONS": json.dumps(sessions), "KEY_DIR": str(keys)})
    name = {d: f"{app.name}/users/{d.split('-')[0]}/devices/{d.split('-')[1]}"
            for d in DEVICES}
    lines = Lines(process)
    try:
        # a. Registered, with KeyPackages and a last-resort one; the group made by one
        # commit that adds the other two, who join.
        for device in ("alice-phone", "alice-laptop", "bob-phone"):
            registered = await lines.read("registered")
            assert registered["device"] == device
            assert registered["name"] == registered["identity"] == name[device]
            assert registered["keyPackageCount"] == 20 and registered["hasLastResort"]
            assert len(registered["fingerprint"].replace(" ", "")) == 64
        started = await lines.read("conversation")
        conversation = started["name"]
        assert conversation.startswith(f"{app.name}/conversations/")
        assert started["endToEndEncrypted"] is True
        assert await lines.read("created") == {
            "added": sorted([name["alice-laptop"], name["bob-phone"]]), "removed": [],
            "unavailable": [], "refused": [], "sequence": 1, "kind": "COMMIT", "epoch": 1}
        assert await lines.read("joined") == {"device": "alice-laptop", "via": "ListWelcomes",
                                              "conversations": [conversation], "epoch": 1}
        assert await lines.read("joined") == {"device": "bob-phone", "via": "stream",
                                              "conversations": [conversation], "epoch": 1}
        assert await lines.read("resynced") == {"added": [], "committed": False}

        # b. Each reads the other two.
        for device in ("alice-phone", "alice-laptop", "bob-phone"):
            exchanged = await lines.read("exchanged")
            assert exchanged["device"] == device
            assert exchanged["read"] == exchanged["expected"] and len(exchanged["read"]) == 2

        # c. Two commits on epoch 1: one refused as stale, caught up, committed on 2.
        stale = await lines.read("stale")
        commits = [r for r in stale["retried"] if r["kind"] == "commit"]
        assert [(r["reason"], r["attempt"]) for r in commits] == [("MLS_EPOCH_STALE", 1)]
        assert commits[0]["device"] in ("alice-phone", "bob-phone")
        # alice-laptop had seen neither commit: its message too was built again.
        assert {"device": "alice-laptop", "reason": "MLS_EPOCH_STALE", "kind": "application",
                "attempt": 1} in stale["retried"]
        assert len(stale["retried"]) == 2
        assert stale["epochBefore"] == 1 and stale["epochs"] == [3, 3, 3]
        first, second = sorted(stale["committed"])
        assert (first, second) == (5, 6)  # after the group's commit and three messages
        assert stale["read"] == {"alice-phone": [f"{secret} after the race (alice-laptop)"],
                                 "bob-phone": True}

        # d. The deleted laptop's leaf is removed by the next send's commit; the laptop
        # lists what follows and decrypts nothing.
        removal = await lines.read("removal")
        assert removal["retried"] == [{"device": "bob-phone", "reason": "MLS_REMOVAL_PENDING",
                                       "kind": "application"}]
        [pending] = removal["pendingBefore"]
        after_removal = {leaf["index"]: leaf["device"] for leaf in removal["leavesAfter"]}
        assert pending not in after_removal
        assert sorted(after_removal.values()) == sorted([name["alice-phone"], name["bob-phone"]])
        assert not any(leaf["pending"] for leaf in removal["leavesAfter"])
        gone = f"{secret} the laptop is gone (bob-phone)"
        assert removal["alicePhoneRead"] == [gone]
        after = await lines.read("laptopAfterRemoval")
        assert after["member"] is False and after["decrypted"] == []
        assert [f["sequence"] for f in after["failed"]] == [removal["sequence"]]
        assert "no longer in the group" in after["failed"][0]["error"]
        # It lists the removal commit and the message: ciphertext, no text.
        assert [m["sequence"] for m in after["listedCiphertext"]] == [
            removal["sequence"] - 1, removal["sequence"]]
        assert all(m["text"] == "" and m["mlsBytes"] > 0 for m in after["listedCiphertext"])
        assert after["sendRefused"] == "REMOVED"

        # e. bob-laptop, added later, reads what follows and nothing before.
        registered = await lines.read("registered")
        assert registered["name"] == name["bob-laptop"] and registered["keyPackageCount"] == 20
        late = await lines.read("lateJoiner")
        assert late["added"] == [name["bob-laptop"]] and late["joined"] == [conversation]
        assert late["read"] == [late["welcomeText"]]
        assert len(late["earlier"]) == 5 and not any(e["decrypted"] for e in late["earlier"])
        assert late["members"] == sorted([name["alice-phone"], name["bob-phone"],
                                          name["bob-laptop"]])
        assert len(late["fingerprints"]) == 3
        assert all(len(f.replace(" ", "")) == 64 for f in late["fingerprints"])

        # f. bob-phone, offline through two commits and two messages, catches up in
        # another process, in order, and answers.
        offline = await lines.read("offline")
        resumed = await lines.read("resumed")
        assert resumed["read"] == offline["sent"] and resumed["failed"] == 0
        assert [kind for _, kind in resumed["missed"]] == [
            "COMMIT", "APPLICATION", "COMMIT", "APPLICATION"]
        assert resumed["sequences"] == [resumed["missed"][1][0], resumed["missed"][3][0]]
        assert resumed["epochAfter"] == resumed["epochBefore"] + 2
        assert resumed["processedAfter"] == resumed["missed"][-1][0]
        answered = await lines.read("answered")
        online = f"{secret} back online (bob-phone)"
        assert await lines.read("back") == {"code": 0, "alice-phone": [offline["sent"][1], online],
                                            "bob-laptop": [online]}
        done = await lines.read("done")
        assert done["followErrors"] == []
        plaintexts = done["plaintexts"]
        assert len(plaintexts) == 9 and all(secret in text for text in plaintexts)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        process.stop()

    # The server's group is what the devices made of it.
    group = (await client.e2ee.GetGroup(e2ee_pb.GetGroupRequest(name=f"{conversation}/group"),
                                        metadata=alice.auth)).group
    assert group.commit_sequence < answered and group.cipher_suite == 1
    assert sorted(leaf.device.name for leaf in group.leaves) == sorted(
        [name["alice-phone"], name["bob-phone"], name["bob-laptop"]])
    assert not any(leaf.removal_pending for leaf in group.leaves)
    assert not group.missing_devices
    # Words in the clear are refused.
    await expect_error(alice.send(conversation, f"{secret} in the clear"),
                       grpc.StatusCode.FAILED_PRECONDITION, "E2EE_PLAINTEXT_REFUSED")

    # The server's own view (the app's backend reads everything) is ciphertext only...
    listed = await client.messages.ListMessages(
        msg_pb.ListMessagesRequest(parent=conversation, page_size=200,
                                   after_sequence=0), metadata=bearer(app.api_key))
    assert [m.sequence for m in listed.messages] == list(range(1, answered + 1))
    kinds = [m.mls.kind for m in listed.messages]
    assert kinds.count(msg_res.MlsContent.KIND_APPLICATION) == len(plaintexts)
    assert all(m.text == "" and m.mls.message for m in listed.messages)
    assert secret.encode() not in b"".join(m.SerializeToString() for m in listed.messages)
    # ... and so is its store, read raw: none of what was said is anywhere in it.
    if server.env.get("CAAS_STORE") == "mongodb":
        raw = mongodb_bytes(server)
    else:
        raw = sqlite_bytes(server.data_dir)
    assert conversation.encode() in raw  # the right store
    assert secret.encode() not in raw
    for text in plaintexts:
        assert text.encode() not in raw and json.dumps({"text": text}).encode() not in raw
