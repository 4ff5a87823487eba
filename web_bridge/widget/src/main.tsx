/**
 * The widget's module (caas-widget-main.js), loaded by the tag's small loader
 * (loader.ts): the launcher with its unread badge and the signed-in client. The panel's
 * components load when the panel first opens (panel.tsx).
 *
 * Everything lives in a Shadow DOM under one element of its own, so the page's CSS
 * cannot reach in and the widget's cannot leak out. `window.CaasWidget` is the JS API:
 * `init(options)` (with `data-manual` on the tag, the widget waits for it), `open()`,
 * `close()`, `toggle()`, `on("unread", fn)`, `destroy()`.
 */
import { createRoot, type Root } from "react-dom/client";

import { complete, type WidgetOptions } from "./config.js";
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
    style.textContent = widgetCss;
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
    CaasWidget?: unknown;
  }
}

/** A call made on the loader's stand-in before this module arrived. */
export type QueuedCall = [keyof CaasWidget, unknown[]];

/**
 * Called by the loader (caas-widget.js): the real API replaces its stand-in, the calls
 * made meanwhile run, and the widget starts with the tag's options unless the tag says
 * `data-manual`.
 */
export function start(given: Partial<WidgetOptions> | undefined, queued: QueuedCall[]): void {
  const widget = new CaasWidget();
  window.CaasWidget = widget;
  for (const [method, args] of queued) (widget[method] as (...values: unknown[]) => unknown)(...args);
  if (given) {
    try {
      widget.init(given);
    } catch (error) {
      console.error(error);
    }
  }
}
