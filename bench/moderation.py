"""What moderation costs a send: server CPU per send with an app's moderation rules
active against an app with none, in one run of one server.

The moderated app has 5 custom roles with grants in every kind of conversation, 3
permission conditions on sending (CEL, each evaluated on every send), a 1,000-word
block list (words no message uses, so every send is scanned whole and goes through),
20 RE2 patterns, a link rule, and a mute of a user who does not send; the plain app
has nothing. Each round measures both apps, in turns (plain first, then moderated
first, ...) so that the machine's drift and the store's growth fall on both alike;
messages are the same ordinary chat sentences in both. Both send at the same `--rate`
(200 sends/s by default, below what the server takes on 2 cores): CPU per send
compares at equal load, not at whatever throughput each reaches (flat out, an A/A run
of two plain apps spread +-25 % per round here). Take the median of the rounds.

With `--hook-ms N`, it then measures sends to an app whose pre-send hook (a local
endpoint) answers after N ms, against the plain app, at `--hook-concurrency` sends in
flight per sender: the latency a hook adds.

    .venv/bin/python bench/moderation.py [--rounds 6] [--seconds 8] [--senders 5]
                                         [--concurrency 8] [--rate 200] [--hook-ms 50]
                                         [--hook-concurrency 1] (--rounds 0: the hook only)

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from caas.moderation.v1 import moderation_service_pb2 as mod_pb
from caas.moderation.v1 import resources_pb2 as mod_res
from caas.users.v1 import users_service_pb2 as users_pb
from google.protobuf import field_mask_pb2

from bench.send_messages import Sends, Setup, measure
from bench.servers import bench_server, machine_pace
from tests.support.client import Client, bearer

WORDS = ["the", "a", "we", "you", "it", "is", "was", "to", "of", "and", "in", "on", "for",
         "with", "at", "see", "meet", "lunch", "later", "today", "tomorrow", "great",
         "thanks", "idea", "plan", "team", "call", "project", "ready", "soon", "maybe",
         "sure", "nice", "weekend", "coffee", "update", "review", "ship", "build", "test",
         "check", "send", "back", "love", "this"]
PATTERNS = [rf"(?i)\bcode{n}-\d{{4}}\b" for n in range(10)] + [
    r"\b\d{4}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b", r"(?i)\bfree\s+money\b",
    r"(?i)\bclick\s+here\b", r"(?i)\bcrypto\s*giveaway\b", r"\b\d{3}-\d{2}-\d{4}\b",
    r"(?i)\bdm\s+me\b", r"(?i)\bwhats?app\s*\+?\d+", r"(?i)\btelegram\s*@\w+",
    r"(?i)\bonlyfans\b", r"(?i)\bbuy\s+followers\b"]


def sentence(index: int) -> str:
    picked = random.Random(index)
    return " ".join(picked.choice(WORDS) for _ in range(picked.randint(6, 16)))


async def moderate(client: Client, app_id: str, api_key: str) -> None:
    key = bearer(api_key)
    parent = f"apps/{app_id}"
    blocked = [f"blockedword{n:04}" for n in range(1000)]
    await client.moderation.CreateFilter(mod_pb.CreateFilterRequest(
        parent=parent, filter_id="words", filter=mod_res.Filter(
            words=blocked, action=mod_res.Filter.ACTION_BLOCK)), metadata=key)
    await client.moderation.CreateFilter(mod_pb.CreateFilterRequest(
        parent=parent, filter_id="patterns", filter=mod_res.Filter(
            patterns=PATTERNS, action=mod_res.Filter.ACTION_FLAG)), metadata=key)
    await client.moderation.CreateFilter(mod_pb.CreateFilterRequest(
        parent=parent, filter_id="links", filter=mod_res.Filter(
            blocked_domains=["spam.example", "scam.example"],
            action=mod_res.Filter.ACTION_MASK)), metadata=key)
    roles = [f"role{n}" for n in range(5)]
    kinds = [1, 2, 3]  # direct, group, channel
    grants = [mod_res.Grant(conversation_kind=kind, role=role, permissions=[
        mod_res.PERMISSION_SEND_MESSAGE, mod_res.PERMISSION_REACT, mod_res.PERMISSION_JOIN])
        for kind in kinds for role in roles]
    conditions = [  # hold for every bench user: each is evaluated on every send
        mod_res.Condition(id="not-banned-team", permission=mod_res.PERMISSION_SEND_MESSAGE,
                          expression='!("team" in user.metadata) || '
                                     'user.metadata["team"] != "banned"'),
        mod_res.Condition(id="guests-support", permission=mod_res.PERMISSION_SEND_MESSAGE,
                          expression='user.role != "guest" || '
                                     'conversation.metadata["topic"] == "support"'),
        mod_res.Condition(id="short-enough", permission=mod_res.PERMISSION_SEND_MESSAGE,
                          expression="request.text_length <= 4000 && "
                                     "request.mention_count <= 20")]
    await client.moderation.UpdatePermissionPolicy(mod_pb.UpdatePermissionPolicyRequest(
        policy=mod_res.PermissionPolicy(name=f"{parent}/permissionPolicy", custom_roles=roles,
                                        grants=grants, conditions=conditions)), metadata=key)
    await client.users.CreateUser(users_pb.CreateUserRequest(parent=parent, user_id="quiet"),
                                  metadata=key)
    await client.moderation.CreateRestriction(mod_pb.CreateRestrictionRequest(
        parent=parent, restriction=mod_res.Restriction(
            user_id="quiet", type=mod_res.Restriction.TYPE_MUTE)), metadata=key)


@contextlib.asynccontextmanager
async def hook_endpoint(delay: float) -> AsyncIterator[str]:
    """A pre-send hook on a free local port that allows every message after `delay`."""
    async def allow(_: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({"action": "allow"})

    app = web.Application()
    app.router.add_post("/hook", allow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


def hooked(url: str) -> Setup:
    async def setup(client: Client, app_id: str, api_key: str) -> None:
        await client.moderation.UpdateSendHook(mod_pb.UpdateSendHookRequest(
            send_hook=mod_res.SendHook(name=f"apps/{app_id}/sendHook", url=url),
            update_mask=field_mask_pb2.FieldMask(paths=["url"]), allow_missing=True),
            metadata=bearer(api_key))

    return setup


def latency_line(name: str, sends: Sends) -> str:
    q = statistics.quantiles(sends.latencies, n=100)
    return (f"{name:9} sends={len(sends.latencies)} "
            f"rate={len(sends.latencies) / sends.elapsed:,.0f}/s "
            f"p50={q[49] * 1000:.2f}ms p99={q[98] * 1000:.2f}ms "
            f"cpu/send={sends.cpu_per_send * 1e6:.0f}us")


async def hook_latency(args: argparse.Namespace, address: str, operator: str, pid: int
                       ) -> None:
    async with hook_endpoint(args.hook_ms / 1000) as url:
        for name, setup in (("plain", None), ("hooked", hooked(url))):
            sends = await measure(address, operator, pid, args.members, args.senders,
                                  args.seconds, args.hook_concurrency, setup, sentence)
            print(f"hook {args.hook_ms:g}ms " + latency_line(name, sends), flush=True)


async def run(args: argparse.Namespace, address: str, operator: str, pid: int) -> None:
    results: dict[str, list[Sends]] = {"plain": [], "moderated": []}
    for round_number in range(args.rounds):
        order = ("plain", "moderated") if round_number % 2 == 0 else ("moderated", "plain")
        for name in order:
            sends = await measure(address, operator, pid, args.members, args.senders,
                                  args.seconds, args.concurrency,
                                  moderate if name == "moderated" else None, sentence,
                                  args.rate)
            results[name].append(sends)
            print(f"round {round_number + 1} " + latency_line(name, sends), flush=True)
    if args.rounds:
        report_cpu(results)
    if args.hook_ms:
        await hook_latency(args, address, operator, pid)


def report_cpu(results: dict[str, list[Sends]]) -> None:
    plain = [s.cpu_per_send for s in results["plain"]]
    moderated = [s.cpu_per_send for s in results["moderated"]]
    ratios = [m / p for p, m in zip(plain, moderated, strict=True)]
    print(f"cpu/send plain median={statistics.median(plain) * 1e6:.0f}us "
          f"moderated median={statistics.median(moderated) * 1e6:.0f}us")
    print("moderated/plain per round: " + ", ".join(f"{r:.3f}" for r in ratios)
          + f"; median {statistics.median(ratios):.3f} (target <= 1.15)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=200,
                        help="sends per second in all (0: as fast as they go)")
    parser.add_argument("--hook-ms", type=float, default=0)
    parser.add_argument("--hook-concurrency", type=int, default=1)
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    with tempfile.TemporaryDirectory() as tmp, bench_server(
            Path(tmp), env={"CAAS_WEBHOOK_ALLOW_INSECURE": "true"}) as server:
        asyncio.run(run(args, server.address, server.operator_token, server.process.pid))


if __name__ == "__main__":
    main()
