/**
 * ChatClient: a signed-in user's chat, kept in a ChatStore. It follows the user's
 * realtime stream into the store, loads conversations and windows of messages on
 * demand, fetches what a gap or a resync may have cost, and sends through a queue
 * that survives going offline and reloading (IndexedDB): each send is shown at once,
 * then confirmed by the server's copy or marked failed with the reason.
 */
import { clone, create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import {
  errorReason,
  type ChatServices,
  type ConnectionState,
  type Subscription,
  type SubscriptionOptions,
} from "./client.js";
import type { Conversation } from "./gen/caas/conversations/v1/resources_pb.js";
import type { Event } from "./gen/caas/events/v1/events_pb.js";
import { CreateMessageRequestSchema } from "./gen/caas/messages/v1/messages_service_pb.js";
import { MessageSchema, type Message } from "./gen/caas/messages/v1/resources_pb.js";
import { Presence_Status, type Presence } from "./gen/caas/realtime/v1/realtime_service_pb.js";
import { defaultQueueStorage, type QueueStorage, type QueuedSend } from "./store/queue.js";
import { timelineKey, type ChatState } from "./store/state.js";
import { ChatStore } from "./store/store.js";

/** The event payload kinds (`messageCreated`, `readUpdated`, …). */
export type EventKind = NonNullable<Event["payload"]["case"]>;
/** The payload of one kind of event. */
export type EventPayload<K extends EventKind> = Extract<Event["payload"], { case: K }>["value"];

export interface ChatClientOptions {
  /** From `createCaasClient` (or `createChatServices`), signed in as `user`. */
  client: ChatServices;
  /** `apps/{app}/users/{user}`. */
  user: string;
  /** Where unconfirmed sends wait (default: IndexedDB in browsers, else memory). */
  queue?: QueueStorage;
  /** This device's id, for presence and delivery state. */
  deviceId?: string;
  /** Passed to `subscribe` (stall timeout, backoff). */
  subscription?: Omit<SubscriptionOptions, "deviceId">;
  /** Messages per page (default 50). */
  pageSize?: number;
}

/** What a send carries: text, attachments (uploaded media), mentions, metadata. */
export type Draft = Pick<MessageInitShape<typeof MessageSchema>, "text" | "attachments" | "mentionIds" | "metadata">;

/** Refusals worth trying again later (the request may not have reached the server). */
const TRANSIENT = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.Aborted, Code.ResourceExhausted, Code.Canceled]);

function requestId(): string {
  return globalThis.crypto.randomUUID().replaceAll("-", "");
}

export class ChatClient {
  readonly store: ChatStore;
  /** `apps/{app}`. */
  readonly app: string;
  /** The user's id. */
  readonly userId: string;
  private subscription: Subscription | undefined;
  private readonly queue: QueueStorage;
  private readonly pageSize: number;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly eventHandlers = new Set<(event: Event) => void>();
  private conversationsToken = "";
  private pumping = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;
  private wasLive = false;
  private closed = true;
  private users = 0;
  private closing: ReturnType<typeof setTimeout> | undefined;
  private readonly stop: Array<() => void> = [];
  private restoring: Promise<void> | undefined;

  constructor(private readonly options: ChatClientOptions) {
    const at = options.user.indexOf("/users/");
    if (at < 0) throw new Error(`not a user name: ${options.user}`);
    this.app = options.user.slice(0, at);
    this.userId = options.user.slice(at + "/users/".length);
    this.store = new ChatStore(this.userId);
    this.queue = options.queue ?? defaultQueueStorage(`caas:${options.user}`);
    this.pageSize = options.pageSize ?? 50;
  }

  /** Resolves once the sends saved by an earlier page are back in the store. */
  get restored(): Promise<void> {
    this.restoring ??= this.restore();
    return this.restoring;
  }

  get state(): ChatState {
    return this.store.getState();
  }

  /** The services underneath, for everything else. */
  get client(): ChatServices {
    return this.options.client;
  }

  /**
   * Start: follow the user's realtime stream, bring back the sends an earlier page
   * saved, send what waits. Answers the function that ends this use; the client stops
   * when its last use ends (a moment later, so that React's strict mode, which mounts
   * twice, does not restart the stream). The constructor does none of this.
   */
  connect(): () => void {
    this.users += 1;
    clearTimeout(this.closing);
    if (this.closed) this.start();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.users -= 1;
      if (this.users === 0) this.closing = setTimeout(() => this.close(), 0);
    };
  }

  private start(): void {
    this.closed = false;
    this.stop.push(this.store.subscribe(() => this.reconcile()));
    const subscription = this.options.client.subscribe(this.options.user, {
      event: (event) => {
        this.store.dispatch({ type: "event", event });
        for (const handler of this.eventHandlers) handler(event);
      },
      typing: (typing) => {
        this.store.dispatch({ type: "typing", typing, now: Date.now() });
        this.scheduleTypingExpiry();
      },
      presence: (presence) => this.store.dispatch({ type: "presence", presences: [presence] }),
      state: (state) => this.connectionChanged(state),
      resync: () => this.store.dispatch({ type: "resync" }),
    }, { ...this.options.subscription, deviceId: this.options.deviceId });
    this.subscription = subscription;
    this.stop.push(() => subscription.close());
    if (typeof window !== "undefined") {
      const online = () => this.pump();
      window.addEventListener("online", online);
      this.stop.push(() => window.removeEventListener("online", online));
    }
    void this.restored;
  }

  /** Stop the stream and timers now, whatever uses remain. The queue stays saved. */
  close(): void {
    this.closed = true;
    this.users = 0;
    this.subscription = undefined;
    clearTimeout(this.retryTimer);
    clearTimeout(this.typingTimer);
    clearTimeout(this.closing);
    for (const stop of this.stop.splice(0)) stop();
  }

  /** The realtime stream while connected (for `waitForMedia` and other listeners). */
  get stream(): Subscription | undefined {
    return this.subscription;
  }

  /** Every durable event, after the store has applied it. */
  onEvent(handler: (event: Event) => void): () => void {
    this.eventHandlers.add(handler);
    return () => {
      this.eventHandlers.delete(handler);
    };
  }

  /** Events of one kind, with their payload typed. */
  on<K extends EventKind>(kind: K, handler: (payload: EventPayload<K>, event: Event) => void): () => void {
    return this.onEvent((event) => {
      if (event.payload.case === kind) handler(event.payload.value as EventPayload<K>, event);
    });
  }

  private connectionChanged(state: ConnectionState): void {
    this.store.dispatch({ type: "connection", state });
    if (state !== "live") return;
    if (!this.wasLive) {
      // What was loaded before the stream was live may have missed events since.
      this.wasLive = true;
      const loaded = this.state;
      if (loaded.inboxLoaded || Object.keys(loaded.timelines).length) this.store.dispatch({ type: "resync" });
    }
    this.pump();
  }

  // ---- loading ---------------------------------------------------------------

  /** Once per key at a time: concurrent callers share the request. */
  private once(key: string, work: () => Promise<void>): Promise<void> {
    let running = this.inFlight.get(key);
    if (!running) {
      running = work().finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, running);
    }
    return running;
  }

  /** The first page of the inbox (again). */
  loadConversations(): Promise<void> {
    return this.once("inbox", async () => {
      const response = await this.options.client.conversations.listConversations({
        parent: this.options.user,
        pageSize: this.pageSize,
      });
      this.conversationsToken = response.nextPageToken;
      this.store.dispatch({ type: "conversations", conversations: response.conversations, replace: true });
    });
  }

  /** The inbox has more pages. */
  get hasMoreConversations(): boolean {
    return this.conversationsToken !== "";
  }

  loadMoreConversations(): Promise<void> {
    if (!this.conversationsToken) return Promise.resolve();
    return this.once("inbox-more", async () => {
      const response = await this.options.client.conversations.listConversations({
        parent: this.options.user,
        pageSize: this.pageSize,
        pageToken: this.conversationsToken,
      });
      this.conversationsToken = response.nextPageToken;
      this.store.dispatch({ type: "conversations", conversations: response.conversations, replace: false });
    });
  }

  /** One conversation, fetched (a new one, or a refreshed membership). */
  loadConversation(name: string): Promise<void> {
    return this.once(`conversation ${name}`, async () => {
      try {
        const response = await this.options.client.conversations.getConversation({ name });
        if (response.conversation) this.store.dispatch({ type: "conversation", conversation: response.conversation });
      } catch (error) {
        if (ConnectError.from(error).code !== Code.NotFound) throw error;
        this.store.dispatch({ type: "refreshed", conversations: [name] });
      }
    });
  }

  private async page(
    conversation: string,
    thread: bigint,
    mode: "latest" | "before" | "after" | "around",
    sequence = 0n,
  ): Promise<void> {
    const position = this.state.position;
    if (mode === "latest") this.store.dispatch({ type: "loading", conversation, thread });
    const response = await this.options.client.messages.listMessages({
      parent: conversation,
      pageSize: this.pageSize,
      threadRootSequence: thread,
      position: mode === "latest" ? { case: undefined }
        : { case: `${mode}Sequence` as "beforeSequence" | "afterSequence" | "aroundSequence", value: sequence },
    });
    this.store.dispatch({
      type: "messages",
      conversation,
      thread,
      mode,
      messages: response.messages,
      hasMoreBefore: response.hasMoreBefore,
      hasMoreAfter: response.hasMoreAfter,
      position,
    });
  }

  /** The latest messages of a conversation (or a thread), unless already loaded. */
  openTimeline(conversation: string, thread = 0n): Promise<void> {
    const key = timelineKey(conversation, thread);
    const known = this.state.timelines[key];
    if (known?.loaded && !known.stale) return Promise.resolve();
    return this.once(`timeline ${key}`, () => this.page(conversation, thread, "latest"));
  }

  /** The page before the window's first message. */
  loadOlder(conversation: string, thread = 0n): Promise<void> {
    const timeline = this.state.timelines[timelineKey(conversation, thread)];
    const first = timeline?.messages[0]?.message.sequence;
    if (!timeline || !timeline.hasMoreBefore || first === undefined) return Promise.resolve();
    return this.once(`older ${timelineKey(conversation, thread)}`, () => this.page(conversation, thread, "before", first));
  }

  /** The page after the window's last message (a window that does not reach the latest). */
  loadNewer(conversation: string, thread = 0n): Promise<void> {
    const timeline = this.state.timelines[timelineKey(conversation, thread)];
    if (!timeline) return Promise.resolve();
    const last = timeline.messages.at(-1)?.message.sequence ?? 0n;
    return this.once(`newer ${timelineKey(conversation, thread)}`, () => this.page(conversation, thread, "after", last));
  }

  /** A window around `sequence` (jump to a message, or to the first unread). */
  jumpTo(conversation: string, sequence: bigint, thread = 0n): Promise<void> {
    return this.once(`around ${timelineKey(conversation, thread)}`, () => this.page(conversation, thread, "around", sequence));
  }

  /** Fetch what gaps, resyncs and partial reads left uncertain. */
  private reconcile(): void {
    if (this.closed) return;
    const state = this.state;
    for (const timeline of Object.values(state.timelines)) {
      if (timeline.stale && !timeline.hasMoreAfter) {
        this.loadNewer(timeline.conversation, timeline.thread).catch(() => undefined);
      }
    }
    if (state.refresh.length > 10) {
      this.loadConversations()
        .then(() => this.store.dispatch({ type: "refreshed", conversations: [...state.refresh] }))
        .catch(() => undefined);
    } else {
      for (const name of state.refresh) this.loadConversation(name).catch(() => undefined);
    }
  }

  // ---- sending ---------------------------------------------------------------

  private async restore(): Promise<void> {
    let saved: QueuedSend[] = [];
    try {
      saved = await this.queue.load();
    } catch {
      return; // storage unavailable (private mode): the queue lives in memory
    }
    for (const item of saved) {
      this.showPending(item);
      if (item.error) this.store.dispatch({ type: "failed", requestId: item.requestId, error: item.error });
    }
    this.pump();
  }

  private showPending(item: QueuedSend): void {
    const message = item.request.message ? clone(MessageSchema, item.request.message) : create(MessageSchema);
    message.senderId = this.userId;
    message.createTime ??= timestampNow();
    this.store.dispatch({
      type: "send",
      conversation: item.request.parent,
      thread: message.threadRootSequence,
      requestId: item.requestId,
      message,
    });
  }

  /**
   * Send a message: shown at once (pending), saved, and sent in order with the earlier
   * sends of this user. Answers the request id (the message's key in the store).
   */
  send(conversation: string, draft: Draft, options: { thread?: bigint } = {}): string {
    const id = requestId();
    const item: QueuedSend = {
      requestId: id,
      request: create(CreateMessageRequestSchema, {
        parent: conversation,
        requestId: id,
        message: { ...draft, threadRootSequence: options.thread ?? 0n, createTime: timestampNow() },
      }),
      queuedAt: Date.now(),
    };
    this.showPending(item);
    this.queue.put(item).catch(() => undefined).finally(() => this.pump());
    return id;
  }

  /** Send a failed message again (same request id: never twice on the server). */
  async retry(id: string): Promise<void> {
    const item = (await this.queue.load()).find((entry) => entry.requestId === id);
    if (!item) return;
    await this.queue.put({ ...item, error: undefined, queuedAt: Date.now() });
    this.store.dispatch({ type: "retry", requestId: id });
    this.pump();
  }

  /** Forget a failed (or waiting) send. */
  async discard(id: string): Promise<void> {
    await this.queue.remove(id);
    this.store.dispatch({ type: "discard", requestId: id });
  }

  /** Send what waits, oldest first, one at a time; stop at the first transient failure. */
  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    void this.drain().finally(() => {
      this.pumping = false;
    });
  }

  private async drain(): Promise<void> {
    await this.restored.catch(() => undefined);
    for (;;) {
      if (this.closed) return;
      if (typeof navigator !== "undefined" && navigator.onLine === false) return; // "online" pumps again
      const next = (await this.queue.load().catch(() => [])).find((item) => !item.error);
      if (!next) return;
      try {
        // A lost network may never answer: give up on the try and send again (the
        // request id makes a repeat harmless).
        const response = await this.options.client.messages.createMessage(next.request, { timeoutMs: 20_000 });
        await this.queue.remove(next.requestId).catch(() => undefined);
        this.failures = 0;
        if (response.message) this.store.dispatch({ type: "confirmed", requestId: next.requestId, message: response.message });
      } catch (error) {
        const refusal = ConnectError.from(error);
        if (TRANSIENT.has(refusal.code)) {
          this.failures += 1;
          const delay = Math.random() * Math.min(30_000, 500 * 2 ** Math.min(this.failures, 10));
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => this.pump(), delay);
          return;
        }
        const reason = errorReason(refusal) || refusal.rawMessage;
        await this.queue.put({ ...next, error: reason }).catch(() => undefined);
        this.store.dispatch({ type: "failed", requestId: next.requestId, error: reason });
      }
    }
  }

  // ---- other writes ----------------------------------------------------------

  /** Edit a message's text (its author only). The store changes with the event. */
  async edit(message: Message, text: string): Promise<void> {
    await this.options.client.messages.updateMessage({
      message: { name: message.name, text },
      updateMask: { paths: ["text"] },
    });
  }

  async delete(message: Message): Promise<void> {
    await this.options.client.messages.deleteMessage({ name: message.name });
  }

  /** Add (or with `add` false, remove) this user's reaction. */
  async react(message: Message, emoji: string, add = true): Promise<void> {
    if (add) await this.options.client.messages.addReaction({ name: message.name, emoji });
    else await this.options.client.messages.removeReaction({ name: message.name, emoji });
  }

  /** Move this user's read position (never backwards). */
  async markRead(conversation: string, sequence?: bigint): Promise<void> {
    const upTo = sequence ?? this.state.lastSequence[conversation] ?? 0n;
    const membership = this.state.conversations[conversation]?.membership;
    if (membership && membership.readSequence >= upTo && membership.unreadCount === 0n) return;
    await this.options.client.messages.markRead({ conversation, sequence: upTo });
  }

  /** Tell the others this user is typing (the server expires it after a few seconds). */
  async typing(conversation: string, typing = true, thread = 0n): Promise<void> {
    await this.options.client.realtime.sendTyping({ conversation, typing, threadRootSequence: thread });
  }

  async setPresence(status: Presence_Status.ONLINE | Presence_Status.AWAY): Promise<void> {
    await this.options.client.realtime.setPresence({
      name: this.options.user,
      status,
      deviceId: this.options.deviceId ?? "",
    });
  }

  /** Presence of these users (ids) now; changes then come with the stream. */
  async loadPresence(userIds: string[]): Promise<Presence[]> {
    const names = [...new Set(userIds)].map((id) => `${this.app}/users/${id}/presence`);
    const presences: Presence[] = [];
    for (let at = 0; at < names.length; at += 100) {
      const response = await this.options.client.realtime.batchGetPresences({ parent: this.app, names: names.slice(at, at + 100) });
      presences.push(...response.presences);
    }
    this.store.dispatch({ type: "presence", presences });
    return presences;
  }

  /** Profiles of these users (ids), fetched once each; missing ones are skipped. */
  async loadUsers(userIds: readonly string[]): Promise<void> {
    const wanted = [...new Set(userIds)].filter((id) => !this.state.users[id] && !this.inFlight.has(`user ${id}`));
    await Promise.all(wanted.map((id) => this.once(`user ${id}`, async () => {
      try {
        const response = await this.options.client.users.getUser({ name: `${this.app}/users/${id}` });
        if (response.user) this.store.dispatch({ type: "users", users: [response.user] });
      } catch (error) {
        if (ConnectError.from(error).code !== Code.NotFound) throw error;
      }
    })));
  }

  private scheduleTypingExpiry(): void {
    clearTimeout(this.typingTimer);
    const expiries = Object.values(this.state.typing).flatMap((users) => Object.values(users));
    if (!expiries.length) return;
    const wait = Math.max(0, Math.min(...expiries) - Date.now()) + 50;
    this.typingTimer = setTimeout(() => {
      this.store.dispatch({ type: "tick", now: Date.now() });
      this.scheduleTypingExpiry();
    }, wait);
  }

  /** The conversations of the inbox, in order. */
  conversations(): Conversation[] {
    const state = this.state;
    return state.inbox.map((name) => state.conversations[name]);
  }
}
