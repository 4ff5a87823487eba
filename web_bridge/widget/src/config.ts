/**
 * The widget's settings: from the script tag's data attributes, or from
 * `CaasWidget.init({...})`. Everything but `app` has a default.
 */

/** A CAAS session for the visitor, as the host page's backend hands it over. */
export interface WidgetSession {
  /** `apps/{app}/users/{user}`. */
  user: string;
  accessToken: string;
  refreshToken: string;
  /** Milliseconds since the epoch (0 if unknown). */
  accessTokenExpiresAt: number;
  /** The conversation to show (e.g. the visitor's support conversation). */
  conversation?: string;
}

export interface WidgetOptions {
  /** `apps/{app}` (or just the app id). */
  app: string;
  /** Where CAAS (Envoy) is reached; default: the origin the widget's script came from. */
  api: string;
  /** The host backend's endpoint that answers a WidgetSession (POST, with cookies). */
  tokenUrl?: string;
  /** Or a function that answers one (called again when the session has ended). */
  tokenProvider?: () => Promise<WidgetSession>;
  /** Chat as a guest when there is no token endpoint (the app must allow guests). */
  guest: boolean;
  /** The guest's display name. */
  guestName?: string;
  /** Show this conversation instead of the visitor's inbox. */
  conversation?: string;
  title: string;
  /** A line under the title (e.g. "We reply within minutes"). */
  greeting?: string;
  /** The accent colour (launcher, own messages, buttons): any CSS colour. */
  color?: string;
  position: "bottom-right" | "bottom-left";
  /** An image for the launcher and the panel's header. */
  avatar?: string;
  /** `en`, `ar`, … (default: the page's language, if the kit has it). */
  locale?: string;
  theme: "light" | "dark" | "auto";
  /** Open the panel at once. */
  open: boolean;
}

const bool = (value: string | undefined) => value !== undefined && value !== "false" && value !== "0";

/** The options a script tag gives (`data-app`, `data-token-url`, …). */
export function fromScript(script: HTMLScriptElement): Partial<WidgetOptions> {
  const data = script.dataset;
  const given: Partial<WidgetOptions> = {
    app: data.app,
    api: data.api ?? (script.src ? new URL(script.src, document.baseURI).origin : undefined),
    tokenUrl: data.tokenUrl,
    guest: data.guest !== undefined ? bool(data.guest) : undefined,
    guestName: data.guestName,
    conversation: data.conversation,
    title: data.title,
    greeting: data.greeting,
    color: data.color,
    position: data.position === "bottom-left" ? "bottom-left" : data.position ? "bottom-right" : undefined,
    avatar: data.avatar,
    locale: data.locale,
    theme: data.theme === "dark" || data.theme === "light" || data.theme === "auto" ? data.theme : undefined,
    open: data.open !== undefined ? bool(data.open) : undefined,
  };
  return Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined)) as Partial<WidgetOptions>;
}

/** Options with their defaults; throws on what cannot work. */
export function complete(given: Partial<WidgetOptions>): WidgetOptions {
  if (!given.app) throw new Error("CaasWidget: data-app (or init({ app })) is required");
  const app = given.app.startsWith("apps/") ? given.app : `apps/${given.app}`;
  if (!given.api) throw new Error("CaasWidget: data-api (or init({ api })) is required");
  if (!given.tokenUrl && !given.tokenProvider && !given.guest) {
    throw new Error("CaasWidget: give data-token-url, a tokenProvider, or data-guest");
  }
  return {
    position: "bottom-right",
    theme: "light",
    open: false,
    guest: false,
    title: "",
    ...given,
    app,
    api: given.api.replace(/\/+$/, ""),
  };
}
