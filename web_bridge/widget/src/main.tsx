/**
 * caas-widget.js: one script tag puts a launcher and a chat panel on any page.
 *
 *   <script async src="https://chat.example.com/widget/caas-widget.js"
 *           data-app="acme" data-token-url="/caas/session"></script>
 *
 * Everything lives in a Shadow DOM under one element of its own, so the page's CSS
 * cannot reach in and the widget's cannot leak out. `window.CaasWidget` is the JS API:
 * `init(options)` (with `data-manual` on the tag, the widget waits for it), `open()`,
 * `close()`, `toggle()`, `on("unread", fn)`, `destroy()`.
 */
import { createRoot, type Root } from "react-dom/client";

import kitCss from "@caas/react/styles.css";

import { complete, fromScript, type WidgetOptions } from "./config.js";
import { Widget, type WidgetControl } from "./widget.js";
import widgetCss from "./widget.css";

type Listener = (value: number) => void;

class CaasWidget {
  private root: Root | undefined;
  private host: HTMLElement | undefined;
  private control: WidgetControl | undefined;
  private readonly unread = new Set<Listener>();
  private wanted: boolean | undefined;

  /** Show the widget with these options (once; `destroy()` first to start again). */
  init(given: Partial<WidgetOptions>): void {
    if (this.root) return;
    const options = complete(given);
    const host = document.createElement("caas-chat-widget");
    host.setAttribute("data-caas-widget", "");
    const shadow = host.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = `${kitCss}\n${widgetCss}`;
    const mount = document.createElement("div");
    mount.className = "caas-widget-mount";
    if (options.color) mount.style.setProperty("--caas-accent", options.color);
    shadow.append(style, mount);
    document.body.append(host);
    this.host = host;
    this.root = createRoot(mount);
    this.root.render(
      <Widget
        options={options}
        initiallyOpen={this.wanted ?? options.open}
        onReady={(control) => {
          this.control = control;
        }}
        onUnread={(count) => {
          for (const listener of this.unread) listener(count);
        }}
      />,
    );
  }

  open(): void {
    this.wanted = true;
    this.control?.setOpen(true);
  }

  close(): void {
    this.wanted = false;
    this.control?.setOpen(false);
  }

  toggle(): void {
    if (this.control) this.control.setOpen(!this.control.open());
    else this.wanted = !this.wanted;
  }

  /** Hear of the visitor's unread count (the launcher's badge). */
  on(event: "unread", listener: Listener): () => void {
    if (event !== "unread") throw new Error(`CaasWidget: no event ${String(event)}`);
    this.unread.add(listener);
    return () => {
      this.unread.delete(listener);
    };
  }

  /** Remove the widget from the page (its stream closes). */
  destroy(): void {
    this.root?.unmount();
    this.host?.remove();
    this.root = undefined;
    this.host = undefined;
    this.control = undefined;
  }
}

declare global {
  interface Window {
    CaasWidget?: CaasWidget;
  }
}

const script = document.currentScript as HTMLScriptElement | null;
if (!window.CaasWidget) {
  const widget = new CaasWidget();
  window.CaasWidget = widget;
  if (script && !("manual" in script.dataset)) {
    const given = fromScript(script);
    // After the page's own work: the widget never delays the host page.
    const start = () => {
      try {
        widget.init(given);
      } catch (error) {
        console.error(error);
      }
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start, { once: true });
    else if ("requestIdleCallback" in window) window.requestIdleCallback(start, { timeout: 2000 });
    else setTimeout(start, 0);
  }
}
