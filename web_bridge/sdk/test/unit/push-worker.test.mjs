// The push service worker without a browser: its handlers with a stand-in registration
// (which, like a browser, replaces a notification of the same tag and answers them all
// for an empty tag filter) and stand-in window clients; the built `caas-push-sw.js` run
// in a VM context on a stand-in worker; the page's side (registering, click messages).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import vm from "node:vm";

import {
  NOTIFICATION_CLICK_MESSAGE,
  enableWebPush,
  handleNotificationClick,
  handlePush,
  notificationUrl,
  onNotificationClick,
  optionsFromUrl,
  parsePushPayload,
  registerPushServiceWorker,
} from "../../dist/index.js";

const SCOPE = "https://chat.example/app/";
const C1 = "apps/demo/conversations/c1";
const C2 = "apps/demo/conversations/c2";

// What services/push/webpush.py's web_push_payload makes (compact JSON, UTF-8).
const message = (conversation, body, extra = {}) => JSON.stringify({
  title: "alice", body, tag: conversation,
  data: { type: "message", conversation, sequence: "7", kind: "text" },
  silent: false, urgent: false, ...extra,
});
const clear = (conversation) => JSON.stringify({
  title: "", body: "", tag: conversation, data: { type: "clear", conversation, sequence: "9" },
  silent: true, urgent: false,
});
const pushData = (text) => ({ text: () => text }); // a PushMessageData

function registration(scope = SCOPE) {
  const shown = [];
  return {
    scope,
    shown,
    async getNotifications(filter = {}) {
      return shown.filter((n) => !filter.tag || n.tag === filter.tag); // "" matches all
    },
    async showNotification(title, options) {
      if (options.renotify && !options.tag) throw new TypeError("renotify needs a tag");
      const tag = options.tag ?? "";
      if (tag) for (const old of shown.filter((n) => n.tag === tag)) old.close();
      const notification = {
        title, ...options, tag, closed: false,
        close() { this.closed = true; shown.splice(shown.indexOf(this), 1); },
      };
      shown.push(notification);
    },
  };
}

function windowClient(url, { focused = false, focusFails = false } = {}) {
  return {
    url, focused, posted: [], focusCalls: 0,
    async focus() { this.focusCalls++; if (focusFails) throw new Error("Not allowed to focus a window."); return this; },
    postMessage(message) { this.posted.push(message); },
  };
}

function clients(windows = []) {
  return {
    windows, opened: [], asked: [],
    async matchAll(options) { this.asked.push(options); return windows; },
    async openWindow(url) { this.opened.push(url); return windowClient(url); },
  };
}

test("a message shows with its title, body, tag and data", async () => {
  const worker = registration();
  const outcome = await handlePush(pushData(message(C1, "hi bob")), worker);
  assert.deepEqual(outcome, { kind: "shown", tag: C1, replaced: false });
  assert.equal(worker.shown.length, 1);
  const [shown] = worker.shown;
  assert.equal(shown.title, "alice");
  assert.equal(shown.body, "hi bob");
  assert.equal(shown.tag, C1);
  assert.deepEqual(shown.data, { type: "message", conversation: C1, sequence: "7", kind: "text" });
  assert.equal(shown.renotify, false);
  assert.equal(shown.requireInteraction, false);
  assert.equal(shown.silent, false);
  assert.equal("icon" in shown, false);
});

test("the same tag replaces the notification shown, and alerts again", async () => {
  const worker = registration();
  await handlePush(message(C1, "first"), worker);
  const outcome = await handlePush(message(C1, "second"), worker);
  assert.deepEqual(outcome, { kind: "shown", tag: C1, replaced: true });
  assert.deepEqual(worker.shown.map((n) => [n.tag, n.body, n.renotify]), [[C1, "second", true]]);
  await handlePush(message(C2, "elsewhere"), worker);
  assert.deepEqual(worker.shown.map((n) => [n.tag, n.renotify]), [[C1, true], [C2, false]]);
});

test("a clear closes the notifications of its tag only, and shows nothing", async () => {
  const worker = registration();
  await handlePush(message(C1, "one"), worker);
  await handlePush(message(C2, "two"), worker);
  const outcome = await handlePush(pushData(clear(C1)), worker);
  assert.deepEqual(outcome, { kind: "cleared", tag: C1, closed: 1 });
  assert.deepEqual(worker.shown.map((n) => [n.tag, n.body]), [[C2, "two"]]);
  // Nothing shown for that tag: clearing again closes nothing.
  assert.deepEqual(await handlePush(clear(C1), worker), { kind: "cleared", tag: C1, closed: 0 });
  // A clear without a tag would match every notification: ignored.
  assert.deepEqual(await handlePush(clear(""), worker), { kind: "ignored", reason: "a clear without a tag" });
  assert.equal(worker.shown.length, 1);
});

test("an urgent call stays until the user acts; icon, badge image and unread count", async () => {
  const worker = registration();
  const counts = [];
  const call = JSON.stringify({
    title: "alice", body: "Incoming video call", tag: `${C1}/calls/k1`,
    data: { type: "call", conversation: C1, call: `${C1}/calls/k1` }, silent: false, urgent: true, badge: 3,
  });
  await handlePush(call, worker, { icon: "/icon.png", badge: "/badge.png", setBadge: async (n) => { counts.push(n); } });
  const [shown] = worker.shown;
  assert.equal(shown.requireInteraction, true);
  assert.equal(shown.icon, "/icon.png");
  assert.equal(shown.badge, "/badge.png");
  assert.deepEqual(counts, [3]);
  // A count the browser cannot show does not stop the notification.
  await handlePush(message(C2, "x", { badge: 4 }), worker, { setBadge: async () => { throw new Error("no badging"); } });
  assert.equal(worker.shown.length, 2);
});

test("malformed payloads are ignored: nothing shown, nothing thrown", async () => {
  const worker = registration();
  const malformed = [
    undefined, null, "", "not json", "[]", "null", "42", '"text"',
    JSON.stringify({ title: 5, body: "x" }),
    JSON.stringify({ title: "t", body: "b", data: { sequence: 7 } }),
    JSON.stringify({ title: "t", body: "b", data: ["a"] }),
    JSON.stringify({ title: "t", body: "b", tag: { a: 1 } }),
    JSON.stringify({ title: "t", body: "b", urgent: "yes" }),
    { text: () => { throw new Error("undecodable"); } },
    pushData("{"),
  ];
  for (const input of malformed) {
    const outcome = await handlePush(input, worker);
    assert.equal(outcome.kind, "ignored", String(input));
  }
  // Well-formed but nothing to say: not shown either.
  assert.deepEqual(await handlePush(JSON.stringify({ silent: true, data: { type: "message" } }), worker),
    { kind: "ignored", reason: "nothing to show" });
  assert.equal(worker.shown.length, 0);
  // Missing fields take their defaults; a bad count is dropped, not fatal.
  assert.deepEqual(parsePushPayload({ title: "t", badge: -1 }),
    { title: "t", body: "", tag: "", data: {}, silent: false, urgent: false });
  await handlePush({ title: "no tag" }, worker);
  assert.deepEqual(worker.shown.map((n) => [n.title, n.tag, n.renotify]), [["no tag", "", false]]);
});

test("a click focuses the app's window and posts it the notification's data", async () => {
  const worker = registration();
  await handlePush(message(C1, "hi"), worker);
  const [notification] = worker.shown;
  const other = windowClient("https://elsewhere.example/app/index.html", { focused: true });
  const outside = windowClient("https://chat.example/other/", { focused: true });
  const app = windowClient(`${SCOPE}index.html?x=1`);
  const all = clients([other, outside, app]);
  const outcome = await handleNotificationClick(notification, all, SCOPE, {}, "reply");
  assert.deepEqual(outcome, { kind: "focused", url: app.url });
  assert.equal(notification.closed, true);
  assert.equal(app.focusCalls, 1);
  assert.deepEqual(app.posted, [{
    type: NOTIFICATION_CLICK_MESSAGE, action: "reply",
    data: { type: "message", conversation: C1, sequence: "7", kind: "text" },
  }]);
  assert.deepEqual(other.posted, []);
  assert.deepEqual(all.opened, []);
  assert.deepEqual(all.asked, [{ type: "window", includeUncontrolled: true }]);
});

test("a click prefers the app's page, focused; a refused focus still posts", async () => {
  const worker = registration();
  await handlePush(message(C2, "hi"), worker);
  const [notification] = worker.shown;
  const help = windowClient(`${SCOPE}help.html`, { focused: true });
  const chat = windowClient(`${SCOPE}chat.html#conversation=x`);
  const focusedChat = windowClient(`${SCOPE}chat.html`, { focused: true, focusFails: true });
  const outcome = await handleNotificationClick(notification, clients([help, chat, focusedChat]), SCOPE, { open: "chat.html" });
  assert.deepEqual(outcome, { kind: "focused", url: focusedChat.url });
  assert.equal(focusedChat.posted.length, 1);
  assert.equal(focusedChat.posted[0].data.conversation, C2);
});

test("a click with no window of the app open opens it, the conversation in the URL", async () => {
  const worker = registration();
  await handlePush(message(C1, "hi"), worker);
  const none = clients([windowClient("https://elsewhere.example/")]);
  const outcome = await handleNotificationClick(worker.shown[0], none, SCOPE);
  const url = `${SCOPE}#conversation=${encodeURIComponent(C1)}`;
  assert.deepEqual(outcome, { kind: "opened", url });
  assert.deepEqual(none.opened, [url]);

  const data = { conversation: C1 };
  assert.equal(notificationUrl(SCOPE, data, { open: "chat.html?lang=fr", conversationIn: "query", conversationParam: "c" }),
    `${SCOPE}chat.html?lang=fr&c=${encodeURIComponent(C1)}`);
  assert.equal(notificationUrl(SCOPE, data, { open: "/chat#tab=inbox" }),
    `https://chat.example/chat#tab=inbox&conversation=${encodeURIComponent(C1)}`);
  assert.equal(notificationUrl(SCOPE, {}, { open: "chat.html" }), `${SCOPE}chat.html`);

  // A browser that refuses to open a window: said, not thrown.
  const refusing = { ...clients(), async openWindow() { throw new TypeError("Not allowed to open a window."); } };
  assert.equal((await handleNotificationClick({ tag: "", data: null, close() {} }, refusing, SCOPE)).kind, "failed");
});

test("options from the worker script's URL", () => {
  assert.deepEqual(optionsFromUrl(`${SCOPE}caas-push-sw.js?open=chat.html&icon=%2Fi.png&badge=%2Fb.png&conversationIn=query&conversationParam=c&x=1`),
    { open: "chat.html", icon: "/i.png", badge: "/b.png", conversationIn: "query", conversationParam: "c" });
  assert.deepEqual(optionsFromUrl(`${SCOPE}sw.js?conversationIn=elsewhere`), {});
});

/** The built worker script, run on a stand-in service worker global. */
async function runBuiltWorker(href, presetOptions) {
  const listeners = {};
  const badges = [];
  const worker = {
    location: { href },
    registration: registration(),
    clients: clients(),
    navigator: { async setAppBadge(n) { badges.push(n); }, async clearAppBadge() { badges.push("cleared"); } },
    addEventListener(type, listener) { (listeners[type] ??= []).push(listener); },
    caasPushOptions: presetOptions,
  };
  const context = vm.createContext({ URL, URLSearchParams, console });
  context.self = worker;
  vm.runInContext(await readFile(new URL("../../dist/caas-push-sw.js", import.meta.url), "utf8"), context);
  const dispatch = async (type, event) => {
    const waited = [];
    for (const listener of listeners[type] ?? []) listener({ ...event, waitUntil: (p) => waited.push(p) });
    assert.equal(waited.length, 1, `${type}: waitUntil once`);
    await Promise.all(waited);
  };
  return { worker, listeners, badges, dispatch };
}

test("the built caas-push-sw.js handles push and notificationclick events", async () => {
  const { worker, listeners, badges, dispatch } = await runBuiltWorker(
    `${SCOPE}caas-push-sw.js?icon=%2Fi.png&conversationIn=query`, { open: "chat.html" });
  assert.deepEqual(Object.keys(listeners).sort(), ["notificationclick", "push"]); // no lifecycle of its own
  assert.deepEqual({ ...worker.caasPush.options }, { icon: "/i.png", conversationIn: "query", open: "chat.html" });
  await dispatch("push", { data: pushData(message(C1, "hello", { badge: 2 })) });
  await dispatch("push", { data: pushData(message(C2, "world", { badge: 0 })) });
  assert.deepEqual(worker.registration.shown.map((n) => [n.tag, n.body, n.icon]), [[C1, "hello", "/i.png"], [C2, "world", "/i.png"]]);
  assert.deepEqual(badges, [2, "cleared"]);
  await dispatch("push", { data: pushData(clear(C1)) });
  await dispatch("push", { data: pushData("garbage") }); // ignored, the event still settles
  await dispatch("push", { data: null });
  assert.deepEqual(worker.registration.shown.map((n) => n.tag), [C2]);
  await dispatch("notificationclick", { notification: worker.registration.shown[0], action: "" });
  assert.deepEqual(worker.clients.opened, [`${SCOPE}chat.html?conversation=${encodeURIComponent(C2)}`]);
  assert.deepEqual(worker.registration.shown, []);
});

test("the built worker handles push messages one at a time, in order", async () => {
  const { worker, listeners } = await runBuiltWorker(`${SCOPE}caas-push-sw.js`);
  // A registration that takes its time to show, and notes what it is asked when.
  const calls = [];
  const slow = worker.registration;
  const showNotification = slow.showNotification.bind(slow);
  const getNotifications = slow.getNotifications.bind(slow);
  slow.showNotification = async (title, options) => {
    calls.push(`show ${options.body}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await showNotification(title, options);
    calls.push(`shown ${options.body}`);
  };
  slow.getNotifications = async (filter) => { calls.push(`get ${filter?.tag}`); return getNotifications(filter); };
  const waited = [];
  for (const [conversation, body] of [[C1, "one"], [C2, "two"], [C1, "three"]]) {
    for (const listener of listeners.push) {
      listener({ data: pushData(message(conversation, body)), waitUntil: (p) => waited.push(p) });
    }
  }
  await Promise.all(waited);
  assert.deepEqual(calls, [
    `get ${C1}`, "show one", "shown one", `get ${C2}`, "show two", "shown two", `get ${C1}`, "show three", "shown three"]);
  assert.deepEqual(slow.shown.map((n) => [n.tag, n.body, n.renotify]), [[C2, "two", false], [C1, "three", true]]);
});

test("the page hears of clicks, and only of CAAS's", () => {
  const container = Object.assign(new EventTarget(), { started: 0, startMessages() { this.started++; } });
  const heard = [];
  const stop = onNotificationClick((click) => heard.push(click), container);
  assert.equal(container.started, 1);
  const post = (data) => container.dispatchEvent(Object.assign(new Event("message"), { data }));
  post({ type: NOTIFICATION_CLICK_MESSAGE, action: "", data: { conversation: C1 } });
  post({ type: "something.else", data: {} });
  post(null);
  post({ type: NOTIFICATION_CLICK_MESSAGE, data: null });
  stop();
  post({ type: NOTIFICATION_CLICK_MESSAGE, action: "", data: { conversation: C2 } });
  assert.deepEqual(heard, [{ type: NOTIFICATION_CLICK_MESSAGE, action: "", data: { conversation: C1 } }]);
});

test("registering the worker waits until it is active", async (t) => {
  const installing = Object.assign(new EventTarget(), { state: "installing" });
  const registered = [];
  const fake = {
    async register(url, options) {
      registered.push([String(url), options]);
      return { active: null, installing, waiting: null, pushManager: {} };
    },
  };
  Object.defineProperty(globalThis.navigator, "serviceWorker", { value: fake, configurable: true });
  t.after(() => delete globalThis.navigator.serviceWorker);
  let done = false;
  const pending = registerPushServiceWorker("/sw.js", "/").then((r) => { done = true; return r; });
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(done, false);
  installing.state = "activated";
  installing.dispatchEvent(new Event("statechange"));
  assert.equal((await pending).installing, installing);
  assert.deepEqual(registered, [["/sw.js", { scope: "/" }]]);

  const failing = Object.assign(new EventTarget(), { state: "installing" });
  fake.register = async () => ({ active: null, installing: failing, waiting: null });
  const rejected = assert.rejects(registerPushServiceWorker("/sw.js"), /failed to install/);
  await new Promise((resolve) => setTimeout(resolve, 10));
  failing.state = "redundant";
  failing.dispatchEvent(new Event("statechange"));
  await rejected;

  const active = { active: {}, installing: null, waiting: null };
  fake.register = async (url, options) => { registered.push([url, options]); return active; };
  assert.equal(await registerPushServiceWorker("/other.js"), active);
  assert.deepEqual(registered.at(-1), ["/other.js", undefined]);
});

test("no service workers: registering says so", async () => {
  assert.equal(globalThis.navigator?.serviceWorker, undefined);
  await assert.rejects(registerPushServiceWorker("/sw.js"), /no service workers/);
});

test("enableWebPush subscribes through the registration's push manager", async () => {
  const key = Uint8Array.from({ length: 65 }, (_, i) => (i === 0 ? 4 : i));
  const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
  const pushManager = {
    async getSubscription() { return null; },
    async subscribe(options) {
      return {
        options: { applicationServerKey: options.applicationServerKey.buffer.slice(0) },
        toJSON: () => ({ endpoint: "https://push.example/1", keys: { p256dh: b64url(key), auth: b64url(new Uint8Array(16)) } }),
        async unsubscribe() { return true; },
      };
    },
  };
  const push = {
    async getWebPushKey() { return { webPushKey: { publicKey: key, previousPublicKey: new Uint8Array() } }; },
    async createPushDevice(request) { return { pushDevice: { name: "apps/demo/users/alice/pushDevices/p1", ...request.pushDevice } }; },
  };
  const device = await enableWebPush({ client: { push }, user: "apps/demo/users/alice", registration: { pushManager } });
  assert.equal(device.channel.value.endpoint, "https://push.example/1");
  await assert.rejects(enableWebPush({ client: { push }, user: "apps/demo/users/alice" }), /registration \(or its pushManager\)/);
});
