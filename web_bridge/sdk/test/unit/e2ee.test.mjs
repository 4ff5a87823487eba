// End-to-end encryption without a server: the key stores (a file, IndexedDB through
// fake-indexeddb, memory), and E2eeDevice against a small in-memory Delivery Service
// that keeps the rules CAAS keeps (one sequence, commits only on the current epoch,
// no application message while a leaf awaits removal, Welcomes per added device).
// tests/web_bridge/test_node_e2ee.py runs the same against the real server.
import "fake-indexeddb/auto";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeMlsMessage, encodeMlsMessage, generateKeyPackageWithKey, defaultCapabilities,
  defaultLifetime, getCiphersuiteFromName, getCiphersuiteImpl } from "ts-mls";

import { E2eeDevice, E2eeTrustError, directoryMismatches, indexedDbKeyStore, keyPackageRef,
  memoryKeyStore } from "../../dist/index.js";
import { fileKeyStore } from "../../dist/e2ee/node.js";
import { MessageSchema } from "../../dist/gen/caas/messages/v1/resources_pb.js";
import { GroupSchema } from "../../dist/gen/caas/e2ee/v1/resources_pb.js";
import { ErrorInfoSchema } from "../../dist/gen/google/rpc/error_details_pb.js";

const APP = "apps/demo";
const CONV = `${APP}/conversations/c1`;
const bytes = (text) => new TextEncoder().encode(text);
const textOf = (data) => new TextDecoder().decode(data);

test("the file store keeps bytes across reopening, written atomically", async () => {
  const dir = await mkdtemp(join(tmpdir(), "e2ee-"));
  const path = join(dir, "keys.json");
  const store = fileKeyStore(path);
  assert.equal(await store.get("missing"), undefined);
  await Promise.all([store.put("a", bytes("one")), store.put("b", new Uint8Array([0, 255, 7])), store.put("c", bytes("x"))]);
  await store.delete("c");
  const reopened = fileKeyStore(path);
  assert.deepEqual(textOf(await reopened.get("a")), "one");
  assert.deepEqual([...await reopened.get("b")], [0, 255, 7]);
  assert.equal(await reopened.get("c"), undefined);
  assert.deepEqual(await readdir(dir), ["keys.json"]); // no temporary file left
  assert.deepEqual(Object.keys(JSON.parse(await readFile(path, "utf8"))).sort(), ["a", "b"]);
  assert.equal((await stat(path)).mode & 0o777, 0o600); // for the user alone
});

test("IndexedDB and memory stores keep bytes by key", async () => {
  for (const store of [indexedDbKeyStore(`keys-${Math.random()}`), memoryKeyStore()]) {
    await store.put("k", new Uint8Array([1, 2, 3]));
    const got = await store.get("k");
    got[0] = 9; // a copy: changing it changes nothing stored
    assert.deepEqual([...await store.get("k")], [1, 2, 3]);
    await store.delete("k");
    assert.equal(await store.get("k"), undefined);
  }
});

// The fake Delivery Service.

function refusal(code, reason, message = reason) {
  return new ConnectError(message, code, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain: "caas.dev" } }]);
}

class FakeServer {
  devices = new Map(); // name → { signatureKey, packages: [bytes], lastResort }
  members = new Set(); // user ids of CONV
  messages = [];
  requests = new Map(); // request id → message
  epoch = 0n;
  leaves = []; // device name or null, by leaf index
  welcomes = []; // { device, sequence, epoch, welcome }
  calls = [];

  as(userId) {
    const server = this;
    const own = (name) => {
      if (name.split("/")[3] !== userId) throw refusal(Code.PermissionDenied, "USER_MISMATCH");
    };
    const deviceOf = (name) => {
      const device = server.devices.get(name);
      return device && { name, cipherSuite: 1, signatureKey: device.signatureKey, credentialIdentity: bytes(name),
        keyPackageCount: device.packages.length, hasLastResort: device.lastResort !== undefined };
    };
    return {
      e2ee: {
        createDevice: async ({ parent, deviceId, device }) => {
          own(`${parent}/devices/${deviceId}`);
          const name = `${parent}/devices/${deviceId}`;
          if (!server.devices.has(name)) server.devices.set(name, { signatureKey: device.signatureKey, packages: [] });
          return { device: deviceOf(name) };
        },
        getDevice: async ({ name }) => ({ device: deviceOf(name) }),
        deleteDevice: async ({ name }) => { server.devices.delete(name); return {}; },
        uploadKeyPackages: async ({ device, keyPackages, lastResort }) => {
          own(device);
          const held = server.devices.get(device);
          for (const data of keyPackages) {
            const decoded = decodeMlsMessage(data, 0)[0];
            assert.equal(decoded.wireformat, "mls_key_package");
            assert.equal(textOf(decoded.keyPackage.leafNode.credential.identity), device);
            held.packages.push(data);
          }
          if (lastResort.length) held.lastResort = lastResort;
          return { device: deviceOf(device) };
        },
        claimKeyPackages: async ({ userIds }) => {
          server.calls.push(["claim", userIds]);
          const keyPackages = [];
          const unavailableDevices = [];
          for (const [name, device] of server.devices) {
            if (!userIds.includes(name.split("/")[3]) || server.leaves.includes(name)) continue;
            const data = device.packages.shift() ?? device.lastResort;
            if (data) keyPackages.push({ device: name, keyPackage: server.tamper?.(name, data) ?? data, lastResort: !device.packages.length });
            else unavailableDevices.push(name);
          }
          return { keyPackages, unavailableDevices };
        },
        getGroup: async () => ({ group: server.group() }),
        listWelcomes: async ({ parent }) => ({
          welcomes: server.welcomes.filter((w) => w.device === parent).reverse()
            .map((w) => ({ conversation: CONV, sequence: w.sequence, epoch: w.epoch, welcome: w.welcome })),
          nextPageToken: "",
        }),
      },
      messages: {
        createMessage: async (request) => {
          if (server.hold) await server.hold(userId, request);
          const message = server.take(userId, request);
          if (server.lose?.(request)) throw new ConnectError("connection lost", Code.Unavailable);
          return { message };
        },
        listMessages: async ({ position, pageSize }) => {
          const after = position.value;
          const page = server.messages.filter((m) => m.sequence > after);
          return { messages: page.slice(0, pageSize), hasMoreAfter: page.length > pageSize };
        },
      },
    };
  }

  pending() {
    return this.leaves.flatMap((name, index) =>
      name !== null && (!this.devices.has(name) || !this.members.has(name.split("/")[3])) ? [index] : []);
  }

  group() {
    const pending = this.pending();
    const inGroup = new Set(this.leaves);
    return create(GroupSchema, {
      name: `${CONV}/group`, epoch: this.epoch,
      leaves: this.leaves.flatMap((name, index) => name === null ? [] : [{
        index, removalPending: pending.includes(index),
        device: this.devices.has(name) ? { name, signatureKey: this.devices.get(name).signatureKey } : undefined,
      }]),
      missingDevices: [...this.devices].filter(([name]) => this.members.has(name.split("/")[3]) && !inGroup.has(name))
        .map(([name, device]) => ({ name, signatureKey: device.signatureKey })),
    });
  }

  take(userId, { message: { mls }, requestId }) {
    if (this.requests.has(requestId)) return this.requests.get(requestId);
    const decoded = decodeMlsMessage(mls.message, 0)[0];
    let kind;
    let epoch;
    if (decoded.wireformat === "mls_private_message") {
      kind = 1;
      epoch = decoded.privateMessage.epoch;
      if (epoch !== this.epoch) throw refusal(Code.Aborted, "MLS_EPOCH_STALE");
      if (this.pending().length) throw refusal(Code.FailedPrecondition, "MLS_REMOVAL_PENDING");
    } else {
      assert.equal(decoded.wireformat, "mls_public_message");
      const content = decoded.publicMessage.content;
      kind = 2;
      epoch = content.epoch;
      if (epoch !== this.epoch) throw refusal(Code.Aborted, "MLS_EPOCH_STALE");
      const sender = `${APP}/users/${userId}/devices/${mls.deviceId}`;
      if (this.epoch === 0n) this.leaves = [sender];
      assert.equal(this.leaves[content.sender.leafIndex], sender);
      const added = [];
      for (const { proposal } of content.commit.proposals) {
        if (proposal.proposalType === "remove") {
          assert.ok(this.pending().includes(proposal.remove.removed), "removes only pending leaves");
          this.leaves[proposal.remove.removed] = null;
        }
      }
      for (const { proposal } of content.commit.proposals) {
        if (proposal.proposalType !== "add") continue;
        const name = textOf(proposal.add.keyPackage.leafNode.credential.identity);
        const blank = this.leaves.indexOf(null);
        if (blank < 0) this.leaves.push(name);
        else this.leaves[blank] = name;
        added.push(name);
      }
      while (this.leaves.at(-1) === null) this.leaves.pop();
      assert.equal(added.length > 0, mls.welcome.length > 0, "a Welcome exactly when adding");
      this.epoch += 1n;
      for (const device of added) {
        this.welcomes.push({ device, sequence: BigInt(this.messages.length + 1), epoch: this.epoch, welcome: mls.welcome });
      }
    }
    const sequence = BigInt(this.messages.length + 1);
    const message = create(MessageSchema, {
      name: `${CONV}/messages/${sequence}`, sequence, senderId: userId,
      mls: { message: mls.message, kind, epoch }, // the device id is not echoed (as CAAS does)
    });
    this.messages.push(message);
    this.requests.set(requestId, message);
    return message;
  }
}

async function device(server, userId, deviceId, store = memoryKeyStore(), extra = {}) {
  const inbox = [];
  const made = await E2eeDevice.open({
    client: server.as(userId), user: `${APP}/users/${userId}`, deviceId, store,
    keyPackages: { low: 3, batch: 4 }, onMessage: (message) => inbox.push(message), ...extra,
  });
  made.inbox = inbox;
  return made;
}

const plaintexts = (messages) => messages.map((m) => m.plaintext ? textOf(m.plaintext) : `!${m.senderId}`);

test("a group of three devices: create, join, exchange, concurrent commits, removal, a late joiner, offline resume", async () => {
  const server = new FakeServer();
  server.members = new Set(["alice", "bob"]);
  const dir = await mkdtemp(join(tmpdir(), "e2ee-"));
  const retries = [];
  const phone = await device(server, "alice", "phone", memoryKeyStore(), { onRetry: (event) => retries.push(event) });
  const laptop = await device(server, "alice", "laptop");
  const bob = await device(server, "bob", "phone", fileKeyStore(join(dir, "bob.json")), { onRetry: (event) => retries.push(event) });
  for (const d of [phone, laptop, bob]) {
    const registered = await d.register();
    assert.equal(registered.keyPackageCount, 4);
    assert.ok(registered.hasLastResort);
  }
  // Registering again with the same key is fine; no more KeyPackages are needed.
  assert.equal((await phone.register()).keyPackageCount, 4);

  const created = await phone.createGroup(CONV);
  assert.deepEqual(created.added.sort(), [`${APP}/users/alice/devices/laptop`, `${APP}/users/bob/devices/phone`]);
  assert.equal(server.epoch, 1n);
  for (const d of [laptop, bob]) {
    const joined = await d.checkWelcomes();
    assert.deepEqual(joined.map((j) => j.conversation), [CONV]);
    assert.ok(await d.isMember(CONV));
    assert.deepEqual(await d.checkWelcomes(), []); // once
  }
  // The Welcome's KeyPackage is used up; stock topped up again after joining.
  assert.ok((await laptop.topUp()).keyPackageCount >= 3);

  await phone.send(CONV, bytes("hi from phone"));
  await laptop.send(CONV, bytes("hi from laptop"));
  await bob.send(CONV, bytes("hi from bob"));
  assert.deepEqual(plaintexts(await phone.catchUp(CONV)), ["hi from laptop", "hi from bob"]);
  assert.deepEqual(plaintexts(await laptop.catchUp(CONV)), ["hi from phone", "hi from bob"]); // its own skipped
  assert.deepEqual(plaintexts(await bob.catchUp(CONV)), ["hi from phone", "hi from laptop"]);
  assert.deepEqual(plaintexts(bob.inbox), ["hi from phone", "hi from laptop"]);
  assert.equal((await bob.catchUp(CONV)).length, 0); // never twice

  // Two commits built on the same epoch: the second is refused, caught up, rebuilt.
  let waiting = [];
  server.hold = (user, request) => new Promise((resolve) => {
    waiting.push(resolve);
    if (waiting.length === 2) { server.hold = undefined; waiting.forEach((go) => go()); }
  });
  const [a, b] = await Promise.all([phone.sync(CONV, { update: true }), bob.sync(CONV, { update: true })]);
  assert.ok(a.commit && b.commit);
  assert.equal(server.epoch, 3n);
  assert.deepEqual(retries.map((r) => [r.reason, r.kind]), [["MLS_EPOCH_STALE", "commit"]]);
  await laptop.catchUp(CONV);
  await bob.send(CONV, bytes("after the race"));
  assert.deepEqual(plaintexts(await phone.catchUp(CONV)), ["after the race"]);
  assert.deepEqual(plaintexts(await laptop.catchUp(CONV)), ["after the race"]);

  // An application message built on an old epoch: caught up and encrypted again.
  await phone.sync(CONV, { update: true });
  await bob.send(CONV, bytes("from behind"));
  assert.deepEqual(retries.at(-1), { conversation: CONV, reason: "MLS_EPOCH_STALE", kind: "application", attempt: 1 });
  assert.deepEqual(plaintexts(await phone.catchUp(CONV)), ["from behind"]);

  // The laptop is deleted: the next send commits its removal first.
  server.devices.delete(`${APP}/users/alice/devices/laptop`);
  await bob.send(CONV, bytes("laptop gone"));
  assert.equal(retries.at(-1).reason, "MLS_REMOVAL_PENDING");
  assert.deepEqual(server.pending(), []);
  const late = await laptop.catchUp(CONV);
  assert.equal(late.length, 2); // "from behind" (its epoch), then the one after its removal
  assert.equal(textOf(late[0].plaintext), "from behind");
  assert.equal(late[1].plaintext, undefined);
  assert.match(late[1].error, /no longer in the group/);
  assert.equal(await laptop.isMember(CONV), false);
  assert.deepEqual(plaintexts(await phone.catchUp(CONV)), ["laptop gone"]);

  // A new device is added by a sync, and reads only what follows.
  const tablet = await device(server, "bob", "tablet");
  await tablet.register();
  const synced = await phone.sync(CONV);
  assert.deepEqual(synced.added, [`${APP}/users/bob/devices/tablet`]);
  assert.deepEqual((await tablet.checkWelcomes()).map((j) => j.messages.length), [0]);
  await phone.send(CONV, bytes("welcome tablet"));
  assert.deepEqual(plaintexts(await tablet.catchUp(CONV)), ["welcome tablet"]);
  assert.equal((await tablet.members(CONV)).length, 3);

  // Bob's phone goes away (its store stays on disk) while the group moves on.
  await bob.catchUp(CONV);
  await phone.sync(CONV, { update: true });
  await phone.send(CONV, bytes("while away 1"));
  await tablet.sync(CONV, { update: true });
  await tablet.send(CONV, bytes("while away 2"));
  const back = await device(server, "bob", "phone", fileKeyStore(join(dir, "bob.json")));
  assert.deepEqual(plaintexts(await back.catchUp(CONV)), ["while away 1", "while away 2"]);
  await back.send(CONV, bytes("back"));
  assert.deepEqual(plaintexts(await phone.catchUp(CONV)), ["while away 2", "back"]);
});

test("a KeyPackage that does not carry the directory's key is not added", async () => {
  const server = new FakeServer();
  server.members = new Set(["alice", "bob"]);
  const phone = await device(server, "alice", "phone");
  const bob = await device(server, "bob", "phone");
  await phone.register();
  await bob.register();
  // The server hands out a KeyPackage for bob's phone made with another key.
  const cs = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
  const forged = await generateKeyPackageWithKey(
    { credentialType: "basic", identity: bytes(`${APP}/users/bob/devices/phone`) },
    defaultCapabilities(), defaultLifetime, [], await cs.signature.keygen(), cs);
  server.tamper = (name) => name.endsWith("bob/devices/phone")
    ? encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: forged.publicPackage }) : undefined;
  const result = await phone.createGroup(CONV);
  assert.deepEqual(result.refused, [`${APP}/users/bob/devices/phone`]);
  assert.deepEqual(result.added, []);
  assert.equal(result.commit, undefined);
});

test("leaves are checked against the directory", async () => {
  const server = new FakeServer();
  server.members = new Set(["alice", "bob"]);
  const phone = await device(server, "alice", "phone");
  const bob = await device(server, "bob", "phone");
  await phone.register();
  await bob.register();
  await phone.createGroup(CONV);
  const state = await phone.groupState(CONV);
  assert.deepEqual(directoryMismatches(state, server.group()), []);
  // The directory says bob's phone has another key than its leaf.
  server.devices.get(`${APP}/users/bob/devices/phone`).signatureKey = new Uint8Array(32);
  assert.equal(directoryMismatches(state, server.group()).length, 1);
  await assert.rejects(phone.verify(CONV), E2eeTrustError);
});

test("a Welcome names the KeyPackage by its reference", async () => {
  const server = new FakeServer();
  server.members = new Set(["alice", "bob"]);
  const phone = await device(server, "alice", "phone");
  const bob = await device(server, "bob", "phone");
  await phone.register();
  await bob.register();
  const claimed = server.devices.get(`${APP}/users/bob/devices/phone`).packages[0];
  await phone.createGroup(CONV);
  const welcome = decodeMlsMessage(server.welcomes[0].welcome, 0)[0];
  const ref = await keyPackageRef(decodeMlsMessage(claimed, 0)[0].keyPackage);
  assert.deepEqual(welcome.welcome.secrets.map((s) => Buffer.from(s.newMember).toString("hex")), [ref]);
});

test("two devices creating the same group: the second is told, then joins by Welcome", async () => {
  const server = new FakeServer();
  server.members = new Set(["alice", "bob"]);
  const phone = await device(server, "alice", "phone");
  const laptop = await device(server, "alice", "laptop");
  await phone.register();
  await laptop.register();
  let waiting = [];
  server.hold = () => new Promise((resolve) => {
    waiting.push(resolve);
    if (waiting.length === 2) { server.hold = undefined; waiting.forEach((go) => go()); }
  });
  const outcomes = await Promise.allSettled([phone.createGroup(CONV), laptop.createGroup(CONV)]);
  const [won, lost] = outcomes[0].status === "fulfilled" ? [phone, laptop] : [laptop, phone];
  const refused = outcomes.find((o) => o.status === "rejected").reason;
  assert.equal(refused.reason, "GROUP_EXISTS");
  assert.equal(await lost.isMember(CONV), false);
  assert.deepEqual((await lost.checkWelcomes()).map((j) => j.conversation), [CONV]);
  await won.send(CONV, bytes("one group"));
  assert.deepEqual(plaintexts(await lost.catchUp(CONV)), ["one group"]);
});

test("a commit whose answer was lost is taken from the conversation's messages", async () => {
  const server = new FakeServer();
  server.members = new Set(["alice", "bob"]);
  const phone = await device(server, "alice", "phone");
  const bob = await device(server, "bob", "phone");
  await phone.register();
  await bob.register();
  await phone.createGroup(CONV);
  await bob.checkWelcomes();
  // Taken by the server, every answer lost: the device cannot tell it was.
  // (An MLSMessage starts with its version, 1, and wire format: 1 is a PublicMessage.)
  server.lose = (request) => request.message.mls.message[3] === 1;
  await assert.rejects(phone.sync(CONV, { update: true }), (error) => error.code === Code.Unavailable);
  server.lose = undefined;
  assert.equal(server.epoch, 2n);
  assert.equal((await phone.groupState(CONV)).groupContext.epoch, 1n); // not known to be taken
  // Catching up finds it in the conversation and takes its state: the group goes on.
  await phone.catchUp(CONV);
  assert.equal((await phone.groupState(CONV)).groupContext.epoch, 2n);
  await phone.send(CONV, bytes("still together"));
  assert.deepEqual(plaintexts(await bob.catchUp(CONV)), ["still together"]);
});

test("following a stream: joins when added, decrypts as messages come, tops up when told", async () => {
  const server = new FakeServer();
  server.members = new Set(["alice", "bob"]);
  const phone = await device(server, "alice", "phone");
  const bob = await device(server, "bob", "phone");
  await phone.register();
  await bob.register();
  let handlers;
  const subscription = { listen: (added) => { handlers = added; return () => { handlers = undefined; }; } };
  const errors = [];
  const stop = bob.follow(subscription, (error) => errors.push(error));
  const event = (message) => ({ type: "message.created", conversation: CONV, payload: { case: "messageCreated", value: message } });
  const until = async (check) => {
    for (let i = 0; i < 400 && !(await check()); i += 1) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(await check(), "never happened");
  };
  await phone.createGroup(CONV);
  handlers.event(event(server.messages[0])); // the commit that adds bob's phone
  await until(() => bob.isMember(CONV));
  await phone.send(CONV, bytes("over the stream"));
  handlers.event(event(server.messages.at(-1)));
  await until(() => bob.inbox.length === 1);
  assert.equal(textOf(bob.inbox[0].plaintext), "over the stream");
  // Its stock ran low (claims): told so, it uploads more; another device's word is not its.
  const held = server.devices.get(`${APP}/users/bob/devices/phone`).packages;
  held.splice(0);
  const low = (device) => ({ type: "e2ee.key_packages_low", payload: { case: "e2eeKeyPackagesLow", value: { device, keyPackageCount: 0 } } });
  handlers.event(low(`${APP}/users/bob/devices/laptop`));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(held.length, 0);
  handlers.event(low(`${APP}/users/bob/devices/phone`));
  await until(() => server.devices.get(`${APP}/users/bob/devices/phone`).packages.length === 4);
  stop();
  assert.equal(handlers, undefined);
  assert.deepEqual(errors, []);
});
