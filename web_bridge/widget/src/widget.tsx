/**
 * The widget's UI: a launcher bubble with the unread badge, and a chat panel.
 *
 * What loads with the page is small: the visitor is signed in at once (the badge needs
 * it) and a light client follows their stream, asking the server for the unread count
 * when a message or a read comes. The chat itself — the SDK's ChatClient and store,
 * the kit's components and styles — loads when the visitor first opens the panel
 * (panel.tsx), and from then on keeps the badge.
 */
import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState, type CSSProperties, type ReactNode } from "react";

import { directionOf } from "@caas/react/i18n/direction";
import type { ChatClient } from "@caas/sdk/chat";
import { unreadOf } from "@caas/sdk/store/state";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import type { WidgetOptions, WidgetSession } from "./config.js";
import { widgetServices, type WidgetServices } from "./services.js";
import { forget, keepTokens, signIn } from "./session.js";
import { pageLocale, strings } from "./strings.js";

// The chat's code and styles come when the panel first opens.
const loadPanel = () => import("./panel.js");
const PanelContent = lazy(loadPanel);

export interface WidgetControl {
  setOpen(open: boolean): void;
  open(): boolean;
}

interface WidgetProps {
  options: WidgetOptions;
  initiallyOpen: boolean;
  onReady(control: WidgetControl): void;
  onUnread(count: number): void;
}

type Translate = ReturnType<typeof strings>;

/** The unread count before the chat is loaded: the server's, asked again on events. */
function useLightUnread(services: WidgetServices | undefined, user: string | undefined, active: boolean,
  onClosed: () => void): number {
  const [count, setCount] = useState(0);
  useEffect(() => {
    if (!services || !user || !active) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let live = true;
    const ask = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        services.messages.getUnreadCount({ name: `${user}/unreadCount` })
          .then((response) => setCount(Number(response.unreadCount?.total ?? 0n)))
          .catch(() => undefined);
      }, 200);
    };
    ask();
    const subscription = services.subscribe(user, {
      event: (event) => {
        const kind = event.payload.case;
        if (kind === "messageCreated" || kind === "messageDeleted" || kind === "readUpdated" || kind === "memberAdded") ask();
      },
      resync: ask,
      state: (state, error) => {
        // Closed by the server (the session ended), not by this effect's cleanup.
        if (state === "closed" && error && live) onClosed();
      },
    });
    return () => {
      live = false;
      clearTimeout(timer);
      subscription.close();
    };
  }, [services, user, active, onClosed]);
  return count;
}

/** The unread count from the loaded chat's store (its conversations, muted ones aside). */
function useChatUnread(chat: ChatClient | undefined, onClosed: () => void): number {
  const [count, setCount] = useState(0);
  useEffect(() => {
    if (!chat) return;
    const update = () => {
      setCount(unreadOf(chat.state.conversations).total);
      if (chat.state.connection === "closed") onClosed();
    };
    update();
    return chat.store.subscribe(update);
  }, [chat, onClosed]);
  return count;
}

export function Widget({ options, initiallyOpen, onReady, onUnread }: WidgetProps) {
  const locale = options.locale ?? pageLocale();
  const t = strings(locale);
  const [open, setOpen] = useState(initiallyOpen);
  const isOpen = useRef(open);
  isOpen.current = open;
  useEffect(() => onReady({ setOpen, open: () => isOpen.current }), [onReady]);

  const [session, setSession] = useState<WidgetSession | undefined>(undefined);
  const [failed, setFailed] = useState(false);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    let live = true;
    setFailed(false);
    signIn(options).then(
      (signedIn) => live && setSession(signedIn),
      (error: unknown) => {
        console.error(error);
        if (live) setFailed(true);
      });
    return () => {
      live = false;
    };
  }, [options, attempt]);
  const services = useMemo(() => session && widgetServices({
    transport: (interceptors) => createGrpcWebTransport({ baseUrl: options.api, interceptors }),
    tokens: session,
    onTokens: (tokens) => keepTokens(options, session, tokens),
  }), [options, session]);

  // The chat, once the panel has been opened: it then keeps going, closed or open.
  const [chat, setChat] = useState<ChatClient | undefined>(undefined);
  useEffect(() => {
    if (!open || !services || !session || chat) return;
    let live = true;
    void loadPanel().then(({ startChat }) => {
      if (live) setChat(startChat(services, session.user));
    });
    return () => {
      live = false;
    };
  }, [open, services, session, chat]);
  useEffect(() => () => chat?.close(), [chat]);

  const signedOut = useCallback(() => {
    forget(options);
    setChat(undefined);
    setSession(undefined);
    setAttempt((count) => count + 1);
  }, [options]);
  const light = useLightUnread(services, session?.user, !chat, signedOut);
  const loaded = useChatUnread(chat, signedOut);
  const unread = chat ? loaded : light;
  useEffect(() => onUnread(unread), [unread, onUnread]);

  const fixed = session?.conversation ?? options.conversation;
  const [back, setBack] = useState<{ go?: () => void }>({});
  const onBack = useCallback((go: (() => void) | undefined) => {
    setBack((known) => (known.go === go ? known : { go }));
  }, []);

  const style = (options.color
    ? { "--caas-accent": options.color, "--caas-bubble-own": options.color, "--caas-focus": options.color }
    : undefined) as CSSProperties | undefined;
  const status = (text: ReactNode) => <div className="caas-widget-status" role="status">{text}</div>;
  return (
    <div className={`caas-root caas-widget caas-widget--${options.position}${open ? " caas-widget--open" : ""}`}
      data-caas-theme={options.theme} lang={locale} dir={directionOf(locale)} style={style}>
      {open && (
        <Panel options={options} t={t} onClose={() => setOpen(false)} onBack={chat ? back.go : undefined}>
          {failed ? status(<>
            <p>{t("failed")}</p>
            <button type="button" className="caas-widget-retry" onClick={() => setAttempt((n) => n + 1)}>
              {t("retry")}
            </button>
          </>) : chat ? (
            <Suspense fallback={status(t("connecting"))}>
              <PanelContent chat={chat} fixed={fixed} guest={options.guest} locale={locale} onBack={onBack} />
            </Suspense>
          ) : status(t("connecting"))}
        </Panel>
      )}
      <Launcher open={open} unread={unread} avatar={options.avatar} t={t} onClick={() => setOpen(!open)} />
    </div>
  );
}

function Launcher({ open, unread, avatar, t, onClick }: {
  open: boolean; unread: number; avatar?: string; t: Translate; onClick(): void;
}) {
  const label = open ? t("close") : unread ? `${t("open")}, ${t("unread", unread)}` : t("open");
  return (
    <button type="button" className="caas-widget-launcher" aria-label={label} aria-expanded={open}
      data-testid="caas-widget-launcher" onClick={onClick}>
      {avatar && !open ? <img src={avatar} alt="" className="caas-widget-launcher-image" /> : (
        <svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" focusable="false">
          <path fill="currentColor" d={open ? CLOSE : BUBBLE} />
        </svg>
      )}
      {unread > 0 && !open ? (
        <span className="caas-widget-badge" aria-hidden="true" data-testid="caas-widget-badge">
          {unread > 99 ? "99+" : unread}
        </span>
      ) : null}
    </button>
  );
}

const CLOSE = "M18.3 5.7a1 1 0 0 0-1.4 0L12 10.6 7.1 5.7a1 1 0 1 0-1.4 1.4l4.9 4.9-4.9 4.9a1 1 0 1 0 1.4 1.4l4.9-4.9 4.9 4.9a1 1 0 0 0 1.4-1.4L13.4 12l4.9-4.9a1 1 0 0 0 0-1.4z";
const BUBBLE = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z";
const BACK = "M15.4 5.4a1 1 0 0 1 0 1.4L10.2 12l5.2 5.2a1 1 0 1 1-1.4 1.4l-5.9-5.9a1 1 0 0 1 0-1.4l5.9-5.9a1 1 0 0 1 1.4 0z";

function Panel({ options, t, onClose, onBack, children }: {
  options: WidgetOptions; t: Translate; onClose(): void; onBack?(): void; children: ReactNode;
}) {
  const panel = useRef<HTMLDivElement>(null);
  useEffect(() => {
    // Focus moves into the panel when it opens (and Escape closes it).
    panel.current?.focus();
  }, []);
  const title = options.title || t("title");
  return (
    <div ref={panel} className="caas-widget-panel" role="dialog" aria-label={title} tabIndex={-1}
      data-testid="caas-widget-panel"
      onKeyDown={(event) => {
        if (event.key === "Escape" && !event.defaultPrevented) onClose();
      }}>
      <header className="caas-widget-header">
        {onBack ? (
          <button type="button" className="caas-widget-icon" aria-label={t("back")} onClick={onBack}>
            <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false" className="caas-widget-flip">
              <path fill="currentColor" d={BACK} />
            </svg>
          </button>
        ) : null}
        {options.avatar ? <img className="caas-widget-avatar" src={options.avatar} alt="" /> : null}
        <div className="caas-widget-heading">
          <h2>{title}</h2>
          {options.greeting ? <p>{options.greeting}</p> : null}
        </div>
        <button type="button" className="caas-widget-icon" aria-label={t("close")} onClick={onClose}>
          <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
            <path fill="currentColor" d={CLOSE} />
          </svg>
        </button>
      </header>
      <div className="caas-widget-body">{children}</div>
    </div>
  );
}
