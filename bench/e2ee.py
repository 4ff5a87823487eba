"""End-to-end encryption (MLS, services/e2ee) on the server: how many commits one
server process takes, and what a send into an encrypted group of 50 devices costs
against a plaintext group of the same members.

Starts its own `caas serve` (embedded defaults, in a temporary directory; with
`--stores mongodb`, on the MongoDB-compatible test server) and runs, per store:

- commits: a group of COMMIT_MEMBERS users with a device each (one leaf each).
  `sequential`: one device commits (an empty commit with a path, what a key update
  is) as fast as the answers come, for SECONDS; `contended`: COMMITTERS devices commit
  at once, each on the epoch it last knew — one per epoch wins, the others are
  refused as stale (ABORTED, `MLS_EPOCH_STALE`, whose metadata names the epoch to
  build on) and try again; `add`: commits adding one new device each (its KeyPackage
  verified: two Ed25519 signatures) with the Welcome; `remove`: once those devices
  are deleted, commits removing their leaves, one each. Commits/s, latency, server
  CPU per commit.
- sends: two conversations with the same MEMBERS users, one end-to-end encrypted
  (DEVICES devices each, all in its group, each with KEY_PACKAGES KeyPackages in
  stock), one plaintext. SENDERS members send IN_FLIGHT messages at a time each, as
  fast as they go, for SECONDS into one, then the other; ROUNDS rounds in an order
  swapped each round, after a warm-up round. Sends/s, p50/p99 latency and server CPU
  per send for each, and the median of each round's encrypted / plaintext ratio.

The MLS messages are built by tests/support/mls.py: real KeyPackages (Ed25519) and MLS
framing, random bytes where a client's ciphertext would be. The server parses framing
and verifies KeyPackages; the clients' own MLS work (encrypting, the ratchet tree,
HPKE for Welcomes) is not in these figures, and costs the devices, not the server.

    .venv/bin/python bench/e2ee.py [--stores sqlite,mongodb] [--seconds 4] [--rounds 3]

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.e2ee.v1 import e2ee_service_pb2 as e2ee_pb

from bench.realtime import SEPARATE
from bench.servers import bench_server, machine_pace, server_cpu
from services.e2ee import mls
from tests.support.chat import GROUP, Person, person
from tests.support.client import Client, bearer, details
from tests.support.mls import Phone, application, commit, leaf_node, reference, welcome
from tests.support.servers import start_mongo

COMMIT_MEMBERS = 10
COMMITTERS = 4
CHURN = 60  # devices added, then removed, one per commit (at most, within SECONDS)
MEMBERS = 25
DEVICES = 2  # per member: 50 leaves
KEY_PACKAGES = 20  # in stock per device (the SDK uploads 20 when fewer than 10 are left)
SENDERS = 5
IN_FLIGHT = 4  # per sender
TEXT = "Are we still on for lunch tomorrow? I can book the table for 12:30."
# A PrivateMessage of that text: ~70 bytes padded, AEAD tag, sender data, header.
CIPHERTEXT = 128


@dataclass
class Timed:
    """Calls of one kind: their latencies, and the server CPU over them."""

    name: str
    latencies: list[float] = field(default_factory=list)  # seconds
    elapsed: float = 0.0
    cpu: float = 0.0
    refused: int = 0  # ABORTED

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def quantile(self, percent: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[percent - 1]

    @property
    def cpu_each(self) -> float:
        return self.cpu / len(self.latencies) if self.latencies else 0.0

    def line(self, unit: str) -> str:
        attempts = self.refused + len(self.latencies)
        refused = (f"; {self.refused:,} refused as stale ({self.refused / attempts:.0%} of "
                   f"attempts), {self.cpu / attempts * 1e6:,.0f} us per attempt"
                   if self.refused else "")
        return (f"{self.name:>10}: {len(self.latencies):5,} {unit} in {self.elapsed:4.1f} s = "
                f"{self.rate:6,.0f}/s, p50 {self.quantile(50) * 1e3:6.2f} ms, "
                f"p99 {self.quantile(99) * 1e3:6.2f} ms, server CPU "
                f"{self.cpu_each * 1e6:5,.0f} us per {unit[:-1]}{refused}")


@contextlib.contextmanager
def metered(timed: Timed, pid: int) -> Iterator[None]:
    cpu = server_cpu(pid)
    began = time.perf_counter()
    yield
    timed.elapsed = time.perf_counter() - began
    timed.cpu = server_cpu(pid) - cpu


async def new_app(client: Client, operator: str) -> tuple[str, str]:
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    app = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Bench")), metadata=bearer(operator))
    return app_id, app.api_key_secret


def path(phone: Phone) -> bytes:
    """A commit's new leaf for the committer (same credential, fresh keys)."""
    return leaf_node(phone.identity, phone.signer, source=mls.FROM_COMMIT)


async def form(conversation: str, creator: Phone, others: list[Phone]) -> int:
    """The group's first commit, adding the others (KeyPackages made here: the server
    checks them as it would claimed ones). The epoch it begins."""
    packages = [p.key_package() for p in others]
    sent = await creator.send(conversation, commit(conversation.encode(), 0, 0, adds=packages),
                              welcome([reference(p) for p in packages]))
    return sent.mls.epoch + 1


# Commits


async def commits(address: str, operator: str, pid: int, seconds: float) -> list[Timed]:
    client = Client(address)
    app_id, api_key = await new_app(client, operator)
    people = [await person(client, app_id, api_key, f"u{i}") for i in range(COMMIT_MEMBERS)]
    group = await people[0].create(GROUP, tuple(p.user_id for p in people[1:]), encrypted=True)
    gid = group.name.encode()
    # A connection per committer, as devices have.
    phones = [Phone(replace(p, client=Client(address, SEPARATE)), "d0") for p in people]
    for phone in phones:
        await phone.register(packages=0)
    epoch = await form(group.name, phones[0], phones[1:])
    for _ in range(20):  # warm up
        await phones[0].send(group.name, commit(gid, epoch, 0, path=path(phones[0])))
        epoch += 1
    results = []

    sequential = Timed("sequential")
    deadline = time.perf_counter() + seconds
    with metered(sequential, pid):
        while time.perf_counter() < deadline:
            data = commit(gid, epoch, 0, path=path(phones[0]))
            began = time.perf_counter()
            await phones[0].send(group.name, data)
            sequential.latencies.append(time.perf_counter() - began)
            epoch += 1
    results.append(sequential)

    contended = Timed(f"{COMMITTERS} at once")
    deadline = time.perf_counter() + seconds
    known = [epoch] * COMMITTERS

    async def committer(leaf: int) -> None:
        phone = phones[leaf]
        while time.perf_counter() < deadline:
            data = commit(gid, known[leaf], leaf, path=path(phone))
            began = time.perf_counter()
            try:
                sent = await phone.send(group.name, data)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.ABORTED:
                    raise
                contended.refused += 1
                known[leaf] = int(details(error).metadata["epoch"])  # caught up
                continue
            contended.latencies.append(time.perf_counter() - began)
            known[leaf] = sent.mls.epoch + 1

    with metered(contended, pid):
        await asyncio.gather(*[committer(leaf) for leaf in range(COMMITTERS)])
    results.append(contended)
    epoch = max(known)

    # New devices of the members (KeyPackages made here), added one per commit.
    spare = [Phone(phones[i % COMMIT_MEMBERS].person, f"x{i}") for i in range(CHURN)]
    for phone in spare:
        await phone.register(packages=0)
    adds = Timed("add")
    added: list[Phone] = []
    deadline = time.perf_counter() + seconds
    with metered(adds, pid):
        for phone in spare:
            if time.perf_counter() > deadline:
                break
            package = phone.key_package()
            data = commit(gid, epoch, 0, adds=[package])
            began = time.perf_counter()
            await phones[0].send(group.name, data, welcome([reference(package)]))
            adds.latencies.append(time.perf_counter() - began)
            added.append(phone)
            epoch += 1
    results.append(adds)

    # Deleted, their leaves (10, 11, …) await removal: one commit each.
    for phone in added:
        await client.e2ee.DeleteDevice(e2ee_pb.DeleteDeviceRequest(name=phone.name),
                                       metadata=phone.person.auth)
    removes = Timed("remove")
    with metered(removes, pid):
        for leaf in range(COMMIT_MEMBERS, COMMIT_MEMBERS + len(added)):
            data = commit(gid, epoch, 0, removes=[leaf], path=path(phones[0]))
            began = time.perf_counter()
            await phones[0].send(group.name, data)
            removes.latencies.append(time.perf_counter() - began)
            epoch += 1
    results.append(removes)

    for phone in phones:
        await phone.person.client.close()
    await client.close()
    return results


# Sends: an encrypted group of 50 devices against a plaintext one


@dataclass
class Groups:
    senders: list[Phone]  # each on a connection of its own
    encrypted: str
    plain: str
    epoch: int
    clients: list[Client]


async def groups(address: str, operator: str) -> Groups:
    client = Client(address)
    app_id, api_key = await new_app(client, operator)
    people = [await person(client, app_id, api_key, f"m{i}") for i in range(MEMBERS)]
    others = tuple(p.user_id for p in people[1:])
    encrypted = await people[0].create(GROUP, others, encrypted=True)
    plain = await people[0].create(GROUP, others)
    phones = [Phone(p, f"d{d}") for p in people for d in range(DEVICES)]
    for phone in phones:
        await phone.register(packages=KEY_PACKAGES)
    epoch = await form(encrypted.name, phones[0], phones[1:])
    clients = [Client(address, SEPARATE) for _ in range(SENDERS)]
    senders = [Phone(replace(people[i], client=clients[i]), "d0") for i in range(SENDERS)]
    await client.close()
    return Groups(senders, encrypted.name, plain.name, epoch, clients)


async def sends(setup: Groups, encrypted: bool, pid: int, seconds: float) -> Timed:
    timed = Timed("encrypted" if encrypted else "plaintext")
    gid = setup.encrypted.encode()
    send: Callable[[Phone], Awaitable[object]]
    if encrypted:
        def send(phone: Phone) -> Awaitable[object]:
            return phone.send(setup.encrypted, application(gid, setup.epoch, CIPHERTEXT))
    else:
        def send(phone: Phone) -> Awaitable[object]:
            person: Person = phone.person
            return person.send(setup.plain, TEXT)
    deadline = time.perf_counter() + seconds

    async def loop(phone: Phone) -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            await send(phone)
            timed.latencies.append(time.perf_counter() - began)

    with metered(timed, pid):
        await asyncio.gather(*[loop(phone) for phone in setup.senders
                               for _ in range(IN_FLIGHT)])
    return timed


async def compare(address: str, operator: str, pid: int, seconds: float, rounds: int
                  ) -> None:
    setup = await groups(address, operator)
    print(f"sends: {MEMBERS} members; encrypted group of {MEMBERS * DEVICES} devices "
          f"({KEY_PACKAGES} KeyPackages each in stock), {CIPHERTEXT}-byte ciphertexts; "
          f"plaintext group of the same members, {len(TEXT)}-character texts; "
          f"{SENDERS} senders x {IN_FLIGHT} in flight, {seconds:g} s each", flush=True)
    figures: dict[bool, list[Timed]] = {True: [], False: []}
    for number in range(rounds + 1):  # the first round warms up
        order = (True, False) if number % 2 else (False, True)
        for encrypted in order:
            timed = await sends(setup, encrypted, pid, seconds)
            print(f"  round {number or 'warm-up'}: {timed.line('sends')}", flush=True)
            if number:
                figures[encrypted].append(timed)
    for client in setup.clients:
        await client.close()

    def median(of: bool, measure: Callable[[Timed], float]) -> float:
        return statistics.median(measure(t) for t in figures[of])

    def ratio(measure: Callable[[Timed], float]) -> float:
        return statistics.median(measure(e) / measure(p) for e, p in zip(
            figures[True], figures[False], strict=True))

    print(f"medians of {rounds} rounds (encrypted / plaintext: median of the rounds' ratios):")
    for label, measure, scale, unit in (
            ("sends/s", lambda t: t.rate, 1, "/s"),
            ("p50", lambda t: t.quantile(50), 1e3, " ms"),
            ("p99", lambda t: t.quantile(99), 1e3, " ms"),
            ("CPU/send", lambda t: t.cpu_each, 1e6, " us")):
        print(f"  {label:>8}: encrypted {median(True, measure) * scale:8,.2f}{unit}, "
              f"plaintext {median(False, measure) * scale:8,.2f}{unit}, "
              f"ratio {ratio(measure):.2f}")


@contextlib.contextmanager
def store_env(store: str) -> Iterator[dict[str, str]]:
    if store == "sqlite":
        yield {}
        return
    mongo = start_mongo()
    try:
        yield {"CAAS_STORE": "mongodb", "CAAS_MONGODB_URL": mongo.url,
               "CAAS_MONGODB_DATABASE": f"bench{uuid.uuid4().hex[:8]}"}
    finally:
        mongo.process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite", help="sqlite, mongodb or both")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine_pace(), flush=True)
    print("MLS messages built by tests/support/mls.py (real KeyPackages and framing, random "
          "ciphertext): the clients' MLS crypto is not in these figures, only the server's "
          "work", flush=True)
    for store in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp, store_env(store) as env, \
                bench_server(Path(tmp), env=env) as server:
            pid = server.process.pid
            print(f"\n[{store}] commits: a group of {COMMIT_MEMBERS} devices; "
                  f"{args.seconds:g} s each (add/remove: at most {CHURN})", flush=True)
            for timed in asyncio.run(commits(server.address, server.operator_token, pid,
                                             args.seconds)):
                print(f"  {timed.line('commits')}", flush=True)
            print(f"\n[{store}] ", end="")
            asyncio.run(compare(server.address, server.operator_token, pid, args.seconds,
                                args.rounds))


if __name__ == "__main__":
    main()
