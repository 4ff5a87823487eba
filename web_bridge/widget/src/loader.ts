/**
 * caas-widget.js: one script tag puts a launcher and a chat panel on any page.
 *
 *   <script async src="https://chat.example.com/widget/caas-widget.js"
 *           data-app="acme" data-token-url="/caas/session"></script>
 *
 * This loader is all the tag loads at first (a few hundred bytes): it reads the tag's
 * options and, once the page is done with its own work, imports the widget's module
 * (caas-widget-main.js, next to it) which shows the launcher; the chat panel's code
 * comes when the panel first opens. Until the module is there, `window.CaasWidget`
 * queues what the page calls on it.
 */
import { fromScript } from "./config.js";
import type { QueuedCall } from "./main.js";

const script = document.currentScript as HTMLScriptElement | null;

if (!window.CaasWidget) {
  const queued: QueuedCall[] = [];
  const queue = (method: QueuedCall[0]) => (...args: unknown[]) => {
    queued.push([method, args]);
  };
  window.CaasWidget = {
    init: queue("init"),
    open: queue("open"),
    close: queue("close"),
    toggle: queue("toggle"),
    destroy: queue("destroy"),
    on: (...args: unknown[]) => {
      queued.push(["on", args]);
      return () => undefined;
    },
  };
  const given = script && !("manual" in script.dataset) ? fromScript(script) : undefined;
  const module = new URL("caas-widget-main.js", script?.src || document.baseURI).href;
  const load = () => {
    import(/* @vite-ignore */ module)
      .then((widget: { start: typeof import("./main.js").start }) => widget.start(given, queued))
      .catch((error: unknown) => console.error("CaasWidget: could not load", error));
  };
  // After the page's own work: the widget never delays the host page.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load, { once: true });
  else if ("requestIdleCallback" in window) window.requestIdleCallback(load, { timeout: 2000 });
  else setTimeout(load, 0);
}
