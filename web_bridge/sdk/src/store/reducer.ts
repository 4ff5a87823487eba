/**
 * The chat store's reducer: `reduce(state, action)` → the next state, never changing
 * its input. It is safe against what a realtime stream and concurrent requests do:
 *
 * - an event applied twice, or an older event after a newer one, changes nothing (each
 *   message and conversation remembers the position of the last event applied to it);
 * - a list result that arrives after the events it overlaps keeps the newer copy of
 *   each message, and a window merges with what the stream added meanwhile;
 * - a message sequence that skips ahead marks the conversation's latest windows
 *   `stale`, and a resync marks every window, so the client fetches what it missed;
 * - an optimistic send is replaced by the server's copy, under the same key, whether
 *   the send's answer or its `message.created` event comes first.
 */
import { create } from "@bufbuild/protobuf";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";

import type { ConnectionState } from "../client.js";
import {
  MemberSchema,
  MessagePreviewSchema,
  type Conversation,
  type Member,
} from "../gen/caas/conversations/v1/resources_pb.js";
import type { Event } from "../gen/caas/events/v1/events_pb.js";
import { Message_State, type Message } from "../gen/caas/messages/v1/resources_pb.js";
import type { Presence, Typing } from "../gen/caas/realtime/v1/realtime_service_pb.js";
import type { User } from "../gen/caas/users/v1/resources_pb.js";
import { timelineKey, type ChatMessage, type ChatState, type Receipt, type Timeline } from "./state.js";

export type ChatAction =
  /** A durable event from the realtime stream. */
  | { type: "event"; event: Event }
  /** A page of ListConversations; `replace` for the first page (forget what is gone). */
  | { type: "conversations"; conversations: Conversation[]; replace: boolean }
  /** One conversation as the server has it now (Get/Create/Join). */
  | { type: "conversation"; conversation: Conversation }
  /**
   * A page of ListMessages: `latest` (no position), `before`/`after` the window's ends,
   * or `around` a sequence (a jump: replaces the window). `position` is the store's
   * position when the request was sent: events after it win over the page's copies.
   */
  | {
      type: "messages";
      conversation: string;
      thread: bigint;
      mode: "latest" | "before" | "after" | "around";
      messages: Message[];
      hasMoreBefore: boolean;
      hasMoreAfter: boolean;
      position: bigint;
    }
  /** A window's first page was requested: events may fill its placeholder meanwhile. */
  | { type: "loading"; conversation: string; thread: bigint }
  /** An optimistic send (status pending), shown at once at the end of its timeline. */
  | { type: "send"; conversation: string; thread: bigint; requestId: string; message: Message }
  /** The server stored the send. */
  | { type: "confirmed"; requestId: string; message: Message }
  /** The server refused the send for good. */
  | { type: "failed"; requestId: string; error: string }
  /** A failed send goes out again. */
  | { type: "retry"; requestId: string }
  /** A failed or pending send is dropped. */
  | { type: "discard"; requestId: string }
  | { type: "typing"; typing: Typing; now: number }
  /** Time passed: typing indicators that expired by `now` go. */
  | { type: "tick"; now: number }
  | { type: "presence"; presences: Presence[] }
  /** Profiles fetched (GetUser). */
  | { type: "users"; users: User[] }
  | { type: "connection"; state: ConnectionState }
  /** The stream could not resume: every window may have missed messages. */
  | { type: "resync" }
  /** The memberships of these conversations were fetched again. */
  | { type: "refreshed"; conversations: string[] };

export function reduce(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case "event":
      return applyEvent(state, action.event);
    case "conversations":
      return loadConversations(state, action.conversations, action.replace);
    case "conversation":
      return putConversation(state, action.conversation, state.versions[action.conversation.name] ?? 0n, true);
    case "messages":
      return loadMessages(state, action);
    case "loading":
      return state.timelines[timelineKey(action.conversation, action.thread)] ? state : putTimeline(state, {
        conversation: action.conversation, thread: action.thread, messages: [],
        hasMoreBefore: false, hasMoreAfter: false, stale: false, loaded: false,
      });
    case "send":
      return addPending(state, action);
    case "confirmed":
      return confirm(state, action.requestId, action.message);
    case "failed":
      return setPendingStatus(state, action.requestId, "failed", action.error);
    case "retry":
      return setPendingStatus(state, action.requestId, "pending", undefined);
    case "discard":
      return removePending(state, action.requestId).state;
    case "typing":
      return applyTyping(state, action.typing, action.now);
    case "tick":
      return expireTyping(state, action.now);
    case "presence": {
      const presence = { ...state.presence };
      for (const item of action.presences) presence[item.userId] = item;
      return { ...state, presence };
    }
    case "users": {
      const users = { ...state.users };
      for (const user of action.users) users[user.name.slice(user.name.lastIndexOf("/") + 1)] = user;
      return { ...state, users };
    }
    case "connection":
      return state.connection === action.state ? state : { ...state, connection: action.state };
    case "resync": {
      const timelines: Record<string, Timeline> = {};
      for (const [key, timeline] of Object.entries(state.timelines)) timelines[key] = { ...timeline, stale: true };
      return { ...state, timelines, refresh: Object.keys(state.conversations) };
    }
    case "refreshed":
      return { ...state, refresh: state.refresh.filter((name) => !action.conversations.includes(name)) };
  }
}

// ---- conversations -------------------------------------------------------------

const ms = (time: Timestamp | undefined) => (time ? timestampMs(time) : 0);

/** Pinned first, then the latest activity first; archived ones stay (the UI filters). */
function inboxOrder(conversations: Readonly<Record<string, Conversation>>): string[] {
  return Object.values(conversations)
    .sort((a, b) =>
      Number(b.membership?.pinned ?? false) - Number(a.membership?.pinned ?? false) ||
      ms(b.lastActivityTime) - ms(a.lastActivityTime) ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((conversation) => conversation.name);
}

function withConversations(state: ChatState, conversations: Record<string, Conversation>): ChatState {
  return { ...state, conversations, inbox: inboxOrder(conversations) };
}

function loadConversations(state: ChatState, page: Conversation[], replace: boolean): ChatState {
  const conversations: Record<string, Conversation> = replace ? {} : { ...state.conversations };
  const lastSequence = { ...state.lastSequence };
  for (const conversation of page) {
    conversations[conversation.name] = conversation;
    if (conversation.lastSequence > (lastSequence[conversation.name] ?? 0n)) {
      lastSequence[conversation.name] = conversation.lastSequence;
    }
  }
  if (replace) {
    // Conversations with pending sends or open windows that the page does not list
    // are kept only if they are still on later pages: the caller loads those next.
    for (const name of Object.keys(state.conversations)) {
      if (!conversations[name] && state.timelines[name]) conversations[name] = state.conversations[name];
    }
  }
  const receipts = { ...state.receipts };
  for (const conversation of page) {
    if (conversation.membership) {
      receipts[conversation.name] = withReceipt(receipts[conversation.name], conversation.membership.userId, {
        read: conversation.membership.readSequence,
        delivered: conversation.membership.deliveredSequence,
      });
    }
  }
  return { ...withConversations(state, conversations), inboxLoaded: true, lastSequence, receipts };
}

function putConversation(state: ChatState, conversation: Conversation, version: bigint, fromServer: boolean): ChatState {
  const known = state.conversations[conversation.name];
  // Events carry the conversation as everyone sees it: keep this user's membership.
  const next = !fromServer && known?.membership && !conversation.membership
    ? { ...conversation, membership: known.membership } as Conversation
    : conversation;
  const lastSequence = conversation.lastSequence > (state.lastSequence[conversation.name] ?? 0n)
    ? { ...state.lastSequence, [conversation.name]: conversation.lastSequence }
    : state.lastSequence;
  return {
    ...withConversations(state, { ...state.conversations, [conversation.name]: next }),
    lastSequence,
    versions: { ...state.versions, [conversation.name]: version },
    refresh: fromServer ? state.refresh.filter((name) => name !== conversation.name) : state.refresh,
  };
}

function removeConversation(state: ChatState, name: string): ChatState {
  const conversations = { ...state.conversations };
  delete conversations[name];
  const timelines: Record<string, Timeline> = {};
  for (const [key, timeline] of Object.entries(state.timelines)) {
    if (timeline.conversation !== name) timelines[key] = timeline;
  }
  const receipts = { ...state.receipts };
  delete receipts[name];
  return { ...withConversations(state, conversations), timelines, receipts };
}

/** The conversation with a change (a copy; undefined if the user does not have it). */
function changeConversation(
  state: ChatState,
  name: string,
  change: (conversation: Conversation, membership: Member) => void,
): ChatState {
  const known = state.conversations[name];
  if (!known) return state;
  // Copies: the state's own objects never change.
  const membership = (known.membership ? { ...known.membership } : create(MemberSchema)) as Member;
  const conversation = { ...known, membership } as Conversation;
  change(conversation, membership);
  return withConversations(state, { ...state.conversations, [name]: conversation });
}

function withReceipt(
  receipts: Readonly<Record<string, Receipt>> | undefined,
  user: string,
  change: Partial<Receipt>,
): Record<string, Receipt> {
  const known = receipts?.[user] ?? { read: 0n, delivered: 0n };
  const read = change.read !== undefined && change.read > known.read ? change.read : known.read;
  // Whatever was read was delivered.
  let delivered = change.delivered !== undefined && change.delivered > known.delivered ? change.delivered : known.delivered;
  if (read > delivered) delivered = read;
  return { ...receipts, [user]: { read, delivered } };
}

// ---- events --------------------------------------------------------------------

function eventPosition(event: Event): bigint {
  const position = event.name.slice(event.name.lastIndexOf("/") + 1);
  return /^\d+$/.test(position) ? BigInt(position) : 0n;
}

function applyEvent(state: ChatState, event: Event): ChatState {
  const position = eventPosition(event);
  let next = applyPayload(state, event, position);
  if (position > next.position) next = { ...next, position };
  return next;
}

function applyPayload(state: ChatState, event: Event, position: bigint): ChatState {
  const payload = event.payload;
  const conversation = event.conversation;
  const fresh = position === 0n || position > (state.versions[conversation] ?? 0n);
  switch (payload.case) {
    case "messageCreated":
      return messageCreated(state, payload.value, conversation, event.createTime, position);
    case "messageUpdated":
    case "messageDeleted":
      return messageChanged(state, payload.value, position, payload.case === "messageDeleted");
    case "reactionAdded":
    case "reactionRemoved": {
      const change = payload.value;
      if (!change.message) return state;
      return messageChanged(state, change.message, position, false, {
        emoji: change.emoji,
        mine: event.userId === state.me,
        added: payload.case === "reactionAdded",
      });
    }
    case "conversationCreated":
    case "conversationUpdated":
      return fresh ? putConversation(state, payload.value, position, false) : state;
    case "conversationDeleted":
      return removeConversation(state, payload.value.conversation || conversation);
    case "memberAdded":
    case "memberRemoved":
    case "memberUpdated":
      return fresh ? memberChanged(state, payload.case, payload.value, conversation, position) : state;
    case "readUpdated":
    case "deliveredUpdated":
      return receiptChanged(state, conversation, payload.value.userId || event.userId,
        payload.case === "readUpdated" ? { read: payload.value.sequence } : { delivered: payload.value.sequence });
    default:
      return state; // media, moderation: for the app's own handlers
  }
}

function memberChanged(
  state: ChatState,
  kind: "memberAdded" | "memberRemoved" | "memberUpdated",
  member: Member,
  conversation: string,
  position: bigint,
): ChatState {
  const versions = { ...state.versions, [conversation]: position };
  if (member.userId === state.me) {
    if (kind === "memberRemoved") return { ...removeConversation(state, conversation), versions };
    if (kind === "memberAdded" && !state.conversations[conversation]) {
      // The conversation itself is not in the event: the client fetches it.
      return { ...state, versions, refresh: [...new Set([...state.refresh, conversation])] };
    }
    const changed = changeConversation(state, conversation, (item) => {
      item.membership = member;
    });
    return { ...changed, versions };
  }
  const changed = changeConversation(state, conversation, (item) => {
    if (kind === "memberAdded") item.memberCount += 1;
    if (kind === "memberRemoved") item.memberCount = Math.max(0, item.memberCount - 1);
  });
  let receipts = state.receipts;
  if (kind === "memberRemoved" && receipts[conversation]?.[member.userId]) {
    const users = { ...receipts[conversation] };
    delete users[member.userId];
    receipts = { ...receipts, [conversation]: users };
  }
  return { ...changed, receipts, versions };
}

function receiptChanged(state: ChatState, conversation: string, user: string, change: Partial<Receipt>): ChatState {
  const receipts = {
    ...state.receipts,
    [conversation]: withReceipt(state.receipts[conversation], user, change),
  };
  if (user !== state.me || change.read === undefined) return { ...state, receipts };
  const read = change.read;
  const caughtUp = read >= (state.lastSequence[conversation] ?? 0n);
  let next = changeConversation({ ...state, receipts }, conversation, (_, membership) => {
    if (read <= membership.readSequence) return;
    membership.readSequence = read;
    if (caughtUp) {
      membership.unreadCount = 0n;
      membership.unreadMentionCount = 0n;
    }
  });
  const membership = state.conversations[conversation]?.membership;
  if (!caughtUp && membership && read > membership.readSequence) {
    // Read up to the middle: only the server can count what is left.
    next = { ...next, refresh: [...new Set([...next.refresh, conversation])] };
  }
  return next;
}

// ---- messages ------------------------------------------------------------------

function entry(message: Message, version: bigint): ChatMessage {
  return { key: message.name, message, status: "sent", version };
}

/** Index of the message with this sequence in a sorted timeline, or where it goes (~). */
function find(messages: readonly ChatMessage[], sequence: bigint): number {
  let low = 0;
  let high = messages.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const at = messages[middle].message.sequence;
    if (at === sequence) return middle;
    if (at < sequence) low = middle + 1;
    else high = middle - 1;
  }
  return ~low;
}

function putTimeline(state: ChatState, timeline: Timeline): ChatState {
  return { ...state, timelines: { ...state.timelines, [timelineKey(timeline.conversation, timeline.thread)]: timeline } };
}

/** A stable fingerprint of what a user sends, to recognize an optimistic copy. */
function fingerprint(message: Message): string {
  return JSON.stringify([message.text, message.attachments.map((item) => item.media || item.uri)]);
}

function messageCreated(
  state: ChatState,
  message: Message,
  conversation: string,
  time: Timestamp | undefined,
  position: bigint,
  claimed?: { key: string; requestId: string },
): ChatState {
  const seen = state.lastSequence[conversation] ?? 0n;
  const isNew = message.sequence > seen;
  let next = state;
  if (isNew) {
    next = { ...next, lastSequence: { ...next.lastSequence, [conversation]: message.sequence } };
    if (seen > 0n && message.sequence > seen + 1n) next = markGap(next, conversation);
    next = changeConversation(next, conversation, (item, membership) => {
      item.lastSequence = message.sequence;
      item.lastActivityTime = time ?? message.createTime;
      if (!message.threadRootSequence) {
        item.lastMessage = create(MessagePreviewSchema, {
          sequence: message.sequence,
          senderId: message.senderId,
          text: message.text,
          createTime: message.createTime,
        });
      }
      if (message.senderId === next.me) {
        membership.readSequence = message.sequence;
        membership.unreadCount = 0n;
        membership.unreadMentionCount = 0n;
      } else if (!message.shadowed) {
        membership.unreadCount += 1n;
        if (message.mentions.some((mention) => mention.userId === next.me)) membership.unreadMentionCount += 1n;
      }
    });
    if (message.threadRootSequence) next = countReply(next, conversation, message);
  }
  // The sender's own copy replaces an optimistic one with the same content.
  let own = claimed;
  if (!own && isNew && message.senderId === state.me) {
    const match = (next.pending[timelineKey(conversation, message.threadRootSequence)] ?? []).find(
      (item) => item.status === "pending" && fingerprint(item.message) === fingerprint(message));
    if (match?.requestId) {
      next = removePending(next, match.key).state;
      own = { key: match.key, requestId: match.requestId };
    }
  }
  return upsert(next, conversation, {
    key: own?.key ?? message.name,
    message,
    status: "sent",
    requestId: own?.requestId,
    version: position,
  });
}

/** Puts a server message into its timeline, if loaded and the message belongs in the
 * window; of two copies, the one with the newer version wins (0: from a list). */
function upsert(state: ChatState, conversation: string, item: ChatMessage): ChatState {
  const timeline = state.timelines[timelineKey(conversation, item.message.threadRootSequence)];
  if (!timeline) return state;
  const index = find(timeline.messages, item.message.sequence);
  const messages = [...timeline.messages];
  if (index >= 0) {
    const known = messages[index];
    if (known.version >= item.version && item.version !== 0n) return state;
    messages[index] = { ...item, key: known.key, requestId: known.requestId ?? item.requestId };
  } else {
    // Older than the window, or newer than a window that does not reach the latest
    // message: fetched when scrolled to, not stitched in with a hole.
    const at = ~index;
    if (at === 0 && messages.length > 0 && timeline.hasMoreBefore) return state;
    if (at === messages.length && timeline.hasMoreAfter) return state;
    messages.splice(at, 0, item);
  }
  return putTimeline(state, { ...timeline, messages });
}

function countReply(state: ChatState, conversation: string, reply: Message): ChatState {
  const timeline = state.timelines[timelineKey(conversation)];
  if (!timeline) return state;
  const index = find(timeline.messages, reply.threadRootSequence);
  if (index < 0) return state;
  const messages = [...timeline.messages];
  const root = messages[index];
  messages[index] = {
    ...root,
    message: { ...root.message, replyCount: root.message.replyCount + 1, lastReplyTime: reply.createTime } as Message,
  };
  return putTimeline(state, { ...timeline, messages });
}

/** A message sequence skipped ahead: the windows at the latest may miss messages. */
function markGap(state: ChatState, conversation: string): ChatState {
  const timelines: Record<string, Timeline> = { ...state.timelines };
  for (const [key, timeline] of Object.entries(timelines)) {
    if (timeline.conversation === conversation && !timeline.hasMoreAfter) timelines[key] = { ...timeline, stale: true };
  }
  return { ...state, timelines };
}

interface ReactionChange {
  emoji: string;
  mine: boolean;
  added: boolean;
}

function messageChanged(
  state: ChatState,
  message: Message,
  position: bigint,
  deleted: boolean,
  reaction?: ReactionChange,
): ChatState {
  const conversation = conversationOf(message.name);
  const timeline = state.timelines[timelineKey(conversation, message.threadRootSequence)];
  const index = timeline ? find(timeline.messages, message.sequence) : -1;
  const known = index >= 0 ? timeline!.messages[index] : undefined;
  if (known && known.version >= position && position !== 0n) return state;
  let next = state;
  if (deleted && known?.message.state !== Message_State.DELETED) {
    next = changeConversation(next, conversation, (item, membership) => {
      if (item.lastMessage?.sequence === message.sequence) item.lastMessage = { ...item.lastMessage, deleted: true, text: "" };
      if (message.senderId !== next.me && message.sequence > membership.readSequence && membership.unreadCount > 0n) {
        membership.unreadCount -= 1n;
      }
    });
  }
  if (!known || !timeline) return next;
  // An event's counts are everyone's, and its `reacted_by_me` is not about this user:
  // keep this user's flags, changed only by their own reactions.
  const mine = new Map(known.message.reactions.map((item) => [item.emoji, item.reactedByMe]));
  if (reaction?.mine) mine.set(reaction.emoji, reaction.added);
  const value = {
    ...message,
    reactions: message.reactions.map((item) => ({ ...item, reactedByMe: mine.get(item.emoji) ?? false })),
  } as Message;
  const messages = [...timeline.messages];
  messages[index] = { ...known, message: value, version: position };
  return putTimeline(next, { ...timeline, messages });
}

function conversationOf(messageName: string): string {
  const at = messageName.indexOf("/messages/");
  return at < 0 ? messageName : messageName.slice(0, at);
}

function loadMessages(state: ChatState, action: Extract<ChatAction, { type: "messages" }>): ChatState {
  const key = timelineKey(action.conversation, action.thread);
  const known = state.timelines[key];
  const page = action.messages.map((message) => entry(message, action.position));
  let lastSequence = state.lastSequence;
  const top = page.at(-1)?.message.sequence ?? 0n;
  if (top > (lastSequence[action.conversation] ?? 0n)) {
    lastSequence = { ...lastSequence, [action.conversation]: top };
  }
  const fresh: Timeline = {
    conversation: action.conversation,
    thread: action.thread,
    messages: page,
    hasMoreBefore: action.hasMoreBefore,
    hasMoreAfter: action.hasMoreAfter,
    stale: false,
    loaded: true,
  };
  // A page joins the window unless it lies wholly after it with messages in between
  // unknown (a jump, or a window that fell behind): then it replaces it.
  const joins = known && (action.mode === "before" || action.mode === "after" || (action.mode === "latest" && (
    page.length === 0 || known.messages.length === 0 ||
    known.messages.at(-1)!.message.sequence >= page[0].message.sequence ||
    known.messages[0].message.sequence >= page[0].message.sequence)));
  let timeline = fresh;
  if (known && joins) {
    const messages = merge(known.messages, page);
    const reachesBack = page.length > 0 && (known.messages.length === 0 ||
      page[0].message.sequence <= known.messages[0].message.sequence);
    const reachesLatest = action.mode === "latest" || action.mode === "after";
    timeline = {
      ...known,
      messages,
      hasMoreBefore: reachesBack || action.mode === "before" || !known.loaded ? action.hasMoreBefore : known.hasMoreBefore,
      hasMoreAfter: reachesLatest ? action.hasMoreAfter : known.hasMoreAfter,
      stale: reachesLatest && !action.hasMoreAfter ? false : known.stale,
      loaded: true,
    };
  }
  return putTimeline({ ...state, lastSequence }, timeline);
}

/** Both sorted by sequence: the union, the newer version of a message present in both. */
function merge(left: readonly ChatMessage[], right: readonly ChatMessage[]): ChatMessage[] {
  const merged: ChatMessage[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length || j < right.length) {
    const a = left[i];
    const b = right[j];
    if (!b || (a && a.message.sequence < b.message.sequence)) {
      merged.push(a);
      i += 1;
    } else if (!a || b.message.sequence < a.message.sequence) {
      merged.push(b);
      j += 1;
    } else {
      merged.push(b.version > a.version ? { ...b, key: a.key, requestId: a.requestId } : a);
      i += 1;
      j += 1;
    }
  }
  return merged;
}

// ---- sends ---------------------------------------------------------------------

function addPending(state: ChatState, action: Extract<ChatAction, { type: "send" }>): ChatState {
  const key = timelineKey(action.conversation, action.thread);
  const list = state.pending[key] ?? [];
  if (list.some((item) => item.key === action.requestId)) return state;
  const item: ChatMessage = {
    key: action.requestId,
    message: action.message,
    status: "pending",
    requestId: action.requestId,
    version: 0n,
  };
  return { ...state, pending: { ...state.pending, [key]: [...list, item] } };
}

function removePending(state: ChatState, requestId: string): { state: ChatState; removed?: ChatMessage; key?: string } {
  for (const [key, list] of Object.entries(state.pending)) {
    const index = list.findIndex((item) => item.key === requestId);
    if (index < 0) continue;
    const rest = list.filter((_, at) => at !== index);
    const pending = { ...state.pending };
    if (rest.length) pending[key] = rest;
    else delete pending[key];
    return { state: { ...state, pending }, removed: list[index], key };
  }
  return { state };
}

function setPendingStatus(state: ChatState, requestId: string, status: "pending" | "failed", error: string | undefined): ChatState {
  for (const [key, list] of Object.entries(state.pending)) {
    const index = list.findIndex((item) => item.key === requestId);
    if (index < 0) continue;
    const items = [...list];
    items[index] = { ...items[index], status, error };
    return { ...state, pending: { ...state.pending, [key]: items } };
  }
  return state;
}

function confirm(state: ChatState, requestId: string, message: Message): ChatState {
  const { state: next, removed } = removePending(state, requestId);
  if (!removed) return next; // its event came first and took its place
  // The answer came before the event: show the server's copy now, under the request
  // id's key; the event, when it comes, finds it and changes nothing.
  return messageCreated(next, message, conversationOf(message.name), message.createTime, 0n, { key: requestId, requestId });
}

// ---- typing --------------------------------------------------------------------

function applyTyping(state: ChatState, typing: Typing, now: number): ChatState {
  if (typing.userId === state.me) return state;
  const key = timelineKey(typing.conversation, typing.threadRootSequence);
  const users: Record<string, number> = {};
  for (const [user, expires] of Object.entries(state.typing[key] ?? {})) {
    if (expires > now && user !== typing.userId) users[user] = expires;
  }
  if (typing.typing) users[typing.userId] = typing.expireTime ? timestampMs(typing.expireTime) : now + 5_000;
  return { ...state, typing: { ...state.typing, [key]: users } };
}

function expireTyping(state: ChatState, now: number): ChatState {
  let changed = false;
  const typing: Record<string, Record<string, number>> = {};
  for (const [key, users] of Object.entries(state.typing)) {
    const left = Object.fromEntries(Object.entries(users).filter(([, expires]) => expires > now));
    if (Object.keys(left).length !== Object.keys(users).length) changed = true;
    if (Object.keys(left).length) typing[key] = left;
  }
  return changed ? { ...state, typing } : state;
}
