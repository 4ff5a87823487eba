"""Backup and restore of the embedded store against a running server: `caas admin
backup` while messages are being sent, then `caas admin restore` into an empty data
directory and a server started on it (beside the same master keys, kept apart): every
message the backup holds reads back, in one gapless run of sequence numbers, with its
text (sealed at rest, opened with the keys). What a restore must refuse: a data
directory in use, a damaged file, something that is not a backup; a backup into a
directory that is not empty."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

from tests.conftest import TEST_CONFIG, create_app
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client
from tests.support.servers import BIN, start_caas


def admin(data_dir: Path, keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAAS_DATA_DIR": str(data_dir), "CAAS_KEY_DIR": str(keys)}
    env.pop("CAAS_CONFIG_FILE", None)
    return subprocess.run([str(BIN / "caas"), "admin", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


async def texts(alice: Person, conversation: str) -> dict[int, str]:
    """Every message of the conversation, read forward: sequence → text."""
    found: dict[int, str] = {}
    while True:
        page = await alice.messages(conversation, page_size=200,
                                    after_sequence=max(found, default=0))
        found.update({m.sequence: m.text for m in page.messages})
        if not page.has_more_after:
            return found


async def test_a_backup_taken_while_serving_restores_whole(tmp_path: Path) -> None:
    keys = tmp_path / "keys"  # apart from the data: a backup does not hold them
    sending = "caas.messages.v1.MessagesService/CreateMessage"
    env = {"CAAS_KEY_DIR": str(keys), f"CAAS_PLANS__FREE__METHODS__{sending}__PER_USER": "100000",
           f"CAAS_PLANS__FREE__METHODS__{sending}__PER_APP": "100000"}
    server = start_caas(tmp_path / "data", env=env, config=TEST_CONFIG)
    client = Client(server.address)
    try:
        app = await create_app(client, server.operator_token)
        alice = await person(client, app.app_id, app.api_key, "alice")
        group = (await alice.create(GROUP, (), title="Kept")).name
        sent: dict[int, str] = {}
        for n in range(20):
            sent[(await alice.send(group, f"before {n} ✓")).message.sequence] = f"before {n} ✓"
        writing = asyncio.Event()
        stop = asyncio.Event()

        async def keep_sending() -> None:
            n = 0
            while not stop.is_set():
                text = f"during {n}"
                sent[(await alice.send(group, text)).message.sequence] = text
                n += 1
                writing.set()

        writer = asyncio.create_task(keep_sending())
        await writing.wait()
        taken = await asyncio.to_thread(admin, tmp_path / "data", keys, "backup",
                                        str(tmp_path / "backup"))
        stop.set()
        await writer
        assert taken.returncode == 0, taken.stderr
        summary = json.loads(taken.stdout)
        assert summary["databases"] == ["caas.db", "search.db"]
        assert not (tmp_path / "backup" / "keys").exists()
        assert not (tmp_path / "backup" / "operator-token").exists()
        total = len(sent)
    finally:
        await client.close()
        assert server.process.stop() == 0

    refused = admin(tmp_path / "data", keys, "restore", str(tmp_path / "backup"))
    assert refused.returncode == 2 and "is not empty" in refused.stderr
    restored = admin(tmp_path / "restored", keys, "restore", str(tmp_path / "backup"))
    assert restored.returncode == 0, restored.stderr
    again = start_caas(tmp_path / "restored", env=env, config=TEST_CONFIG)
    client = Client(again.address)
    try:
        back = await texts(await person(client, app.app_id, app.api_key, "alice"), group)
        # Everything up to a point while the writer ran: nothing torn, nothing missing.
        assert 20 < len(back) <= total
        assert sorted(back) == list(range(1, len(back) + 1))
        assert back == {sequence: sent[sequence] for sequence in back}
    finally:
        await client.close()
        assert again.process.stop() == 0


def test_restores_refuse_what_is_not_whole(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    data = tmp_path / "data"
    server = start_caas(data, env={"CAAS_KEY_DIR": str(keys)}, config=TEST_CONFIG)
    try:
        assert admin(data, keys, "backup", str(tmp_path / "backup")).returncode == 0
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "something").write_text("x")
        busy = admin(data, keys, "backup", str(tmp_path / "full"))
        assert busy.returncode == 2 and "is not empty" in busy.stderr
    finally:
        assert server.process.stop() == 0
    database = tmp_path / "backup" / "caas.db"
    raw = bytearray(database.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    database.write_bytes(bytes(raw))
    damaged = admin(tmp_path / "fresh", keys, "restore", str(tmp_path / "backup"))
    assert damaged.returncode == 2 and "caas.db is missing or damaged" in damaged.stderr
    assert not (tmp_path / "fresh").exists() or not any((tmp_path / "fresh").iterdir())
    stranger = admin(tmp_path / "fresh", keys, "restore", str(tmp_path / "full"))
    assert stranger.returncode == 2 and "not a CAAS backup" in stranger.stderr
