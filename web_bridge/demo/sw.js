// The demo page's service worker, at the demo's root so that its scope (this file's
// directory) covers index.html. It is how an app with a service worker of its own uses
// the SDK's: options first, then the SDK's worker (`npm run build:demo` puts it in
// dist/), which shows CAAS's notifications and handles clicks on them (a click with no
// demo tab open opens index.html#conversation=…). No fetch handler: pages load from the
// network as they would without it. It takes over open pages at once (claim), so that
// the page that registered it is controlled without a reload.
self.caasPushOptions = { open: "index.html" };
importScripts("dist/caas-push-sw.js");

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
