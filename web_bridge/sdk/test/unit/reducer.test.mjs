// The chat store's reducer against event sequences as the realtime stream delivers
// them, and as it may also deliver them: repeated, replayed out of order, with gaps,
// racing the list requests and the answers to sends.
import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";

import { emptyState, reduce, timelineKey } from "../../dist/index.js";
import { EventSchema } from "../../dist/gen/caas/events/v1/events_pb.js";
import { ConversationSchema, MemberSchema } from "../../dist/gen/caas/conversations/v1/resources_pb.js";
import { MessageSchema, Message_State } from "../../dist/gen/caas/messages/v1/resources_pb.js";

const APP = "apps/demo";
const CONV = `${APP}/conversations/c1`;
let position = 100;

function message(sequence, fields = {}) {
  return create(MessageSchema, {
    name: `${CONV}/messages/m${sequence}`,
    sequence: BigInt(sequence),
    senderId: "bob",
    text: `message ${sequence}`,
    state: Message_State.ACTIVE,
    createTime: timestampFromMs(1_700_000_000_000 + sequence * 1000),
    ...fields,
  });
}

function event(kind, value, fields = {}) {
  position += 1;
  return create(EventSchema, {
    name: `${APP}/events/${fields.position ?? position}`,
    type: kind,
    conversation: CONV,
    createTime: timestampFromMs(1_700_000_000_000 + position),
    payload: { case: kind, value },
    ...fields,
  });
}

const created = (sequence, fields) => event("messageCreated", message(sequence, fields), { userId: fields?.senderId ?? "bob" });

function conversation(fields = {}) {
  return create(ConversationSchema, {
    name: CONV,
    title: "c1",
    lastSequence: 3n,
    membership: create(MemberSchema, { userId: "alice", readSequence: 3n }),
    ...fields,
  });
}

/** Alice's state with the conversation and its latest window (messages 1..3) loaded. */
function loaded() {
  let state = emptyState("alice");
  state = reduce(state, { type: "conversations", conversations: [conversation()], replace: true });
  return reduce(state, {
    type: "messages", conversation: CONV, thread: 0n, mode: "latest",
    messages: [message(1), message(2), message(3)], hasMoreBefore: false, hasMoreAfter: false, position: 0n,
  });
}

const run = (state, actions) => actions.reduce(reduce, state);
const events = (list) => list.map((item) => ({ type: "event", event: item }));
const sequences = (state, key = CONV) => state.timelines[key].messages.map((item) => Number(item.message.sequence));
const texts = (state) => state.timelines[CONV].messages.map((item) => item.message.text);

test("new messages append, count as unread, and move the conversation's preview", () => {
  const state = run(loaded(), events([created(4), created(5)]));
  assert.deepEqual(sequences(state), [1, 2, 3, 4, 5]);
  const conv = state.conversations[CONV];
  assert.equal(conv.membership.unreadCount, 2n);
  assert.equal(conv.lastMessage.sequence, 5n);
  assert.equal(conv.lastSequence, 5n);
});

test("a repeated event changes nothing, not even the unread count", () => {
  const four = created(4);
  const once = run(loaded(), events([four]));
  const twice = run(once, events([four, four]));
  assert.equal(twice, once, "the same state object: nothing changed");
  assert.equal(twice.conversations[CONV].membership.unreadCount, 1n);
});

test("an edit replayed after a later edit does not bring back the old text", () => {
  const first = event("messageUpdated", message(2, { text: "first edit" }));
  const second = event("messageUpdated", message(2, { text: "second edit" }));
  const state = run(loaded(), events([first, second, first]));
  assert.equal(texts(state)[1], "second edit");
});

test("a deletion survives a replayed creation and a replayed earlier edit", () => {
  const creation = created(3); // a replay carries the event's first position
  const edit = event("messageUpdated", message(3, { text: "edited" }));
  const deletion = event("messageDeleted", message(3, { text: "", state: Message_State.DELETED }));
  const state = run(loaded(), events([edit, deletion, creation, edit]));
  const third = state.timelines[CONV].messages[2].message;
  assert.equal(third.state, Message_State.DELETED);
  assert.equal(third.text, "");
});

test("a sequence that skips ahead marks the window stale; fetching after it fills the gap", () => {
  let state = run(loaded(), events([created(4), created(7)]));
  assert.equal(state.timelines[CONV].stale, true);
  assert.deepEqual(sequences(state), [1, 2, 3, 4, 7]);
  state = reduce(state, {
    type: "messages", conversation: CONV, thread: 0n, mode: "after",
    messages: [message(5), message(6), message(7)], hasMoreBefore: true, hasMoreAfter: false, position: state.position,
  });
  assert.equal(state.timelines[CONV].stale, false);
  assert.deepEqual(sequences(state), [1, 2, 3, 4, 5, 6, 7]);
});

test("events that arrive before the first page merge with it", () => {
  let state = emptyState("alice");
  state = reduce(state, { type: "conversations", conversations: [conversation()], replace: true });
  // The page was requested at position 0; message 4 arrives before the page does.
  state = reduce(state, {
    type: "messages", conversation: CONV, thread: 0n, mode: "latest",
    messages: [], hasMoreBefore: false, hasMoreAfter: false, position: 0n,
  });
  state = run(state, events([created(4)]));
  state = reduce(state, {
    type: "messages", conversation: CONV, thread: 0n, mode: "latest",
    messages: [message(2), message(3), message(4, { text: "old copy" })], hasMoreBefore: true, hasMoreAfter: false, position: 0n,
  });
  assert.deepEqual(sequences(state), [2, 3, 4]);
  assert.equal(texts(state)[2], "message 4", "the event's copy is newer than the page's");
  assert.equal(state.timelines[CONV].hasMoreBefore, true);
});

test("a message whose event beats the first page into a new window is kept", () => {
  let state = reduce(emptyState("alice"), { type: "conversations", conversations: [conversation()], replace: true });
  state = reduce(state, { type: "loading", conversation: CONV, thread: 0n });
  const position = state.position; // the page is asked for now
  state = run(state, events([created(4)]));
  assert.equal(state.timelines[CONV].loaded, false);
  state = reduce(state, {
    type: "messages", conversation: CONV, thread: 0n, mode: "latest",
    messages: [message(1), message(2), message(3)], hasMoreBefore: false, hasMoreAfter: false, position,
  });
  assert.deepEqual(sequences(state), [1, 2, 3, 4]);
  assert.equal(state.timelines[CONV].loaded, true);
  assert.equal(state.timelines[CONV].hasMoreBefore, false);
});

test("older pages prepend; a jump replaces the window, which new messages then skip", () => {
  let state = reduce(loaded(), {
    type: "messages", conversation: CONV, thread: 0n, mode: "around",
    messages: [message(50), message(51)], hasMoreBefore: true, hasMoreAfter: true, position: 0n,
  });
  state = run(state, events([created(200)]));
  assert.deepEqual(sequences(state), [50, 51], "a window behind the latest is not stitched with a hole");
  state = reduce(state, {
    type: "messages", conversation: CONV, thread: 0n, mode: "before",
    messages: [message(48), message(49)], hasMoreBefore: false, hasMoreAfter: true, position: 0n,
  });
  assert.deepEqual(sequences(state), [48, 49, 50, 51]);
  assert.equal(state.timelines[CONV].hasMoreBefore, false);
  assert.equal(state.timelines[CONV].hasMoreAfter, true);
});

test("an optimistic send is confirmed in place, answer first", () => {
  let state = reduce(loaded(), {
    type: "send", conversation: CONV, thread: 0n, requestId: "r1", message: message(0, { name: "", senderId: "alice", text: "hi" }),
  });
  assert.equal(state.pending[CONV].length, 1);
  assert.equal(state.pending[CONV][0].status, "pending");
  const stored = message(4, { senderId: "alice", text: "hi" });
  state = reduce(state, { type: "confirmed", requestId: "r1", message: stored });
  state = run(state, events([event("messageCreated", stored, { userId: "alice" })]));
  assert.equal(state.pending[CONV], undefined);
  const last = state.timelines[CONV].messages.at(-1);
  assert.equal(last.key, "r1", "the key stays the request id");
  assert.equal(last.status, "sent");
  assert.deepEqual(sequences(state), [1, 2, 3, 4]);
  assert.equal(state.conversations[CONV].membership.unreadCount, 0n, "one's own message is read");
});

test("an optimistic send is confirmed in place, event first", () => {
  let state = reduce(loaded(), {
    type: "send", conversation: CONV, thread: 0n, requestId: "r1", message: message(0, { name: "", senderId: "alice", text: "hi" }),
  });
  const stored = message(4, { senderId: "alice", text: "hi" });
  state = run(state, events([event("messageCreated", stored, { userId: "alice" })]));
  state = reduce(state, { type: "confirmed", requestId: "r1", message: stored });
  assert.equal(state.pending[CONV], undefined);
  assert.deepEqual(state.timelines[CONV].messages.map((item) => item.key).slice(-1), ["r1"]);
  assert.deepEqual(sequences(state), [1, 2, 3, 4]);
});

test("a refused send stays, failed with its reason, until retried or discarded", () => {
  let state = reduce(loaded(), {
    type: "send", conversation: CONV, thread: 0n, requestId: "r1", message: message(0, { name: "", senderId: "alice", text: "hi" }),
  });
  state = reduce(state, { type: "failed", requestId: "r1", error: "USER_MUTED" });
  assert.equal(state.pending[CONV][0].status, "failed");
  assert.equal(state.pending[CONV][0].error, "USER_MUTED");
  state = reduce(state, { type: "retry", requestId: "r1" });
  assert.equal(state.pending[CONV][0].status, "pending");
  state = reduce(state, { type: "discard", requestId: "r1" });
  assert.equal(state.pending[CONV], undefined);
});

test("reactions: counts from the event, 'mine' only from my own reactions", () => {
  const reacted = (emoji, count, user, added = true) => event(added ? "reactionAdded" : "reactionRemoved", {
    message: message(2, { reactions: [{ emoji, count, reactedByMe: true }] }),
    emoji,
  }, { userId: user });
  let state = run(loaded(), events([reacted("👍", 1, "bob")]));
  let reaction = state.timelines[CONV].messages[1].message.reactions[0];
  assert.equal(reaction.count, 1);
  assert.equal(reaction.reactedByMe, false, "bob's reaction is not alice's");
  state = run(state, events([reacted("👍", 2, "alice")]));
  reaction = state.timelines[CONV].messages[1].message.reactions[0];
  assert.equal(reaction.count, 2);
  assert.equal(reaction.reactedByMe, true);
});

test("thread replies go to the thread's window and count on the root", () => {
  let state = reduce(loaded(), {
    type: "messages", conversation: CONV, thread: 2n, mode: "latest",
    messages: [], hasMoreBefore: false, hasMoreAfter: false, position: 0n,
  });
  state = run(state, events([created(4, { threadRootSequence: 2n }), created(5, { threadRootSequence: 2n })]));
  assert.deepEqual(sequences(state, timelineKey(CONV, 2n)), [4, 5]);
  assert.deepEqual(sequences(state), [1, 2, 3], "replies stay out of the top-level window");
  assert.equal(state.timelines[CONV].messages[1].message.replyCount, 2);
  assert.equal(state.timelines[CONV].stale, false, "reply sequences are no gap");
});

test("reads: a catch-up zeroes the unread count, a partial read asks for a refresh", () => {
  let state = run(loaded(), events([created(4), created(5)]));
  const read = (sequence, user = "alice") => event("readUpdated", { userId: user, sequence: BigInt(sequence) }, { userId: user });
  const partial = run(state, events([read(4)]));
  assert.deepEqual(partial.refresh, [CONV]);
  state = run(state, events([read(5)]));
  assert.equal(state.conversations[CONV].membership.unreadCount, 0n);
  state = run(state, events([read(5, "bob"), event("deliveredUpdated", { userId: "carol", sequence: 4n }, { userId: "carol" })]));
  assert.deepEqual(state.receipts[CONV].bob, { read: 5n, delivered: 5n });
  assert.deepEqual(state.receipts[CONV].carol, { read: 0n, delivered: 4n });
});

test("membership: removed from a conversation, it goes; added to an unknown one, it is fetched", () => {
  let state = run(loaded(), events([event("memberRemoved", create(MemberSchema, { userId: "alice" }))]));
  assert.equal(state.conversations[CONV], undefined);
  assert.equal(state.timelines[CONV], undefined);
  assert.deepEqual(state.inbox, []);
  state = run(state, events([event("memberAdded", create(MemberSchema, { userId: "alice" }))]));
  assert.deepEqual(state.refresh, [CONV]);
  state = reduce(state, { type: "conversation", conversation: conversation() });
  assert.deepEqual(state.refresh, []);
  assert.deepEqual(state.inbox, [CONV]);
});

test("the inbox puts pinned first, then the latest activity", () => {
  const at = (ms) => timestampFromMs(ms);
  const a = conversation({ name: `${APP}/conversations/a`, lastActivityTime: at(3000) });
  const b = conversation({ name: `${APP}/conversations/b`, lastActivityTime: at(2000) });
  const c = conversation({
    name: `${APP}/conversations/c`, lastActivityTime: at(1000),
    membership: create(MemberSchema, { userId: "alice", pinned: true }),
  });
  let state = reduce(emptyState("alice"), { type: "conversations", conversations: [a, b, c], replace: true });
  assert.deepEqual(state.inbox.map((name) => name.split("/").at(-1)), ["c", "a", "b"]);
  state = reduce(state, { type: "event", event: event("messageCreated", message(9, { name: `${APP}/conversations/b/messages/m9` }), { conversation: b.name }) });
  assert.deepEqual(state.inbox.map((name) => name.split("/").at(-1)), ["c", "b", "a"]);
});

test("typing expires; a resync marks every window stale", () => {
  let state = reduce(loaded(), { type: "typing", now: 1000, typing: { conversation: CONV, userId: "bob", typing: true, expireTime: timestampFromMs(6000), threadRootSequence: 0n } });
  assert.deepEqual(Object.keys(state.typing[CONV]), ["bob"]);
  state = reduce(state, { type: "tick", now: 7000 });
  assert.equal(state.typing[CONV], undefined);
  state = reduce(state, { type: "resync" });
  assert.equal(state.timelines[CONV].stale, true);
  assert.deepEqual(state.refresh, [CONV]);
});

test("the reducer never changes its input", () => {
  const before = loaded();
  const frozen = structuredClone(before);
  run(before, [...events([created(4), event("messageUpdated", message(2, { text: "x" }))]),
    { type: "send", conversation: CONV, thread: 0n, requestId: "r", message: message(0, { name: "", senderId: "alice" }) }]);
  assert.deepEqual(before, frozen);
});
