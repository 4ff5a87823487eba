/**
 * The portal session: its token (`caasp_…`, from Login) and the account it belongs to,
 * kept in sessionStorage, so a reload keeps the login and closing the tab ends it. The
 * token travels only in the `authorization` header (never a cookie): no other site can
 * make the browser send it, so there is nothing to forge across sites (CSRF).
 */
import { useSyncExternalStore } from "react";

export interface PortalSession {
  token: string;
  account: string; // accounts/{id}
  email: string;
  mfaVerified: boolean;
}

const KEY = "caas.portal.session";
const listeners = new Set<() => void>();
let current: PortalSession | null = read();

function read(): PortalSession | null {
  try {
    const stored = sessionStorage.getItem(KEY);
    return stored ? (JSON.parse(stored) as PortalSession) : null;
  } catch {
    return null;
  }
}

export function getSession(): PortalSession | null {
  return current;
}

export function setSession(session: PortalSession | null): void {
  current = session;
  if (session) sessionStorage.setItem(KEY, JSON.stringify(session));
  else sessionStorage.removeItem(KEY);
  for (const listener of listeners) listener();
}

export function useSession(): PortalSession | null {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => current,
  );
}
