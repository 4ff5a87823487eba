/**
 * CAAS's push service worker: shows CAAS's Web Push notifications and handles clicks on
 * them (`service-worker.ts`). The SDK's build bundles it into one classic script,
 * `dist/caas-push-sw.js`, to serve from the app's origin and either
 *
 * - register as the app's service worker, configured by its URL's query:
 *   `navigator.serviceWorker.register("/caas-push-sw.js?open=/chat")`; or
 * - load from the app's own service worker, configured by `self.caasPushOptions` set
 *   before: `self.caasPushOptions = { open: "/chat" }; importScripts("/caas-push-sw.js");`.
 *
 * Either way it also sets `self.caasPush`: the options in force and the functions.
 * It adds no `install`/`activate`/`fetch` handlers: the app's lifecycle is the app's.
 */
import {
  handleNotificationClick,
  handlePush,
  installPushHandlers,
  optionsFromUrl,
  parsePushPayload,
  type PushWorkerOptions,
  type PushWorkerScope,
} from "./service-worker.js";

const worker = self as unknown as PushWorkerScope & {
  location: { href: string };
  caasPushOptions?: PushWorkerOptions;
  caasPush?: unknown;
};
const options: PushWorkerOptions = { ...optionsFromUrl(worker.location.href), ...worker.caasPushOptions };
installPushHandlers(worker, options);
worker.caasPush = { options, handlePush, handleNotificationClick, parsePushPayload };
