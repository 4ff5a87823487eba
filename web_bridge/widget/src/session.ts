/**
 * Who the visitor is: a session from the host page's backend (its token endpoint, or
 * the page's own provider), or a guest session the widget asks CAAS for, kept in the
 * browser's localStorage so a returning guest keeps their conversations.
 */
import type { Tokens } from "@caas/sdk/client";

import type { WidgetOptions, WidgetSession } from "./config.js";

const guestKey = (app: string) => `caas-widget:${app}:guest`;

function parseSession(value: unknown): WidgetSession {
  const session = value as Partial<WidgetSession> & { accessTokenExpiresAt?: number | string };
  if (!session || typeof session.user !== "string" || typeof session.accessToken !== "string" ||
      typeof session.refreshToken !== "string") {
    throw new Error("CaasWidget: the token endpoint answered no session");
  }
  const expires = typeof session.accessTokenExpiresAt === "string"
    ? Date.parse(session.accessTokenExpiresAt)
    : session.accessTokenExpiresAt ?? 0;
  return { ...session, accessTokenExpiresAt: Number.isFinite(expires) ? expires : 0 } as WidgetSession;
}

/** A session for the visitor (throws when none can be had). */
export async function signIn(options: WidgetOptions): Promise<WidgetSession> {
  if (options.tokenProvider) return parseSession(await options.tokenProvider());
  if (options.tokenUrl) {
    const response = await fetch(options.tokenUrl, {
      method: "POST",
      credentials: "include",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ app: options.app }),
    });
    if (!response.ok) throw new Error(`CaasWidget: the token endpoint answered ${response.status}`);
    return parseSession(await response.json());
  }
  const kept = localStorage.getItem(guestKey(options.app));
  if (kept) return JSON.parse(kept) as WidgetSession;
  const { guestSession } = await import("./guest.js"); // guests only: its code waits
  const session = await guestSession(options);
  localStorage.setItem(guestKey(options.app), JSON.stringify(session));
  return session;
}

/** Renewed tokens: a guest's are kept for the next visit. */
export function keepTokens(options: WidgetOptions, session: WidgetSession, tokens: Tokens): void {
  if (options.tokenUrl || options.tokenProvider) return;
  localStorage.setItem(guestKey(options.app), JSON.stringify({ ...session, ...tokens }));
}

/** The session has ended for good: a guest starts afresh next time. */
export function forget(options: WidgetOptions): void {
  localStorage.removeItem(guestKey(options.app));
}
