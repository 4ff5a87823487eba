// For tests/web_bridge/test_store_replay.py: replays a recorded realtime stream (what a
// member received while others chatted, edited, reacted, replied and read) into the
// store's reducer, as recorded and as streams also deliver it — every event twice, an
// older part replayed after the end (a resume from an old token), a stretch lost then a
// resync — and compares each outcome with what the server lists at the end. Prints
// "ok <variants>" or the first difference, and exits 1.
import { readFileSync } from "node:fs";

import { fromJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";

import { emptyState, reduce, timelineKey } from "../dist/index.js";
import { ConversationSchema } from "../dist/gen/caas/conversations/v1/resources_pb.js";
import { EventSchema } from "../dist/gen/caas/events/v1/events_pb.js";
import { MessageSchema } from "../dist/gen/caas/messages/v1/resources_pb.js";

const recording = JSON.parse(readFileSync(process.argv[2], "utf8"));
const conversation = fromJson(ConversationSchema, recording.initial.conversation);
const events = recording.events.map((event) => fromJson(EventSchema, event));
const finalMessages = recording.final.messages.map((message) => fromJson(MessageSchema, message));
const finalThread = recording.final.thread.map((message) => fromJson(MessageSchema, message));
const finalConversation = fromJson(ConversationSchema, recording.final.conversation);
const root = BigInt(recording.threadRoot);
const name = conversation.name;

function start() {
  let state = emptyState(recording.me);
  state = reduce(state, { type: "conversations", conversations: [conversation], replace: true });
  for (const thread of [0n, root]) {
    state = reduce(state, {
      type: "messages", conversation: name, thread, mode: "latest",
      messages: [], hasMoreBefore: false, hasMoreAfter: false, position: 0n,
    });
  }
  return state;
}

const apply = (state, list) => list.reduce((next, event) => reduce(next, { type: "event", event }), state);

/** What a UI shows of a message: compared with the server's own listing. */
function view(message) {
  return {
    sequence: String(message.sequence),
    sender: message.senderId,
    text: message.text,
    state: message.state,
    edited: Boolean(message.editTime),
    replies: message.replyCount,
    reactions: message.reactions.map((r) => `${r.emoji}:${r.count}:${r.reactedByMe}`).sort(),
  };
}

function compare(variant, state) {
  const problems = [];
  const check = (what, got, want) => {
    const a = JSON.stringify(got);
    const b = JSON.stringify(want);
    if (a !== b) problems.push(`${variant}: ${what}\n  got  ${a}\n  want ${b}`);
  };
  check("messages", state.timelines[name].messages.map((item) => view(item.message)), finalMessages.map(view));
  check("thread", state.timelines[timelineKey(name, root)].messages.map((item) => view(item.message)), finalThread.map(view));
  const membership = state.conversations[name].membership;
  check("unread", [String(membership.unreadCount), String(membership.unreadMentionCount), String(membership.readSequence)],
    [String(finalConversation.membership.unreadCount), String(finalConversation.membership.unreadMentionCount),
      String(finalConversation.membership.readSequence)]);
  check("last sequence", String(state.conversations[name].lastSequence), String(finalConversation.lastSequence));
  check("preview", state.conversations[name].lastMessage?.text, finalConversation.lastMessage?.text);
  check("stale", state.timelines[name].stale, false);
  return problems;
}

/** After a loss: what the client does on the resync (or gap) it then sees. */
function resynced(state) {
  let next = reduce(state, { type: "resync" });
  for (const [thread, messages] of [[0n, finalMessages], [root, finalThread]]) {
    next = reduce(next, {
      type: "messages", conversation: name, thread, mode: "latest",
      messages, hasMoreBefore: false, hasMoreAfter: false, position: next.position,
    });
  }
  return reduce(next, { type: "conversation", conversation: finalConversation });
}

const half = Math.floor(events.length / 2);
const variants = {
  "in order": apply(start(), events),
  "every event twice": apply(start(), events.flatMap((event) => [event, event])),
  "the second half replayed after the end": apply(apply(start(), events), events.slice(half)),
  "the first half replayed in the middle": apply(start(), [...events.slice(0, half), ...events.slice(0, half), ...events.slice(half)]),
  "a stretch lost, then a resync": resynced(apply(start(), [...events.slice(0, 3), ...events.slice(8)])),
};
const problems = Object.entries(variants).flatMap(([variant, state]) => compare(variant, state));
if (problems.length) {
  console.log(problems.join("\n"));
  process.exit(1);
}
const created = events.filter((event) => event.payload.case === "messageCreated").length;
console.log(`ok ${Object.keys(variants).length} variants of ${events.length} events (${created} messages), ` +
  `first at ${new Date(timestampMs(events[0].createTime)).toISOString()}`);
