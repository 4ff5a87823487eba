"""The TypeScript SDK's media helpers from Node.js, against the shared server: uploading
(one part, and two parts: aborted and resumed, and a lost part retried), progress to the
last byte, and waiting on the realtime stream until processing is done (READY, or
refused with its reason)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from tests.conftest import AppHandle, sign_in
from tests.media import samples
from tests.support.chat import GROUP, person
from tests.support.client import Client
from tests.support.processes import Process
from tests.support.servers import CaasServer
from tests.web_bridge.nodejs import SDK, built_sdk
from tests.web_bridge.test_node_client import line_from

MIB = 1024 * 1024
PART = 5 * MIB  # media_part_size of the shared test server (tests/conftest.py)


async def test_node_uploads_resumes_and_retries_and_waits_for_ready(
        client: Client, server: CaasServer, app: AppHandle, tmp_path: Path) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    await person(client, app.app_id, app.api_key, "bob")
    group = await alice.create(GROUP, ("bob",))
    photo = samples.jpeg(tmp_path / "photo.jpg", (400, 300))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(PART + 1000))  # two parts, the second 1000 bytes
    program = tmp_path / "cat.png"
    program.write_bytes(samples.elf())
    session = await sign_in(client, app, "alice")
    process = Process([built_sdk(), "test/node_media.mjs"], cwd=SDK, name="node", env={
        "CAAS_ADDRESS": server.address, "APP_NAME": app.name, "ALICE_ID": "alice",
        "ALICE_TOKEN": session.credentials.access_token,
        "ALICE_REFRESH": session.credentials.refresh_token, "CONVERSATION": group.name,
        "PHOTO": str(photo), "BIG": str(big), "PROGRAM": str(program)})
    try:
        size = photo.stat().st_size
        uploaded = await line_from(process, "photo")
        assert uploaded["photo"] in ("PENDING", "READY") and uploaded["size"] == size
        assert uploaded["puts"] == [[1, 200]]
        progress = uploaded["progress"]
        assert progress["first"] == {"loadedBytes": 0, "totalBytes": size}
        assert progress["last"] == {"loadedBytes": size, "totalBytes": size}
        assert progress["monotonic"]
        ready = (await line_from(process, "photoReady"))["photoReady"]
        assert {key: ready[key] for key in ("state", "kind", "width", "height")} == {
            "state": "READY", "kind": "IMAGE", "width": 400, "height": 300}
        assert ready["thumbnails"][0] == "small" and ready["thumbnailUris"]

        # Aborted once its first part was stored; resumed: only the second is sent.
        total = PART + 1000
        aborted = await line_from(process, "aborted")
        assert aborted["aborted"] == "AbortError" and aborted["puts"] == [[1, 200]]
        resumed = await line_from(process, "resumed")
        assert resumed["resumed"] in ("PENDING", "READY") and resumed["size"] == total
        assert resumed["puts"] == [[2, 200]]
        assert resumed["progress"]["first"] == {"loadedBytes": PART, "totalBytes": total}
        assert resumed["progress"]["last"] == {"loadedBytes": total, "totalBytes": total}
        ready = (await line_from(process, "resumedReady"))["resumedReady"]
        assert (ready["state"], ready["kind"], ready["thumbnails"]) == ("READY", "FILE", [])
        # The parts, sliced from the file in two calls, make the file again.
        digest = hashlib.sha256(big.read_bytes()).hexdigest()
        assert ready["sha256"] == digest

        # A part lost on the way is sent again (after GetUpload), and that is all.
        retried = await line_from(process, "retried")
        assert retried["puts"] == [[1, 200], [2, "lost"], [2, 200]]
        assert retried["progress"]["last"] == {"loadedBytes": total, "totalBytes": total}
        ready = (await line_from(process, "retriedReady"))["retriedReady"]
        assert (ready["state"], ready["kind"], ready["sha256"]) == ("READY", "FILE", digest)
        # Refused by processing: the waiting ends with the reason.
        assert await line_from(process, "refused") == {
            "refused": True, "reason": "CONTENT_TYPE_NOT_ALLOWED", "state": "FAILED"}
        await line_from(process, "done")
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        process.stop()
