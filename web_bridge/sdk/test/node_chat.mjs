// A Node.js participant for tests/web_bridge/test_node_client.py: through the SDK over
// native gRPC (Connect's gRPC transport), as user BOB_ID it creates a group with
// ALICE_ID, follows its realtime stream, sends, and waits for alice's reply. Prints one
// JSON line per step on stdout.
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Code, ConnectError } from "@connectrpc/connect";

import { Conversation_Kind, createCaasClient, errorReason } from "../dist/index.js";

const env = (name) => process.env[name] ?? (() => { throw new Error(`${name} is not set`); })();
const say = (line) => console.log(JSON.stringify(line));
const transport = (interceptors) =>
  createGrpcTransport({ baseUrl: `http://${env("CAAS_ADDRESS")}`, interceptors });
const app = env("APP_NAME");
const bob = `${app}/users/${env("BOB_ID")}`;

// A bad token is refused with its reason, not retried into a loop.
const stranger = createCaasClient({
  transport, tokens: { accessToken: "not-a-token", refreshToken: "", accessTokenExpiresAt: 0 } });
try {
  await stranger.conversations.listConversations({ parent: bob });
  say({ error: "none" });
} catch (error) {
  say({ error: Code[ConnectError.from(error).code], reason: errorReason(error) });
}

// Tokens said to have expired: the client renews them before its first call.
let renewed = 0;
const client = createCaasClient({
  transport,
  tokens: { accessToken: env("BOB_TOKEN"), refreshToken: env("BOB_REFRESH"), accessTokenExpiresAt: 1 },
  onTokens: (tokens) => {
    renewed += 1;
    say({ renewed, rotated: tokens.refreshToken !== env("BOB_REFRESH"),
          expiresInSeconds: Math.round((tokens.accessTokenExpiresAt - Date.now()) / 1000) });
  },
});
const created = await client.conversations.createConversation({
  parent: app, conversation: { kind: Conversation_Kind.GROUP, title: "Node and Python" },
  memberIds: [env("ALICE_ID")] });
const conversation = created.conversation.name;
say({ conversation });

const reply = new Promise((resolve, reject) => {
  const subscription = client.subscribe(bob, {
    state: async (state, error) => {
      if (state === "live" && !subscription.sent) {
        subscription.sent = true;
        const sent = await client.messages.createMessage({
          parent: conversation, message: { text: "hello from node" }, requestId: "node-1" });
        say({ sent: sent.message.text, sequence: Number(sent.message.sequence) });
      }
      if (state === "closed" && error) reject(error);
    },
    event: (event) => {
      if (event.type === "message.created" && event.payload.value.senderId !== env("BOB_ID")) {
        const message = event.payload.value;
        say({ received: message.text, sender: message.senderId, sequence: Number(message.sequence) });
        subscription.close();
        resolve();
      }
    },
  }, { stallTimeoutMs: 10_000 });
});
await reply;
say({ done: true });
