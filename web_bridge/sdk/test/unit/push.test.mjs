// Web Push registration without a browser: a stand-in push manager and PushService.
// The subscription is made with the app's key, registered as the user's channel with
// the keys as bytes; one made with a key the app still knows (the previous one) is kept;
// one made with a key it no longer has is replaced; disabling deletes then unsubscribes.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ConnectError, Code } from "@connectrpc/connect";

import { disableWebPush, enableWebPush, fromBase64Url } from "../../dist/index.js";

const USER = "apps/demo/users/alice";
const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const key = (n) => Uint8Array.from({ length: 65 }, (_, i) => (i === 0 ? 4 : (i * n) % 256));

function subscriptionWith(serverKey, endpoint) {
  return {
    options: { applicationServerKey: serverKey.buffer.slice(0) },
    unsubscribed: false,
    toJSON: () => ({ endpoint, keys: { p256dh: b64url(key(7)), auth: b64url(new Uint8Array(16).fill(9)) } }),
    async unsubscribe() { this.unsubscribed = true; return true; },
  };
}

function world({ current = key(3), previous = new Uint8Array(), existing = null } = {}) {
  const calls = [];
  const manager = {
    subscription: existing,
    async getSubscription() { return this.subscription; },
    async subscribe(options) {
      calls.push(["subscribe", options]);
      this.subscription = subscriptionWith(options.applicationServerKey, "https://push.example/new");
      return this.subscription;
    },
  };
  const push = {
    async getWebPushKey(request) {
      calls.push(["getWebPushKey", request.name]);
      return { webPushKey: { publicKey: current, previousPublicKey: previous } };
    },
    async createPushDevice(request) {
      calls.push(["createPushDevice", request]);
      return { pushDevice: { name: `${USER}/pushDevices/aaaaaaaaaaaaaaaa`, ...request.pushDevice } };
    },
    async deletePushDevice(request) {
      calls.push(["deletePushDevice", request.name]);
      if (request.name.endsWith("gone")) throw new ConnectError("gone", Code.NotFound);
      return {};
    },
  };
  return { calls, manager, client: { push } };
}

test("base64url keys become bytes", () => {
  assert.deepEqual([...fromBase64Url("AQID_-8")], [1, 2, 3, 255, 239]);
});

test("a new subscription is made with the app's key and registered", async () => {
  const { calls, manager, client } = world();
  const device = await enableWebPush({ client, user: USER, pushManager: manager, deviceId: "tab-1", locale: "fr" });
  assert.equal(calls[0][1], "apps/demo/webPushKey");
  assert.equal(calls[1][0], "subscribe");
  assert.deepEqual([...calls[1][1].applicationServerKey], [...key(3)]);
  assert.equal(calls[1][1].userVisibleOnly, true);
  const registered = calls[2][1];
  assert.equal(registered.parent, USER);
  assert.equal(registered.pushDevice.channel.case, "webPush");
  const web = registered.pushDevice.channel.value;
  assert.equal(web.endpoint, "https://push.example/new");
  assert.deepEqual([...web.p256dh], [...key(7)]);
  assert.deepEqual([...web.auth], new Array(16).fill(9));
  assert.deepEqual([...web.applicationServerKey], [...key(3)]);
  assert.equal(registered.pushDevice.deviceId, "tab-1");
  assert.equal(device.name, `${USER}/pushDevices/aaaaaaaaaaaaaaaa`);
});

test("a subscription made with the previous key is kept; one with an unknown key replaced", async () => {
  const kept = subscriptionWith(key(5), "https://push.example/old");
  const first = world({ previous: key(5), existing: kept });
  await enableWebPush({ client: first.client, user: USER, pushManager: first.manager });
  assert.deepEqual(first.calls.map((c) => c[0]), ["getWebPushKey", "createPushDevice"]);
  assert.equal(kept.unsubscribed, false);
  assert.deepEqual([...first.calls[1][1].pushDevice.channel.value.applicationServerKey], [...key(5)]);

  const stale = subscriptionWith(key(11), "https://push.example/stale");
  const second = world({ previous: key(5), existing: stale });
  await enableWebPush({ client: second.client, user: USER, pushManager: second.manager });
  assert.equal(stale.unsubscribed, true);
  assert.deepEqual(second.calls.map((c) => c[0]), ["getWebPushKey", "subscribe", "createPushDevice"]);
  assert.equal(second.calls[2][1].pushDevice.channel.value.endpoint, "https://push.example/new");
});

test("disabling deletes the channel (already gone is fine), then unsubscribes", async () => {
  const subscription = subscriptionWith(key(3), "https://push.example/x");
  const { calls, manager, client } = world({ existing: subscription });
  await disableWebPush({ client, user: USER, pushManager: manager, pushDevice: `${USER}/pushDevices/gone` });
  assert.deepEqual(calls, [["deletePushDevice", `${USER}/pushDevices/gone`]]);
  assert.equal(subscription.unsubscribed, true);
});
