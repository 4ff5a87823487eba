// For tests/web_bridge/test_node_media.py: as ALICE, through the SDK over native gRPC,
// uploads files (file-backed Blobs: never read whole) to CONVERSATION and waits for
// them to be processed:
//   1. PHOTO (a JPEG, one part), waited for on a subscription of waitForMedia's own;
//   2. BIG (two parts), aborted once its first part is stored, then resumed with the
//      same request id (only the second part is sent again), waited for on the
//      caller's subscription;
//   3. BIG again, its second part's first PUT lost on the way: retried, with a fresh
//      URL from GetUpload;
//   4. PROGRAM, said to be a PNG: uploaded, then refused by processing.
// Part PUTs go with fetch here (Node has no XMLHttpRequest), counted by a wrapper.
// Prints one JSON line per step on stdout.
import { openAsBlob } from "node:fs";

import { createGrpcTransport } from "@connectrpc/connect-node";

import {
  MediaProcessingError, Media_Kind, Media_State, createCaasClient, uploadMedia, waitForMedia,
} from "../dist/index.js";

const env = (name) => process.env[name] ?? (() => { throw new Error(`${name} is not set`); })();
const say = (line) => console.log(JSON.stringify(line));
const client = createCaasClient({
  transport: (interceptors) =>
    createGrpcTransport({ baseUrl: `http://${env("CAAS_ADDRESS")}`, interceptors }),
  tokens: { accessToken: env("ALICE_TOKEN"), refreshToken: env("ALICE_REFRESH"), accessTokenExpiresAt: 0 },
});
const conversation = env("CONVERSATION");
const user = `${env("APP_NAME")}/users/${env("ALICE_ID")}`;

// Every part PUT: [part number, HTTP status or "lost"], and hooks to meddle with them.
const puts = [];
// The embedded store's part URLs: /media/v1/parts/{upload}/{number}/{key}?…
const partNumber = (url) => {
  const path = new URL(url).pathname.split("/");
  return Number(path[path.indexOf("parts") + 2]);
};
const realFetch = globalThis.fetch;
let meddle = async () => {};
globalThis.fetch = async (url, init) => {
  if (init?.method !== "PUT") return realFetch(url, init);
  const number = partNumber(String(url));
  await meddle(number, "before");
  const response = await realFetch(url, init);
  puts.push([number, response.status]);
  await meddle(number, "after");
  return response;
};

const progressOf = (events) => ({
  count: events.length,
  first: events[0],
  last: events.at(-1),
  monotonic: events.every((p, i) => i === 0 || p.loadedBytes >= events[i - 1].loadedBytes),
});
const described = (media) => ({
  state: Media_State[media.state], kind: Media_Kind[media.kind], width: media.width,
  height: media.height, thumbnails: media.thumbnails.map((t) => t.size),
  thumbnailUris: media.thumbnails.every((t) => t.uri.startsWith("http")),
  sha256: media.sha256,
});

// 1. A photo, one part.
{
  const progress = [];
  const file = await openAsBlob(env("PHOTO"), { type: "image/jpeg" });
  const media = await uploadMedia(client, {
    conversation, file, fileName: "photo.jpg", onProgress: (p) => progress.push(p) });
  say({ photo: Media_State[media.state], size: file.size, progress: progressOf(progress), puts: puts.splice(0) });
  say({ photoReady: described(await waitForMedia(client, media)) });
}

// 2. Two parts: aborted after the first, then resumed with the same request id.
const big = await openAsBlob(env("BIG"));
{
  const requestId = "node-resume-1";
  const controller = new AbortController();
  meddle = async (number, when) => { if (number === 1 && when === "after") controller.abort(); };
  const progress = [];
  try {
    await uploadMedia(client, {
      conversation, file: big, fileName: "big.bin", requestId, concurrency: 1,
      signal: controller.signal, onProgress: (p) => progress.push(p) });
    say({ aborted: "no" });
  } catch (error) {
    say({ aborted: error.name, puts: puts.splice(0), last: progress.at(-1) });
  }
  meddle = async () => {};
  const resumed = [];
  const subscription = client.subscribe(user, {});
  const media = await uploadMedia(client, {
    conversation, file: big, fileName: "big.bin", requestId, concurrency: 1,
    onProgress: (p) => resumed.push(p) });
  say({ resumed: Media_State[media.state], size: big.size, progress: progressOf(resumed), puts: puts.splice(0) });
  say({ resumedReady: described(await waitForMedia(client, media.name, { subscription })) });
  subscription.close();
}

// 3. Two parts, the second's first PUT lost on the way: retried.
{
  let lost = false;
  meddle = async (number, when) => {
    if (number === 2 && when === "before" && !lost) {
      lost = true;
      puts.push([number, "lost"]);
      throw new TypeError("fetch failed"); // what a dropped connection looks like
    }
  };
  const progress = [];
  const media = await uploadMedia(client, {
    conversation, file: big, fileName: "retried.bin", concurrency: 1, minDelayMs: 10,
    onProgress: (p) => progress.push(p) });
  say({ retried: Media_State[media.state], progress: progressOf(progress), puts: puts.splice(0) });
  say({ retriedReady: described(await waitForMedia(client, media)) });
}
// 4. Not what it says it is: waiting ends in a MediaProcessingError with the reason.
{
  meddle = async () => {};
  const file = await openAsBlob(env("PROGRAM"), { type: "image/png" });
  const media = await uploadMedia(client, { conversation, file, fileName: "cat.png" });
  try {
    await waitForMedia(client, media);
    say({ refused: "no" });
  } catch (error) {
    say({ refused: error instanceof MediaProcessingError, reason: error.reason,
          state: Media_State[error.media?.state] });
  }
}
say({ done: true });
