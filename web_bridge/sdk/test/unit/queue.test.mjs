// The send queue: saved in IndexedDB (fake-indexeddb here; Chromium's real one in
// tests/browser), sent in order, kept through transient failures, failed for good
// with the server's reason.
import "fake-indexeddb/auto";
import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import { ChatClient, indexedDbQueueStorage, memoryQueueStorage } from "../../dist/index.js";
import { CreateMessageRequestSchema } from "../../dist/gen/caas/messages/v1/messages_service_pb.js";
import { MessageSchema } from "../../dist/gen/caas/messages/v1/resources_pb.js";

const USER = "apps/demo/users/alice";
const CONV = "apps/demo/conversations/c1";

/** A stand-in for the server's CreateMessage: answers by script, records what it got. */
function fakeClient(script = () => "ok") {
  const received = [];
  let sequence = 0n;
  const client = {
    // No stream here: the queue's part is under test.
    subscribe: () => ({ close() {} }),
    messages: {
      createMessage: async (request) => {
        const outcome = script(request, received.length);
        received.push(request.message.text);
        if (outcome === "unavailable") throw new ConnectError("down", Code.Unavailable);
        if (outcome === "refused") throw new ConnectError("muted", Code.FailedPrecondition);
        sequence += 1n;
        return { message: create(MessageSchema, { ...request.message, name: `${CONV}/messages/m${sequence}`, sequence, senderId: "alice" }) };
      },
    },
  };
  return { client, received };
}

/** Polls a condition (the queue retries on its own backoff timer) for up to 10 s. */
const until = async (check) => {
  const deadline = Date.now() + 10_000;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(check(), "condition never held");
};

test("IndexedDB keeps the queue across a reload, in order", async () => {
  const name = `queue-${Math.random()}`;
  const first = indexedDbQueueStorage(name);
  for (const [i, text] of ["one", "two", "three"].entries()) {
    await first.put({
      requestId: `r${i}`, queuedAt: 1000 + i,
      request: create(CreateMessageRequestSchema, { parent: CONV, requestId: `r${i}`, message: { text } }),
    });
  }
  await first.remove("r1");
  const reloaded = await indexedDbQueueStorage(name).load();
  assert.deepEqual(reloaded.map((item) => item.request.message.text), ["one", "three"]);
  assert.equal(reloaded[0].request.parent, CONV);
});

test("sends go out in order; a transient failure holds the queue, it is not skipped", async () => {
  let down = true;
  const { client, received } = fakeClient(() => (down ? "unavailable" : "ok"));
  const chat = new ChatClient({ client, user: USER, queue: memoryQueueStorage() });
  chat.connect();
  const ids = ["a", "b", "c"].map((text) => chat.send(CONV, { text }));
  await until(() => received.length >= 1);
  assert.deepEqual(chat.state.pending[CONV].map((item) => item.status), ["pending", "pending", "pending"]);
  down = false;
  await until(() => chat.state.pending[CONV] === undefined);
  // Each failed try sent "a" again, never "b" before "a" succeeded.
  const firstB = received.indexOf("b");
  assert.ok(received.lastIndexOf("a") < firstB && firstB < received.indexOf("c"));
  assert.deepEqual(received.slice(-3), ["a", "b", "c"]);
  assert.equal(ids.length, 3);
  chat.close();
});

test("a refused send is failed with the reason and the next ones still go", async () => {
  const { client, received } = fakeClient((request) => (request.message.text === "bad" ? "refused" : "ok"));
  const queue = memoryQueueStorage();
  const chat = new ChatClient({ client, user: USER, queue });
  chat.connect();
  const bad = chat.send(CONV, { text: "bad" });
  chat.send(CONV, { text: "good" });
  await until(() => received.includes("good"));
  await until(() => chat.state.pending[CONV]?.length === 1);
  const [failed] = chat.state.pending[CONV];
  assert.equal(failed.key, bad);
  assert.equal(failed.status, "failed");
  assert.equal(failed.error, "muted");
  assert.equal((await queue.load()).length, 1, "kept for a retry");
  await chat.discard(bad);
  assert.equal(chat.state.pending[CONV], undefined);
  assert.equal((await queue.load()).length, 0);
  chat.close();
});

test("a reloaded page shows the saved sends at once and sends them with their first request ids", async () => {
  const name = `reload-${Math.random()}`;
  const offline = new ChatClient({ client: fakeClient(() => "unavailable").client, user: USER, queue: indexedDbQueueStorage(name) });
  offline.connect();
  const id = offline.send(CONV, { text: "written offline" });
  await until(() => offline.state.pending[CONV]?.length === 1);
  offline.close();
  const ids = [];
  const { client, received } = fakeClient((request) => {
    ids.push(request.requestId);
    return "ok";
  });
  const reloaded = new ChatClient({ client, user: USER, queue: indexedDbQueueStorage(name) });
  reloaded.connect();
  await reloaded.restored;
  await until(() => received.length === 1);
  assert.deepEqual(received, ["written offline"]);
  assert.deepEqual(ids, [id], "the same request id: the server never stores it twice");
  reloaded.close();
});
