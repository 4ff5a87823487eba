// Real MLS messages from ts-mls (the SDK's MLS library), for tests/e2ee/test_mls.py to
// parse with services/e2ee/mls.py. Called the way web_bridge/sdk/src/e2ee/device.ts calls
// it (ts-mls 1.6.4, cipher suite 1): a creator's device makes the group of a conversation,
// commits adding another device's KeyPackage (a PublicMessage with the ratchet tree in
// the Welcome's GroupInfo), sends an application message, commits the other device's
// removal, then commits with nothing but a fresh path. Prints one JSON object, bytes in
// hex. Run: node tests/e2ee/vectors.mjs (ts-mls is resolved from web_bridge/node_modules).
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

// ts-mls is web_bridge's dependency: resolved from there, wherever this file is run from.
const web = createRequire(new URL("../../web_bridge/package.json", import.meta.url));
const load = (name) => import(pathToFileURL(web.resolve(name)).href);
const {
  createApplicationMessage,
  createCommit,
  createGroup,
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
} = await load("ts-mls");
const { makeKeyPackageRef } = await load("ts-mls/keyPackage.js");

const SUITE_NAME = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";
const GROUP = "apps/vectors/conversations/c1";
const CREATOR = "apps/vectors/users/alice/devices/a1";
const JOINER = "apps/vectors/users/bob/devices/b1";

const utf8 = (text) => new TextEncoder().encode(text);
const hex = (bytes) => Buffer.from(bytes).toString("hex");

const cs = await getCiphersuiteImpl(getCiphersuiteFromName(SUITE_NAME));

async function device(name) {
  const pair = await cs.signature.keygen();
  const made = await generateKeyPackageWithKey(
    { credentialType: "basic", identity: utf8(name) },
    defaultCapabilities(), defaultLifetime, [], pair, cs,
  );
  return { name, pair, ...made };
}

const creator = await device(CREATOR);
const joiner = await device(JOINER);

let state = await createGroup(utf8(GROUP), creator.publicPackage, creator.privatePackage, [], cs);
const added = await createCommit(
  { state, cipherSuite: cs },
  {
    extraProposals: [{ proposalType: "add", add: { keyPackage: joiner.publicPackage } }],
    wireAsPublicMessage: true,
    ratchetTreeExtension: true,
  },
);
state = added.newState;
const application = await createApplicationMessage(state, utf8("hello, bob"), cs);
state = application.newState;
const removed = await createCommit(
  { state, cipherSuite: cs },
  {
    extraProposals: [{ proposalType: "remove", remove: { removed: 1 } }],
    wireAsPublicMessage: true,
    ratchetTreeExtension: true,
  },
);
state = removed.newState;
const empty = await createCommit({ state, cipherSuite: cs }, { wireAsPublicMessage: true, ratchetTreeExtension: true });

process.stdout.write(`${JSON.stringify({
  group_id: hex(utf8(GROUP)),
  creator_identity: hex(utf8(CREATOR)),
  creator_signature_key: hex(creator.pair.publicKey),
  joiner_identity: hex(utf8(JOINER)),
  joiner_signature_key: hex(joiner.pair.publicKey),
  key_package: hex(encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: joiner.publicPackage })),
  key_package_ref: hex(await makeKeyPackageRef(joiner.publicPackage, cs.hash)),
  add_commit: hex(encodeMlsMessage(added.commit)),
  welcome: hex(encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: added.welcome })),
  application: hex(encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: application.privateMessage })),
  remove_commit: hex(encodeMlsMessage(removed.commit)),
  empty_commit: hex(encodeMlsMessage(empty.commit)),
  empty_welcome: empty.welcome === undefined,
})}\n`);
