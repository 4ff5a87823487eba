"""SIGTERM drains: calls in flight finish, calls that arrive meanwhile are refused with
UNAVAILABLE before they start (never CANCELLED), streams end with UNAVAILABLE after the
unary calls, and the process exits 0 — with everything that answered OK committed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res

from tests.conftest import create_app
from tests.support.chat import GROUP, person
from tests.support.client import Client, details
from tests.support.servers import start_caas

SENDERS = 12


async def test_sigterm_mid_burst_cancels_no_call(tmp_path: Path) -> None:
    # The burst floods one conversation on purpose.
    server = start_caas(tmp_path, env={"CAAS_SHUTDOWN_GRACE": "20",
                                       "CAAS_PLANS__FREE__SENDS_PER_CONVERSATION": "100000"})
    client = Client(server.address)
    app = await create_app(client, server.operator_token)
    alice = await person(client, app.app_id, app.api_key, "alice")
    conversation = (await alice.create(GROUP)).name
    outcomes: list[tuple[str, str, str]] = []  # (code, reason, text)
    sent = asyncio.Event()

    async def sender(number: int) -> None:
        for n in range(10_000):
            text = f"s{number}-{n}"
            try:
                await client.messages.CreateMessage(msg_pb.CreateMessageRequest(
                    parent=conversation, message=msg_res.Message(text=text),
                    request_id=text), metadata=alice.auth, timeout=60)
            except grpc.aio.AioRpcError as error:
                outcomes.append((error.code().name, details(error).reason, text))
                return  # the server is draining or gone
            outcomes.append(("OK", "", text))
            if len(outcomes) >= 50:
                sent.set()

    senders = [asyncio.create_task(sender(n)) for n in range(SENDERS)]
    await asyncio.wait_for(sent.wait(), 60)  # the burst is under way
    server.process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(asyncio.gather(*senders), 90)
    assert await asyncio.to_thread(server.process.wait, 60) == 0
    await client.close()

    codes = {code for code, _, _ in outcomes}
    assert "CANCELLED" not in codes, [o for o in outcomes if o[0] == "CANCELLED"]
    assert codes <= {"OK", "UNAVAILABLE"}
    refused = [o for o in outcomes if o[0] == "UNAVAILABLE"]
    assert len(refused) == SENDERS  # each sender stopped at its first refusal
    # Refused by the draining server (with its reason), or once it was gone (no reason).
    assert {reason for _, reason, _ in refused} <= {"UNAVAILABLE", ""}

    restarted = start_caas(tmp_path)
    client = Client(restarted.address)
    try:
        committed: set[str] = set()
        after = 0
        while True:  # every message, oldest first, a page at a time
            page = await client.messages.ListMessages(msg_pb.ListMessagesRequest(
                parent=conversation, page_size=200, after_sequence=after), metadata=app.auth)
            committed |= {m.text for m in page.messages}
            if not page.has_more_after:
                break
            after = page.messages[-1].sequence
        assert committed == {text for code, _, text in outcomes if code == "OK"}
    finally:
        await client.close()
        assert restarted.process.stop() == 0
