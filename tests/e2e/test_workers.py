"""`caas serve --workers N`: processes on one port, sharing events through Redis."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
from caas.webhooks.v1 import resources_pb2 as hooks_res
from caas.webhooks.v1 import webhooks_service_pb2 as hooks_pb

from tests.conftest import TEST_CONFIG, create_app
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer
from tests.support.processes import Process
from tests.support.servers import (
    BIN,
    OPERATOR_TOKEN,
    ExternalServer,
    start_caas,
    wait_for_workers,
)
from tests.support.stream import bob_on_every_connection
from tests.support.webhook_receiver import running_receiver


async def test_workers_share_a_port_and_deliver_to_each_other(
        tmp_path: Path, redis_server: ExternalServer) -> None:
    server = start_caas(tmp_path, env={"CAAS_WORKERS": "2", "CAAS_REDIS_URL": redis_server.url},
                        config=TEST_CONFIG, http=True)
    wait_for_workers(server)
    # A connection each (gRPC shares connections between channels unless told not to);
    # the kernel spreads connections over the workers.
    clients = [Client(server.address, [("grpc.use_local_subchannel_pool", 1)])
               for _ in range(16)]
    try:
        alice, bob, group, streams = await bob_on_every_connection(
            clients, server.operator_token)
        await alice.send(group, "to every device")
        for stream in streams:
            assert (await stream.event()).message_created.text == "to every device"
        async with httpx.AsyncClient(base_url=server.http_url) as http:  # the one Envoy
            listed = await http.get(f"/v1/{group}/messages", headers={
                "authorization": f"Bearer {bob.token}"})
        assert [m["text"] for m in listed.json()["messages"]] == ["to every device"]
        for stream in streams:
            await stream.close()
    finally:
        for client in clients:
            await client.close()
        assert server.process.stop() == 0
    streams_by = {json.loads(line)["pid"] for line in server.process.lines
                  if "RealtimeService/Subscribe" in line and '"message": "rpc"' in line}
    assert len(streams_by) == 2  # both workers held streams, and all got the message


async def test_workers_share_webhook_deliveries(tmp_path: Path,
                                               redis_server: ExternalServer) -> None:
    """Both workers' dispatchers claim from the one queue: every event arrives, in order
    for an ordered endpoint, none twice."""
    server = start_caas(tmp_path, env={"CAAS_WORKERS": "2", "CAAS_REDIS_URL": redis_server.url},
                        config=TEST_CONFIG)
    clients = [Client(server.address, [("grpc.use_local_subchannel_pool", 1)])
               for _ in range(4)]
    texts = [f"w{n}" for n in range(40)]
    try:
        with running_receiver() as receiver:
            url = receiver.url("ok")
            app = await create_app(clients[0], server.operator_token)
            await clients[0].webhooks.CreateWebhook(hooks_pb.CreateWebhookRequest(
                parent=app.name, webhook=hooks_res.Webhook(
                    url=url, event_types=["message.created"], ordered=True)),
                metadata=bearer(app.api_key))
            people = [await person(client, app.app_id, app.api_key, f"u{n}")
                      for n, client in enumerate(clients)]
            group = await people[0].create(GROUP, tuple(p.user_id for p in people[1:]))
            for n, text in enumerate(texts):  # sent through connections to both workers
                await people[n % len(people)].send(group.name, text)
            got = await receiver.wait(url, lambda got: len(got) >= len(texts), within=60)
        bodies = [json.loads(r.body)["messageCreated"]["text"] for r in got]
        assert bodies == texts  # one conversation, ordered, exactly once here
    finally:
        for client in clients:
            await client.close()
        assert server.process.stop() == 0


def test_workers_need_redis(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "caas"), "serve", "--workers", "2"], cwd=tmp_path,
                          env={**os.environ, "CAAS_DATA_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "CAAS_REDIS_URL" in done.stderr


async def test_every_flag_reaches_every_worker(tmp_path: Path,
                                               redis_server: ExternalServer) -> None:
    """`--data-dir` (like every flag) is the workers' too: nothing lands in the
    working directory."""
    scratch, data = tmp_path / "cwd", tmp_path / "data"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAAS_")}
    env |= {"CAAS_REDIS_URL": redis_server.url, "CAAS_OPERATOR_TOKEN": OPERATOR_TOKEN,
            "CAAS_LISTEN": "127.0.0.1:0", "CAAS_HTTP_LISTEN": ""}
    process = Process([str(BIN / "caas"), "serve", "--workers", "2", "--data-dir", str(data)],
                      env=env, cwd=scratch, name="caas")
    try:
        first = process.wait_for_line(lambda line: '"message": "serving"' in line, 60)
        process.wait_for_line(lambda line: '"message": "serving"' in line and line != first, 60)
        client = Client(f"127.0.0.1:{json.loads(first)['port']}")
        try:
            app = await create_app(client, OPERATOR_TOKEN)
            assert app.app_id
        finally:
            await client.close()
    finally:
        assert process.stop() == 0
    assert list(scratch.iterdir()) == []
    assert (data / "caas.db").exists()
