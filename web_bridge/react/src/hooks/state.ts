/**
 * React hooks over a ChatClient (@caas/sdk). State comes from the client's store
 * through `useSyncExternalStore`, so every hook is safe under concurrent rendering
 * (no torn reads); effects only start requests, which the client shares between
 * concurrent callers, and the stream is reference-counted by `connect()`, so strict
 * mode's double mount never opens a second subscription and unmounting leaks nothing.
 */
import {
  useCallback,
  useEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
} from "react";

import {
  timelineKey,
  unreadOf,
  type ChatMessage,
  type ChatState,
  type Conversation,
  type Draft,
  type Message,
  type Presence,
} from "@caas/sdk";

import { useChatClient } from "./context.js";

/**
 * A slice of the chat state. `select` must answer a part of the state as it is (or a
 * primitive), not a new object per call: derive with `useMemo` from what it answers.
 */
export function useChatState<T>(select: (state: ChatState) => T): T {
  const client = useChatClient();
  const read = () => select(client.store.getState());
  return useSyncExternalStore(client.store.subscribe, read, read);
}

/** Where the realtime stream is: connecting, live, reconnecting, closed. */
export function useConnectionState() {
  return useChatState((state) => state.connection);
}

/** A request's error, kept in state; cleared by the next success. */
function useFailure() {
  const [error, setError] = useState<Error | undefined>(undefined);
  const run = useCallback((work: Promise<unknown>) => {
    work.then(() => setError(undefined), (reason: unknown) =>
      setError(reason instanceof Error ? reason : new Error(String(reason))));
  }, []);
  return [error, run] as const;
}

export interface ConversationsOptions {
  /** Also list the conversations the user archived (default false). */
  archived?: boolean;
}

/** The inbox, live: pinned first, then the latest activity; unread counts on each. */
export function useConversations(options: ConversationsOptions = {}) {
  const client = useChatClient();
  const inbox = useChatState((state) => state.inbox);
  const all = useChatState((state) => state.conversations);
  const loaded = useChatState((state) => state.inboxLoaded);
  const [error, run] = useFailure();
  const [, setPages] = useState(0);
  // Loaded on mount, and again when the stream comes back if that first load failed.
  const live = useChatState((state) => state.connection === "live");
  useEffect(() => {
    if (!client.state.inboxLoaded) run(client.loadConversations());
  }, [client, run, live]);
  const archived = options.archived ?? false;
  const conversations = useMemo(
    () => inbox.map((name) => all[name]).filter((item): item is Conversation =>
      item !== undefined && (archived || !item.membership?.archived)),
    [inbox, all, archived]);
  const loadMore = useCallback(() => {
    run(client.loadMoreConversations().then(() => setPages((count) => count + 1)));
  }, [client, run]);
  return {
    conversations,
    loading: !loaded && !error,
    error,
    hasMore: client.hasMoreConversations,
    loadMore,
    reload: useCallback(() => run(client.loadConversations()), [client, run]),
  };
}

/** One conversation from the store (undefined until known). */
export function useConversation(name: string | undefined): Conversation | undefined {
  const client = useChatClient();
  const conversation = useChatState((state) => (name ? state.conversations[name] : undefined));
  useEffect(() => {
    if (name && !client.state.conversations[name]) client.loadConversation(name).catch(() => undefined);
  }, [client, name]);
  return conversation;
}

const NO_MESSAGES: readonly ChatMessage[] = [];

export interface MessagesOptions {
  /** A thread's replies instead of the top-level messages: the root's sequence. */
  thread?: bigint;
}

/**
 * A conversation's messages (or a thread's), live: the loaded window, then this user's
 * sends not yet confirmed. Pages both ways, jumps, and every write on them.
 */
export function useMessages(conversation: string | undefined, options: MessagesOptions = {}) {
  const client = useChatClient();
  const thread = options.thread ?? 0n;
  const key = conversation ? timelineKey(conversation, thread) : "";
  const timeline = useChatState((state) => (key ? state.timelines[key] : undefined));
  const pending = useChatState((state) => (key ? state.pending[key] : undefined));
  const [error, run] = useFailure();
  // Opened on mount, and again when the stream comes back (a load that failed
  // offline); a loaded window is not fetched again.
  const live = useChatState((state) => state.connection === "live");
  useEffect(() => {
    if (conversation) run(client.openTimeline(conversation, thread));
  }, [client, conversation, thread, run, live]);
  const messages = useMemo(
    () => (timeline || pending ? [...(timeline?.messages ?? NO_MESSAGES), ...(pending ?? NO_MESSAGES)] : NO_MESSAGES),
    [timeline, pending]);
  const actions = useMemo(() => ({
    loadOlder: () => {
      if (conversation) run(client.loadOlder(conversation, thread));
    },
    loadNewer: () => {
      if (conversation) run(client.loadNewer(conversation, thread));
    },
    /** Show the window around a sequence (a search hit, the first unread). */
    jumpTo: (sequence: bigint) => {
      if (conversation) run(client.jumpTo(conversation, sequence, thread));
    },
    /** Back to the latest messages after a jump. */
    jumpToLatest: () => {
      if (conversation) run(client.jumpTo(conversation, client.state.lastSequence[conversation] ?? 1n, thread));
    },
    send: (draft: Draft) => (conversation ? client.send(conversation, draft, { thread }) : ""),
    retry: (requestId: string) => run(client.retry(requestId)),
    discard: (requestId: string) => run(client.discard(requestId)),
    edit: (message: Message, text: string) => run(client.edit(message, text)),
    remove: (message: Message) => run(client.delete(message)),
    react: (message: Message, emoji: string, add = true) => run(client.react(message, emoji, add)),
    markRead: (sequence?: bigint) => {
      if (conversation) run(client.markRead(conversation, sequence));
    },
  }), [client, conversation, thread, run]);
  return {
    messages,
    loading: Boolean(conversation) && !timeline?.loaded && !error,
    error,
    hasMoreBefore: timeline?.hasMoreBefore ?? false,
    hasMoreAfter: timeline?.hasMoreAfter ?? false,
    ...actions,
  };
}

/** A thread: its root message and its replies, live. */
export function useThread(conversation: string | undefined, rootSequence: bigint | undefined) {
  const client = useChatClient();
  const replies = useMessages(rootSequence ? conversation : undefined, { thread: rootSequence ?? 0n });
  const fromTimeline = useChatState((state) => {
    if (!conversation || !rootSequence) return undefined;
    return state.timelines[conversation]?.messages.find((item) => item.message.sequence === rootSequence);
  });
  const [fetched, setFetched] = useState<Message | undefined>(undefined);
  useEffect(() => {
    setFetched(undefined);
    if (!conversation || !rootSequence || fromTimeline) return;
    let live = true;
    client.client.messages
      .listMessages({ parent: conversation, pageSize: 1, position: { case: "aroundSequence", value: rootSequence } })
      .then((response) => {
        const root = response.messages.find((message) => message.sequence === rootSequence);
        if (live) setFetched(root);
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [client, conversation, rootSequence, fromTimeline]);
  return { root: fromTimeline?.message ?? fetched, ...replies };
}

const NO_TYPING: Readonly<Record<string, number>> = {};

/**
 * Who else is typing in a conversation (or thread), and `notify()` to call on each
 * keystroke: it tells the others at most every 3 s, and `stop()` when sent or cleared.
 */
export function useTyping(conversation: string | undefined, thread = 0n) {
  const client = useChatClient();
  const users = useChatState((state) => (conversation ? state.typing[timelineKey(conversation, thread)] : undefined)) ?? NO_TYPING;
  const typing = useMemo(() => Object.keys(users).sort(), [users]);
  const last = useRef(0);
  const notify = useCallback(() => {
    if (!conversation || Date.now() - last.current < 3_000) return;
    last.current = Date.now();
    client.typing(conversation, true, thread).catch(() => undefined);
  }, [client, conversation, thread]);
  const stop = useCallback(() => {
    if (!conversation || !last.current) return;
    last.current = 0;
    client.typing(conversation, false, thread).catch(() => undefined);
  }, [client, conversation, thread]);
  return { typing, notify, stop };
}

/** These users' presence, live (fetched once, then from the stream). */
export function usePresence(userIds: readonly string[]): Readonly<Record<string, Presence | undefined>> {
  const client = useChatClient();
  const presence = useChatState((state) => state.presence);
  const wanted = userIds.join("\n");
  useEffect(() => {
    const ids = wanted ? wanted.split("\n") : [];
    const missing = ids.filter((id) => !client.state.presence[id]);
    if (missing.length) client.loadPresence(missing).catch(() => undefined);
  }, [client, wanted]);
  return presence;
}

/**
 * The user's unread messages: across the loaded inbox, live; when the inbox has more
 * pages than loaded, the server's count (GetUnreadCount), fetched again on changes.
 */
export function useUnreadCount() {
  const client = useChatClient();
  const all = useChatState((state) => state.conversations);
  const local = useMemo(() => unreadOf(all), [all]);
  const [server, setServer] = useState<{ total: number; conversations: number } | undefined>(undefined);
  const partial = client.hasMoreConversations;
  useEffect(() => {
    if (!partial) return;
    const timer = setTimeout(() => {
      client.client.messages
        .getUnreadCount({ name: `${client.app}/users/${client.userId}/unreadCount` })
        .then((response) => setServer({
          total: Number(response.unreadCount?.total ?? 0n),
          conversations: response.unreadCount?.conversations ?? 0,
        }))
        .catch(() => undefined);
    }, 300);
    return () => clearTimeout(timer);
  }, [client, partial, local]);
  return partial && server ? server : local;
}

