// For tests/web_bridge/test_node_e2ee.py: end-to-end encryption (MLS) through the SDK
// over native gRPC. Three devices of two users, each with its own session and its own
// key file in KEY_DIR: alice-phone, alice-laptop, bob-phone (bob-phone follows bob's
// realtime stream; the others catch up with ListMessages), then bob-laptop.
//   a. they register and upload KeyPackages; alice creates the encrypted group
//      conversation with bob; alice-phone creates its group and adds the two others
//      (one commit, one Welcome); they join (alice-laptop by ListWelcomes, bob-phone
//      when the commit shows up on its stream);
//   b. each sends, each decrypts the other two;
//   c. alice-phone and bob-phone commit at once: one is refused as stale, catches up,
//      commits again;
//   d. alice deletes alice-laptop: bob-phone's next send is refused until it commits
//      the laptop's removal; the laptop (alice's session still) reads the messages
//      after it and decrypts none of them;
//   e. bob-laptop registers, bob-phone adds it; it reads what follows, not what came
//      before;
//   f. bob-phone goes offline while the others commit and send; it comes back in
//      another process (this script with E2EE_ROLE=resume, on its key file), catches up
//      in order, reads everything, answers.
// Prints one JSON line per step on stdout. SECRET marks every plaintext (the test
// looks for them in the server's store).
import { spawn } from "node:child_process";
import { join } from "node:path";

import { createGrpcTransport } from "@connectrpc/connect-node";
import { acceptAll, decodeMlsMessage, makePskIndex, processMessage, getCiphersuiteImpl,
  getCiphersuiteFromName } from "ts-mls";

import { Conversation_Kind, E2eeDevice, MlsContent_Kind, createCaasClient, errorReason } from "../dist/index.js";
import { fileKeyStore } from "@caas/sdk/e2ee-node";

const env = (name) => process.env[name] ?? (() => { throw new Error(`${name} is not set`); })();
const say = (line) => console.log(JSON.stringify(line, (_, value) => typeof value === "bigint" ? Number(value) : value));
const app = env("APP_NAME");
const secret = env("SECRET");
const sessions = JSON.parse(env("SESSIONS")); // device → { access, refresh }
const keyDir = env("KEY_DIR");
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const said = (owner, words) => `${secret} ${words} (${owner})`;
const plain = (message) => message.plaintext ? decoder.decode(message.plaintext) : undefined;

/** A client signed in with the device's own session. */
function clientOf(device) {
  const tokens = sessions[device];
  return createCaasClient({
    transport: (interceptors) => createGrpcTransport({ baseUrl: `http://${env("CAAS_ADDRESS")}`, interceptors }),
    tokens: { accessToken: tokens.access, refreshToken: tokens.refresh, accessTokenExpiresAt: 0 },
  });
}

// Holds CreateMessage calls until `count` of them arrived, then lets them all go: two
// commits built on the same epoch, sent at once.
let barrier;
function hold(count) {
  const waiting = [];
  barrier = () => new Promise((resolve) => {
    waiting.push(resolve);
    if (waiting.length === count) {
      barrier = undefined;
      for (const go of waiting) go();
    }
  });
}

const retries = [];
/** A device: its E2eeDevice on its key file, its client, what it decrypted. */
async function open(label) {
  const [userId, deviceId] = label.split("-");
  const client = clientOf(label);
  const messages = {
    ...client.messages,
    createMessage: async (...args) => {
      if (barrier) await barrier();
      return client.messages.createMessage(...args);
    },
  };
  const inbox = [];
  const device = await E2eeDevice.open({
    client: { e2ee: client.e2ee, messages },
    user: `${app}/users/${userId}`,
    deviceId,
    store: fileKeyStore(join(keyDir, `${label}.json`)),
    onMessage: (message) => inbox.push(message),
    onRetry: (event) => retries.push({ device: label, ...event }),
  });
  return { label, userId, client, device, inbox };
}

async function waitFor(check, what, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The plaintexts of `device`'s inbox from `start` on, decrypted ones only. */
const readFrom = (device, start = 0) => device.inbox.slice(start).map(plain).filter((text) => text !== undefined);

if (process.env.E2EE_ROLE === "resume") {
  // f, the other half: bob-phone back, in a process of its own, on its key file.
  const conversation = env("CONVERSATION");
  const bob = await open("bob-phone");
  const before = await bob.device.processed(conversation);
  const epochBefore = (await bob.device.groupState(conversation)).groupContext.epoch;
  const listed = (await bob.client.messages.listMessages({
    parent: conversation, pageSize: 200, position: { case: "afterSequence", value: before } })).messages;
  const read = await bob.device.catchUp(conversation);
  const state = await bob.device.groupState(conversation);
  say({ resumed: {
    read: read.map(plain), sequences: read.map((m) => m.sequence), failed: read.filter((m) => m.error).length,
    missed: listed.map((m) => [m.sequence, MlsContent_Kind[m.mls?.kind ?? 0]]),
    processedBefore: before, processedAfter: await bob.device.processed(conversation),
    epochBefore, epochAfter: state.groupContext.epoch,
  } });
  const answer = await bob.device.send(conversation, encoder.encode(said("bob-phone", "back online")));
  say({ answered: answer.sequence });
  process.exit(0);
}

// a. Register, create, add, join.
const alicePhone = await open("alice-phone");
const aliceLaptop = await open("alice-laptop");
const bobPhone = await open("bob-phone");
for (const { label, device } of [alicePhone, aliceLaptop, bobPhone]) {
  const registered = await device.register();
  say({ registered: { device: label, name: registered.name, keyPackageCount: registered.keyPackageCount,
    hasLastResort: registered.hasLastResort, fingerprint: registered.fingerprint,
    identity: decoder.decode(registered.credentialIdentity) } });
}
const followErrors = [];
const bobStream = bobPhone.client.subscribe(`${app}/users/bob`, {}, { deviceId: "phone" });
const stopFollowing = bobPhone.device.follow(bobStream, (error) => followErrors.push(String(error)));
await waitFor(() => bobStream.state === "live", "bob's stream");

const { conversation: created } = await alicePhone.client.conversations.createConversation({
  parent: app, conversation: { kind: Conversation_Kind.GROUP, title: "Secret plans", endToEndEncrypted: true },
  memberIds: ["bob"],
});
const conversation = created.name;
say({ conversation: { name: conversation, endToEndEncrypted: created.endToEndEncrypted } });

const made = await alicePhone.device.createGroup(conversation);
say({ created: { added: made.added.sort(), removed: made.removed, unavailable: made.unavailable,
  refused: made.refused, sequence: made.commit?.sequence, kind: MlsContent_Kind[made.commit?.mls?.kind ?? 0],
  epoch: (await alicePhone.device.groupState(conversation)).groupContext.epoch } });

const laptopJoined = await aliceLaptop.device.checkWelcomes();
say({ joined: { device: "alice-laptop", via: "ListWelcomes", conversations: laptopJoined.map((j) => j.conversation),
  epoch: (await aliceLaptop.device.groupState(conversation))?.groupContext.epoch } });
await waitFor(() => bobPhone.device.isMember(conversation), "bob-phone to join from its stream");
say({ joined: { device: "bob-phone", via: "stream", conversations: [conversation],
  epoch: (await bobPhone.device.groupState(conversation)).groupContext.epoch } });
// Nothing more to add: a second sync commits nothing.
const again = await alicePhone.device.sync(conversation);
say({ resynced: { added: again.added, committed: again.commit !== undefined } });

// b. Each sends, each reads the other two.
const devices = [alicePhone, aliceLaptop, bobPhone];
const greetings = {};
for (const { label, device } of devices) {
  greetings[label] = said(label, "hello from");
  await device.send(conversation, encoder.encode(JSON.stringify({ text: greetings[label] })));
}
await alicePhone.device.catchUp(conversation);
await aliceLaptop.device.catchUp(conversation);
await waitFor(() => bobPhone.inbox.length >= 2, "bob-phone's stream to bring two messages");
for (const { label, inbox } of devices) {
  say({ exchanged: { device: label, read: inbox.map((m) => JSON.parse(plain(m)).text).sort(),
    expected: devices.filter((d) => d.label !== label).map((d) => greetings[d.label]).sort() } });
}

// c. Two commits on the same epoch: one is refused as stale, then built again.
await aliceLaptop.device.catchUp(conversation);
const epochBefore = (await alicePhone.device.groupState(conversation)).groupContext.epoch;
hold(2);
const raced = await Promise.all([alicePhone.device.sync(conversation, { update: true }),
  bobPhone.device.sync(conversation, { update: true })]);
const afterRace = said("alice-laptop", "after the race");
await aliceLaptop.device.send(conversation, encoder.encode(afterRace)); // stale for it: caught up first
const phoneStart = alicePhone.inbox.length;
await alicePhone.device.catchUp(conversation);
await waitFor(() => readFrom(bobPhone).includes(afterRace), "bob-phone to read after the race");
say({ stale: {
  retried: retries.map(({ device, reason, kind, attempt }) => ({ device, reason, kind, attempt })),
  committed: raced.map((r) => r.commit?.sequence), epochBefore,
  epochs: await Promise.all(devices.map(async (d) => (await d.device.groupState(conversation)).groupContext.epoch)),
  read: { "alice-phone": readFrom(alicePhone, phoneStart), "bob-phone": readFrom(bobPhone).includes(afterRace) },
} });
retries.length = 0;

// d. alice deletes her laptop: the next send commits its removal first.
const laptopName = `${app}/users/alice/devices/laptop`;
await alicePhone.client.e2ee.deleteDevice({ name: laptopName });
const pendingGroup = (await bobPhone.client.e2ee.getGroup({ name: `${conversation}/group` })).group;
const gone = said("bob-phone", "the laptop is gone");
const goneMessage = await bobPhone.device.send(conversation, encoder.encode(gone));
const afterGroup = (await bobPhone.client.e2ee.getGroup({ name: `${conversation}/group` })).group;
const phoneBefore = alicePhone.inbox.length;
await alicePhone.device.catchUp(conversation);
say({ removal: {
  retried: retries.map(({ device, reason, kind }) => ({ device, reason, kind })),
  pendingBefore: pendingGroup.leaves.filter((l) => l.removalPending).map((l) => l.index),
  leavesAfter: afterGroup.leaves.map((l) => ({ index: l.index, device: l.device?.name ?? "", pending: l.removalPending })),
  sequence: goneMessage.sequence, alicePhoneRead: readFrom(alicePhone, phoneBefore),
} });
retries.length = 0;
// The laptop, with alice's session, lists them and cannot decrypt any.
const laptopRead = await aliceLaptop.device.catchUp(conversation);
let laptopRefused = "";
try {
  await aliceLaptop.device.send(conversation, encoder.encode(said("alice-laptop", "still here?")));
} catch (error) {
  laptopRefused = error.reason ?? errorReason(error);
}
say({ laptopAfterRemoval: {
  member: await aliceLaptop.device.isMember(conversation),
  decrypted: laptopRead.filter((m) => m.plaintext).map(plain),
  failed: laptopRead.filter((m) => !m.plaintext).map((m) => ({ sequence: m.sequence, error: m.error })),
  listedCiphertext: (await aliceLaptop.client.messages.listMessages({
    parent: conversation, position: { case: "afterSequence", value: goneMessage.sequence - 2n } })).messages
    .map((m) => ({ sequence: m.sequence, text: m.text, mlsBytes: m.mls?.message.length ?? 0 })),
  sendRefused: laptopRefused,
} });

// e. A new device: added by a sync, it reads what follows and nothing before.
const bobLaptop = await open("bob-laptop");
const registered = await bobLaptop.device.register();
say({ registered: { device: "bob-laptop", name: registered.name, keyPackageCount: registered.keyPackageCount,
  hasLastResort: registered.hasLastResort, fingerprint: registered.fingerprint,
  identity: decoder.decode(registered.credentialIdentity) } });
const added = await bobPhone.device.sync(conversation);
const joinedLate = await bobLaptop.device.checkWelcomes();
const welcomeText = said("alice-phone", "welcome, bob-laptop");
await alicePhone.device.send(conversation, encoder.encode(welcomeText));
await bobLaptop.device.catchUp(conversation);
// What came before it joined: ciphertext it has no key for.
const cs = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"));
const earlier = (await bobLaptop.client.messages.listMessages({ parent: conversation, pageSize: 200,
  position: { case: "afterSequence", value: 0n } })).messages
  .filter((m) => m.mls?.kind === MlsContent_Kind.APPLICATION && m.sequence < added.commit.sequence);
const state = await bobLaptop.device.groupState(conversation);
const attempts = [];
for (const m of earlier) {
  try {
    const result = await processMessage(decodeMlsMessage(m.mls.message, 0)[0], state, makePskIndex(state, {}), acceptAll, cs);
    attempts.push({ sequence: m.sequence, decrypted: result.kind === "applicationMessage" });
  } catch (error) {
    attempts.push({ sequence: m.sequence, decrypted: false, error: error.message });
  }
}
const verified = await bobLaptop.device.verify(conversation);
say({ lateJoiner: {
  added: added.added, addedAt: added.commit?.sequence, joined: joinedLate.map((j) => j.conversation),
  read: readFrom(bobLaptop), welcomeText, earlier: attempts,
  members: (await bobLaptop.device.members(conversation)).map((m) => m.device).sort(),
  fingerprints: verified.leaves.map((l) => l.device?.fingerprint ?? ""),
} });

// f. bob-phone goes offline; the others commit and send; it comes back elsewhere.
await bobPhone.device.catchUp(conversation);
stopFollowing();
bobStream.close();
await bobStream.done;
const whileAway = [said("alice-phone", "while you were away, 1"), said("bob-laptop", "while you were away, 2")];
await alicePhone.device.sync(conversation, { update: true });
await alicePhone.device.send(conversation, encoder.encode(whileAway[0]));
await bobLaptop.device.sync(conversation, { update: true });
await bobLaptop.device.send(conversation, encoder.encode(whileAway[1]));
say({ offline: { sent: whileAway } });
const resume = spawn(process.execPath, [process.argv[1]], {
  env: { ...process.env, E2EE_ROLE: "resume", CONVERSATION: conversation }, stdio: ["ignore", "inherit", "inherit"],
});
const code = await new Promise((resolve) => resume.on("exit", resolve));
const start = alicePhone.inbox.length;
const laptopStart = bobLaptop.inbox.length;
await alicePhone.device.catchUp(conversation);
await bobLaptop.device.catchUp(conversation);
say({ back: { code, "alice-phone": readFrom(alicePhone, start), "bob-laptop": readFrom(bobLaptop, laptopStart) } });

// Every plaintext sent, for the test to look for in the server's store.
say({ done: { followErrors, plaintexts: [
  ...Object.values(greetings), afterRace, gone, welcomeText, ...whileAway, said("bob-phone", "back online"),
] } });
process.exit(0);
