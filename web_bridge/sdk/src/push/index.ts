/**
 * Web Push registration: the browser's push subscription, made with the app's VAPID key
 * and registered with CAAS as the user's push channel (`PushService`); the service
 * worker that shows the notifications (`registerPushServiceWorker`, the functions of
 * `service-worker.ts`, built into `caas-push-sw.js`), and the app's side of a click on
 * one (`onNotificationClick`).
 */
import type { Client } from "@connectrpc/connect";

import type { PushService } from "../gen/caas/push/v1/push_service_pb.js";
import type { PushDevice } from "../gen/caas/push/v1/resources_pb.js";
import { NOTIFICATION_CLICK_MESSAGE, type NotificationClickMessage } from "./service-worker.js";

export * from "./service-worker.js";

/** What a browser's `PushSubscription.toJSON()` gives. */
export interface PushSubscriptionJson {
  endpoint?: string;
  keys?: Record<string, string>;
}

/** Enough of `ServiceWorkerRegistration.pushManager` (injectable for tests). */
export interface PushManagerLike {
  getSubscription(): Promise<SubscriptionLike | null>;
  subscribe(options: { userVisibleOnly: boolean; applicationServerKey: Uint8Array<ArrayBuffer> }): Promise<SubscriptionLike>;
}

export interface SubscriptionLike {
  readonly options?: { applicationServerKey?: ArrayBuffer | null };
  toJSON(): PushSubscriptionJson;
  unsubscribe(): Promise<boolean>;
}

export interface WebPushOptions {
  /** The PushService client (`createCaasClient(...).push`). */
  client: { push: Client<typeof PushService> };
  /** The signed-in user: `apps/{app}/users/{user}`. */
  user: string;
  /** The service worker registration (`registerPushServiceWorker`'s), whose push
   * manager subscribes. */
  registration?: { readonly pushManager: PushManagerLike };
  /** Or its push manager itself (either this or `registration`). */
  pushManager?: PushManagerLike;
  /** The device's Subscribe `device_id` (its live stream then stands for it). */
  deviceId?: string;
  /** The language of its notifications (BCP 47). */
  locale?: string;
}

/** base64url (no padding) → bytes: how `toJSON()` gives the subscription's keys. */
export function fromBase64Url(text: string): Uint8Array {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function same(a: Uint8Array, b: ArrayBuffer | null | undefined): boolean {
  if (!b) return false;
  const other = new Uint8Array(b);
  return a.length === other.length && a.every((byte, i) => byte === other[i]);
}

function appOf(user: string): string {
  const at = user.indexOf("/users/");
  if (at < 0) throw new Error(`not a user name: ${user}`);
  return user.slice(0, at);
}

/**
 * Subscribe this browser to push with the app's key and register the subscription as
 * the user's push channel; call it at each start (subscriptions change). A subscription
 * made with another key (the app rotated it twice since) is replaced. Answers the
 * registered channel. Throws if the user refuses notifications (`subscribe` rejects).
 */
export async function enableWebPush(options: WebPushOptions): Promise<PushDevice> {
  const { client, user } = options;
  const pushManager = pushManagerOf(options);
  const key = (await client.push.getWebPushKey({ name: `${appOf(user)}/webPushKey` })).webPushKey;
  if (!key) throw new Error("no Web Push key in the answer");
  const known = [key.publicKey, key.previousPublicKey].filter((k) => k.length > 0);
  let subscription = await pushManager.getSubscription();
  const subscribedWith = subscription?.options?.applicationServerKey;
  let serverKey = known.find((k) => same(k, subscribedWith));
  if (subscription && !serverKey) {
    await subscription.unsubscribe(); // made with a key the app no longer has
    subscription = null;
  }
  if (!subscription) {
    // A copy: a BufferSource must not be backed by a SharedArrayBuffer.
    subscription = await pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: new Uint8Array(key.publicKey) });
    serverKey = key.publicKey;
  }
  const json = subscription.toJSON();
  if (!json.endpoint || !json.keys?.p256dh || !json.keys?.auth) throw new Error("the subscription has no endpoint or keys");
  const response = await client.push.createPushDevice({
    parent: user,
    pushDevice: {
      channel: {
        case: "webPush",
        value: {
          endpoint: json.endpoint,
          p256dh: fromBase64Url(json.keys.p256dh),
          auth: fromBase64Url(json.keys.auth),
          applicationServerKey: serverKey ?? key.publicKey,
        },
      },
      deviceId: options.deviceId ?? "",
      locale: options.locale ?? "",
    },
  });
  if (!response.pushDevice) throw new Error("no push device in the answer");
  return response.pushDevice;
}

/** Stop push to this browser: delete the registered channel, then unsubscribe. */
export async function disableWebPush(options: WebPushOptions & { pushDevice: string }): Promise<void> {
  const pushManager = pushManagerOf(options);
  await options.client.push.deletePushDevice({ name: options.pushDevice }).catch((error: unknown) => {
    if ((error as { code?: number }).code !== 5) throw error; // NOT_FOUND: already gone
  });
  await (await pushManager.getSubscription())?.unsubscribe();
}

function pushManagerOf(options: WebPushOptions): PushManagerLike {
  const manager = options.pushManager ?? options.registration?.pushManager;
  if (!manager) throw new Error("Web Push: pass the service worker's registration (or its pushManager)");
  return manager;
}

/** Enough of a `ServiceWorkerRegistration` to wait for its worker to be active. */
interface RegistrationLike {
  readonly active: object | null;
  readonly installing: ServiceWorker | null;
  readonly waiting: ServiceWorker | null;
}

/** Once the registration has an active worker (push subscribes only then). */
function activated<T extends RegistrationLike>(registration: T): Promise<T> {
  const worker = registration.installing ?? registration.waiting;
  if (registration.active || !worker) return Promise.resolve(registration);
  return new Promise((resolve, reject) => {
    const changed = () => {
      if (worker.state === "activated") resolve(registration);
      else if (worker.state === "redundant") reject(new Error("the service worker failed to install"));
      else return;
      worker.removeEventListener("statechange", changed);
    };
    worker.addEventListener("statechange", changed);
    changed(); // it may have moved on already
  });
}

/**
 * Register the service worker that shows CAAS's notifications (the SDK's
 * `caas-push-sw.js`, or the app's own that loads it) and answer its registration once
 * its worker is active, for `enableWebPush`. `scope`: the pages it serves, by default
 * the directory of `url` (and never above it unless the server sends
 * `Service-Worker-Allowed`). Throws where there are no service workers: an insecure
 * origin (http other than localhost), or a browser without them.
 */
export async function registerPushServiceWorker(url: string | URL, scope?: string): Promise<ServiceWorkerRegistration> {
  const container = globalThis.navigator?.serviceWorker;
  if (!container) throw new Error("this browser has no service workers here (they need https or localhost)");
  return activated(await container.register(url, scope === undefined ? undefined : { scope }));
}

/**
 * Call `handler` with what each click on one of CAAS's notifications says (its `data`:
 * `conversation`, `type`, …, and the `action` clicked), when the service worker
 * focuses this window. Answers the function that stops listening. A window the click
 * opens finds the conversation in its URL instead (`notificationUrl`).
 */
export function onNotificationClick(handler: (click: NotificationClickMessage) => void,
  container: (Pick<ServiceWorkerContainer, "addEventListener" | "removeEventListener"> & { startMessages?(): void })
    | undefined = globalThis.navigator?.serviceWorker): () => void {
  if (!container) return () => undefined;
  const listener = (event: Event) => {
    const message = (event as MessageEvent).data as Partial<NotificationClickMessage> | null;
    if (message?.type !== NOTIFICATION_CLICK_MESSAGE || typeof message.data !== "object" || !message.data) return;
    handler({ type: NOTIFICATION_CLICK_MESSAGE, action: message.action ?? "", data: message.data });
  };
  container.addEventListener("message", listener);
  // A listener alone does not start delivery (until the document has loaded): start it.
  container.startMessages?.();
  return () => container.removeEventListener("message", listener);
}
