"""Push notifications (services/push): how long a message to a group of 1,000 offline
members takes to reach the push service as 1,000 Web Push messages, and the server's
CPU per push.

Starts its own `caas serve` (embedded defaults, SQLite, in a temporary directory)
trusting a local Web Push service: an HTTPS server in this process (aiohttp, keep-alive,
answering 201 Created at once, as a push service does). An app with MEMBERS users,
each with a Web Push subscription (their own endpoint, their own P-256 keys) and no
stream; one group of all of them. Then ROUNDS times, one after the other: the first
member sends a message, and the push service counts the requests until every other
member's has come. Reported per round and over all rounds: the time from sending to
the first and to the last push received (p50 over rounds), pushes/s, and server CPU
per push (the server's user + system time over the rounds, over the pushes). The
collapse window is 0 here: each round's message is its own push.

Each push is a notification rendered for its device, encrypted for its subscription
(RFC 8291: an ECDH key agreement and AES-GCM per message), signed (a VAPID ES256 JWT
per request), and handed over on a pooled TLS connection; the load generator and the
push service run on the same cores as the server.

    .venv/bin/python bench/push.py [--members 1000] [--rounds 5]

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.push.v1 import push_service_pb2 as push_pb
from caas.push.v1 import resources_pb2 as push_res
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import field_mask_pb2

from bench.servers import bench_server, machine_pace, server_cpu
from services.core.aio import wait_set
from tests.support.chat import GROUP, person
from tests.support.client import Client, bearer
from tests.support.web_push_client import Browser
from tests.support.webhook_receiver import self_signed


class PushService:
    """Counts the push requests to each endpoint; `arrived` holds their times."""

    def __init__(self) -> None:
        self.arrived: list[float] = []
        self.changed = asyncio.Event()

    async def take(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrived.append(time.perf_counter())
        self.changed.set()
        return web.Response(status=201)

    async def until(self, count: int, within: float = 120) -> None:
        deadline = time.perf_counter() + within
        while len(self.arrived) < count:
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"{len(self.arrived)} of {count} pushes arrived")
            await wait_set(self.changed, left)


async def serve(tls: ssl.SSLContext, service: PushService) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/{endpoint}", service.take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"https://127.0.0.1:{port}"


async def prepare(address: str, operator: str, members: int, base: str) -> tuple[
        Client, str, str, str]:
    """(client, the sender's token, the group's name, the app's key)."""
    client = Client(address)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Bench")), metadata=bearer(operator))
    key = bearer(app.api_key_secret)
    sender = await person(client, app_id, app.api_key_secret, "sender")
    users = [f"m{i}" for i in range(members)]

    async def member(user_id: str) -> None:
        await client.users.UpdateUser(user_pb.UpdateUserRequest(
            user=user_res.User(name=f"apps/{app_id}/users/{user_id}",
                               display_name=user_id.title()),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            allow_missing=True), metadata=key)
        browser = Browser()
        await client.push.CreatePushDevice(push_pb.CreatePushDeviceRequest(
            parent=f"apps/{app_id}/users/{user_id}", push_device=push_res.PushDevice(
                web_push=push_res.WebPushSubscription(
                    endpoint=f"{base}/{user_id}-{os.urandom(4).hex()}",
                    p256dh=browser.p256dh, auth=browser.auth))), metadata=key)

    for start in range(0, members, 50):
        await asyncio.gather(*(member(u) for u in users[start:start + 50]))
    group = await sender.create(GROUP, tuple(users[:100]), title="Everyone")
    for start in range(100, members, 100):
        await client.conversations.AddMembers(conv_pb.AddMembersRequest(
            conversation=group.name, user_ids=users[start:start + 100]), metadata=key)
    return client, sender.token, group.name, app.api_key_secret


async def measure(address: str, operator: str, pid: int | None, members: int, rounds: int,
                  tls: ssl.SSLContext) -> None:
    service = PushService()
    runner, base = await serve(tls, service)
    client, token, group, _ = await prepare(address, operator, members, base)
    firsts, lasts = [], []
    cpu_before = server_cpu(pid)
    for number in range(rounds):
        expected = (number + 1) * members
        already = len(service.arrived)
        sent = time.perf_counter()
        await client.messages.CreateMessage(_message(group), metadata=bearer(token))
        await service.until(expected)
        first, last = service.arrived[already] - sent, service.arrived[expected - 1] - sent
        firsts.append(first)
        lasts.append(last)
        print(f"round {number + 1}: first push {first * 1000:.0f} ms, all {members} "
              f"in {last * 1000:.0f} ms ({members / last:.0f} pushes/s)")
    cpu = server_cpu(pid) - cpu_before
    pushes = rounds * members
    print(f"\n{members} offline members, {rounds} messages, {pushes} pushes")
    print(f"  to the first push   p50 {statistics.median(firsts) * 1000:.0f} ms")
    print(f"  to the last push    p50 {statistics.median(lasts) * 1000:.0f} ms, "
          f"max {max(lasts) * 1000:.0f} ms")
    print(f"  throughput          {members / statistics.median(lasts):.0f} pushes/s")
    print(f"  server CPU          {cpu * 1000 / pushes:.2f} ms per push "
          f"({cpu:.1f} s over {pushes} pushes)")
    await client.close()
    await runner.cleanup()


def _message(group: str) -> object:
    from caas.messages.v1 import messages_service_pb2 as msg_pb  # noqa: PLC0415
    from caas.messages.v1 import resources_pb2 as msg_res  # noqa: PLC0415

    return msg_pb.CreateMessageRequest(parent=group, message=msg_res.Message(
        text="Lunch is ready in the kitchen, come and get it while it is warm"),
        request_id=uuid.uuid4().hex)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine pace: {machine_pace()}")
    with tempfile.TemporaryDirectory() as tmp:
        tls, certificate = self_signed(Path(tmp))
        env = {"CAAS_TLS_CA_FILE": str(certificate), "CAAS_PUSH_COLLAPSE_WINDOW": "0",
               "CAAS_MAX_GROUP_MEMBERS": str(args.members + 1)}
        with bench_server(Path(tmp), env=env) as server:
            asyncio.run(measure(server.address, server.operator_token,
                                server.process.pid, args.members, args.rounds, tls))


if __name__ == "__main__":
    main()
