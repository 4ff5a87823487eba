// For tests/web_bridge/test_node_client.py: given an access token that has already
// expired (its expiry unknown to the client), a subscription renews it once on
// ACCESS_TOKEN_EXPIRED and goes live; a unary call then works with the new token.
import { createGrpcTransport } from "@connectrpc/connect-node";

import { createCaasClient } from "../dist/index.js";

const env = (name) => process.env[name] ?? (() => { throw new Error(`${name} is not set`); })();
const say = (line) => console.log(JSON.stringify(line));
let renewed = 0;
const client = createCaasClient({
  transport: (interceptors) =>
    createGrpcTransport({ baseUrl: `http://${env("CAAS_ADDRESS")}`, interceptors }),
  tokens: { accessToken: env("BOB_TOKEN"), refreshToken: env("BOB_REFRESH"), accessTokenExpiresAt: 0 },
  onTokens: () => { renewed += 1; },
});
const user = `${env("APP_NAME")}/users/${env("BOB_ID")}`;
await new Promise((resolve, reject) => {
  const subscription = client.subscribe(user, {
    state: (state, error) => {
      if (state === "live") {
        say({ live: true, renewed });
        subscription.close();
        resolve();
      } else if (state === "closed" && error) {
        reject(error);
      }
    },
  }, { minDelayMs: 10 });
});
const inbox = await client.conversations.listConversations({ parent: user });
say({ listed: inbox.conversations.length, renewed });
