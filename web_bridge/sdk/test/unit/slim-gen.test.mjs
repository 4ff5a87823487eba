// The slim generated code (slim-gen/, made by scripts/gen-slim.mjs for small browser
// bundles: the widget) is a drop-in replacement for src/gen: the same files and
// exports, the same schemas for everything the runtime reads, and the same bytes and
// JSON on the wire both ways — only the custom options and the imports that provided
// them are gone.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";

import { ensureSlimGen } from "../../../scripts/gen-slim.mjs";

const fullRoot = new URL("../../dist/gen/", import.meta.url);
const slimRoot = new URL("../../slim-gen/dist/", import.meta.url);
const slimSources = new URL("../../slim-gen/", import.meta.url);

/** Every generated module ("caas/messages/v1/messages_service_pb"), from dist/gen. */
const modules = readdirSync(fileURLToPath(fullRoot), { recursive: true })
  .map(String).filter((name) => name.endsWith("_pb.js")).map((name) => name.slice(0, -3)).sort();

const full = {};
const slim = {};

before(async () => {
  await ensureSlimGen({ log: () => {} });
  for (const name of modules) {
    full[name] = await import(new URL(`${name}.js`, fullRoot).href);
    slim[name] = await import(new URL(`${name}.js`, slimRoot).href);
  }
});

/** What the runtime reads of a file's descriptor: wire, JSON, reflection, RPC. */
function shape(file) {
  const field = (f) => ({
    name: f.name, number: f.number, jsonName: f.jsonName, kind: f.fieldKind,
    scalar: f.scalar, listKind: f.listKind, mapKey: f.mapKey, packed: f.packed,
    presence: f.presence, delimited: f.delimitedEncoding, longAsString: f.longAsString,
    message: f.message?.typeName, enum: f.enum?.typeName, oneof: f.oneof?.name,
    extendee: f.kind === "extension" ? f.extendee.typeName : undefined,
  });
  const enumShape = (e) => ({
    typeName: e.typeName, open: e.open, sharedPrefix: e.sharedPrefix,
    values: e.values.map((v) => [v.name, v.localName, v.number]),
  });
  const message = (m) => ({
    typeName: m.typeName, fields: m.fields.map(field), oneofs: m.oneofs.map((o) => [o.name, o.localName]),
    members: m.members.map((member) => member.localName),
    nested: m.nestedMessages.map(message), enums: m.nestedEnums.map(enumShape),
    extensions: m.nestedExtensions.map(field),
  });
  return {
    name: file.name, edition: file.edition,
    messages: file.messages.map(message), enums: file.enums.map(enumShape),
    extensions: file.extensions.map(field),
    services: file.services.map((s) => ({
      typeName: s.typeName,
      methods: s.methods.map((m) => [m.name, m.localName, m.methodKind, m.input.typeName, m.output.typeName, m.idempotency]),
    })),
  };
}

const fileOf = (module) => Object.entries(module).find(([key]) => key.startsWith("file_"))[1];

test("slim-gen has the files and the exports of the full generated code", () => {
  assert.ok(modules.length > 30, `only ${modules.length} generated modules`);
  for (const name of modules) {
    assert.deepEqual(Object.keys(slim[name]).sort(), Object.keys(full[name]).sort(), name);
  }
});

test("every schema of slim-gen is the full one without its options", () => {
  for (const name of modules) {
    assert.deepEqual(shape(fileOf(slim[name])), shape(fileOf(full[name])), name);
    for (const [key, value] of Object.entries(full[name])) {
      // Exported enums (TypeScript enum objects) too.
      if (!value?.kind && typeof value === "object") assert.deepEqual(slim[name][key], value, `${name}.${key}`);
    }
  }
});

test("slim-gen imports no option-only file", async () => {
  const optionOnly = /(buf\/validate\/validate|google\/api\/(annotations|client|field_behavior|resource)|caas\/type\/v1\/access|caas\/errors\/v1\/errors)_pb\.js/;
  for (const name of modules) {
    if (/^(buf\/validate|google\/api|caas\/type\/v1\/access|caas\/errors\/v1\/errors)/.test(name)) continue;
    const source = await readFile(new URL(`${name}.ts`, slimSources), "utf8");
    assert.ok(!optionOnly.test(source), `${name} imports ${source.match(optionOnly)?.[0]}`);
    // google/protobuf/descriptor.proto only for the files that declare extensions of options.
    if (fileOf(slim[name]).extensions.length === 0) {
      assert.ok(!source.includes("file_google_protobuf_descriptor"), `${name} imports descriptor.proto`);
    }
  }
});

/** No field left unknown by the reader, anywhere in the message. */
function assertNoUnknown(value, path = "") {
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return;
  assert.equal(value.$unknown, undefined, `unknown fields at ${path || "top"}`);
  for (const [key, inner] of Object.entries(value)) assertNoUnknown(inner, `${path}.${key}`);
}

/** Encoded by one side, decoded by the other, both ways: same bytes, same JSON. */
function assertWireCompatible(module, schemaName, init) {
  const fullSchema = full[module][schemaName];
  const slimSchema = slim[module][schemaName];
  for (const [from, to] of [[fullSchema, slimSchema], [slimSchema, fullSchema]]) {
    const original = create(from, init);
    const bytes = toBinary(from, original);
    const decoded = fromBinary(to, bytes);
    assertNoUnknown(decoded);
    assert.deepEqual(toBinary(to, decoded), bytes, `${schemaName}: bytes`);
    const json = toJson(from, original);
    assert.deepEqual(toJson(to, decoded), json, `${schemaName}: JSON`);
    assert.deepEqual(toBinary(to, fromJson(to, json)), bytes, `${schemaName}: from JSON`);
  }
}

const CONV = "apps/acme/conversations/c1";
const message = {
  name: `${CONV}/messages/7`,
  sequence: 7n,
  senderId: "alice",
  text: "see the attached, @bob",
  attachments: [
    {
      kind: 1, uri: "https://media.example/a.png", title: "a.png", mimeType: "image/png",
      sizeBytes: 12_345_678_901n, width: 640, height: 480, media: "apps/acme/media/m1",
      duration: durationFromMs(1500), blurhash: "LEHV6nWB2yk8",
      thumbnails: [{ uri: "https://media.example/a-t.png", width: 64, height: 48 }],
      uriExpireTime: timestampFromMs(1_700_000_000_000),
    },
    { kind: 2, uri: "https://media.example/b.pdf", mimeType: "application/pdf", sizeBytes: 3n },
  ],
  mentionIds: ["bob"],
  mentions: [{ userId: "bob", displayName: "Bob" }],
  metadata: { client: "widget", "x-trace": "42", "": "empty key" },
  threadRootSequence: 3n,
  replyCount: 2,
  reactions: [{ emoji: "👍", count: 2, reactedByMe: true }],
  state: 1,
  createTime: timestampFromMs(1_700_000_000_123),
};

test("CreateMessageRequest (attachments, metadata) is the same on the wire", () => {
  assertWireCompatible("caas/messages/v1/messages_service_pb", "CreateMessageRequestSchema", {
    parent: CONV, message, requestId: "0b7c4b5e-req",
  });
  assertWireCompatible("caas/messages/v1/resources_pb", "MessageSchema", message);
});

test("Event with a message_created payload is the same on the wire", () => {
  assertWireCompatible("caas/events/v1/events_pb", "EventSchema", {
    name: "apps/acme/events/e1",
    type: "message.created",
    createTime: timestampFromMs(1_700_000_000_456),
    conversation: CONV,
    userId: "alice",
    payload: { case: "messageCreated", value: message },
  });
});

test("SubscribeResponse (event, batch, typing, ready) is the same on the wire", () => {
  const module = "caas/realtime/v1/realtime_service_pb";
  const event = { name: "apps/acme/events/e2", type: "message.created", payload: { case: "messageCreated", value: message } };
  assertWireCompatible(module, "SubscribeResponseSchema", { item: { case: "event", value: event }, resumeToken: "r1" });
  assertWireCompatible(module, "SubscribeResponseSchema", {
    item: { case: "events", value: { events: [event, { ...event, name: "apps/acme/events/e3" }] } }, resumeToken: "r2",
  });
  assertWireCompatible(module, "SubscribeResponseSchema", {
    item: { case: "typing", value: { conversation: CONV, userId: "bob", typing: true, threadRootSequence: 3n } },
  });
  assertWireCompatible(module, "SubscribeResponseSchema", { item: { case: "ready", value: {} }, resumeToken: "r3" });
});

test("google.rpc.ErrorInfo (read by errorReason) is the same on the wire", () => {
  assertWireCompatible("google/rpc/error_details_pb", "ErrorInfoSchema", {
    reason: "ACCESS_TOKEN_EXPIRED", domain: "caas.dev", metadata: { app: "acme" },
  });
});
