/**
 * The widget's UI: a launcher bubble (with the unread badge) and a chat panel, on the
 * kit's connected components. The visitor is signed in at once (the badge needs it);
 * the panel shows their conversation (from the options or the token endpoint), or
 * their inbox.
 */
import { useCallback, useEffect, useMemo, useRef, useState, type CSSProperties } from "react";

import { ChatClient, createChatServices } from "@caas/sdk";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  Avatar,
  ChatProvider,
  ChatRoot,
  ConversationPane,
  Inbox,
  ThreadPane,
  useConnectionState,
  useUnreadCount,
} from "@caas/react";

import type { WidgetOptions, WidgetSession } from "./config.js";
import { forget, keepTokens, signIn } from "./session.js";
import { pageLocale, strings } from "./strings.js";

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
  const client = useMemo(() => session && new ChatClient({
    client: createChatServices({
      transport: (interceptors) => createGrpcWebTransport({ baseUrl: options.api, interceptors }),
      tokens: session,
      onTokens: (tokens) => keepTokens(options, session, tokens),
    }),
    user: session.user,
    subscription: { maxDelayMs: 10_000 },
  }), [options, session]);
  const signedOut = useCallback(() => {
    forget(options);
    setSession(undefined);
    setAttempt((count) => count + 1);
  }, [options]);

  const style = (options.color
    ? { "--caas-accent": options.color, "--caas-bubble-own": options.color, "--caas-focus": options.color }
    : undefined) as CSSProperties | undefined;
  const launcher = (unread: number) => (
    <Launcher open={open} unread={unread} avatar={options.avatar} t={t} onClick={() => setOpen(!open)} />
  );
  return (
    <ChatRoot theme={options.theme} locale={locale} style={style}
      className={`caas-widget caas-widget--${options.position}${open ? " caas-widget--open" : ""}`}>
      {client ? (
        <ChatProvider client={client}>
          <Connected options={options} session={session!} open={open} setOpen={setOpen} t={t}
            launcher={launcher} onUnread={onUnread} onSignedOut={signedOut} />
        </ChatProvider>
      ) : (
        <>
          {open && (
            <Panel options={options} t={t} onClose={() => setOpen(false)}>
              <div className="caas-widget-status" role="status">
                {failed ? (
                  <>
                    <p>{t("failed")}</p>
                    <button type="button" className="caas-widget-retry" onClick={() => setAttempt((n) => n + 1)}>
                      {t("retry")}
                    </button>
                  </>
                ) : t("connecting")}
              </div>
            </Panel>
          )}
          {launcher(0)}
        </>
      )}
    </ChatRoot>
  );
}

type Translate = ReturnType<typeof strings>;

function Launcher({ open, unread, avatar, t, onClick }: {
  open: boolean; unread: number; avatar?: string; t: Translate; onClick(): void;
}) {
  const label = open ? t("close") : unread ? `${t("open")}, ${t("unread", unread)}` : t("open");
  return (
    <button type="button" className="caas-widget-launcher" aria-label={label} aria-expanded={open}
      data-testid="caas-widget-launcher" onClick={onClick}>
      {avatar && !open ? <img src={avatar} alt="" className="caas-widget-launcher-image" /> : (
        <svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" focusable="false">
          {open
            ? <path fill="currentColor" d="M18.3 5.7a1 1 0 0 0-1.4 0L12 10.6 7.1 5.7a1 1 0 1 0-1.4 1.4l4.9 4.9-4.9 4.9a1 1 0 1 0 1.4 1.4l4.9-4.9 4.9 4.9a1 1 0 0 0 1.4-1.4L13.4 12l4.9-4.9a1 1 0 0 0 0-1.4z" />
            : <path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z" />}
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

function Panel({ options, t, onClose, onBack, children }: {
  options: WidgetOptions; t: Translate; onClose(): void; onBack?(): void; children: React.ReactNode;
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
              <path fill="currentColor" d="M15.4 5.4a1 1 0 0 1 0 1.4L10.2 12l5.2 5.2a1 1 0 1 1-1.4 1.4l-5.9-5.9a1 1 0 0 1 0-1.4l5.9-5.9a1 1 0 0 1 1.4 0z" />
            </svg>
          </button>
        ) : null}
        {options.avatar ? <Avatar id={title} name={title} imageUri={options.avatar} size={32} /> : null}
        <div className="caas-widget-heading">
          <h2>{title}</h2>
          {options.greeting ? <p>{options.greeting}</p> : null}
        </div>
        <button type="button" className="caas-widget-icon" aria-label={t("close")} onClick={onClose}>
          <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
            <path fill="currentColor" d="M18.3 5.7a1 1 0 0 0-1.4 0L12 10.6 7.1 5.7a1 1 0 1 0-1.4 1.4l4.9 4.9-4.9 4.9a1 1 0 1 0 1.4 1.4l4.9-4.9 4.9 4.9a1 1 0 0 0 1.4-1.4L13.4 12l4.9-4.9a1 1 0 0 0 0-1.4z" />
          </svg>
        </button>
      </header>
      <div className="caas-widget-body">{children}</div>
    </div>
  );
}

function Connected({ options, session, open, setOpen, t, launcher, onUnread, onSignedOut }: {
  options: WidgetOptions;
  session: WidgetSession;
  open: boolean;
  setOpen(open: boolean): void;
  t: Translate;
  launcher(unread: number): React.ReactNode;
  onUnread(count: number): void;
  onSignedOut(): void;
}) {
  const unread = useUnreadCount();
  const state = useConnectionState();
  useEffect(() => onUnread(unread.total), [unread.total, onUnread]);
  useEffect(() => {
    if (state === "closed") onSignedOut(); // the session ended: sign in again
  }, [state, onSignedOut]);
  const fixed = session.conversation ?? options.conversation;
  const [selected, setSelected] = useState<string | undefined>(fixed);
  const [thread, setThread] = useState<bigint | undefined>(undefined);
  const back = thread ? () => setThread(undefined) : selected && !fixed ? () => setSelected(undefined) : undefined;
  return (
    <>
      {open && (
        <Panel options={options} t={t} onClose={() => setOpen(false)} onBack={back}>
          {selected && thread ? (
            <ThreadPane conversation={selected} root={thread} onClose={() => setThread(undefined)} />
          ) : selected ? (
            <ConversationPane key={selected} conversation={selected} onOpenThread={setThread} />
          ) : (
            <Inbox onSelect={setSelected} />
          )}
        </Panel>
      )}
      {launcher(unread.total)}
    </>
  );
}
