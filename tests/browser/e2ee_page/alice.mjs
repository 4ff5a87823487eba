// For tests/browser/test_e2ee_page.py: alice's device in Node, over native gRPC, one
// step per run (its MLS secrets in KEY_FILE, fileKeyStore, from one run to the next).
// Prints one JSON line: what the step did.
//   setup: registers the device, creates the encrypted group conversation with MEMBER;
//   add:   creates the conversation's group with every device of its members (a commit
//          and a Welcome for each device added);
//   send:  encrypts TEXT ({"text": …}) and sends it;
//   read:  catches up and answers what it decrypted.
import { createGrpcTransport } from "@connectrpc/connect-node";

import { Conversation_Kind, E2eeDevice, MlsContent_Kind, createCaasClient } from "@caas/sdk";
import { fileKeyStore } from "@caas/sdk/e2ee-node";

const env = (name) => process.env[name] ?? (() => { throw new Error(`${name} is not set`); })();
const say = (line) => console.log(JSON.stringify(line, (_, value) => typeof value === "bigint" ? Number(value) : value));
const user = env("USER_NAME"); // apps/{app}/users/alice
const client = createCaasClient({
  transport: (interceptors) => createGrpcTransport({ baseUrl: `http://${env("CAAS_ADDRESS")}`, interceptors }),
  tokens: { accessToken: env("ACCESS_TOKEN"), refreshToken: env("REFRESH_TOKEN"), accessTokenExpiresAt: 0 },
});
const device = await E2eeDevice.open({ client, user, deviceId: env("DEVICE_ID"), store: fileKeyStore(env("KEY_FILE")) });
const hex = (bytes) => Buffer.from(bytes).toString("hex");

switch (process.argv[2]) {
  case "setup": {
    const registered = await device.register();
    const { conversation } = await client.conversations.createConversation({
      parent: user.slice(0, user.indexOf("/users/")),
      conversation: { kind: Conversation_Kind.GROUP, title: "Secret plans", endToEndEncrypted: true },
      memberIds: [env("MEMBER")],
    });
    say({ setup: { device: registered.name, signatureKey: hex(registered.signatureKey),
      conversation: conversation.name, endToEndEncrypted: conversation.endToEndEncrypted } });
    break;
  }
  case "add": {
    const conversation = env("CONVERSATION");
    const made = await device.createGroup(conversation);
    say({ added: { added: made.added, unavailable: made.unavailable, refused: made.refused,
      sequence: made.commit?.sequence, kind: MlsContent_Kind[made.commit?.mls?.kind ?? 0],
      epoch: (await device.groupState(conversation)).groupContext.epoch,
      members: (await device.members(conversation)).map((m) => ({ device: m.device, signatureKey: hex(m.signatureKey) })) } });
    break;
  }
  case "send": {
    const sent = await device.send(env("CONVERSATION"), new TextEncoder().encode(JSON.stringify({ text: env("TEXT") })));
    say({ sent: { sequence: sent.sequence, text: sent.text, mlsBytes: sent.mls?.message.length ?? 0 } });
    break;
  }
  case "read": {
    const read = await device.catchUp(env("CONVERSATION"));
    say({ read: read.map((m) => ({ sequence: m.sequence, sender: m.senderId, error: m.error ?? "",
      text: m.plaintext ? JSON.parse(new TextDecoder().decode(m.plaintext)).text : null })) });
    break;
  }
  default:
    throw new Error(`unknown step ${process.argv[2]}`);
}
process.exit(0);
