/** Fake data for the gallery: protobuf messages built with the SDK's schemas. */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ChatMessage, Conversation, Receipt } from "@caas/sdk";
import { ConversationSchema, Conversation_Kind, MemberSchema, MessagePreviewSchema } from "@caas/sdk/gen/caas/conversations/v1/resources_pb";
import { CallSchema } from "@caas/sdk/gen/caas/calls/v1/resources_pb";
import { RenditionSchema } from "@caas/sdk/gen/caas/media/v1/resources_pb";
import {
  AttachmentSchema,
  Attachment_Kind,
  MessageSchema,
  Message_State,
  type Attachment,
  type Message,
} from "@caas/sdk/gen/caas/messages/v1/resources_pb";

import type { UserInfo } from "../src/kit/index.js";

export const ME = "alice";
export const APP = "apps/demo";
const CONV = `${APP}/conversations/general`;

export const USERS: Record<string, UserInfo> = {
  alice: { name: "Alice Martin" },
  bob: { name: "Bob Chen" },
  carol: { name: "Carol Díaz" },
  dave: { name: "Dave Okafor" },
  erin: { name: "Erin Walsh" },
  frank: { name: "Frank Müller" },
  layla: { name: "ليلى حسن" },
  omar: { name: "عمر خالد" },
};
export const userOf = (id: string) => USERS[id];

/** Times are relative to the page load, so "Today" and "Yesterday" read right. */
export const NOW = Math.floor(Date.now() / 60_000) * 60_000;
const MIN = 60_000;
export const ts = (minutesAgo: number) => timestampFromMs(NOW - minutesAgo * MIN);

export interface MessageOptions extends Partial<Omit<Message, "$typeName" | "sequence">> {
  minutesAgo?: number;
}

let pendingCounter = 0;

export function message(sequence: number, senderId: string, text: string, o: MessageOptions = {}): ChatMessage {
  const { minutesAgo = 0, ...fields } = o;
  const m = create(MessageSchema, {
    name: `${CONV}/messages/${sequence}`,
    sequence: BigInt(sequence),
    senderId,
    text,
    state: Message_State.ACTIVE,
    createTime: ts(minutesAgo),
    ...fields,
  });
  return { key: m.name, message: m, status: "sent", version: 0n };
}

export function pending(senderId: string, text: string, failed?: string): ChatMessage {
  const requestId = `req-${++pendingCounter}`;
  const m = create(MessageSchema, { senderId, text, state: Message_State.ACTIVE, createTime: ts(0) });
  return { key: requestId, requestId, message: m, status: failed ? "failed" : "pending", error: failed, version: 0n };
}

export const deleted = (sequence: number, senderId: string, minutesAgo = 0) =>
  message(sequence, senderId, "", { state: Message_State.DELETED, minutesAgo, deleteTime: ts(minutesAgo) });

export const image = (title: string, width: number, height: number, hue = 210): Attachment => {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><defs><linearGradient id="g"><stop offset="0" stop-color="hsl(${hue} 70% 55%)"/><stop offset="1" stop-color="hsl(${hue + 60} 70% 45%)"/></linearGradient></defs><rect width="100%" height="100%" fill="url(#g)"/><circle cx="${width * 0.7}" cy="${height * 0.35}" r="${Math.min(width, height) * 0.12}" fill="#fff8"/></svg>`;
  const uri = `data:image/svg+xml,${encodeURIComponent(svg)}`;
  return create(AttachmentSchema, {
    kind: Attachment_Kind.IMAGE,
    uri: "https://media.example.com/" + encodeURIComponent(title),
    title,
    mimeType: "image/png",
    width,
    height,
    sizeBytes: 284_113n,
    // The gallery has no media server: the "thumbnail" is an inline picture.
    thumbnails: [create(RenditionSchema, { uri, width, height })],
  });
};

export const file = (title: string, sizeBytes: bigint, mimeType = "application/pdf") =>
  create(AttachmentSchema, { kind: Attachment_Kind.FILE, uri: `https://media.example.com/${encodeURIComponent(title)}`, title, mimeType, sizeBytes });

export const link = (uri: string, title: string) => create(AttachmentSchema, { kind: Attachment_Kind.LINK, uri, title });

export const reactions = (...list: [string, number, boolean?][]) =>
  list.map(([emoji, count, reactedByMe = false]) => ({ emoji, count, reactedByMe }) as Message["reactions"][number]);

export const mention = (userId: string) => ({ userId, displayName: USERS[userId].name }) as Message["mentions"][number];

/** A conversation with the user's membership. */
export function conversation(
  id: string,
  title: string,
  o: {
    kind?: Conversation_Kind;
    last?: { senderId: string; text: string; deleted?: boolean };
    minutesAgo?: number;
    unread?: number;
    mentions?: number;
    pinned?: boolean;
    muted?: boolean;
    members?: number;
  } = {},
): Conversation {
  const when = ts(o.minutesAgo ?? 0);
  return create(ConversationSchema, {
    name: `${APP}/conversations/${id}`,
    kind: o.kind ?? Conversation_Kind.GROUP,
    title,
    memberCount: o.members ?? 2,
    lastActivityTime: when,
    lastMessage: o.last && create(MessagePreviewSchema, { sequence: 10n, senderId: o.last.senderId, text: o.last.text, deleted: !!o.last.deleted, createTime: when }),
    membership: create(MemberSchema, {
      userId: ME,
      unreadCount: BigInt(o.unread ?? 0),
      unreadMentionCount: BigInt(o.mentions ?? 0),
      pinned: !!o.pinned,
      muted: !!o.muted,
    }),
  });
}

export const INBOX: Conversation[] = [
  conversation("launch", "Launch plan", { pinned: true, unread: 3, mentions: 1, minutesAgo: 4, last: { senderId: "bob", text: "@Alice Martin can you review the release notes before 5?" }, members: 8 }),
  conversation("bob", "", { kind: Conversation_Kind.DIRECT, minutesAgo: 12, last: { senderId: ME, text: "Sounds good, see you then 👍" } }),
  conversation("design", "Design reviews", { unread: 12, minutesAgo: 95, last: { senderId: "carol", text: "New mockups for the onboarding flow are in Figma" }, members: 5 }),
  conversation("random", "random", { muted: true, unread: 128, minutesAgo: 60 * 20, last: { senderId: "dave", text: "Has anyone tried the new coffee place downstairs? It's surprisingly good" }, members: 42 }),
  conversation("erin", "", { kind: Conversation_Kind.DIRECT, minutesAgo: 60 * 50, last: { senderId: "erin", text: "", deleted: true } }),
  conversation("support", "Customer support escalations — EMEA region (urgent tickets only)", { minutesAgo: 60 * 24 * 5, last: { senderId: "frank", text: "Closed the ticket, the customer confirmed the fix." }, members: 11 }),
  conversation("ops", "Ops", { minutesAgo: 60 * 24 * 40, members: 3 }),
];

/** Direct conversations are titled by the other member. */
export const titleOf = (c: Conversation) => c.title || USERS[c.name.slice(c.name.lastIndexOf("/") + 1)]?.name || "";
export const presenceOf = (c: Conversation) =>
  c.kind === Conversation_Kind.DIRECT ? ((c.name.endsWith("bob") ? "online" : "away") as "online" | "away") : undefined;

export const RECEIPTS: Record<string, Receipt> = {
  alice: { read: 1000n, delivered: 1000n },
  bob: { read: 6n, delivered: 7n },
  carol: { read: 5n, delivered: 8n },
};

/** A short conversation showing most message features. */
export function sampleConversation(): ChatMessage[] {
  return [
    message(1, "bob", "Morning! Are we still on for the launch review today?", { minutesAgo: 60 * 26 }),
    message(2, ME, "Yes — 3pm in the big room. I'll bring the numbers.", { minutesAgo: 60 * 26 - 2 }),
    message(3, "carol", "I put the draft here: https://docs.example.com/launch-plan?v=3 (comments welcome)", {
      minutesAgo: 60 * 3,
      attachments: [link("https://docs.example.com/launch-plan?v=3", "Launch plan — Q2 draft")],
    }),
    message(4, "carol", "And the screenshots of the new onboarding:", { minutesAgo: 60 * 3 - 1, attachments: [image("onboarding.png", 1200, 800, 200)] }),
    message(5, "bob", "These look great 🎉", { minutesAgo: 60 * 3 - 3, reactions: reactions(["🎉", 3, true], ["❤️", 1]), replyCount: 4, lastReplyTime: ts(40) }),
    message(6, ME, "Thanks @Carol Díaz! Attaching the budget too.", { minutesAgo: 50, mentions: [mention("carol")], mentionIds: ["carol"], attachments: [file("Q2-budget.xlsx", 48_213n, "application/vnd.ms-excel")] }),
    message(7, ME, "Let me know if anything is off.", { minutesAgo: 49, editTime: ts(45) }),
    deleted(8, "dave", 30),
    message(9, "bob", "@Alice Martin can you review the release notes before 5?", { minutesAgo: 4, mentions: [mention(ME)], mentionIds: [ME] }),
    message(10, "bob", "👍", { minutesAgo: 3 }),
    pending(ME, "On it — reading them now."),
    pending(ME, "Here's my summary of the changes", "PERMISSION_DENIED: the conversation is frozen"),
  ];
}

const WORDS =
  "the release is ready for review and we should ship it after lunch once the tests pass on staging please check the numbers again because the dashboard shows a different total than the spreadsheet from yesterday".split(" ");

/** `n` messages from a few people, 7 minutes apart, the 20,000th now; deterministic. */
export function history(n: number, firstSequence = 1): ChatMessage[] {
  const senders = ["bob", "carol", ME, "dave", "erin"];
  const out: ChatMessage[] = [];
  let seed = 42 + firstSequence;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  let sender = "bob";
  for (let i = 0; i < n; i++) {
    const seq = firstSequence + i;
    if (rand() < 0.45) sender = senders[Math.floor(rand() * senders.length)];
    const words = 3 + Math.floor(rand() ** 2 * 60);
    const start = Math.floor(rand() * WORDS.length);
    let text = Array.from({ length: words }, (_, k) => WORDS[(start + k) % WORDS.length]).join(" ");
    text = `#${seq} ${text[0].toUpperCase()}${text.slice(1)}.`;
    out.push(message(seq, sender, text, { minutesAgo: (20_000 - seq) * 7 }));
  }
  return out;
}

const CALL_OUTCOMES = { completed: 1, missed: 2, declined: 3, busy: 4, canceled: 5 } as const;

/** An ended call, as `Message.call` carries it. */
export function call(media: "voice" | "video", outcome: keyof typeof CALL_OUTCOMES, seconds = 0) {
  return create(CallSchema, {
    name: `${CONV}/calls/k${seconds}`,
    media: media === "video" ? 2 : 1,
    state: 3,
    outcome: CALL_OUTCOMES[outcome],
    duration: { seconds: BigInt(seconds) },
  });
}
