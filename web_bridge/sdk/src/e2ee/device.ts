/**
 * End-to-end encryption with MLS (RFC 9420, through ts-mls): a device of a user as an
 * MLS client, and its part in the groups of the user's end-to-end encrypted
 * conversations, with CAAS as the Delivery Service (caas.e2ee.v1.E2eeService).
 *
 * A device keeps one Ed25519 signature key pair for life (registered with
 * `register`), a stock of KeyPackages on the server (`topUp`), and per conversation
 * the MLS group state and the last message it processed, all in its KeyStore. It
 * creates a conversation's group (`createGroup`), adds the devices the group lacks and
 * removes the leaves it must (`sync`), joins groups from Welcomes (`checkWelcomes`),
 * encrypts (`send`) and decrypts (`process`, `catchUp`, or `follow` on a realtime
 * subscription). Everything goes through the conversation's messages in their
 * gapless order; when the server refuses a message built on an old epoch, the device
 * catches up and builds it again by itself.
 *
 * Trust: the server vouches for which signature key is a user's device. Before it
 * adds a device, and whenever its group changed, the device checks every leaf of its
 * group against that directory (`verify`); people can compare `Device.fingerprint`
 * out of band to check the directory itself.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  acceptAll,
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeGroupState,
  decodeMlsMessage,
  defaultAuthenticationService,
  defaultCapabilities,
  defaultKeyPackageEqualityConfig,
  defaultKeyRetentionConfig,
  defaultLifetime,
  defaultLifetimeConfig,
  defaultPaddingConfig,
  emptyPskIndex,
  encodeGroupState,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  makePskIndex,
  processMessage,
  zeroOutUint8Array,
  type CiphersuiteImpl,
  type ClientConfig,
  type ClientState,
  type Credential,
  type KeyPackage,
  type MLSMessage,
  type PrivateKeyPackage,
  type Proposal,
} from "ts-mls";
import { makeKeyPackageRef, verifyKeyPackage } from "ts-mls/keyPackage.js";

import { errorReason, type Subscription } from "../client.js";
import type { E2eeService } from "../gen/caas/e2ee/v1/e2ee_service_pb.js";
import type { Device, Group } from "../gen/caas/e2ee/v1/resources_pb.js";
import type { MessagesService } from "../gen/caas/messages/v1/messages_service_pb.js";
import { MlsContent_Kind, type Message, type MlsContent } from "../gen/caas/messages/v1/resources_pb.js";
import {
  decodeRecord,
  encodeRecord,
  fromBase64,
  sameBytes,
  toBase64,
  toHex,
  type KeyStore,
} from "./store.js";

/** The cipher suite CAAS devices use: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519. */
export const E2EE_CIPHER_SUITE = 1;
const SUITE_NAME = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";

let suite: Promise<CiphersuiteImpl> | undefined;
/** The cipher suite's implementation (WebCrypto: X25519, AES-GCM, SHA-256, Ed25519). */
function cipherSuite(): Promise<CiphersuiteImpl> {
  suite ??= getCiphersuiteImpl(getCiphersuiteFromName(SUITE_NAME));
  return suite;
}

/** What the device calls: `createCaasClient`'s client does. */
export interface E2eeServices {
  e2ee: Client<typeof E2eeService>;
  messages: Client<typeof MessagesService>;
}

/** A decrypted message of an end-to-end encrypted conversation (or why it is not). */
export interface E2eeMessage {
  conversation: string;
  sequence: bigint;
  /** The sender's user id, as the server vouches for it. */
  senderId: string;
  /** The sending device's id, if the server says (CAAS does not echo it). */
  deviceId: string;
  /** What the sender encrypted; undefined when it could not be decrypted. */
  plaintext?: Uint8Array;
  /** Why it could not be decrypted (sent before this device joined, after it left). */
  error?: string;
  /** The server's copy: sequence, times, receipts; its `mls` is the ciphertext. */
  message: Message;
}

/** What a commit of `sync` did. */
export interface SyncResult {
  /** The devices it added (`apps/{app}/users/{user}/devices/{device}`). */
  added: string[];
  /** The leaves it removed. */
  removed: number[];
  /** Devices to add that had no KeyPackage left. */
  unavailable: string[];
  /** Devices whose claimed KeyPackage did not match the directory: not added. */
  refused: string[];
  /** The commit as the server took it; undefined when there was nothing to commit. */
  commit?: Message;
}

/** A refusal the device answered by itself before trying again. */
export interface RetryEvent {
  conversation: string;
  /** `MLS_EPOCH_STALE` (it caught up) or `MLS_REMOVAL_PENDING` (it committed removals). */
  reason: string;
  /** What was being sent. */
  kind: "application" | "commit";
  /** The attempt that was refused (1 for the first). */
  attempt: number;
}

export interface E2eeDeviceOptions {
  /** From `createCaasClient`, signed in as the device's user. */
  client: E2eeServices;
  /** `apps/{app}/users/{user}`. */
  user: string;
  /** The device id: 1 to 64 letters, digits, `_`, `.` and `-`. */
  deviceId: string;
  /** Where its secrets live: `indexedDbKeyStore` in browsers, `fileKeyStore` in Node. */
  store: KeyStore;
  /** Keep at least `low` KeyPackages on the server, uploading `batch` at a time (10, 20). */
  keyPackages?: { low?: number; batch?: number };
  /** Every message decrypted, whichever call processed it (a send that caught up too). */
  onMessage?: (message: E2eeMessage) => void;
  /** Told of each refusal the device handled by itself (then it tries again). */
  onRetry?: (event: RetryEvent) => void;
}

/** A refusal of the end-to-end encryption itself (not of a call). */
export class E2eeError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "E2eeError";
  }
}

/** A leaf or KeyPackage that does not match the server's directory of devices. */
export class E2eeTrustError extends E2eeError {
  constructor(readonly mismatches: string[]) {
    super("DIRECTORY_MISMATCH", `the group does not match the directory: ${mismatches.join("; ")}`);
    this.name = "E2eeTrustError";
  }
}

/** A leaf of the device's copy of a group. */
export interface GroupMember {
  leafIndex: number;
  /** `apps/{app}/users/{user}/devices/{device}`: its credential's identity. */
  device: string;
  signatureKey: Uint8Array;
}

interface IdentityRecord {
  signKey: string;
  publicKey: string;
}

interface KeyPackageRecord {
  /** The KeyPackage as uploaded (an MLSMessage). */
  keyPackage: string;
  initPrivateKey: string;
  hpkePrivateKey: string;
  /** The last-resort KeyPackage may be claimed more than once: kept after use. */
  lastResort?: boolean;
}

interface GroupRecord {
  state: string;
  processed: string;
  verifiedEpoch: string;
  own?: string[];
  pending?: { message: string; welcome: string; requestId: string; state: string };
}

/** A commit sent whose fate is not known yet: its state is taken once the server took it. */
interface PendingCommit {
  message: Uint8Array;
  welcome: Uint8Array;
  requestId: string;
  state: ClientState;
}

interface GroupEntry {
  state: ClientState;
  /** The last sequence number processed (or sent by this device, once it is the last). */
  processed: bigint;
  /** The epoch last checked against the directory (-1: never). */
  verifiedEpoch: bigint;
  /** Sequence numbers of this device's application messages not processed yet (skipped then). */
  own: Set<bigint>;
  pending?: PendingCommit;
}

const MAX_ATTEMPTS = 6;
/** Codes after which a request may or may not have reached the server. */
const UNCERTAIN = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal]);

const utf8 = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const randomId = () => globalThis.crypto.randomUUID().replaceAll("-", "");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const DEVICE_NAME = /^apps\/[^/]+\/users\/[^/]+\/devices\/[^/]+$/;

/** The user of a device name. */
function userOf(device: string): string {
  return device.split("/")[3] ?? "";
}

/** The leaves of a group state: index, device name, signature key. */
export function groupMembers(state: ClientState): GroupMember[] {
  const members: GroupMember[] = [];
  state.ratchetTree.forEach((node, nodeIndex) => {
    if (nodeIndex % 2 !== 0 || node?.nodeType !== "leaf") return;
    const credential = node.leaf.credential;
    members.push({
      leafIndex: nodeIndex / 2,
      device: credential.credentialType === "basic" ? text(credential.identity) : "",
      signatureKey: node.leaf.signaturePublicKey,
    });
  });
  return members;
}

/**
 * Where a leaf and the directory disagree: each leaf whose device the directory knows
 * must carry that device's signature key; when both are at the same epoch, the leaves
 * must be the same devices at the same indexes.
 */
export function directoryMismatches(state: ClientState, group: Group): string[] {
  const mismatches: string[] = [];
  const keys = new Map<string, Uint8Array>();
  for (const leaf of group.leaves) if (leaf.device) keys.set(leaf.device.name, leaf.device.signatureKey);
  for (const device of group.missingDevices) keys.set(device.name, device.signatureKey);
  const members = groupMembers(state);
  for (const member of members) {
    const key = keys.get(member.device);
    if (key && !sameBytes(key, member.signatureKey)) {
      mismatches.push(`leaf ${member.leafIndex} (${member.device}) has another signature key than the directory's`);
    }
  }
  if (group.epoch === state.groupContext.epoch && group.epoch > 0n) {
    const served = new Map(group.leaves.map((leaf) => [leaf.index, leaf]));
    for (const member of members) {
      const leaf = served.get(member.leafIndex);
      if (!leaf) mismatches.push(`leaf ${member.leafIndex} (${member.device}) is not in the server's group`);
      else if (leaf.device && leaf.device.name !== member.device) {
        mismatches.push(`leaf ${member.leafIndex} is ${member.device} here, ${leaf.device.name} on the server`);
      }
      served.delete(member.leafIndex);
    }
    for (const index of served.keys()) mismatches.push(`leaf ${index} is on the server only`);
  }
  return mismatches;
}

/**
 * Why a claimed KeyPackage must not be added ("" if it may): it must be a KeyPackage
 * of the cipher suite, validly signed, for `device` (its credential's identity) with
 * the directory's signature key for it.
 */
export async function keyPackageMismatch(keyPackage: KeyPackage, device: Device): Promise<string> {
  if (keyPackage.cipherSuite !== SUITE_NAME) return `${device.name}: cipher suite ${keyPackage.cipherSuite}`;
  const credential = keyPackage.leafNode.credential;
  if (credential.credentialType !== "basic" || text(credential.identity) !== device.name) {
    return `${device.name}: the KeyPackage is another device's`;
  }
  if (!sameBytes(keyPackage.leafNode.signaturePublicKey, device.signatureKey)) {
    return `${device.name}: the KeyPackage's signature key is not the directory's`;
  }
  if (!(await verifyKeyPackage(keyPackage, (await cipherSuite()).signature))) {
    return `${device.name}: the KeyPackage is not validly signed`;
  }
  return "";
}

/** The KeyPackage reference (RFC 9420 §5.2), in hex: how a Welcome names who it is for. */
export async function keyPackageRef(keyPackage: KeyPackage): Promise<string> {
  return toHex(await makeKeyPackageRef(keyPackage, (await cipherSuite()).hash));
}

function decodeMessage(bytes: Uint8Array): MLSMessage | undefined {
  try {
    return decodeMlsMessage(bytes, 0)?.[0];
  } catch {
    return undefined;
  }
}

function zero(consumed: Uint8Array[]): void {
  for (const secret of consumed) zeroOutUint8Array(secret);
}

export class E2eeDevice {
  /** `apps/{app}/users/{user}/devices/{device}`: also its credential's identity. */
  readonly name: string;
  /** The user's id. */
  readonly userId: string;
  private readonly listeners = new Set<(message: E2eeMessage) => void>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly groups = new Map<string, GroupEntry | undefined>();
  private readonly config: ClientConfig;

  private constructor(
    private readonly options: E2eeDeviceOptions,
    private readonly identity: { signKey: Uint8Array; publicKey: Uint8Array },
  ) {
    this.name = `${options.user}/devices/${options.deviceId}`;
    this.userId = userOf(this.name);
    if (options.onMessage) this.listeners.add(options.onMessage);
    const app = options.user.slice(0, options.user.indexOf("/users/"));
    this.config = {
      keyRetentionConfig: defaultKeyRetentionConfig,
      lifetimeConfig: defaultLifetimeConfig,
      keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
      paddingConfig: defaultPaddingConfig,
      authService: {
        // Every leaf is a device of this app with a basic credential; whether its key is
        // the device's is checked against the directory (`verify`).
        validateCredential: async (credential: Credential, key: Uint8Array) =>
          credential.credentialType === "basic" &&
          DEVICE_NAME.test(text(credential.identity)) &&
          text(credential.identity).startsWith(`${app}/users/`) &&
          defaultAuthenticationService.validateCredential(credential, key),
      },
    };
  }

  /** The device with its secrets from `store`: its signature key pair is made once. */
  static async open(options: E2eeDeviceOptions): Promise<E2eeDevice> {
    if (!options.user.includes("/users/")) throw new Error(`not a user name: ${options.user}`);
    const stored = decodeRecord<IdentityRecord>(await options.store.get("identity"));
    if (stored) {
      return new E2eeDevice(options, { signKey: fromBase64(stored.signKey), publicKey: fromBase64(stored.publicKey) });
    }
    const pair = await (await cipherSuite()).signature.keygen();
    const record: IdentityRecord = { signKey: toBase64(pair.signKey), publicKey: toBase64(pair.publicKey) };
    await options.store.put("identity", encodeRecord(record));
    return new E2eeDevice(options, pair);
  }

  /** The device's Ed25519 public key, as registered. */
  get signatureKey(): Uint8Array {
    return this.identity.publicKey.slice();
  }

  private get e2ee() {
    return this.options.client.e2ee;
  }

  /** Told of every message decrypted, until the returned function is called. */
  listen(handler: (message: E2eeMessage) => void): () => void {
    this.listeners.add(handler);
    return () => {
      this.listeners.delete(handler);
    };
  }

  /**
   * Registers the device (again: the same key is fine) and tops its KeyPackages up.
   * Answers the device as the server has it, with its fingerprint.
   */
  async register(): Promise<Device> {
    await this.e2ee.createDevice({
      parent: this.options.user,
      deviceId: this.options.deviceId,
      device: { cipherSuite: E2EE_CIPHER_SUITE, signatureKey: this.identity.publicKey },
    });
    return this.topUp();
  }

  /**
   * Uploads KeyPackages when fewer than `low` are left (and a last-resort one when it
   * has none), keeping their private parts to join from a Welcome.
   */
  async topUp(): Promise<Device> {
    return this.exclusive("keypackages", async () => {
      const low = this.options.keyPackages?.low ?? 10;
      const batch = Math.min(100, this.options.keyPackages?.batch ?? 20);
      const { device } = await this.e2ee.getDevice({ name: this.name });
      if (!device) throw new E2eeError("DEVICE_MISSING", `${this.name} is not registered`);
      if (device.keyPackageCount >= low && device.hasLastResort) return device;
      const count = device.keyPackageCount < low ? batch : 0;
      const made: string[] = [];
      const packages: Uint8Array[] = [];
      for (let i = 0; i < count; i += 1) {
        const [ref, bytes] = await this.makeKeyPackage(false);
        made.push(ref);
        packages.push(bytes);
      }
      let lastResort: Uint8Array = new Uint8Array();
      if (!device.hasLastResort) {
        const [ref, bytes] = await this.makeKeyPackage(true);
        made.push(ref);
        lastResort = bytes;
      }
      try {
        const uploaded = await this.e2ee.uploadKeyPackages({ device: this.name, keyPackages: packages, lastResort });
        return uploaded.device ?? device;
      } catch (error) {
        if (!UNCERTAIN.has(ConnectError.from(error).code)) {
          for (const ref of made) await this.options.store.delete(`keypackage:${ref}`);
        }
        throw error;
      }
    });
  }

  /** A new KeyPackage (with the device's key), its private part stored: [ref, MLSMessage]. */
  private async makeKeyPackage(lastResort: boolean): Promise<[string, Uint8Array]> {
    const cs = await cipherSuite();
    const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
      { credentialType: "basic", identity: utf8(this.name) },
      defaultCapabilities(), defaultLifetime, [], this.identity, cs,
    );
    const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: publicPackage });
    const ref = await keyPackageRef(publicPackage);
    const record: KeyPackageRecord = {
      keyPackage: toBase64(bytes),
      initPrivateKey: toBase64(privatePackage.initPrivateKey),
      hpkePrivateKey: toBase64(privatePackage.hpkePrivateKey),
      ...(lastResort ? { lastResort } : {}),
    };
    await this.options.store.put(`keypackage:${ref}`, encodeRecord(record));
    return [ref, bytes];
  }

  /** A stored KeyPackage by reference, with its private part. */
  private async keyPackage(ref: string): Promise<{ public: KeyPackage; private: PrivateKeyPackage; lastResort: boolean } | undefined> {
    const record = decodeRecord<KeyPackageRecord>(await this.options.store.get(`keypackage:${ref}`));
    if (!record) return undefined;
    const decoded = decodeMessage(fromBase64(record.keyPackage));
    if (decoded?.wireformat !== "mls_key_package") return undefined;
    return {
      public: decoded.keyPackage,
      private: {
        initPrivateKey: fromBase64(record.initPrivateKey),
        hpkePrivateKey: fromBase64(record.hpkePrivateKey),
        signaturePrivateKey: this.identity.signKey,
      },
      lastResort: record.lastResort === true,
    };
  }

  // Groups, as stored

  private async load(conversation: string): Promise<GroupEntry | undefined> {
    if (this.groups.has(conversation)) return this.groups.get(conversation);
    const record = decodeRecord<GroupRecord>(await this.options.store.get(`group:${conversation}`));
    const entry = record && {
      state: this.decodeState(record.state),
      processed: BigInt(record.processed),
      verifiedEpoch: BigInt(record.verifiedEpoch),
      own: new Set((record.own ?? []).map((sequence) => BigInt(sequence))),
      pending: record.pending && {
        message: fromBase64(record.pending.message),
        welcome: fromBase64(record.pending.welcome),
        requestId: record.pending.requestId,
        state: this.decodeState(record.pending.state),
      },
    };
    this.groups.set(conversation, entry);
    return entry;
  }

  private decodeState(encoded: string): ClientState {
    const decoded = decodeGroupState(fromBase64(encoded), 0);
    if (!decoded) throw new E2eeError("STATE_UNREADABLE", "a stored group state does not decode");
    return { ...decoded[0], clientConfig: this.config };
  }

  private async save(conversation: string, entry: GroupEntry): Promise<void> {
    const record: GroupRecord = {
      state: toBase64(encodeGroupState(entry.state)),
      processed: entry.processed.toString(),
      verifiedEpoch: entry.verifiedEpoch.toString(),
      own: [...entry.own].map((sequence) => sequence.toString()),
      ...(entry.pending ? {
        pending: {
          message: toBase64(entry.pending.message),
          welcome: toBase64(entry.pending.welcome),
          requestId: entry.pending.requestId,
          state: toBase64(encodeGroupState(entry.pending.state)),
        },
      } : {}),
    };
    await this.options.store.put(`group:${conversation}`, encodeRecord(record));
    this.groups.set(conversation, entry);
  }

  private async forget(conversation: string): Promise<void> {
    await this.options.store.delete(`group:${conversation}`);
    this.groups.set(conversation, undefined);
  }

  /** One operation at a time per key (a conversation): the group state is a chain. */
  private exclusive<T>(key: string, body: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const next = previous.then(body, body);
    const settled = next.catch(() => {});
    this.locks.set(key, settled);
    void settled.then(() => {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    });
    return next;
  }

  private async active(conversation: string): Promise<GroupEntry> {
    const entry = await this.load(conversation);
    if (!entry) throw new E2eeError("NOT_IN_GROUP", `${this.name} is not in the group of ${conversation}`);
    if (entry.state.groupActiveState.kind !== "active") {
      throw new E2eeError("REMOVED", `${this.name} was removed from the group of ${conversation}`);
    }
    return entry;
  }

  /** Whether this device holds a leaf in the conversation's group. */
  async isMember(conversation: string): Promise<boolean> {
    const entry = await this.load(conversation);
    return entry?.state.groupActiveState.kind === "active";
  }

  /** The device's copy of the group (undefined if it is in none), for the curious. */
  async groupState(conversation: string): Promise<ClientState | undefined> {
    return (await this.load(conversation))?.state;
  }

  /** The group's leaves as this device knows them. */
  async members(conversation: string): Promise<GroupMember[]> {
    const entry = await this.load(conversation);
    return entry ? groupMembers(entry.state) : [];
  }

  /** The last sequence number of the conversation this device processed (0 if none). */
  async processed(conversation: string): Promise<bigint> {
    return (await this.load(conversation))?.processed ?? 0n;
  }

  /**
   * Checks every leaf of the device's copy of the group against the server's
   * directory (GetGroup): throws E2eeTrustError where they differ. Answers the
   * server's group (its leaves carry each device's `fingerprint` to show people).
   */
  async verify(conversation: string): Promise<Group> {
    return this.exclusive(conversation, async () => this.verifyLocked(conversation, await this.active(conversation)));
  }

  private async verifyLocked(conversation: string, entry: GroupEntry): Promise<Group> {
    const { group } = await this.e2ee.getGroup({ name: `${conversation}/group` });
    if (!group) throw new E2eeError("GROUP_MISSING", `no group for ${conversation}`);
    const mismatches = directoryMismatches(entry.state, group);
    if (mismatches.length) throw new E2eeTrustError(mismatches);
    if (entry.verifiedEpoch !== entry.state.groupContext.epoch) {
      entry.verifiedEpoch = entry.state.groupContext.epoch;
      await this.save(conversation, entry);
    }
    return group;
  }

  /**
   * Creates the group of an end-to-end encrypted conversation this user just created
   * (its group id is the conversation's name; this device is leaf 0), then adds the
   * devices of its members (`sync`): the server learns of the group at that commit.
   */
  async createGroup(conversation: string): Promise<SyncResult> {
    await this.exclusive(conversation, async () => {
      if (await this.load(conversation)) throw new E2eeError("GROUP_EXISTS", `${this.name} is in the group of ${conversation} already`);
      const { group } = await this.e2ee.getGroup({ name: `${conversation}/group` });
      if (group && group.epoch > 0n) {
        throw new E2eeError("GROUP_EXISTS", `the group of ${conversation} exists: wait for a Welcome`);
      }
      const cs = await cipherSuite();
      const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
        { credentialType: "basic", identity: utf8(this.name) },
        defaultCapabilities(), defaultLifetime, [], this.identity, cs,
      );
      const state = await createGroup(utf8(conversation), publicPackage, privatePackage, [], cs, this.config);
      await this.save(conversation, { state, processed: 0n, verifiedEpoch: -1n, own: new Set() });
    });
    return this.sync(conversation);
  }

  /**
   * Brings the group in line with the conversation (one commit, if anything is to
   * change): removes the leaves of members who left and of deleted devices, and adds
   * the members' devices it lacks (claiming their KeyPackages, checked against the
   * directory) with a Welcome. `update`: commit even if nothing else changes, with
   * fresh keys for this device (post-compromise security).
   */
  async sync(conversation: string, options: { update?: boolean } = {}): Promise<SyncResult> {
    return this.exclusive(conversation, async () => {
      await this.settleLocked(conversation);
      return this.commitLocked(conversation, options.update ?? false);
    });
  }

  private async commitLocked(conversation: string, update: boolean): Promise<SyncResult> {
    const cs = await cipherSuite();
    const claimed = new Map<string, KeyPackage>();
    const unavailable = new Set<string>();
    const refused = new Set<string>();
    for (let attempt = 1; ; attempt += 1) {
      const entry = await this.active(conversation);
      const group = await this.verifyLocked(conversation, entry);
      const local = groupMembers(entry.state);
      if (entry.state.groupContext.epoch === 0n && group.epoch > 0n) {
        await this.forget(conversation); // another device created the group first
        throw new E2eeError("GROUP_EXISTS", `the group of ${conversation} exists: wait for a Welcome`);
      }
      const own = entry.state.privatePath.leafIndex;
      const held = new Set(local.map((member) => member.leafIndex));
      const removed = group.leaves
        .filter((leaf) => leaf.removalPending && held.has(leaf.index))
        .map((leaf) => leaf.index);
      if (removed.includes(own)) throw new E2eeError("REMOVED", `${this.name} was deleted: its leaf awaits removal`);
      const inTree = new Set(local.map((member) => member.device));
      const missing = group.missingDevices.filter(
        (device) => !inTree.has(device.name) && !unavailable.has(device.name) && !refused.has(device.name),
      );
      const unclaimed = missing.filter((device) => !claimed.has(device.name));
      if (unclaimed.length) {
        const userIds = [...new Set(unclaimed.map((device) => userOf(device.name)))];
        const answer = await this.e2ee.claimKeyPackages({ conversation, userIds, deviceId: this.options.deviceId });
        for (const item of answer.keyPackages) {
          const device = unclaimed.find((wanted) => wanted.name === item.device);
          if (!device) continue; // one added meanwhile
          const decoded = decodeMessage(item.keyPackage);
          const mismatch = decoded?.wireformat === "mls_key_package"
            ? await keyPackageMismatch(decoded.keyPackage, device)
            : `${device.name}: not a KeyPackage`;
          if (mismatch || decoded?.wireformat !== "mls_key_package") refused.add(device.name);
          else claimed.set(device.name, decoded.keyPackage);
        }
        for (const name of answer.unavailableDevices) unavailable.add(name);
      }
      const adds = missing.filter((device) => claimed.has(device.name));
      const result: SyncResult = {
        added: adds.map((device) => device.name),
        removed,
        unavailable: [...unavailable],
        refused: [...refused],
      };
      if (!removed.length && !adds.length && !update) return result;
      const proposals: Proposal[] = [
        ...removed.map((index): Proposal => ({ proposalType: "remove", remove: { removed: index } })),
        ...adds.map((device): Proposal => ({ proposalType: "add", add: { keyPackage: claimed.get(device.name)! } })),
      ];
      const built = await createCommit(
        { state: entry.state, cipherSuite: cs },
        { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true },
      );
      entry.pending = {
        message: encodeMlsMessage(built.commit),
        welcome: built.welcome
          ? encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: built.welcome })
          : new Uint8Array(),
        requestId: randomId(),
        state: built.newState,
      };
      await this.save(conversation, entry);
      try {
        result.commit = await this.sendPendingLocked(conversation, entry);
        zero(built.consumed);
        // Its members are the checked ones and the checked KeyPackages.
        entry.verifiedEpoch = entry.state.groupContext.epoch;
        await this.save(conversation, entry);
        return result;
      } catch (error) {
        if (errorReason(error) !== "MLS_EPOCH_STALE" || attempt >= MAX_ATTEMPTS) throw error;
        if (entry.state.groupContext.epoch === 0n) {
          await this.forget(conversation); // another device's first commit made the group
          throw new E2eeError("GROUP_EXISTS", `the group of ${conversation} exists: wait for a Welcome`);
        }
        this.options.onRetry?.({ conversation, reason: "MLS_EPOCH_STALE", kind: "commit", attempt });
        await this.catchUpLocked(conversation);
      }
    }
  }

  /**
   * Sends the pending commit (again: same request id, so at most once) and takes its
   * state once the server took it. A refusal drops it; an uncertain failure keeps it,
   * to be settled by the next catch-up or send.
   */
  private async sendPendingLocked(conversation: string, entry: GroupEntry): Promise<Message> {
    const pending = entry.pending!;
    try {
      const message = await this.createMessage(conversation, {
        message: pending.message, deviceId: this.options.deviceId, welcome: pending.welcome,
      }, pending.requestId);
      entry.state = pending.state;
      entry.pending = undefined;
      if (message.sequence === entry.processed + 1n) entry.processed = message.sequence; // else skipped by its epoch
      await this.save(conversation, entry);
      return message;
    } catch (error) {
      if (!UNCERTAIN.has(ConnectError.from(error).code)) {
        entry.pending = undefined;
        await this.save(conversation, entry);
      }
      throw error;
    }
  }

  /** CreateMessage, tried again (same request id) after failures that may not have reached. */
  private async createMessage(
    conversation: string,
    mls: Pick<MlsContent, "message" | "deviceId" | "welcome">,
    requestId: string = randomId(),
  ): Promise<Message> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const { message } = await this.options.client.messages.createMessage({
          parent: conversation, message: { mls }, requestId,
        });
        if (!message) throw new E2eeError("NO_MESSAGE", "CreateMessage answered no message");
        return message;
      } catch (error) {
        if (!UNCERTAIN.has(ConnectError.from(error).code) || attempt >= 2) throw error;
        await sleep(200 * 2 ** attempt);
      }
    }
  }

  /** Catches up, and settles a commit left pending by an uncertain failure. */
  private async settleLocked(conversation: string): Promise<void> {
    await this.catchUpLocked(conversation);
    const entry = await this.load(conversation);
    if (!entry?.pending) return;
    try {
      await this.sendPendingLocked(conversation, entry);
    } catch (error) {
      if (errorReason(error) !== "MLS_EPOCH_STALE") throw error;
      await this.catchUpLocked(conversation);
    }
  }

  /**
   * Encrypts `plaintext` for the conversation's group and sends it. Refused for an old
   * epoch, it catches up and encrypts it again; refused while leaves await removal,
   * it commits their removal first. Answers the server's message.
   */
  async send(conversation: string, plaintext: Uint8Array): Promise<Message> {
    return this.exclusive(conversation, async () => {
      const cs = await cipherSuite();
      for (let attempt = 1; ; attempt += 1) {
        let entry = await this.active(conversation);
        if (entry.pending) {
          await this.settleLocked(conversation);
          entry = await this.active(conversation);
        }
        if (entry.verifiedEpoch !== entry.state.groupContext.epoch) await this.verifyLocked(conversation, entry);
        const built = await createApplicationMessage(entry.state, plaintext, cs);
        // The ratchet moves on before the message leaves: a key is never used twice.
        entry.state = built.newState;
        await this.save(conversation, entry);
        zero(built.consumed);
        const message = encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: built.privateMessage });
        try {
          const sent = await this.createMessage(conversation, { message, deviceId: this.options.deviceId, welcome: new Uint8Array() });
          // Not for this device to decrypt: processed now, or skipped when its turn comes.
          if (sent.sequence === entry.processed + 1n) entry.processed = sent.sequence;
          else if (sent.sequence > entry.processed) entry.own.add(sent.sequence);
          await this.save(conversation, entry);
          return sent;
        } catch (error) {
          const reason = errorReason(error);
          if (attempt >= MAX_ATTEMPTS || (reason !== "MLS_EPOCH_STALE" && reason !== "MLS_REMOVAL_PENDING")) throw error;
          this.options.onRetry?.({ conversation, reason, kind: "application", attempt });
          if (reason === "MLS_EPOCH_STALE") await this.catchUpLocked(conversation);
          else await this.commitLocked(conversation, false);
        }
      }
    });
  }

  /**
   * Processes messages of the conversation as they arrive (the realtime stream's, in
   * order): commits move the group on, application messages are decrypted. Messages
   * processed already are skipped; a gap is filled from ListMessages first. Answers
   * the decrypted ones.
   */
  async process(conversation: string, messages: Message[]): Promise<E2eeMessage[]> {
    return this.exclusive(conversation, async () => {
      const entry = await this.load(conversation);
      if (!entry) return [];
      const sorted = [...messages].sort((a, b) => (a.sequence < b.sequence ? -1 : a.sequence > b.sequence ? 1 : 0));
      const out: E2eeMessage[] = [];
      for (const message of sorted) {
        if (message.sequence <= entry.processed) continue;
        if (message.sequence > entry.processed + 1n) {
          await this.save(conversation, entry);
          this.deliver(out);
          return [...out, ...(await this.catchUpLocked(conversation))]; // a gap: fill it
        }
        await this.handle(conversation, entry, message, out);
        entry.processed = message.sequence;
      }
      await this.save(conversation, entry);
      this.deliver(out);
      return out;
    });
  }

  /**
   * Processes the conversation's messages after the last one processed, in order
   * (ListMessages): what a device does when it comes back online. Answers the
   * decrypted ones.
   */
  async catchUp(conversation: string): Promise<E2eeMessage[]> {
    return this.exclusive(conversation, () => this.catchUpLocked(conversation));
  }

  private async catchUpLocked(conversation: string): Promise<E2eeMessage[]> {
    const entry = await this.load(conversation);
    if (!entry) return [];
    const all: E2eeMessage[] = [];
    for (;;) {
      const page = await this.options.client.messages.listMessages({
        parent: conversation, pageSize: 200, position: { case: "afterSequence", value: entry.processed },
      });
      const out: E2eeMessage[] = [];
      for (const message of page.messages) {
        if (message.sequence <= entry.processed) continue;
        await this.handle(conversation, entry, message, out);
        entry.processed = message.sequence;
      }
      await this.save(conversation, entry);
      this.deliver(out);
      all.push(...out);
      if (!page.hasMoreAfter || !page.messages.length) return all;
    }
  }

  private deliver(messages: E2eeMessage[]): void {
    for (const message of messages) for (const listener of this.listeners) listener(message);
  }

  /** One message of the group, in order: applies a commit, decrypts an application message. */
  private async handle(conversation: string, entry: GroupEntry, message: Message, out: E2eeMessage[]): Promise<void> {
    const mine = entry.own.delete(message.sequence);
    const mls = message.mls;
    if (!mls?.message.length) return; // not an MLS message (a tombstone)
    const decoded = decodeMessage(mls.message);
    const cs = await cipherSuite();
    if (decoded?.wireformat === "mls_public_message") {
      if (entry.pending && sameBytes(entry.pending.message, mls.message)) {
        entry.state = entry.pending.state; // this device's, its answer lost: the server took it
        entry.pending = undefined;
        return;
      }
      const content = decoded.publicMessage.content;
      // Every commit but this device's own (applied when the server took it) is built on
      // the epoch this device is at, the messages being in the server's order.
      if (content.epoch < entry.state.groupContext.epoch) return;
      entry.pending = undefined; // another commit took the epoch
      if (entry.state.groupActiveState.kind !== "active") return;
      if (content.sender.senderType === "member" && content.sender.leafIndex === entry.state.privatePath.leafIndex) {
        throw new E2eeError("STATE_LOST", `a commit of ${this.name} at sequence ${message.sequence} is not in its state`);
      }
      try {
        const result = await processMessage(decoded, entry.state, makePskIndex(entry.state, {}), acceptAll, cs);
        entry.state = result.newState;
        zero(result.consumed);
      } catch (error) {
        throw new E2eeError("COMMIT_UNPROCESSABLE",
          `the commit at sequence ${message.sequence} of ${conversation} does not apply: ${(error as Error).message}`);
      }
      return;
    }
    // This device's own application message: it cannot decrypt it (its key is spent).
    if (mine || (message.senderId === this.userId && mls.deviceId === this.options.deviceId)) return;
    const item: E2eeMessage = { conversation, sequence: message.sequence, senderId: message.senderId, deviceId: mls.deviceId, message };
    out.push(item);
    if (decoded?.wireformat !== "mls_private_message") {
      item.error = "not an MLS application message";
    } else if (entry.state.groupActiveState.kind !== "active") {
      item.error = `${this.name} is no longer in the group`;
    } else {
      try {
        const result = await processMessage(decoded, entry.state, makePskIndex(entry.state, {}), acceptAll, cs);
        entry.state = result.newState;
        if (result.kind === "applicationMessage") item.plaintext = result.message.slice();
        else item.error = "not an application message";
        zero(result.consumed);
      } catch (error) {
        item.error = (error as Error).message || String(error);
      }
    }
  }

  /**
   * Joins the groups this device was added to (ListWelcomes), with the KeyPackage each
   * Welcome is for, checks them against the directory, and processes their messages
   * after the adding commit. Answers each group joined with its decrypted messages.
   * Call it on start, and when a commit arrives in a conversation this device is not
   * in (`follow` does).
   */
  async checkWelcomes(): Promise<Array<{ conversation: string; messages: E2eeMessage[] }>> {
    const newest = new Map<string, { sequence: bigint; epoch: bigint; welcome: Uint8Array }>();
    let pageToken = "";
    do {
      const page = await this.e2ee.listWelcomes({ parent: this.name, pageSize: 100, pageToken });
      for (const welcome of page.welcomes) {
        const known = newest.get(welcome.conversation);
        if (!known || welcome.sequence > known.sequence) newest.set(welcome.conversation, welcome);
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    const joined: Array<{ conversation: string; messages: E2eeMessage[] }> = [];
    for (const [conversation, welcome] of newest) {
      const messages = await this.exclusive(conversation, () => this.joinLocked(conversation, welcome));
      if (messages) joined.push({ conversation, messages });
    }
    if (joined.length) await this.topUp();
    return joined;
  }

  private async joinLocked(
    conversation: string,
    welcome: { sequence: bigint; epoch: bigint; welcome: Uint8Array },
  ): Promise<E2eeMessage[] | undefined> {
    const entry = await this.load(conversation);
    if (entry && (entry.state.groupActiveState.kind === "active" || entry.processed >= welcome.sequence)) return undefined;
    const decoded = decodeMessage(welcome.welcome);
    if (decoded?.wireformat !== "mls_welcome") return undefined;
    let ref = "";
    let keyPackage: Awaited<ReturnType<E2eeDevice["keyPackage"]>> = undefined;
    for (const secret of decoded.welcome.secrets) {
      ref = toHex(secret.newMember);
      keyPackage = await this.keyPackage(ref);
      if (keyPackage) break;
    }
    if (!keyPackage) return undefined; // used already (or never this device's)
    const cs = await cipherSuite();
    const state = await joinGroup(
      decoded.welcome, keyPackage.public, keyPackage.private, emptyPskIndex, cs, undefined, undefined, this.config,
    );
    if (text(state.groupContext.groupId) !== conversation) {
      throw new E2eeError("WRONG_GROUP", `the Welcome for ${conversation} is for another group`);
    }
    const joined: GroupEntry = { state, processed: welcome.sequence, verifiedEpoch: -1n, own: new Set() };
    await this.verifyLocked(conversation, joined); // saves it
    if (!keyPackage.lastResort) await this.options.store.delete(`keypackage:${ref}`);
    return this.catchUpLocked(conversation);
  }

  /**
   * Follows a realtime subscription of the device's user: processes the messages of
   * the conversations whose group it is in (decrypted ones reach `onMessage` and
   * `listen`), joins groups when a commit shows up in a conversation it is not in, and
   * tops KeyPackages up when the server says they run low. Answers the function that
   * stops it. `onError` hears of what failed (default: nothing).
   */
  follow(subscription: Subscription, onError: (error: unknown) => void = () => {}): () => void {
    return subscription.listen({
      event: (event) => {
        if (event.payload.case === "e2eeKeyPackagesLow") {
          // For one device of the user: the others top themselves up when told.
          if (event.payload.value.device === this.name) this.topUp().catch(onError);
          return;
        }
        if (event.payload.case !== "messageCreated" || !event.payload.value.mls) return;
        const message = event.payload.value;
        const conversation = event.conversation;
        void (async () => {
          if (await this.isMember(conversation)) await this.process(conversation, [message]);
          else if (message.mls?.kind === MlsContent_Kind.COMMIT) await this.checkWelcomes(); // added?
        })().catch(onError);
      },
    });
  }
}
