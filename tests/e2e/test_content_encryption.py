"""Message content sealed at rest under each sender's own key, against running servers
on both stores: the text, metadata values, link titles and URIs, the conversation
preview and the event log's copies are ciphertext in the store, yet every surface
reads them in clear (responses, metadata filters, streams, webhooks); erasing a user
destroys their key, after which a backup of the store taken before the erasure, put
back in place, shows their messages empty and everyone else's intact."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from caas.compliance.v1 import compliance_service_pb2 as comp_pb
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from pymongo import MongoClient

from services.keys.keyring import TEXT_PREFIX, TOKEN_PREFIX
from tests.conftest import TEST_CONFIG, AppHandle, create_app
from tests.e2e.test_encryption import raw_files
from tests.e2e.test_erasure import erased_counts, finished
from tests.e2e.test_webhooks import create_webhook, delivered, events
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.servers import CaasServer, ExternalServer, start_caas
from tests.support.stream import subscribed
from tests.support.webhook_receiver import Receiver


def secret(label: str) -> str:
    return f"{label}{uuid.uuid4().hex[:16]}"


def mongo_docs(server: CaasServer, collection: str, query: dict[str, Any],
               database: str = "") -> list[dict[str, Any]]:
    mongo: MongoClient[dict[str, Any]] = MongoClient(server.env["CAAS_MONGODB_URL"])
    try:
        name = database or server.env["CAAS_MONGODB_DATABASE"]
        return list(mongo[name][collection].find(query))
    finally:
        mongo.close()


async def test_content_is_sealed_at_rest_and_reads_in_clear_everywhere(
        client: Client, server: CaasServer, app: AppHandle, receiver: Receiver) -> None:
    url = receiver.url("ok")
    await create_webhook(client, app, url, "message.created")
    alice = await person(client, app.app_id, app.api_key, "alice")
    bob = await person(client, app.app_id, app.api_key, "bob")
    group = await alice.create(GROUP, ("bob",))
    stream = await subscribed(bob)
    text = secret("zebra") + " " + "x" * 300  # longer than a preview
    order, title, link = secret("order"), secret("title"), f"https://example.com/{secret('p')}"
    sent = await alice.send(group.name, text, metadata={"order": order, "plain": "yes"},
                            attachments=[msg_res.Attachment(
                                kind=msg_res.Attachment.KIND_LINK, uri=link, title=title)])
    assert sent.message.text == text and sent.message.metadata["order"] == order

    # Every surface reads it in clear.
    [shown] = (await bob.messages(group.name)).messages
    assert (shown.text, dict(shown.metadata), shown.attachments[0].title,
            shown.attachments[0].uri) == (text, {"order": order, "plain": "yes"}, title, link)
    got = await client.conversations.GetConversation(
        conv_pb.GetConversationRequest(name=group.name), metadata=bob.auth)
    assert got.conversation.last_message.text == text[:200]
    for matching, expected in ((f'metadata.order = "{order}"', [1]),
                               ('metadata.order = "other"', []),
                               (f'metadata.order != "{order}"', []),
                               ('metadata.plain = "yes" AND metadata:order', [1])):
        found = await bob.messages(group.name, filter=matching)
        assert [m.sequence for m in found.messages] == expected, matching
    event = await stream.event()
    assert (event.message_created.text, event.message_created.metadata["order"],
            event.message_created.attachments[0].title) == (text, order, title)
    await stream.close()
    (hooked,) = events(await receiver.wait(url, delivered(1)))
    assert hooked["messageCreated"]["text"] == text  # type: ignore[index]

    # At rest, none of it is in clear.
    secrets = (text.split()[0], order, title, link)
    if server.env.get("CAAS_STORE") == "mongodb":
        [doc] = mongo_docs(server, "messages", {"app_id": app.app_id})
        assert doc["text"].startswith(TEXT_PREFIX)
        assert doc["metadata"]["order"].startswith(TEXT_PREFIX)
        assert doc["metadata_index"]["order"].startswith(TOKEN_PREFIX)
        assert doc["attachments"][0]["title"].startswith(TEXT_PREFIX)
        assert doc["attachments"][0]["uri"].startswith(TEXT_PREFIX)
        [conversation] = mongo_docs(server, "conversations", {"app_id": app.app_id})
        assert conversation["last_message"]["text"].startswith(TEXT_PREFIX)
        raw = b"".join(bytes(e["payload"]) for e in mongo_docs(
            server, "events", {"app_id": app.app_id}))
        raw += repr((doc, conversation)).encode()
        keys = mongo_docs(server, "data_keys", {"app_id": app.app_id},
                          server.env["CAAS_MONGODB_DATABASE"] + "_keys")
        assert {k["owner"] for k in keys} >= {"user:alice"}
        assert not mongo_docs(server, "data_keys", {"app_id": app.app_id})  # apart
    else:
        raw = raw_files(server.data_dir)
        with sqlite3.connect(server.data_dir / "keys" / "keys.db") as db:
            owners = {o for (o,) in db.execute(
                "SELECT owner FROM data_keys WHERE app_id = ?", (app.app_id,))}
        assert owners >= {"user:alice"}
    assert TEXT_PREFIX.encode() in raw
    for value in secrets:
        assert value.encode() not in raw, value


async def test_an_edit_keeps_revisions_sealed_and_unchanged_fields_quiet(
        client: Client, server: CaasServer, app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    group = await alice.create()
    first, second = secret("first"), secret("second")
    sent = await alice.send(group.name, first, metadata={"k": "v"})
    same = await client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message={"name": sent.message.name, "text": first, "metadata": {"k": "v"}},
        update_mask={"paths": ["text", "metadata"]}), metadata=alice.auth)
    assert not same.message.HasField("edit_time")  # nothing changed: no revision
    edited = await client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message={"name": sent.message.name, "text": second},
        update_mask={"paths": ["text"]}), metadata=alice.auth)
    assert edited.message.text == second and edited.message.HasField("edit_time")
    revisions = await client.messages.ListMessageRevisions(
        msg_pb.ListMessageRevisionsRequest(name=sent.message.name), metadata=alice.auth)
    assert [r.text for r in revisions.revisions] == [first, second]
    if server.env.get("CAAS_STORE") != "mongodb":
        raw = raw_files(server.data_dir)
        assert first.encode() not in raw and second.encode() not in raw


async def erase(client: Client, app: AppHandle, user_id: str) -> comp_pb.EraseUserResponse:
    started = await client.compliance.EraseUser(comp_pb.EraseUserRequest(
        name=f"{app.name}/users/{user_id}"), metadata=app.auth)
    return erased_counts(await finished(client, app, started.name))


async def backed_up_then_erased(server: CaasServer, backup: Any
                                ) -> tuple[AppHandle, str, str]:
    """An app where alice and bob talk, the store backed up by `backup()`, then alice
    erased: (the app, the group, alice's text)."""
    client = Client(server.address)
    try:
        app = await create_app(client, server.operator_token)
        alice = await person(client, app.app_id, app.api_key, "alice")
        bob = await person(client, app.app_id, app.api_key, "bob")
        group = await alice.create(GROUP, ("bob",))
        text = secret("walrus")
        await alice.send(group.name, text, metadata={"m": text})
        await bob.send(group.name, "hello from bob")
        backup()
        counts = await erase(client, app, "alice")
        assert (counts.messages_erased, counts.keys_destroyed) == (1, 1)
        return app, group.name, text
    finally:
        await client.close()
        assert server.process.stop() == 0


async def restored_texts(server: CaasServer, app: AppHandle, group: str
                         ) -> list[tuple[str, str, dict[str, str]]]:
    """(sender, text, metadata) of the group's messages, as bob reads them from a
    server started on the restored backup."""
    client = Client(server.address)
    try:
        bob = await person(client, app.app_id, app.api_key, "bob")
        listed = await bob.messages(group)
        return [(m.sender_id, m.text, dict(m.metadata)) for m in listed.messages]
    finally:
        await client.close()
        assert server.process.stop() == 0


async def test_an_erased_users_content_stays_unreadable_in_a_restored_backup(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = start_caas(data, config=TEST_CONFIG)
    backup = tmp_path / "backup.db"

    def take_backup() -> None:
        with sqlite3.connect(data / "caas.db") as live, sqlite3.connect(backup) as copy:
            live.backup(copy)

    app, group, text = await backed_up_then_erased(server, take_backup)
    assert text.encode() not in backup.read_bytes()  # the backup held ciphertext only
    for stale in data.glob("caas.db*"):
        stale.unlink()
    backup.rename(data / "caas.db")  # restored, with today's keys

    restored = start_caas(data, config=TEST_CONFIG)
    assert await restored_texts(restored, app, group) == [
        ("alice", "", {"m": ""}), ("bob", "hello from bob", {})]


async def test_an_erased_users_content_stays_unreadable_in_a_restored_mongodb_backup(
        tmp_path: Path, mongo: ExternalServer) -> None:
    live, copy = f"live{uuid.uuid4().hex[:8]}", f"copy{uuid.uuid4().hex[:8]}"
    env = {"CAAS_STORE": "mongodb", "CAAS_MONGODB_URL": mongo.url,
           "CAAS_MONGODB_DATABASE": live, "CAAS_MONGODB_KEYS_DATABASE": "keys" + live}
    server = start_caas(tmp_path, env=env, config=TEST_CONFIG)

    def take_backup() -> None:  # every collection of the data's database, as a dump has
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.url)
        try:
            for name in client[live].list_collection_names():
                docs = list(client[live][name].find({}))
                if docs:
                    client[copy][name].insert_many(docs)
        finally:
            client.close()

    app, group, _ = await backed_up_then_erased(server, take_backup)
    restored = start_caas(tmp_path, env={**env, "CAAS_MONGODB_DATABASE": copy},
                          config=TEST_CONFIG)
    assert await restored_texts(restored, app, group) == [
        ("alice", "", {"m": ""}), ("bob", "hello from bob", {})]
