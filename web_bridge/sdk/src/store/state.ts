/**
 * What a chat client knows, as plain immutable data: the user's conversations, the
 * loaded windows of each conversation's messages (and of its threads), the sends not
 * yet confirmed, read receipts, typing and presence. `reduce` (reducer.ts) is the only
 * way it changes, so a UI can compare snapshots by reference.
 */
import type { Conversation } from "../gen/caas/conversations/v1/resources_pb.js";
import type { Message } from "../gen/caas/messages/v1/resources_pb.js";
import type { Presence } from "../gen/caas/realtime/v1/realtime_service_pb.js";
import type { User } from "../gen/caas/users/v1/resources_pb.js";
import type { ConnectionState } from "../client.js";

/** Where a message stands for the user who sees it. */
export type MessageStatus =
  /** Stored by the server (every message of others, and own ones once confirmed). */
  | "sent"
  /** Sent by this client, not yet confirmed: in flight, or waiting for the network. */
  | "pending"
  /** Refused by the server; `error` says why. It stays until retried or discarded. */
  | "failed";

export interface ChatMessage {
  /**
   * Stable across confirmation: the request id for a message sent from here (so a UI
   * keeps the same element when the server's copy replaces the optimistic one), else
   * the message's name.
   */
  key: string;
  /** The server's message; for a pending one, the optimistic copy (no name, sequence 0). */
  message: Message;
  status: MessageStatus;
  /** The request id of a send from here. */
  requestId?: string;
  /** Why it failed: the ErrorInfo reason, or the error's message. */
  error?: string;
  /** Position of the last event applied to it; 0 when it came from a list. */
  version: bigint;
}

/** A window of one conversation's messages (top-level, or one thread's replies). */
export interface Timeline {
  conversation: string;
  /** 0 for the conversation's top-level messages, else the thread root's sequence. */
  thread: bigint;
  /** The server's messages, by sequence; contiguous (no message of the timeline is
   * missing between the first and the last). */
  messages: ChatMessage[];
  /** The server has older messages before the first. */
  hasMoreBefore: boolean;
  /** The window does not reach the latest message (after a jump into history). */
  hasMoreAfter: boolean;
  /**
   * Something may be missing after the last message (a gap in the event stream, or a
   * resync): the client fetches what follows before showing the window as complete.
   */
  stale: boolean;
  /**
   * A page has been loaded. Before that the window is a placeholder, made when its
   * first page is requested, that keeps the messages events bring meanwhile: the page,
   * asked for before them, may not have them.
   */
  loaded: boolean;
}

export interface Receipt {
  /** The member has read up to this sequence. */
  read: bigint;
  /** The member's devices received up to this sequence. */
  delivered: bigint;
}

export interface ChatState {
  /** The signed-in user's id (`alice`, not the resource name). */
  me: string;
  /** By name (`apps/{app}/conversations/{id}`). */
  conversations: Readonly<Record<string, Conversation>>;
  /** The inbox: conversation names, pinned first, then the latest activity first. */
  inbox: readonly string[];
  /** The inbox was loaded at least once. */
  inboxLoaded: boolean;
  /** By `timelineKey(conversation, thread)`. */
  timelines: Readonly<Record<string, Timeline>>;
  /** Sends from here not yet in a timeline, by timeline key, in the order sent. */
  pending: Readonly<Record<string, readonly ChatMessage[]>>;
  /** Conversation → user id → receipt (from the members and read/delivered events). */
  receipts: Readonly<Record<string, Readonly<Record<string, Receipt>>>>;
  /** `timelineKey` → user id → when their typing indicator expires (ms since the epoch). */
  typing: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** User id → presence. */
  presence: Readonly<Record<string, Presence>>;
  /** User id → profile (display name, picture), as fetched for the UI. */
  users: Readonly<Record<string, User>>;
  connection: ConnectionState;
  /** The highest event position applied: older or repeated events change nothing. */
  position: bigint;
  /** Conversation → the highest message sequence seen (from lists and events). */
  lastSequence: Readonly<Record<string, bigint>>;
  /** Conversation → event position of the last change applied to the conversation. */
  versions: Readonly<Record<string, bigint>>;
  /**
   * Conversations whose membership (unread counts) should be fetched again: the events
   * alone cannot say (e.g. a read position moved to the middle of unread messages).
   */
  refresh: readonly string[];
}

export function timelineKey(conversation: string, thread: bigint = 0n): string {
  return thread ? `${conversation}#${thread}` : conversation;
}

export function emptyState(me: string): ChatState {
  return {
    me,
    conversations: {},
    inbox: [],
    inboxLoaded: false,
    timelines: {},
    pending: {},
    receipts: {},
    typing: {},
    presence: {},
    users: {},
    connection: "connecting",
    position: 0n,
    lastSequence: {},
    versions: {},
    refresh: [],
  };
}

/** Unread messages across the known conversations (muted ones aside), and in how many. */
export function unreadOf(known: ChatState["conversations"]): { total: number; conversations: number } {
  let total = 0n;
  let conversations = 0;
  for (const conversation of Object.values(known)) {
    const unread = conversation.membership?.unreadCount ?? 0n;
    if (unread > 0n && !conversation.membership?.muted) {
      total += unread;
      conversations += 1;
    }
  }
  return { total: Number(total), conversations };
}
