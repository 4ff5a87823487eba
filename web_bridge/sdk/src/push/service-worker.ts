/**
 * What a service worker does with CAAS's Web Push messages, as plain functions (no
 * global state, no side effect on import) so that an app's own service worker can use
 * them and tests can call them with stand-ins:
 *
 * - `handlePush(data, registration, options)`: the payload CAAS sends
 *   (`services/push/webpush.py`, `web_push_payload`) shown as a notification — its
 *   `tag` (the conversation's collapse key) replacing the one shown for it, with
 *   `renotify` so the replacement alerts again; urgent ones (call rings) stay until the
 *   user acts (`requireInteraction`). A `clear` (the user read the conversation on
 *   another device) closes the notifications of its tag and shows nothing.
 *   Anything else — not JSON, not an object, fields of the wrong type — is ignored.
 * - `handleNotificationClick(notification, clients, scope, options)`: focus a window
 *   of the app and post it `{ type: "caas.notificationclick", action, data }`, or open
 *   the app with the conversation in the URL's fragment (or query).
 * - `installPushHandlers(worker, options)`: both, on a service worker's `push` and
 *   `notificationclick` events. `push/worker.ts` (built to `caas-push-sw.js`) calls it.
 */

/** The message a clicked notification posts to the app's window. */
export const NOTIFICATION_CLICK_MESSAGE = "caas.notificationclick";

/** The decrypted payload of a CAAS Web Push message (`event.data.json()`). */
export interface CaasPushPayload {
  title: string;
  body: string;
  /** The collapse key: a notification with the same tag replaces the one shown. */
  tag: string;
  /** Strings only: `type` (`message`, `clear`, `call`), `conversation`
   * (`apps/{app}/conversations/{id}`), `sequence`, … */
  data: Record<string, string>;
  /** No alert: with `data.type` `clear`, "read elsewhere: close what is shown". */
  silent: boolean;
  /** A call ring: the notification stays until the user acts on it. */
  urgent: boolean;
  /** The app's unread count, when the server knows it (the app icon's badge). */
  badge?: number;
}

/** How the worker shows notifications and where a click goes. */
export interface PushWorkerOptions {
  /** The page a click opens when no window of the app is open, relative to the
   * service worker's scope (default: the scope itself). */
  open?: string;
  /** Where the opened page's URL carries the conversation: the fragment (default,
   * never sent to a server) or the query string. */
  conversationIn?: "hash" | "query";
  /** The name of that URL parameter (default `conversation`). */
  conversationParam?: string;
  /** The notifications' icon (an image URL). */
  icon?: string;
  /** The small monochrome image shown where there is no room for the icon (Android's
   * status bar), an image URL. Not the payload's `badge`, which is a count. */
  badge?: string;
}

/** What `Notification.close()` and the fields read back need of a shown notification. */
export interface NotificationLike {
  readonly tag: string;
  readonly data?: unknown;
  close(): void;
}

/** `showNotification`'s options this worker uses (a subset of the DOM's, which
 * TypeScript's lib lacks some of: `renotify`). */
export interface CaasNotificationOptions {
  body: string;
  tag?: string;
  data: Record<string, string>;
  silent: boolean;
  renotify: boolean;
  requireInteraction: boolean;
  icon?: string;
  badge?: string;
}

/** Enough of a `ServiceWorkerRegistration` to show and find notifications. */
export interface NotificationRegistrationLike {
  readonly scope: string;
  getNotifications(filter?: { tag?: string }): Promise<readonly NotificationLike[]>;
  showNotification(title: string, options: CaasNotificationOptions): Promise<void>;
}

/** Enough of a `WindowClient`. */
export interface WindowClientLike {
  readonly url: string;
  readonly focused?: boolean;
  focus(): Promise<unknown>;
  postMessage(message: unknown): void;
}

/** Enough of a service worker's `clients`. */
export interface ClientsLike {
  matchAll(options: { type: "window"; includeUncontrolled: boolean }): Promise<readonly WindowClientLike[]>;
  openWindow(url: string): Promise<WindowClientLike | null>;
}

/** What `handlePush` did. */
export type PushOutcome =
  | { kind: "shown"; tag: string; replaced: boolean }
  | { kind: "cleared"; tag: string; closed: number }
  | { kind: "ignored"; reason: string };

/** What `handleNotificationClick` did. */
export type ClickOutcome =
  | { kind: "focused"; url: string }
  | { kind: "opened"; url: string }
  | { kind: "failed"; url: string; error: unknown };

/** What the app's window gets when a notification is clicked. */
export interface NotificationClickMessage {
  type: typeof NOTIFICATION_CLICK_MESSAGE;
  /** The clicked action's id, "" for the notification itself. */
  action: string;
  data: Record<string, string>;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The string fields of `value` (a notification's `data`), nothing else. */
function strings(value: unknown): Record<string, string> {
  const result: Record<string, string> = {};
  if (!isObject(value)) return result;
  for (const [key, field] of Object.entries(value)) if (typeof field === "string") result[key] = field;
  return result;
}

/**
 * A CAAS payload from what a push event carries: its `PushMessageData` (`event.data`,
 * read as text), a JSON string, or the parsed object. `undefined` when it is none:
 * not JSON, not an object, or a field of the wrong type (`data` must map to strings).
 */
export function parsePushPayload(input: unknown): CaasPushPayload | undefined {
  let value = input;
  try {
    if (isObject(value) && typeof value.text === "function") value = (value.text as () => unknown)();
    if (typeof value === "string") value = JSON.parse(value) as unknown;
  } catch {
    return undefined;
  }
  if (!isObject(value)) return undefined;
  const text = (field: string): string | undefined => {
    const got = value[field];
    return got === undefined ? "" : typeof got === "string" ? got : undefined;
  };
  const flag = (field: string): boolean | undefined => {
    const got = value[field];
    return got === undefined ? false : typeof got === "boolean" ? got : undefined;
  };
  const [title, body, tag] = [text("title"), text("body"), text("tag")];
  const [silent, urgent] = [flag("silent"), flag("urgent")];
  const data = value.data ?? {};
  if (title === undefined || body === undefined || tag === undefined || silent === undefined
    || urgent === undefined || !isObject(data) || Object.values(data).some((v) => typeof v !== "string")) {
    return undefined;
  }
  const payload: CaasPushPayload = { title, body, tag, data: data as Record<string, string>, silent, urgent };
  const badge = value.badge;
  if (typeof badge === "number" && Number.isInteger(badge) && badge >= 0) payload.badge = badge;
  return payload;
}

/** The notifications shown with `tag` (never "": that filter would match them all). */
async function shownWith(registration: NotificationRegistrationLike, tag: string): Promise<NotificationLike[]> {
  if (!tag) return [];
  return (await registration.getNotifications({ tag })).filter((notification) => notification.tag === tag);
}

/**
 * Show (or clear) what one push message says; see the module's comment. `setBadge`,
 * when given, gets the payload's unread count (`navigator.setAppBadge`).
 */
export async function handlePush(input: unknown, registration: NotificationRegistrationLike,
  options: PushWorkerOptions & { setBadge?: (count: number) => Promise<void> } = {}): Promise<PushOutcome> {
  const payload = parsePushPayload(input);
  if (!payload) return { kind: "ignored", reason: "not a CAAS push payload" };
  if (payload.badge !== undefined && options.setBadge) {
    await options.setBadge(payload.badge).catch(() => undefined); // a nicety: never fatal
  }
  const { tag } = payload;
  if (payload.data.type === "clear") {
    if (!tag) return { kind: "ignored", reason: "a clear without a tag" };
    const shown = await shownWith(registration, tag);
    for (const notification of shown) notification.close();
    return { kind: "cleared", tag, closed: shown.length };
  }
  if (!payload.title && !payload.body) return { kind: "ignored", reason: "nothing to show" };
  const replaced = (await shownWith(registration, tag)).length > 0;
  const shown: CaasNotificationOptions = {
    body: payload.body,
    data: payload.data,
    silent: payload.silent,
    renotify: replaced, // a replacement alerts again (it needs a tag: it has one)
    requireInteraction: payload.urgent,
  };
  if (tag) shown.tag = tag;
  if (options.icon) shown.icon = options.icon;
  if (options.badge) shown.badge = options.badge;
  await registration.showNotification(payload.title, shown);
  return { kind: "shown", tag, replaced };
}

/** The page a click opens, with the conversation in its fragment or query. */
export function notificationUrl(scope: string, data: Record<string, string>,
  options: PushWorkerOptions = {}): string {
  const url = new URL(options.open ?? "", scope);
  const conversation = data.conversation;
  if (conversation) {
    const name = options.conversationParam ?? "conversation";
    if (options.conversationIn === "query") {
      url.searchParams.set(name, conversation);
    } else {
      const fragment = new URLSearchParams(url.hash.slice(1));
      fragment.set(name, conversation);
      url.hash = fragment.toString();
    }
  }
  return url.href;
}

const page = (url: string) => url.split(/[?#]/, 1)[0];

/**
 * A click on one of the app's notifications: it closes; a window of the app (within
 * `scope`; the page `options.open` names first, a focused one first) is focused and
 * gets a `NotificationClickMessage`; with none, the app opens in a new window, at
 * `notificationUrl(...)` (the conversation in the URL: the page reads it when it
 * starts, as the message could come before it listens).
 */
export async function handleNotificationClick(notification: NotificationLike, clients: ClientsLike,
  scope: string, options: PushWorkerOptions = {}, action = ""): Promise<ClickOutcome> {
  notification.close();
  const data = strings(notification.data);
  const target = notificationUrl(scope, data, options);
  const windows = (await clients.matchAll({ type: "window", includeUncontrolled: true }))
    .filter((client) => client.url.startsWith(scope));
  const samePage = (client: WindowClientLike) => page(client.url) === page(target);
  const client = windows.find((c) => samePage(c) && c.focused) ?? windows.find(samePage)
    ?? windows.find((c) => c.focused) ?? windows[0];
  if (client) {
    // Browsers let a worker focus a window only while it handles a click.
    await client.focus().catch(() => undefined);
    const message: NotificationClickMessage = { type: NOTIFICATION_CLICK_MESSAGE, action, data };
    client.postMessage(message);
    return { kind: "focused", url: client.url };
  }
  try {
    await clients.openWindow(target);
    return { kind: "opened", url: target };
  } catch (error) {
    return { kind: "failed", url: target, error };
  }
}

interface ExtendableEventLike {
  waitUntil(promise: Promise<unknown>): void;
}

/** Enough of a `ServiceWorkerGlobalScope` to install the handlers on. */
export interface PushWorkerScope {
  readonly registration: NotificationRegistrationLike;
  readonly clients: ClientsLike;
  readonly navigator?: { setAppBadge?(count?: number): Promise<void>; clearAppBadge?(): Promise<void> };
  addEventListener(type: "push", listener: (event: ExtendableEventLike & { readonly data: unknown }) => void): void;
  addEventListener(type: "notificationclick",
    listener: (event: ExtendableEventLike & { readonly notification: NotificationLike; readonly action?: string }) => void): void;
}

/**
 * Handle `push` and `notificationclick` in `worker` (a service worker's `self`).
 *
 * Push messages are handled one at a time, in the order they came: in Chromium,
 * `getNotifications()` forgets a notification that is still being shown when it is
 * called (it keeps only what the screen reports, and what is newer than the call), so a
 * second message looking for its tag while the first one's notification goes up could
 * lose that one from the list — a later `clear` would then not find it.
 */
export function installPushHandlers(worker: PushWorkerScope, options: PushWorkerOptions = {}): void {
  const navigator = worker.navigator;
  const setBadge = navigator?.setAppBadge
    ? (count: number) => (count > 0 || !navigator.clearAppBadge ? navigator.setAppBadge!(count) : navigator.clearAppBadge())
    : undefined;
  let previous: Promise<unknown> = Promise.resolve();
  worker.addEventListener("push", (event) => {
    const payload = parsePushPayload(event.data) ?? null; // read while dispatched
    const handled = previous.then(() => handlePush(payload, worker.registration, { ...options, setBadge }))
      .catch((error: unknown) => console.warn("CAAS push:", error));
    previous = handled;
    event.waitUntil(handled);
  });
  worker.addEventListener("notificationclick", (event) => {
    event.waitUntil(handleNotificationClick(event.notification, worker.clients, worker.registration.scope,
      options, event.action ?? "").catch((error: unknown) => console.warn("CAAS notification click:", error)));
  });
}

/**
 * Options from the worker script's URL, so that registering the built worker
 * configures it: `caas-push-sw.js?open=chat.html&icon=/icon.png&conversationIn=query`
 * (`open`, `icon`, `badge`, `conversationIn`, `conversationParam`).
 */
export function optionsFromUrl(href: string): PushWorkerOptions {
  const query = new URL(href).searchParams;
  const options: PushWorkerOptions = {};
  for (const key of ["open", "icon", "badge", "conversationParam"] as const) {
    const value = query.get(key);
    if (value) options[key] = value;
  }
  const where = query.get("conversationIn");
  if (where === "hash" || where === "query") options.conversationIn = where;
  return options;
}
