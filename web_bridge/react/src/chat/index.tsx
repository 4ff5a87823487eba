/**
 * The kit's components connected to a ChatClient through the hooks: what most apps
 * drop in. `<Chat />` is a whole chat (inbox, conversation, thread side panel);
 * `<Inbox>`, `<ConversationPane>` and `<ThreadPane>` are its parts for apps that lay
 * them out themselves.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";

import { Conversation_Kind, type ChatMessage, type Message } from "@caas/sdk";

import {
  useChatClient,
  useChatState,
  useConversation,
  useConversations,
  useMessages,
  usePresence,
  useThread,
  useTyping,
  useUpload,
  useUserSuggestions,
} from "../hooks/index.js";
import {
  ChatLayout,
  Composer,
  ConversationHeader,
  ConversationList,
  MessageList,
  ThreadView,
  TypingIndicator,
  type ComposerProps,
  type Draft,
  type MessageHandlers,
  type UserResolver,
} from "../kit/index.js";

/**
 * Names and pictures of users, from the store's profiles; users not yet known are
 * fetched once (after the render that asked for them).
 */
export function useUserResolver(): UserResolver {
  const client = useChatClient();
  const users = useChatState((state) => state.users);
  const missing = useRef(new Set<string>());
  const resolve = useCallback<UserResolver>((id) => {
    const user = users[id];
    if (!user) {
      missing.current.add(id);
      return undefined;
    }
    return { name: user.displayName || id, imageUri: user.imageUri || undefined };
  }, [users]);
  useEffect(() => {
    if (!missing.current.size) return;
    const ids = [...missing.current];
    missing.current.clear();
    client.loadUsers(ids).catch(() => undefined);
  });
  return resolve;
}

/** The members' ids of a conversation (fetched once per conversation). */
function useMemberIds(conversation: string | undefined): readonly string[] {
  const client = useChatClient();
  const [ids, setIds] = useState<readonly string[]>([]);
  useEffect(() => {
    setIds([]);
    if (!conversation) return;
    let live = true;
    client.client.conversations.listMembers({ parent: conversation, pageSize: 100 })
      .then((response) => {
        if (live) setIds(response.members.map((member) => member.userId));
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [client, conversation]);
  return ids;
}

export interface InboxProps {
  selected?: string;
  onSelect(conversation: string): void;
  className?: string;
}

/** The user's conversations, live, with unread counts. */
export function Inbox({ selected, onSelect, className }: InboxProps) {
  const client = useChatClient();
  const { conversations, loading } = useConversations();
  const userOf = useUserResolver();
  const typingState = useChatState((state) => state.typing);
  const typing = useMemo(() => {
    const names: Record<string, string[]> = {};
    for (const [key, users] of Object.entries(typingState)) {
      if (key.includes("#")) continue; // threads
      names[key] = Object.keys(users).map((id) => userOf(id)?.name ?? id);
    }
    return names;
  }, [typingState, userOf]);
  return (
    <ConversationList
      conversations={conversations}
      selected={selected}
      onSelect={onSelect}
      me={client.userId}
      userOf={userOf}
      typing={typing}
      loading={loading}
      className={className}
    />
  );
}

export interface ConversationPaneProps {
  conversation: string;
  /** Opens a thread (the root's sequence); without it, no thread actions. */
  onOpenThread?(root: bigint): void;
  /** A back button in the header (narrow layouts). */
  onBack?(): void;
  /** Show the conversation's header (default true; a widget has its own). */
  header?: boolean;
  className?: string;
}

/** Reactions, edits, deletions, retries: the handlers every message list needs. */
function useMessageHandlers(
  actions: ReturnType<typeof useMessages>,
  setEditing: (message: Message | null) => void,
  onOpenThread?: (root: bigint) => void,
): MessageHandlers {
  return useMemo(() => ({
    onRetry: (item: ChatMessage) => item.requestId && actions.retry(item.requestId),
    onDiscard: (item: ChatMessage) => item.requestId && actions.discard(item.requestId),
    onToggleReaction: (item: ChatMessage, emoji: string) => {
      const mine = item.message.reactions.some((reaction) => reaction.emoji === emoji && reaction.reactedByMe);
      actions.react(item.message, emoji, !mine);
    },
    onOpenThread: onOpenThread ? (item: ChatMessage) => onOpenThread(item.message.sequence) : undefined,
    onEdit: (item: ChatMessage) => setEditing(item.message),
    onDelete: (item: ChatMessage) => actions.remove(item.message),
  }), [actions, setEditing, onOpenThread]);
}

/** Composer props wired to sends, edits, mentions, typing and uploads. */
function useComposer(
  conversation: string,
  thread: bigint,
  actions: ReturnType<typeof useMessages>,
  editing: Message | null,
  setEditing: (message: Message | null) => void,
): ComposerProps {
  const typing = useTyping(conversation, thread);
  const upload = useUpload(conversation);
  const suggest = useUserSuggestions();
  // The composer's Send waits until every attachment is processed (`ready`).
  const send = useCallback((draft: Draft) => {
    typing.stop();
    actions.send({ text: draft.text, mentionIds: draft.mentionIds, attachments: upload.attachments() });
    upload.clear();
  }, [actions, typing, upload]);
  const suggestMentions = useCallback(async (query: string) =>
    (await suggest(query, conversation)).map((hit) => {
      const id = hit.user?.name.slice(hit.user.name.lastIndexOf("/") + 1) ?? "";
      return { id, name: hit.user?.displayName || id, detail: id };
    }), [suggest, conversation]);
  const attachments = useMemo(() => upload.uploads.map((item) => ({
    id: item.id, name: item.name, progress: item.progress, ready: Boolean(item.media), error: item.error,
  })), [upload.uploads]);
  return {
    onSend: send,
    onTyping: typing.notify,
    suggestMentions,
    onAttach: upload.add,
    attachments,
    onRemoveAttachment: upload.remove,
    editing,
    onSaveEdit: (message, draft) => {
      actions.edit(message, draft.text);
      setEditing(null);
    },
    onCancelEdit: () => setEditing(null),
    thread: thread !== 0n,
  };
}

/** Shown while the page is visible, the latest message of a window is read. */
function useMarkRead(actions: ReturnType<typeof useMessages>): void {
  const last = actions.messages.at(-1);
  useEffect(() => {
    if (!last || last.status !== "sent" || actions.hasMoreAfter) return;
    if (typeof document !== "undefined" && document.visibilityState !== "visible") return;
    actions.markRead(last.message.sequence);
  }, [last, actions]);
}

function useTypingNames(conversation: string, thread: bigint, userOf: UserResolver): string[] {
  const { typing } = useTyping(conversation, thread);
  return useMemo(() => typing.map((id) => userOf(id)?.name ?? id), [typing, userOf]);
}

/** One conversation: header, messages (virtualized), typing, composer. */
export function ConversationPane({ conversation, onOpenThread, onBack, header = true, className }: ConversationPaneProps) {
  const client = useChatClient();
  const info = useConversation(conversation);
  const actions = useMessages(conversation);
  const receipts = useChatState((state) => state.receipts[conversation]);
  const userOf = useUserResolver();
  const [editing, setEditing] = useState<Message | null>(null);
  const handlers = useMessageHandlers(actions, setEditing, onOpenThread);
  const members = useMemberIds(info?.kind === Conversation_Kind.DIRECT ? conversation : undefined);
  const other = members.find((id) => id !== client.userId);
  const presence = usePresence(other ? [other] : []);
  const typingNames = useTypingNames(conversation, 0n, userOf);
  const composer = useComposer(conversation, 0n, actions, editing, setEditing);
  // The read position when the conversation was opened: the "new messages" divider
  // stays where it was while the user reads.
  const readAtOpen = useRef<{ conversation: string; sequence: bigint } | null>(null);
  if (info?.membership && readAtOpen.current?.conversation !== conversation) {
    readAtOpen.current = { conversation, sequence: info.membership.readSequence };
  }
  useMarkRead(actions);
  const title = info?.title || (other ? userOf(other)?.name ?? other : "") || conversation.slice(conversation.lastIndexOf("/") + 1);
  const otherPresence = other ? presence[other] : undefined;
  return (
    <section className={["caas-pane", className].filter(Boolean).join(" ")} aria-label={title}>
      {header && <ConversationHeader
        id={conversation}
        title={title}
        imageUri={info?.imageUri || (other ? userOf(other)?.imageUri : undefined)}
        presence={otherPresence?.status || undefined}
        memberCount={info?.kind === Conversation_Kind.DIRECT ? undefined : info?.memberCount}
        onBack={onBack}
      />}
      <MessageList
        {...handlers}
        items={actions.messages}
        me={client.userId}
        receipts={receipts}
        userOf={userOf}
        readSequence={readAtOpen.current?.sequence}
        initialPosition="unread"
        loading={actions.loading}
        hasMoreBefore={actions.hasMoreBefore}
        onLoadOlder={actions.loadOlder}
        hasMoreAfter={actions.hasMoreAfter}
        onLoadNewer={actions.loadNewer}
        onJumpToLatest={actions.jumpToLatest}
        onJumpToUnread={() => readAtOpen.current && actions.jumpTo(readAtOpen.current.sequence + 1n)}
        showThread={Boolean(onOpenThread)}
      />
      <TypingIndicator names={typingNames} />
      <Composer {...composer} />
    </section>
  );
}

export interface ThreadPaneProps {
  conversation: string;
  /** The root message's sequence. */
  root: bigint;
  onClose?(): void;
}

/** A thread: its root, its replies, a reply composer. */
export function ThreadPane({ conversation, root, onClose }: ThreadPaneProps) {
  const client = useChatClient();
  const thread = useThread(conversation, root);
  const receipts = useChatState((state) => state.receipts[conversation]);
  const userOf = useUserResolver();
  const [editing, setEditing] = useState<Message | null>(null);
  const handlers = useMessageHandlers(thread, setEditing);
  useMarkRead(thread);
  const typingNames = useTypingNames(conversation, root, userOf);
  const { thread: _, ...composer } = useComposer(conversation, root, thread, editing, setEditing);
  const rootItem = useMemo<ChatMessage | undefined>(() => thread.root && {
    key: thread.root.name, message: thread.root, status: "sent", version: 0n,
  }, [thread.root]);
  if (!rootItem) return null;
  return (
    <div className="caas-thread-pane">
      <ThreadView
        {...handlers}
        root={rootItem}
        onClose={onClose}
        items={thread.messages}
        me={client.userId}
        receipts={receipts}
        userOf={userOf}
        loading={thread.loading}
        hasMoreBefore={thread.hasMoreBefore}
        onLoadOlder={thread.loadOlder}
        composer={composer}
      />
      <TypingIndicator names={typingNames} />
    </div>
  );
}

export interface ChatProps {
  /** The conversation open at first. */
  initialConversation?: string;
  /** Told when the user opens (or, with undefined, leaves) a conversation. */
  onConversationChange?(conversation: string | undefined): void;
  className?: string;
}

/** A whole chat: the inbox, the open conversation, and a thread beside it. */
export function Chat({ initialConversation, onConversationChange, className }: ChatProps) {
  const [selected, setSelected] = useState<string | undefined>(initialConversation);
  const [thread, setThread] = useState<bigint | undefined>(undefined);
  const select = useCallback((name: string | undefined) => {
    setSelected(name);
    setThread(undefined);
    onConversationChange?.(name);
  }, [onConversationChange]);
  return (
    <ChatLayout
      className={className}
      list={<Inbox selected={selected} onSelect={select} />}
      thread={selected && thread ? <ThreadPane conversation={selected} root={thread} onClose={() => setThread(undefined)} /> : undefined}
      view={selected && thread ? "thread" : selected ? "conversation" : "list"}
    >
      {selected ? (
        <ConversationPane
          key={selected}
          conversation={selected}
          onOpenThread={setThread}
          onBack={() => select(undefined)}
        />
      ) : null}
    </ChatLayout>
  );
}
