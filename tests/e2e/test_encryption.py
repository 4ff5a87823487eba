"""Encryption at rest against running servers: secrets (webhook and send hook signing
secrets, the apps' token signing keys) are stored sealed on both stores, never in
clear in the database files, yet keep working; `caas admin rotate-master-key` rotates
the master key under a live server, and old data still reads after a restart."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res
from caas.webhooks.v1 import resources_pb2 as hook_res
from caas.webhooks.v1 import webhooks_service_pb2 as hook_pb
from google.protobuf import field_mask_pb2
from pymongo import MongoClient

from services.keys.keyring import MAGIC, TEXT_PREFIX
from tests.conftest import TEST_CONFIG, AppHandle, create_app
from tests.support.chat import person
from tests.support.client import Client
from tests.support.servers import BIN, CaasServer, start_caas


def raw_files(data_dir: Path) -> bytes:
    """Every byte SQLite keeps in the data directory (the database, its WAL)."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("caas.db*"))
                    if p.is_file())


def stored(server: CaasServer, collection: str, query: dict[str, Any]) -> dict[str, Any]:
    mongo: MongoClient[dict[str, Any]] = MongoClient(server.env["CAAS_MONGODB_URL"])
    try:
        found = mongo[server.env["CAAS_MONGODB_DATABASE"]][collection].find_one(query)
        assert found is not None
        return found
    finally:
        mongo.close()


async def made_secrets(client: Client, app: AppHandle) -> tuple[str, str]:
    """A webhook's and the send hook's secrets, as the API shows them once."""
    hook = await client.webhooks.CreateWebhook(hook_pb.CreateWebhookRequest(
        parent=app.name, webhook=hook_res.Webhook(url="https://example.com/hook")),
        metadata=app.auth)
    send_hook = await client.moderation.UpdateSendHook(mod_pb.UpdateSendHookRequest(
        send_hook=mod_res.SendHook(name=f"{app.name}/sendHook",
                                   url="https://example.com/presend"),
        update_mask=field_mask_pb2.FieldMask(paths=["url"]), allow_missing=True),
        metadata=app.auth)
    assert send_hook.secret
    return hook.secret, send_hook.secret


async def test_secrets_are_sealed_at_rest_and_keep_working(client: Client,
                                                           server: CaasServer,
                                                           app: AppHandle) -> None:
    webhook_secret, hook_secret = await made_secrets(client, app)
    alice = await person(client, app.app_id, app.api_key, "alice")  # signs a token
    got = await client.webhooks.GetWebhook(hook_pb.GetWebhookRequest(
        name=(await client.webhooks.ListWebhooks(hook_pb.ListWebhooksRequest(
            parent=app.name), metadata=app.auth)).webhooks[0].name), metadata=app.auth)
    assert got.webhook.secret_hint == webhook_secret[:len(got.webhook.secret_hint)]
    await alice.create()  # her token, signed with the app's sealed key, verifies

    if server.env.get("CAAS_STORE") == "mongodb":
        webhook = stored(server, "webhooks", {"app_id": app.app_id})
        assert webhook["secret"].startswith(TEXT_PREFIX)
        assert stored(server, "send_hooks", {"_id": app.app_id})["secret"].startswith(
            TEXT_PREFIX)
        [key] = stored(server, "signing_keysets", {"_id": app.app_id})["keys"]
        assert bytes(key["private_key"]).startswith(MAGIC)
    else:
        on_disk = raw_files(server.data_dir)
        for secret in (webhook_secret, hook_secret):
            assert secret.encode() not in on_disk
        assert f"{TEXT_PREFIX}".encode() in on_disk
        with sqlite3.connect(server.data_dir / "caas.db") as db:
            [(private,)] = db.execute("SELECT private_key FROM signing_keys WHERE app_id = ?",
                                      (app.app_id,)).fetchall()
        assert bytes(private).startswith(MAGIC)


async def test_the_master_key_rotates_under_a_live_server(tmp_path: Path) -> None:
    server = start_caas(tmp_path, config=TEST_CONFIG)
    client = Client(server.address)
    try:
        app = await create_app(client, server.operator_token)
        webhook_secret, _ = await made_secrets(client, app)
        keys = tmp_path / "keys"
        [first] = [p.name for p in keys.glob("master-*.key")]

        env = {"CAAS_DATA_DIR": str(tmp_path), "PATH": str(BIN)}
        done = await asyncio.to_thread(
            subprocess.run, [str(BIN / "caas"), "admin", "rotate-master-key"],
            capture_output=True, text=True, timeout=120, check=False, env=env)
        assert done.returncode == 0, done.stderr
        rotation = json.loads(done.stdout)
        assert rotation["data_keys_rewrapped"] >= 2  # the app's and the platform's
        assert [p.name for p in keys.glob("master-*.key")] == [
            f"master-{rotation['active_master_key']}.key"]
        assert (keys / "retired" / first).exists()

        # The live server goes on (its data keys are unwrapped already), new apps too.
        later = await create_app(client, server.operator_token)
        await made_secrets(client, later)
        listed = await client.webhooks.ListWebhooks(hook_pb.ListWebhooksRequest(
            parent=app.name), metadata=app.auth)
        assert webhook_secret.startswith(listed.webhooks[0].secret_hint)
    finally:
        await client.close()
        assert server.process.stop() == 0

    # After a restart (nothing cached), everything reads with the new master key alone.
    again = start_caas(tmp_path, config=TEST_CONFIG, port=server.port)
    client = Client(again.address)
    try:
        listed = await client.webhooks.ListWebhooks(hook_pb.ListWebhooksRequest(
            parent=app.name), metadata=app.auth)
        assert webhook_secret.startswith(listed.webhooks[0].secret_hint)
        await person(client, app.app_id, app.api_key, "bob")  # signs with the sealed key
    finally:
        await client.close()
        assert again.process.stop() == 0
