/** Small helpers shared by the kit's components. */
import { useEffect, useRef, type ReactNode } from "react";

/** A protobuf Timestamp, structurally (no runtime dependency on @bufbuild/protobuf). */
export interface TimestampLike {
  seconds: bigint;
  nanos: number;
}

export const dateOf = (ts: TimestampLike | undefined): Date | undefined =>
  ts ? new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6)) : undefined;

export const cx = (...names: (string | false | null | undefined)[]) => names.filter(Boolean).join(" ");

/** The URL when it is http(s) (or a local blob), else undefined: never `javascript:`. */
export function safeUrl(uri: string | undefined): string | undefined {
  if (!uri) return undefined;
  try {
    const url = new URL(uri, typeof location === "undefined" ? undefined : location.href);
    return /^(https?|blob):$/.test(url.protocol) ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/** A picture's source: a safe URL, or an inline `data:image/…` (harmless in an img). */
export const safeImageUrl = (uri: string | undefined) => (uri && /^data:image\//i.test(uri) ? uri : safeUrl(uri));

/** What the kit needs to know about a user to show them. */
export interface UserInfo {
  name: string;
  imageUri?: string;
}
export type UserResolver = (userId: string) => UserInfo | undefined;

export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const first = [...(words[0] ?? "?")][0] ?? "?";
  const last = words.length > 1 ? [...words[words.length - 1]][0] : "";
  return (first + last).toUpperCase();
}

/** A stable palette index from an id (FNV-1a). */
export function hashOf(id: string, mod: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0) % mod;
}

export type Segment = { text: string; href?: string; mention?: string };

const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;

/**
 * Splits message text into plain runs, links (http/https only, trailing punctuation
 * left out) and mentions (`@Display Name` of the message's mentions).
 */
export function segmentsOf(text: string, mentions: readonly { userId: string; displayName: string }[]): Segment[] {
  const marks: { start: number; end: number; seg: Segment }[] = [];
  for (const m of text.matchAll(URL_RE)) {
    let url = m[0].replace(/[.,:;!?'")\]}]+$/, "");
    // Keep a closing parenthesis that closes one inside the URL (Wikipedia links).
    if (m[0].length > url.length && m[0][url.length] === ")" && url.includes("(")) url += ")";
    const href = safeUrl(url);
    if (href) marks.push({ start: m.index!, end: m.index! + url.length, seg: { text: url, href } });
  }
  const names = [...mentions].filter((m) => m.displayName).sort((a, b) => b.displayName.length - a.displayName.length);
  for (const m of names) {
    const needle = "@" + m.displayName;
    for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + needle.length)) {
      const end = i + needle.length;
      if (!marks.some((k) => i < k.end && end > k.start)) marks.push({ start: i, end, seg: { text: needle, mention: m.userId } });
    }
  }
  marks.sort((a, b) => a.start - b.start);
  const out: Segment[] = [];
  let at = 0;
  for (const k of marks) {
    if (k.start > at) out.push({ text: text.slice(at, k.start) });
    out.push(k.seg);
    at = k.end;
  }
  if (at < text.length) out.push({ text: text.slice(at) });
  return out;
}

/** Calls `onClose` on a pointer down outside `ref`'s element or on Escape, while `open`. */
export function useDismiss(open: boolean, ref: { current: HTMLElement | null }, onClose: () => void) {
  const close = useRef(onClose);
  close.current = onClose;
  useEffect(() => {
    if (!open) return;
    const down = (e: Event) => {
      if (ref.current && !ref.current.contains(e.target as Node)) close.current();
    };
    document.addEventListener("pointerdown", down, true);
    return () => document.removeEventListener("pointerdown", down, true);
  }, [open, ref]);
}

const PATHS = {
  clock: "M12 7v5l3 2M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0Z",
  check: "m5 12.5 4.5 4.5L19 7.5",
  checks: "m2 12.5 4.5 4.5L16 7.5M11 16l1 1 9.5-9.5",
  alert: "M12 8v5m0 3.5v.01M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0Z",
  more: "M6 12h.01M12 12h.01M18 12h.01",
  smile: "M8.5 14.5a4.5 4.5 0 0 0 7 0M9 9.5h.01M15 9.5h.01M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0Z",
  thread: "M21 11.5a8.4 8.4 0 0 1-12.2 7.5L3 21l2-5.8A8.5 8.5 0 1 1 21 11.5Z",
  edit: "M4 20h4L19 9l-4-4L4 16v4Zm9.5-13.5 4 4",
  trash: "M4 7h16M10 11v6m4-6v6M6 7l1 13h10l1-13M9 7V4h6v3",
  clip: "m20 11.5-8.2 8.2a5 5 0 0 1-7.1-7.1l8.5-8.5a3.3 3.3 0 0 1 4.7 4.7l-8.5 8.5a1.7 1.7 0 0 1-2.4-2.4l7.8-7.8",
  send: "M4 12 3 4l18 8-18 8 1-8Zm0 0h8",
  close: "M6 6l12 12M18 6 6 18",
  down: "M12 5v14m-6-6 6 6 6-6",
  up: "M12 19V5m-6 6 6-6 6 6",
  pin: "M9 4h6l-1 6 4 3v2H6v-2l4-3-1-6Zm3 11v6",
  muted: "M9 18a3 3 0 0 0 6 0M6 8a6 6 0 0 1 9.7-4.7M18 11v3l2 3H8M3 3l18 18",
  file: "M14 3H6v18h12V7l-4-4Zm0 0v4h4",
  back: "M19 12H5m6-6-6 6 6 6",
  link: "M10 14a4.5 4.5 0 0 0 6.4 0l3-3a4.5 4.5 0 0 0-6.4-6.4l-1 1M14 10a4.5 4.5 0 0 0-6.4 0l-3 3a4.5 4.5 0 0 0 6.4 6.4l1-1",
  retry: "M4 4v6h6M5 15a8 8 0 1 0 1.5-8.5L4 9",
  phone: "M5 4h4l2 5-2.5 1.5a11 11 0 0 0 5 5L15 13l5 2v4a2 2 0 0 1-2 2A16 16 0 0 1 3 6a2 2 0 0 1 2-2Z",
  video: "M15 10l5-3v10l-5-3M4 6h11v12H4z",
} as const;

export type IconName = keyof typeof PATHS;

/** A 24×24 stroke icon, hidden from assistive technology (label its button instead). */
export function Icon({ name, size = 18, flip }: { name: IconName; size?: number; flip?: boolean }): ReactNode {
  return (
    <svg
      className={cx("caas-icon", flip && "caas-icon--flip")}
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth={2}
      strokeLinecap="round"
      strokeLinejoin="round"
      aria-hidden="true"
      focusable="false"
    >
      <path d={PATHS[name]} />
    </svg>
  );
}

/** Text for screen readers only. */
export const SrOnly = ({ children }: { children: ReactNode }) => <span className="caas-sr-only">{children}</span>;
