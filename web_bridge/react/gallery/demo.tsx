/**
 * A working chat in memory for the gallery: the kit's components wired to local
 * state (sends confirm after a moment, Bob types and answers, uploads progress).
 * What the connected wrappers over @caas/sdk will do, without a server.
 */
import { useEffect, useMemo, useRef, useState } from "react";
import { create } from "@bufbuild/protobuf";
import type { ChatMessage, Conversation, Message } from "@caas/sdk";
import { MessageSchema, Message_State } from "@caas/sdk/gen/caas/messages/v1/resources_pb";

import {
  ChatLayout,
  Composer,
  ConversationHeader,
  ConversationList,
  MessageList,
  ThreadView,
  TypingIndicator,
  type ComposerAttachment,
  type ComposerDraft,
  type MentionSuggestion,
} from "../src/kit/index.js";
import { file, history, INBOX, ME, mention, message, NOW, presenceOf, RECEIPTS, sampleConversation, titleOf, ts, userOf, USERS } from "./fixtures.js";

export const suggestMentions = (query: string): Promise<MentionSuggestion[]> =>
  new Promise((resolve) =>
    setTimeout(
      () =>
        resolve(
          Object.entries(USERS)
            .filter(([id, u]) => id !== ME && (u.name.toLowerCase().includes(query.toLowerCase()) || id.startsWith(query.toLowerCase())))
            .map(([id, u]) => ({ id, name: u.name, detail: `@${id}` })),
        ),
      80,
    ),
  );

const withMessage = (item: ChatMessage, patch: Partial<Message>): ChatMessage => ({
  ...item,
  message: create(MessageSchema, { ...item.message, ...patch }),
});

let counter = 0;

/** One conversation's state and actions (also used alone by MessageList stories). */
export function useDemoConversation(initial: () => ChatMessage[]) {
  const [items, setItems] = useState(initial);
  const [typing, setTyping] = useState<string[]>([]);
  const [editing, setEditing] = useState<Message | null>(null);
  const [attachments, setAttachments] = useState<ComposerAttachment[]>([]);
  const timers = useRef<ReturnType<typeof setTimeout>[]>([]);
  useEffect(() => () => timers.current.forEach(clearTimeout), []);
  const later = (ms: number, fn: () => void) => timers.current.push(setTimeout(fn, ms));
  const nextSequence = () => {
    let max = 0n;
    for (const i of items) if (i.message.sequence > max) max = i.message.sequence;
    return max + 1n + BigInt(counter++);
  };

  const confirm = (key: string) =>
    setItems((list) =>
      list.map((i) =>
        i.key === key ? { ...withMessage(i, { sequence: nextSequence(), name: `x/${key}`, createTime: ts(0) }), status: "sent" as const, error: undefined } : i,
      ),
    );

  const send = (draft: ComposerDraft) => {
    const key = `req-${Date.now()}-${counter++}`;
    const done = attachments.filter((a) => a.progress >= 1 && !a.error);
    const m = create(MessageSchema, {
      senderId: ME,
      text: draft.text,
      mentionIds: draft.mentionIds,
      mentions: draft.mentionIds.map(mention),
      attachments: done.map((a) => file(a.name, 120_000n)),
      state: Message_State.ACTIVE,
      createTime: ts(0),
    });
    setAttachments([]);
    setItems((list) => [...list, { key, requestId: key, message: m, status: "pending", version: 0n }]);
    // "fail" in the text makes the send fail, to show the failed state.
    later(700, () =>
      /\bfail\b/i.test(draft.text)
        ? setItems((list) => list.map((i) => (i.key === key ? { ...i, status: "failed", error: "UNAVAILABLE: no connection" } : i)))
        : confirm(key),
    );
    later(1500, () => setTyping(["Bob Chen"]));
    later(4000, () => {
      setTyping([]);
      setItems((list) => [...list, message(Number(nextSequence()), "bob", draft.text.length > 40 ? "That's a lot to take in — give me a minute 😅" : "Got it, thanks!", { minutesAgo: (NOW - Date.now()) / 60_000 })]);
    });
  };

  return {
    items,
    typing,
    editing,
    attachments,
    send,
    listProps: {
      items,
      me: ME,
      receipts: RECEIPTS,
      userOf,
      onRetry: (item: ChatMessage) => {
        setItems((list) => list.map((i) => (i.key === item.key ? { ...i, status: "pending" as const, error: undefined } : i)));
        later(600, () => confirm(item.key));
      },
      onDiscard: (item: ChatMessage) => setItems((list) => list.filter((i) => i.key !== item.key)),
      onToggleReaction: (item: ChatMessage, emoji: string) =>
        setItems((list) =>
          list.map((i) => {
            if (i.key !== item.key) return i;
            const rs = i.message.reactions.map((r) => ({ ...r }));
            const r = rs.find((x) => x.emoji === emoji);
            if (!r) rs.push({ emoji, count: 1, reactedByMe: true } as (typeof rs)[number]);
            else {
              r.count += r.reactedByMe ? -1 : 1;
              r.reactedByMe = !r.reactedByMe;
            }
            return withMessage(i, { reactions: rs.filter((x) => x.count > 0) });
          }),
        ),
      onEdit: (item: ChatMessage) => setEditing(item.message),
      onDelete: (item: ChatMessage) =>
        setItems((list) => list.map((i) => (i.key === item.key ? withMessage(i, { state: Message_State.DELETED, text: "", attachments: [], reactions: [] }) : i))),
    },
    composerProps: {
      onSend: send,
      suggestMentions,
      editing,
      onCancelEdit: () => setEditing(null),
      onSaveEdit: (m: Message, d: ComposerDraft) => {
        setItems((list) => list.map((i) => (i.message === m ? withMessage(i, { text: d.text, editTime: ts(0), mentionIds: d.mentionIds, mentions: d.mentionIds.map(mention) }) : i)));
        setEditing(null);
      },
      attachments,
      onAttach: (files: File[]) => {
        const added = files.map((f) => ({ id: `${f.name}-${counter++}`, name: f.name, progress: 0 }));
        setAttachments((list) => [...list, ...added]);
        for (let step = 1; step <= 10; step++)
          later(step * 250, () => setAttachments((list) => list.map((a) => (added.some((x) => x.id === a.id) ? { ...a, progress: step / 10 } : a))));
      },
      onRemoveAttachment: (id: string) => setAttachments((list) => list.filter((a) => a.id !== id)),
    },
  };
}

function Conversation({ conversation, onBack, onOpenThread }: { conversation: Conversation; onBack(): void; onOpenThread(item: ChatMessage): void }) {
  const chat = useDemoConversation(() => (conversation.name.endsWith("launch") ? sampleConversation() : history(40, 19_961)));
  const direct = conversation.kind === 1;
  return (
    <>
      <ConversationHeader
        id={conversation.name}
        title={titleOf(conversation)}
        presence={presenceOf(conversation)}
        memberCount={direct ? undefined : conversation.memberCount}
        onBack={onBack}
      />
      <MessageList {...chat.listProps} onOpenThread={onOpenThread} readSequence={conversation.membership?.unreadCount ? 8n : undefined} />
      <TypingIndicator names={chat.typing} />
      <Composer {...chat.composerProps} />
    </>
  );
}

function Thread({ root, onClose }: { root: ChatMessage; onClose(): void }) {
  const chat = useDemoConversation(() =>
    Array.from({ length: Math.max(root.message.replyCount, 2) }, (_, i) =>
      message(100 + i, ["carol", "dave", ME, "bob"][i % 4], ["Agreed!", "Can we move the date?", "I think Thursday works for everyone.", "Thursday it is."][i % 4], {
        minutesAgo: 120 - i * 20,
        threadRootSequence: root.message.sequence,
      }),
    ),
  );
  return <ThreadView root={root} onClose={onClose} {...chat.listProps} composer={chat.composerProps} />;
}

/** The whole chat: inbox, conversation, thread. */
export function DemoApp({ initialSelected = INBOX[0].name }: { initialSelected?: string | null }) {
  const [selected, setSelected] = useState<string | null>(initialSelected);
  const [thread, setThread] = useState<ChatMessage | null>(null);
  const [inbox, setInbox] = useState(INBOX);
  const conversation = useMemo(() => inbox.find((c) => c.name === selected), [inbox, selected]);
  const select = (name: string) => {
    setSelected(name);
    setThread(null);
    // Opening a conversation reads it.
    setInbox((list) => list.map((c) => (c.name === name && c.membership ? { ...c, membership: { ...c.membership, unreadCount: 0n, unreadMentionCount: 0n } } : c)));
  };
  return (
    <ChatLayout
      list={
        <ConversationList
          conversations={inbox}
          selected={selected ?? undefined}
          onSelect={select}
          me={ME}
          titleOf={titleOf}
          presenceOf={presenceOf}
          userOf={userOf}
          typing={{ [INBOX[2].name]: ["Carol Díaz"] }}
        />
      }
      thread={thread && <Thread key={thread.key} root={thread} onClose={() => setThread(null)} />}
      view={thread ? "thread" : conversation ? "conversation" : "list"}
    >
      {conversation && <Conversation key={conversation.name} conversation={conversation} onBack={() => setSelected(null)} onOpenThread={setThread} />}
    </ChatLayout>
  );
}
