/**
 * A virtualized message log: only the rows in view (and a margin) are in the DOM, each
 * measured with ResizeObserver once rendered (estimated before). The scroll position is
 * kept by an anchor — the bottom, or a row's key and its offset from the top of the
 * view — restored after every change, so new messages keep the view at the bottom
 * when it was there, and prepended older ones (or pictures loading above) do not move
 * what the user reads.
 */
import { useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from "react";
import type { ChatMessage, Receipt } from "@caas/sdk";

import { useLocale } from "../i18n/index.js";
import { MessageItem, type Delivery, type MessageHandlers } from "./MessageItem.js";
import { cx, dateOf, Icon, type UserResolver } from "./util.js";

/** A request to bring a message into view; a new object is a new request. */
export interface ScrollRequest {
  key: string;
  /** Where in the view (default "center"). */
  align?: "start" | "center" | "end";
  /** Flashes the message (default true). */
  highlight?: boolean;
}

export interface RenderContext {
  showHeader: boolean;
  senderName: string;
  senderImage?: string;
  delivery?: Delivery;
  highlighted: boolean;
}

export interface MessageListProps extends MessageHandlers {
  /** The window's messages, oldest first: the server's, then the pending ones. */
  items: readonly ChatMessage[];
  /** The signed-in user's id. */
  me: string;
  /** The members' receipts (user id → read/delivered sequences): own messages' ticks. */
  receipts?: Readonly<Record<string, Receipt>>;
  /** Names and pictures of senders (default: the id). */
  userOf?: UserResolver;
  /** The user's read position: a "New messages" divider goes before the first later message of others. */
  readSequence?: bigint;
  /** Opens at the first unread message rather than at the bottom (default "bottom"). */
  initialPosition?: "bottom" | "unread";
  hasMoreBefore?: boolean;
  loadingOlder?: boolean;
  /** Called when the view nears the first message and `hasMoreBefore`. */
  onLoadOlder?(): void;
  /** The window does not reach the latest message. */
  hasMoreAfter?: boolean;
  loadingNewer?: boolean;
  onLoadNewer?(): void;
  /** "Jump to latest" with `hasMoreAfter`: the app loads the latest window. */
  onJumpToLatest?(): void;
  /** "Jump to first unread" when that message is not loaded (before the window). */
  onJumpToUnread?(): void;
  scrollTo?: ScrollRequest | null;
  /** The first page is loading. */
  loading?: boolean;
  /** Shown at the top once the first message is loaded (e.g. a thread's root). */
  header?: ReactNode;
  /** Shown when there is no message. */
  empty?: ReactNode;
  /** Replies footers and the reply action (false inside a thread). */
  showThread?: boolean;
  /** The log's accessible name (default "Messages"). */
  label?: string;
  renderMessage?(item: ChatMessage, context: RenderContext): ReactNode;
  /** A row's height before it is measured. */
  estimateHeight?(item: ChatMessage): number;
  className?: string;
}

interface Row {
  item: ChatMessage;
  day?: Date;
  unread: boolean;
  showHeader: boolean;
}

type Anchor = "bottom" | { key: string; delta: number };

const GROUP_MS = 5 * 60_000;
const OVERSCAN = 400;
const LOAD_MARGIN = 600;

const defaultEstimate = (m: ChatMessage) =>
  44 + Math.ceil(m.message.text.length / 48) * 20 + m.message.attachments.length * 180 + (m.message.reactions.length ? 32 : 0) + (m.message.replyCount ? 30 : 0);

/** The tick of an own message: "read" or "delivered" when another member's receipt reaches it. */
export function deliveryOf(sequence: bigint, receipts: Readonly<Record<string, Receipt>> | undefined, me: string): Delivery {
  let read = false;
  let delivered = false;
  for (const [user, r] of Object.entries(receipts ?? {})) {
    if (user === me) continue;
    if (r.read >= sequence) read = true;
    if (r.delivered >= sequence || r.read >= sequence) delivered = true;
  }
  return read ? "read" : delivered ? "delivered" : "sent";
}

/** The first i with offsets[i + 1] > y (the row at `y`), clamped to [0, n - 1]. */
function rowAt(offsets: Float64Array, y: number): number {
  let lo = 0;
  let hi = offsets.length - 2;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (offsets[mid + 1] > y) hi = mid;
    else lo = mid + 1;
  }
  return Math.max(0, lo);
}

export function MessageList(props: MessageListProps) {
  const { items, me, receipts, userOf, readSequence, hasMoreBefore, loadingOlder, hasMoreAfter, loadingNewer } = props;
  const loc = useLocale();
  const { t } = loc;
  const estimate = props.estimateHeight ?? defaultEstimate;
  const latest = useRef(props);
  latest.current = props;

  // Rows: grouping, day separators, the unread divider.
  const rows = useMemo(() => {
    const out: Row[] = [];
    let prev: ChatMessage | undefined;
    let prevDate: Date | undefined;
    let dividerDone = readSequence === undefined;
    for (const item of items) {
      const m = item.message;
      const date = dateOf(m.createTime) ?? prevDate;
      const day = date && (!prevDate || date.toDateString() !== prevDate.toDateString()) ? date : undefined;
      const unread = !dividerDone && item.status === "sent" && m.senderId !== me && m.sequence > readSequence!;
      if (unread) dividerDone = true;
      const showHeader =
        !prev || !!day || unread || prev.message.senderId !== m.senderId || (!!date && !!prevDate && date.getTime() - prevDate.getTime() > GROUP_MS);
      out.push({ item, day: prev ? day : date, unread, showHeader });
      prev = item;
      prevDate = date;
    }
    return out;
  }, [items, readSequence, me]);
  const firstUnread = rows.findIndex((r) => r.unread);

  const indexOf = useMemo(() => new Map(rows.map((r, i) => [r.item.key, i])), [rows]);
  const sizes = useRef(new Map<string, number>());
  const [version, setVersion] = useState(0);
  const offsets = useMemo(() => {
    const o = new Float64Array(rows.length + 1);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      o[i + 1] = o[i] + (sizes.current.get(r.item.key) ?? estimate(r.item) + (r.day ? 44 : 0) + (r.unread ? 36 : 0) + (r.showHeader ? 26 : 0));
    }
    return o;
    // `version` changes when sizes were measured.
  }, [rows, version]);

  const scroller = useRef<HTMLDivElement>(null);
  const inner = useRef<HTMLDivElement>(null);
  const anchor = useRef<Anchor>("bottom");
  /** The first messages were shown (the initial position applies then, e.g. after loading). */
  const started = useRef(false);
  const [range, setRange] = useState<[number, number]>(() => [Math.max(0, rows.length - 30), rows.length]);
  const [awayFromBottom, setAway] = useState(false);
  const [firstVisible, setFirstVisible] = useState(rows.length);
  const [newBelow, setNewBelow] = useState(0);
  const [announcement, setAnnouncement] = useState("");
  const [highlight, setHighlight] = useState<string>();
  const pendingScroll = useRef<ScrollRequest | null>(null);
  const lastRequest = useRef<ScrollRequest | null | undefined>(undefined);
  const olderAsked = useRef<{ key?: string; at: number }>({ at: 0 });
  const newerAsked = useRef<{ key?: string; at: number }>({ at: 0 });
  const state = useRef({ rows, offsets, indexOf, range });
  state.current = { rows, offsets, indexOf, range };

  if (props.scrollTo !== lastRequest.current) {
    lastRequest.current = props.scrollTo;
    pendingScroll.current = props.scrollTo ?? null;
  }

  /** Range, visibility and loading from the scroll position; `fromScroll` re-anchors. */
  const sync = (fromScroll: boolean) => {
    const el = scroller.current;
    const box = inner.current;
    const { rows, offsets, range } = state.current;
    if (!el || !box) return;
    const p = latest.current;
    const base = box.offsetTop;
    const top = el.scrollTop - base;
    const height = el.clientHeight;
    const distance = el.scrollHeight - el.scrollTop - height;
    const n = rows.length;
    if (fromScroll && n) {
      if (distance < 4 && !p.hasMoreAfter) anchor.current = "bottom";
      else {
        const i = rowAt(offsets, top);
        anchor.current = { key: rows[i].item.key, delta: top - offsets[i] };
      }
    }
    if (anchor.current === "bottom") setNewBelow(0);
    const start = n ? rowAt(offsets, top - OVERSCAN) : 0;
    const end = n ? rowAt(offsets, top + height + OVERSCAN) + 1 : 0;
    if (start !== range[0] || end !== range[1]) setRange([start, end]);
    setFirstVisible(n ? rowAt(offsets, top + 8) : 0);
    setAway(!!p.hasMoreAfter || distance > Math.max(200, height / 2));
    // Ask for more near either end: once per first/last message, or again after a pause when scrolling.
    const now = Date.now();
    const ask = (asked: { key?: string; at: number }, key: string | undefined, call?: () => void) => {
      if (!call || (asked.key === key && (!fromScroll || now - asked.at < 1000))) return;
      asked.key = key;
      asked.at = now;
      call();
    };
    if (p.hasMoreBefore && !p.loadingOlder && top < LOAD_MARGIN) ask(olderAsked.current, rows[0]?.item.key, p.onLoadOlder);
    if (p.hasMoreAfter && !p.loadingNewer && distance < LOAD_MARGIN) ask(newerAsked.current, rows[n - 1]?.item.key, p.onLoadNewer);
  };

  // Measure, restore the anchor, then derive the range: before paint, after every render.
  useLayoutEffect(() => {
    const el = scroller.current;
    const box = inner.current;
    if (!el || !box) return;
    let changed = false;
    for (const child of box.children as HTMLCollectionOf<HTMLElement>) {
      const key = child.dataset.key;
      if (!key) continue;
      observe(child);
      const h = child.getBoundingClientRect().height;
      if (Math.abs((sizes.current.get(key) ?? -1) - h) > 0.5) {
        sizes.current.set(key, h);
        changed = true;
      }
    }
    if (changed) {
      setVersion((v) => v + 1);
      return;
    }
    if (!started.current && rows.length) {
      started.current = true;
      if (props.initialPosition === "unread" && firstUnread >= 0) anchor.current = { key: rows[firstUnread].item.key, delta: -16 };
    }
    const request = pendingScroll.current;
    if (request && indexOf.has(request.key)) {
      pendingScroll.current = null;
      const i = indexOf.get(request.key)!;
      const size = offsets[i + 1] - offsets[i];
      const room = el.clientHeight - size;
      const align = request.align ?? "center";
      anchor.current = { key: request.key, delta: align === "start" ? -16 : align === "end" ? -(room - 16) : -Math.max(16, room / 2) };
      if (request.highlight !== false) setHighlight(request.key);
    }
    const base = box.offsetTop;
    const a = anchor.current;
    if (a === "bottom") el.scrollTop = el.scrollHeight;
    else {
      const i = indexOf.get(a.key);
      if (i !== undefined) {
        const target = base + offsets[i] + a.delta;
        if (Math.abs(el.scrollTop - target) >= 1) el.scrollTop = target;
      }
    }
    sync(a !== "bottom" && !indexOf.has(a.key));
  });

  // Sizes that change later (pictures loading, edits, the width changing).
  const observer = useRef<ResizeObserver>(null);
  const observed = useRef(new WeakSet<Element>());
  const observe = (el: Element) => {
    if (typeof ResizeObserver === "undefined" || observed.current.has(el)) return;
    observer.current ??= new ResizeObserver((entries) => {
      let changed = false;
      for (const e of entries) {
        const key = (e.target as HTMLElement).dataset.key;
        if (!e.target.isConnected) {
          // A row scrolled out of the window (its size went to 0 as it left): let it go.
          observer.current?.unobserve(e.target);
          observed.current.delete(e.target);
          continue;
        }
        if (!key) continue;
        const h = e.target.getBoundingClientRect().height;
        if (Math.abs((sizes.current.get(key) ?? -1) - h) > 0.5) {
          sizes.current.set(key, h);
          changed = true;
        }
      }
      if (changed) setVersion((v) => v + 1);
    });
    observer.current.observe(el);
    observed.current.add(el);
  };
  useEffect(() => {
    const el = scroller.current;
    const resize = typeof ResizeObserver === "undefined" ? undefined : new ResizeObserver(() => setVersion((v) => v + 1));
    if (el) resize?.observe(el);
    return () => {
      resize?.disconnect();
      observer.current?.disconnect();
      observer.current = null;
      observed.current = new WeakSet();
    };
  }, []);

  // Messages added at the end: count them while scrolled up, announce those of others,
  // follow the user's own new message.
  const lastKey = useRef<string | undefined>(items.at(-1)?.key);
  useEffect(() => {
    const previous = lastKey.current;
    lastKey.current = items.at(-1)?.key;
    if (!previous || previous === lastKey.current) return;
    const at = indexOf.get(previous);
    if (at === undefined) return;
    const added = items.slice(at + 1);
    if (added.some((i) => i.message.senderId === me && i.status === "pending") && !hasMoreAfter) anchor.current = "bottom";
    const others = added.filter((i) => i.message.senderId !== me && i.status === "sent");
    if (anchor.current !== "bottom") setNewBelow((c) => c + others.length);
    const last = others.at(-1);
    if (last) {
      const m = last.message;
      const text = m.text || m.attachments.map((a) => a.title).join(", ") || t("preview.attachment");
      setAnnouncement(t("log.announce", { name: userOf?.(m.senderId)?.name ?? m.senderId, text: text.slice(0, 200) }));
    }
  }, [items]);

  useEffect(() => {
    if (!highlight) return;
    const timer = setTimeout(() => setHighlight(undefined), 2000);
    return () => clearTimeout(timer);
  }, [highlight]);

  const handlers = useMemo<MessageHandlers>(() => {
    const h = latest.current;
    const wrap = <K extends keyof MessageHandlers>(k: K) =>
      (h[k] ? (...args: unknown[]) => (latest.current[k] as (...a: unknown[]) => void)?.(...args) : undefined) as MessageHandlers[K];
    return {
      onRetry: wrap("onRetry"),
      onDiscard: wrap("onDiscard"),
      onToggleReaction: wrap("onToggleReaction"),
      onOpenThread: wrap("onOpenThread"),
      onEdit: wrap("onEdit"),
      onDelete: wrap("onDelete"),
    };
    // Only whether each is given matters: calls go to the latest props.
  }, [!props.onRetry, !props.onDiscard, !props.onToggleReaction, !props.onOpenThread, !props.onEdit, !props.onDelete]);

  const reads = useMemo(() => {
    let read = 0n;
    let delivered = 0n;
    for (const [user, r] of Object.entries(receipts ?? {})) {
      if (user === me) continue;
      if (r.read > read) read = r.read;
      if (r.delivered > delivered) delivered = r.delivered;
    }
    return { read, delivered: delivered > read ? delivered : read };
  }, [receipts, me]);

  const jump = (to: Anchor | ScrollRequest) => {
    if (to === "bottom" || "delta" in to) anchor.current = to;
    else pendingScroll.current = to;
    setVersion((v) => v + 1);
    scroller.current?.focus({ preventScroll: true });
  };

  const n = rows.length;
  const start = Math.min(range[0], n);
  const end = Math.min(Math.max(range[1], start), n);
  const now = new Date();
  const showUnreadJump =
    (firstUnread >= 0 && firstUnread < firstVisible) ||
    (firstUnread < 0 && !!props.onJumpToUnread && !!hasMoreBefore && readSequence !== undefined && n > 0 && rows[0].item.message.sequence > readSequence + 1n);

  const rendered: ReactNode[] = [];
  for (let i = start; i < end; i++) {
    const { item, day, unread, showHeader } = rows[i];
    const m = item.message;
    const user = userOf?.(m.senderId);
    const ctx: RenderContext = {
      showHeader,
      senderName: user?.name ?? m.senderId,
      senderImage: user?.imageUri,
      delivery: m.senderId === me && item.status === "sent" ? (m.sequence <= reads.read ? "read" : m.sequence <= reads.delivered ? "delivered" : "sent") : undefined,
      highlighted: highlight === item.key,
    };
    rendered.push(
      <div key={item.key} className="caas-row" data-key={item.key}>
        {day && (
          <div className="caas-day">
            <span>{loc.day(day, now)}</span>
          </div>
        )}
        {unread && (
          <div className="caas-unread-divider">
            <span>{t("log.unreadDivider")}</span>
          </div>
        )}
        {props.renderMessage ? (
          props.renderMessage(item, ctx)
        ) : (
          <MessageItem item={item} me={me} {...ctx} {...handlers} showThread={props.showThread} />
        )}
      </div>,
    );
  }

  return (
    <div className={cx("caas-mlist-wrap", props.className)}>
      <div
        ref={scroller}
        className="caas-mlist"
        role="log"
        aria-live="off"
        aria-label={props.label ?? t("log.label")}
        aria-busy={props.loading || loadingOlder || loadingNewer || undefined}
        tabIndex={0}
        onScroll={() => sync(true)}
      >
        <div className="caas-mlist-fill" />
        {n > 0 && hasMoreBefore ? (
          <div className="caas-mlist-status">{loadingOlder && <Spinner label={t("log.loadingOlder")} />}</div>
        ) : (
          !props.loading && (props.header ?? (n > 0 && <div className="caas-mlist-status caas-mlist-start">{t("log.start")}</div>))
        )}
        {n === 0 && (
          <div className="caas-mlist-empty">
            {props.loading ? <Spinner label={t("log.loading")} /> : props.empty !== undefined ? props.empty : <p>{t("log.empty")}</p>}
          </div>
        )}
        <div ref={inner} className="caas-mlist-rows" style={{ paddingTop: offsets[start], paddingBottom: offsets[n] - offsets[end] }}>
          {rendered}
        </div>
        {n > 0 && hasMoreAfter && <div className="caas-mlist-status">{loadingNewer && <Spinner label={t("log.loadingNewer")} />}</div>}
      </div>
      <div className="caas-mlist-jumps">
        {showUnreadJump && (
          <button
            type="button"
            className="caas-jump caas-jump--unread"
            onClick={() => (firstUnread >= 0 ? jump({ key: rows[firstUnread].item.key, align: "start", highlight: false }) : props.onJumpToUnread?.())}
          >
            <Icon name="up" size={16} />
            {t("log.jumpToUnread")}
          </button>
        )}
      </div>
      {awayFromBottom && n > 0 && (
        <button
          type="button"
          className="caas-jump caas-jump--latest"
          aria-label={newBelow ? `${t("log.jumpToLatest")}, ${t("log.newBelow", { count: newBelow })}` : t("log.jumpToLatest")}
          title={t("log.jumpToLatest")}
          onClick={() => (hasMoreAfter ? props.onJumpToLatest?.() : jump("bottom"))}
        >
          <Icon name="down" />
          {newBelow > 0 && (
            <span className="caas-badge" aria-hidden="true">
              {loc.number(newBelow)}
            </span>
          )}
        </button>
      )}
      <div className="caas-sr-only" aria-live="polite" aria-atomic="true">
        {announcement}
      </div>
    </div>
  );
}

export const Spinner = ({ label }: { label: string }) => (
  <span className="caas-spinner" role="status">
    <span className="caas-spinner-ring" aria-hidden="true" />
    <span className="caas-spinner-label">{label}</span>
  </span>
);
