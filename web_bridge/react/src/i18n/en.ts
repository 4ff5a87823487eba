/**
 * The English catalog: every string the kit shows or announces. A value is a
 * template (`{name}` is replaced by the parameter), or plural forms chosen with
 * Intl.PluralRules from the `count` parameter (`other` is required).
 */
export type Plural = { zero?: string; one?: string; two?: string; few?: string; many?: string; other: string };
export type Entry = string | Plural;

export const en = {
  // Conversation list
  "list.label": "Conversations",
  "list.empty": "No conversations yet",
  "list.loading": "Loading conversations…",
  "list.pinned": "Pinned",
  "list.muted": "Muted",
  "list.unread": { one: "{count} unread message", other: "{count} unread messages" },
  "list.mentions": { one: "{count} unread mention", other: "{count} unread mentions" },
  "preview.you": "You: {text}",
  "preview.sender": "{name}: {text}",
  "preview.deleted": "Message deleted",
  "preview.none": "No messages yet",
  "preview.attachment": "Attachment",

  // Message list
  "log.label": "Messages",
  "log.empty": "No messages yet. Say hello!",
  "log.start": "This is the beginning of the conversation",
  "log.loading": "Loading messages…",
  "log.loadingOlder": "Loading older messages…",
  "log.loadingNewer": "Loading newer messages…",
  "log.unreadDivider": "New messages",
  "log.jumpToUnread": "Jump to first unread",
  "log.jumpToLatest": "Jump to latest",
  "log.newBelow": { one: "{count} new message", other: "{count} new messages" },
  "log.announce": "New message from {name}: {text}",
  "day.today": "Today",
  "day.yesterday": "Yesterday",

  // Message
  "message.you": "You",
  "message.deleted": "This message was deleted",
  "message.edited": "(edited)",
  "message.sending": "Sending…",
  "message.failed": "Not sent",
  "message.failedReason": "Not sent: {error}",
  "message.retry": "Retry",
  "message.discard": "Discard",
  "message.sent": "Sent",
  "message.delivered": "Delivered",
  "message.read": "Read",
  "message.actions": "Message actions",
  "message.react": "Add reaction",
  "message.reply": "Reply in thread",
  "message.edit": "Edit",
  "message.delete": "Delete",
  "message.reaction": { one: "{emoji}: {count} reaction", other: "{emoji}: {count} reactions" },
  "message.replies": { one: "{count} reply", other: "{count} replies" },
  "message.lastReply": "Last reply {time}",
  "message.download": "Download {name}",
  "message.image": "Image",
  "message.video": "Video",
  "message.audio": "Audio",
  "message.file": "File",
  "message.link": "Link",

  // Call records (Message.call)
  "call.completed.voice": "Voice call",
  "call.completed.video": "Video call",
  "call.missed.voice": "Missed voice call",
  "call.missed.video": "Missed video call",
  "call.declined.voice": "Declined voice call",
  "call.declined.video": "Declined video call",
  "call.busy.voice": "Voice call: busy",
  "call.busy.video": "Video call: busy",
  "call.canceled.voice": "Canceled voice call",
  "call.canceled.video": "Canceled video call",
  "call.unanswered.voice": "Voice call, no answer",
  "call.unanswered.video": "Video call, no answer",
  "call.duration": "{minutes}:{seconds}",

  // Composer
  "composer.label": "Message",
  "composer.placeholder": "Write a message…",
  "composer.placeholderThread": "Reply in thread…",
  "composer.send": "Send",
  "composer.save": "Save",
  "composer.attach": "Attach files",
  "composer.emoji": "Insert emoji",
  "composer.editing": "Editing message",
  "composer.cancelEdit": "Cancel editing",
  "composer.thread": "Replying in thread",
  "composer.disabled": "You can’t send messages here",
  "composer.remove": "Remove {name}",
  "composer.uploading": "Uploading {name}",
  "composer.uploadFailed": "Upload failed: {error}",
  "composer.drop": "Drop files to attach",
  "composer.suggestions": { zero: "No suggestions", one: "{count} suggestion", other: "{count} suggestions" },
  "composer.hint": "Enter to send, Shift+Enter for a new line",

  // Emoji picker
  "emoji.label": "Emoji",
  "emoji.search": "Search emoji",
  "emoji.none": "No emoji found",

  // Thread
  "thread.label": "Thread",
  "thread.close": "Close thread",
  "thread.replies": { zero: "No replies yet", one: "{count} reply", other: "{count} replies" },

  // Typing, presence, header
  "typing.one": "{name} is typing…",
  "typing.two": "{name} and {other} are typing…",
  "typing.many": "Several people are typing…",
  "presence.online": "Online",
  "presence.away": "Away",
  "presence.offline": "Offline",
  "presence.lastSeen": "Last seen {time}",
  "header.back": "Back to conversations",
  "header.members": { one: "{count} member", other: "{count} members" },
} satisfies Record<string, Entry>;

export type MessageKey = keyof typeof en;
export type Catalog = Record<MessageKey, Entry>;
