import type { ReactNode } from "react";

import { MessageItem, type MessageItemProps } from "../../src/kit/index.js";
import { call, deleted, file, image, link, ME, mention, message, pending, reactions, ts } from "../fixtures.js";
import { story } from "../story.js";

export default { title: "Message" };

const log = (what: string) => () => console.info(what);
const handlers = {
  onRetry: log("retry"),
  onDiscard: log("discard"),
  onToggleReaction: log("toggle reaction"),
  onOpenThread: log("open thread"),
  onEdit: log("edit"),
  onDelete: log("delete"),
};

const Frame = ({ children }: { children: ReactNode }) => <div className="caas-mlist-rows" style={{ maxWidth: 720 }}>{children}</div>;
const M = (p: Omit<MessageItemProps, "me" | "senderName"> & { senderName?: string }) => (
  <MessageItem me={ME} senderName={p.item.message.senderId === "bob" ? "Bob Chen" : "Carol Díaz"} {...handlers} {...p} />
);

export const States = story(
  () => (
    <Frame>
      <M item={message(1, "bob", "A message from someone else", { minutesAgo: 30 })} />
      <M item={message(2, ME, "Own message, sent", { minutesAgo: 29 })} delivery="sent" />
      <M item={message(3, ME, "Own message, delivered", { minutesAgo: 28 })} delivery="delivered" showHeader={false} />
      <M item={message(4, ME, "Own message, read", { minutesAgo: 27 })} delivery="read" showHeader={false} />
      <M item={message(5, ME, "Edited after sending", { minutesAgo: 26, editTime: ts(20) })} delivery="read" showHeader={false} />
      <M item={pending(ME, "Pending: waiting for the server")} showHeader={false} />
      <M item={pending(ME, "Failed to send", "PERMISSION_DENIED: you were removed from the conversation")} showHeader={false} />
      <M item={deleted(6, "bob", 10)} />
      <M item={deleted(7, ME, 9)} />
    </Frame>
  ),
  { description: "Sent, delivered and read ticks; edited; pending (clock); failed with Retry and Discard; deleted." },
);

export const TextLinksMentions = () => (
  <Frame>
    <M
      item={message(1, "bob", "Hey @Alice Martin and @Carol Díaz — the spec is at https://example.com/spec/v2 (see section 3). Also https://en.wikipedia.org/wiki/Chat_(software). Not a link: javascript:alert(1)", {
        mentions: [mention(ME), mention("carol")],
      })}
    />
    <M item={message(2, ME, "Multi-line\n  • keeps line breaks\n  • and indentation", {})} delivery="read" />
    <M item={message(3, "carol", "🎉🎉🎉", {})} />
    <M item={message(4, "carol", "مرحبا! This message mixes العربية and English.", {})} showHeader={false} />
  </Frame>
);

export const LongText = () => (
  <Frame>
    <M item={message(1, "bob", "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(14).trim())} />
    <M item={message(2, ME, "A_very_long_word_without_any_spaces_that_must_wrap_instead_of_overflowing_the_bubble_".repeat(3))} delivery="sent" />
  </Frame>
);

export const Reactions = () => (
  <Frame>
    <M item={message(1, "bob", "Ship it?", { reactions: reactions(["👍", 5, true], ["🚀", 2], ["😂", 1], ["❤️", 12, true]) })} />
    <M item={message(2, ME, "Shipped 🚢", { reactions: reactions(["🎉", 3]) })} delivery="read" />
  </Frame>
);

export const Attachments = story(
  () => (
    <Frame>
      <M item={message(1, "carol", "Two pictures (placeholders sized from their dimensions):", { attachments: [image("wide.png", 1600, 900), image("tall.png", 600, 900, 320)] })} />
      <M item={message(2, ME, "", { attachments: [file("Quarterly report 2025 — final version (signed).pdf", 3_481_223n)] })} delivery="delivered" />
      <M item={message(3, "bob", "Read this", { attachments: [link("https://blog.example.com/posts/virtualized-lists", "How we virtualized the message list")] })} />
      <M item={message(4, "bob", "", { attachments: [file("notes.txt", 912n, "text/plain")] })} showHeader={false} />
    </Frame>
  ),
  { description: "Images (placeholder box sized by width/height), files as download links with their size, link preview card." },
);

export const ThreadFooter = () => (
  <Frame>
    <M item={message(1, "bob", "Where should we have the offsite?", { replyCount: 14, lastReplyTime: ts(35) })} />
    <M item={message(2, ME, "One reply so far", { replyCount: 1, lastReplyTime: ts(60 * 30) })} delivery="read" />
  </Frame>
);

export const Grouped = () => (
  <Frame>
    <M item={message(1, "bob", "First of a group: avatar and name", {})} />
    <M item={message(2, "bob", "Then the same sender within five minutes…", {})} showHeader={false} />
    <M item={message(3, "bob", "…shares the header", {})} showHeader={false} />
  </Frame>
);

export const Arabic = story(
  () => (
    <Frame>
      <M item={message(1, "layla", "مرحبا @Alice Martin! هل راجعت المستند؟ https://example.com/doc", { mentions: [mention(ME)], reactions: reactions(["👍", 2, true]), replyCount: 3, lastReplyTime: ts(10) })} senderName="ليلى حسن" />
      <M item={message(2, ME, "نعم، سأرسل ملاحظاتي اليوم.", { editTime: ts(1) })} delivery="read" />
      <M item={pending(ME, "رسالة لم تُرسل", "UNAVAILABLE")} showHeader={false} />
      <M item={deleted(3, "layla")} senderName="ليلى حسن" />
    </Frame>
  ),
  { locale: "ar" },
);

export const Dark = story(() => <States />, { theme: "dark" });

export const CallRecords = story(
  () => (
    <Frame>
      <M item={message(1, "bob", "", { minutesAgo: 50, call: call("video", "completed", 754) })} />
      <M item={message(2, "bob", "", { minutesAgo: 40, call: call("voice", "missed") })} />
      <M item={message(3, ME, "", { minutesAgo: 30, call: call("voice", "missed") })} delivery="read" />
      <M item={message(4, ME, "", { minutesAgo: 20, call: call("video", "declined") })} delivery="read" showHeader={false} />
      <M item={message(5, "carol", "", { minutesAgo: 10, call: call("voice", "completed", 3725) })} />
    </Frame>
  ),
  { description: "Ended calls as their record messages show them: completed with its duration, missed (\"no answer\" for the caller), declined." },
);
