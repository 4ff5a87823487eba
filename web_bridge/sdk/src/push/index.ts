/**
 * Web Push registration: the browser's push subscription, made with the app's VAPID key
 * and registered with CAAS as the user's push channel (`PushService`). The service
 * worker that shows the notifications is the app's (a `push` event handler); this
 * module only subscribes and registers.
 */
import type { Client } from "@connectrpc/connect";

import type { PushService } from "../gen/caas/push/v1/push_service_pb.js";
import type { PushDevice } from "../gen/caas/push/v1/resources_pb.js";

/** What a browser's `PushSubscription.toJSON()` gives. */
export interface PushSubscriptionJson {
  endpoint?: string;
  keys?: Record<string, string>;
}

/** Enough of `ServiceWorkerRegistration.pushManager` (injectable for tests). */
export interface PushManagerLike {
  getSubscription(): Promise<SubscriptionLike | null>;
  subscribe(options: { userVisibleOnly: boolean; applicationServerKey: Uint8Array }): Promise<SubscriptionLike>;
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
  /** The service worker registration's push manager. */
  pushManager: PushManagerLike;
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
  const { client, user, pushManager } = options;
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
    subscription = await pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key.publicKey });
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
  await options.client.push.deletePushDevice({ name: options.pushDevice }).catch((error: unknown) => {
    if ((error as { code?: number }).code !== 5) throw error; // NOT_FOUND: already gone
  });
  await (await options.pushManager.getSubscription())?.unsubscribe();
}
