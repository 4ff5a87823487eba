/**
 * Uploading media and waiting for it to be processed.
 *
 * `uploadMedia` does what MediaService asks of a client: CreateUpload, then PUT each
 * part of the file to its signed URL (no authorization header: the URL is the
 * permission), resuming through GetUpload after a failed part (fresh URLs, the parts
 * the store holds skipped) and for files of more than 100 parts, then CompleteUpload.
 * The file is never read whole: each part is a `Blob.slice` of it. In browsers the
 * parts go with XMLHttpRequest, whose upload events report progress as bytes leave
 * (fetch has none); where there is no XMLHttpRequest (Node), with fetch, a part's
 * progress counted once it is stored.
 *
 * `waitForMedia` waits, on the uploader's realtime stream, for `media.ready` (or
 * `media.failed`) — no polling: GetMedia is asked only when the stream (re)starts, to
 * learn what happened while it was not listening.
 */
import { Code, ConnectError } from "@connectrpc/connect";

import type { CaasClient, Subscription } from "./client.js";
import { errorReason } from "./client.js";
import type { Event } from "./gen/caas/events/v1/events_pb.js";
import { Media_State, type Media, type Upload, type UploadPart } from "./gen/caas/media/v1/resources_pb.js";

/** How much of a file has been sent. */
export interface UploadProgress {
  /** Bytes sent (parts stored, and the parts in flight so far). It goes back when a
   * part fails and is sent again. */
  loadedBytes: number;
  /** The file's size. */
  totalBytes: number;
}

export interface UploadMediaOptions {
  /** The conversation the media is for: `apps/{app}/conversations/{conversation}`. */
  conversation: string;
  /** The file (a `File` from an `<input type=file>`, or any Blob). */
  file: Blob;
  /** `apps/{app}` (or the app id); default: the conversation's app. */
  app?: string;
  /** The name downloads offer; default: the File's name, else "file". */
  fileName?: string;
  /** The media type to declare; default: the Blob's type, else
   * `application/octet-stream`. CAAS checks it against the bytes. */
  contentType?: string;
  /**
   * Makes the upload idempotent: calling again with the same id (same user) carries
   * on with the same media, sending only the parts the store does not hold yet, as
   * long as the upload has not expired. Default: a new random id.
   */
  requestId?: string;
  /** Aborts the upload: the part requests in flight are aborted, and `uploadMedia`
   * rejects with the signal's reason. The upload stays resumable (same `requestId`)
   * until it expires; `media.deleteMedia` drops it at once. */
  signal?: AbortSignal;
  /** Told as bytes go out (at most about once per part progress event). */
  onProgress?: (progress: UploadProgress) => void;
  /** Attempts after a failure with no part stored since (default 5): network errors,
   * expired URLs (403), 408, 429 and 5xx answers are retried; others are not. */
  retries?: number;
  /** Parts sent at the same time (default 3). */
  concurrency?: number;
  /** Retry backoff: the first delay and the cap, in ms (full jitter; 500 and 15000). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /**
   * A part request silent this long (no upload progress, no answer) is taken for lost,
   * aborted, and sent again (default 60 s): a cut network may never say so. Browsers
   * only (fetch reports no progress to tell a slow upload from a dead one).
   */
  stallTimeoutMs?: number;
}

/** A part PUT that failed: `status` is the HTTP status (0: no answer, such as a lost
 * network), `reason` the ErrorInfo reason of CAAS's own store when it gave one. */
export class PartUploadError extends Error {
  constructor(
    readonly partNumber: number,
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "PartUploadError";
  }

  /** Worth sending again (with a fresh URL): no answer, an expired URL, overload. */
  get retryable(): boolean {
    const { status } = this;
    return status === 0 || status === 403 || status === 408 || status === 429 || status >= 500;
  }
}

/** The media could not be used: processing refused it (FAILED, or QUARANTINED by the
 * scanner). `reason` is its `failureReason`, such as `CONTENT_TYPE_NOT_ALLOWED`. */
export class MediaProcessingError extends Error {
  readonly reason: string;

  constructor(readonly media: Media) {
    super(`media ${media.name} was refused: ${media.failureReason || Media_State[media.state]}`);
    this.name = "MediaProcessingError";
    this.reason = media.failureReason;
  }
}

type SendPart = (
  url: string,
  body: Blob,
  partNumber: number,
  signal: AbortSignal,
  onLoaded: (bytes: number) => void,
  stallMs: number,
) => Promise<void>;

function partError(partNumber: number, status: number, body: string, what = "no answer"): PartUploadError {
  let reason = "";
  try {
    // CAAS's own store answers like the API: a JSON google.rpc.Status.
    const details = (JSON.parse(body) as { details?: { reason?: string }[] }).details ?? [];
    reason = details.find((detail) => detail.reason)?.reason ?? "";
  } catch {
    // Another store's answer (S3's is XML): the status says enough.
  }
  const said = status ? `HTTP ${status}${reason ? ` (${reason})` : ""}` : what;
  return new PartUploadError(partNumber, status, reason, `part ${partNumber} was not stored: ${said}`);
}

/** Browsers: XMLHttpRequest, for its upload progress events. */
const xhrSendPart: SendPart = (url, body, partNumber, signal, onLoaded, stallMs) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const request = new XMLHttpRequest();
    const abort = () => request.abort();
    let stalled = false;
    const stall = () => {
      stalled = true;
      request.abort();
    };
    let watchdog = setTimeout(stall, stallMs);
    const alive = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(stall, stallMs);
    };
    request.open("PUT", url);
    request.upload.onprogress = (progress) => {
      alive();
      onLoaded(progress.loaded);
    };
    request.onreadystatechange = alive; // the answer has begun
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) resolve();
      else reject(partError(partNumber, request.status, request.responseText));
    };
    request.onerror = () => reject(partError(partNumber, 0, ""));
    request.onabort = () => reject(signal.aborted ? signal.reason
      : partError(partNumber, 0, "", stalled ? `no progress for ${stallMs} ms` : "aborted"));
    request.onloadend = () => {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", abort);
    };
    signal.addEventListener("abort", abort, { once: true });
    request.send(body); // the slice's type is empty: no Content-Type header
  });

/** Node (and any runtime without XMLHttpRequest): fetch, progress once stored. */
const fetchSendPart: SendPart = async (url, body, partNumber, signal, onLoaded) => {
  let response: Response;
  try {
    response = await fetch(url, { method: "PUT", body, signal });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw Object.assign(partError(partNumber, 0, ""), { cause: error });
  }
  const text = await response.text().catch(() => "");
  if (!response.ok) throw partError(partNumber, response.status, text);
  onLoaded(body.size);
};

function defaultSendPart(): SendPart {
  return typeof XMLHttpRequest === "function" ? xhrSendPart : fetchSendPart;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const wake = () => {
      signal.removeEventListener("abort", stop);
      resolve();
    };
    const stop = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(wake, ms);
    signal.addEventListener("abort", stop, { once: true });
  });
}

function appOf(name: string): string {
  const match = /^apps\/[^/]+/.exec(name);
  if (!match) throw new Error(`not a resource of an app: ${name}`);
  return match[0];
}

function parentOf(options: UploadMediaOptions): string {
  if (!options.app) return appOf(options.conversation);
  return options.app.startsWith("apps/") ? options.app : `apps/${options.app}`;
}

function fileNameOf(file: Blob): string {
  const name = (file as Partial<File>).name;
  return typeof name === "string" && name ? name : "file";
}

function randomId(): string {
  return globalThis.crypto.randomUUID().replaceAll("-", "");
}

/**
 * Uploads `options.file` for `options.conversation` and completes the upload: the media,
 * PENDING (processing has begun) or further along. Wait for it to be READY with
 * `waitForMedia` before attaching it to a message (`attachments: [{ media: media.name }]`).
 *
 * Rejects with the ConnectError of a refused call (MEDIA_TOO_LARGE,
 * CONTENT_TYPE_NOT_ALLOWED, STORAGE_QUOTA_EXCEEDED, NOT_A_MEMBER, …), a
 * `PartUploadError` once a part has failed `retries` times more (or at once when
 * retrying cannot help), or the signal's reason when aborted.
 */
export async function uploadMedia(client: Pick<CaasClient, "media">, options: UploadMediaOptions): Promise<Media> {
  const { file, conversation, onProgress } = options;
  const signal = options.signal ?? new AbortController().signal;
  const retries = options.retries ?? 5;
  const concurrency = Math.max(1, options.concurrency ?? 3);
  const minDelay = options.minDelayMs ?? 500;
  const maxDelay = options.maxDelayMs ?? 15_000;
  const stallMs = options.stallTimeoutMs ?? 60_000;
  const sendPart = defaultSendPart();
  const total = file.size;
  const call = { signal };
  const backoff = (failures: number) =>
    sleep(Math.random() * Math.min(maxDelay, minDelay * 2 ** Math.min(failures, 16)), signal);
  try {
    signal.throwIfAborted();
    const created = await client.media.createUpload({
      parent: parentOf(options),
      media: {
        conversation,
        fileName: options.fileName ?? fileNameOf(file),
        sizeBytes: BigInt(total),
        declaredContentType: options.contentType || file.type || "application/octet-stream",
      },
      requestId: options.requestId ?? randomId(),
    }, call);
    const media = created.media;
    if (!media) throw new Error("CreateUpload answered without a media");
    if (Number(media.sizeBytes) !== total) {
      throw new Error(`request id reused for another file: ${media.name} is ${media.sizeBytes} bytes, not ${total}`);
    }
    if (media.state !== Media_State.UPLOADING) {
      onProgress?.({ loadedBytes: total, totalBytes: total }); // completed by an earlier call
      return media;
    }
    let upload: Upload | undefined = created.upload;
    if (!upload) throw new Error("CreateUpload answered without an upload");
    const partSize = Number(upload.partSize);
    const partCount = upload.partCount;
    const sizeOf = (n: number) => Math.min(partSize, total - (n - 1) * partSize);

    const stored = new Set<number>();
    const inFlight = new Map<number, number>();
    let storedBytes = 0;
    let reported = -1;
    const report = () => {
      let loaded = storedBytes;
      for (const bytes of inFlight.values()) loaded += bytes;
      loaded = Math.min(loaded, total);
      if (loaded !== reported) {
        reported = loaded;
        onProgress?.({ loadedBytes: loaded, totalBytes: total });
      }
    };
    const markStored = (n: number) => {
      if (stored.has(n)) return;
      stored.add(n);
      storedBytes += sizeOf(n);
    };
    const take = (current: Upload) => {
      for (const n of current.uploadedParts) markStored(n);
      report();
      return current.parts.filter((part) => !stored.has(part.partNumber));
    };

    let parts: UploadPart[] = take(upload);
    let failures = 0; // in a row, with no part stored since
    for (;;) {
      if (stored.size >= partCount) {
        try {
          const completed = await client.media.completeUpload({ name: media.name }, call);
          if (!completed.media) throw new Error("CompleteUpload answered without a media");
          return completed.media;
        } catch (error) {
          // A part the store lost (or never took whole): send the missing ones again.
          if (errorReason(error) !== "UPLOAD_INCOMPLETE" || ++failures > retries) throw error;
          stored.clear();
          storedBytes = 0;
          parts = [];
          await backoff(failures);
        }
      }
      if (!parts.length) {
        upload = (await client.media.getUpload({ name: `${media.name}/upload` }, call)).upload;
        if (!upload) throw new Error("GetUpload answered without an upload");
        parts = take(upload);
        if (!parts.length && stored.size < partCount) {
          throw new Error(`GetUpload lists no URL for the ${partCount - stored.size} missing parts`);
        }
        continue;
      }

      // Send this batch, `concurrency` at a time; after a failure, start no more.
      const queue = [...parts];
      let failure: unknown;
      let progressed = false;
      const worker = async () => {
        for (let part = queue.shift(); part && failure === undefined; part = queue.shift()) {
          const n = part.partNumber;
          const body = file.slice((n - 1) * partSize, (n - 1) * partSize + Number(part.sizeBytes));
          inFlight.set(n, 0);
          try {
            await sendPart(part.url, body, n, signal, (bytes) => {
              inFlight.set(n, Math.min(bytes, body.size));
              report();
            }, stallMs);
            inFlight.delete(n);
            markStored(n);
            progressed = true;
            report();
          } catch (error) {
            inFlight.delete(n);
            report();
            failure ??= error;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
      parts = []; // what is left: GetUpload says, with fresh URLs
      if (failure === undefined) continue;
      signal.throwIfAborted();
      if (!(failure instanceof PartUploadError) || !failure.retryable) throw failure;
      if (progressed) failures = 0;
      if (++failures > retries) throw failure;
      await backoff(failures);
    }
  } catch (error) {
    if (signal.aborted) throw signal.reason; // one way to say it, whichever call noticed
    throw error;
  }
}

export interface WaitForMediaOptions {
  /**
   * The uploader's subscription (`client.subscribe(user, …)`) to watch for the
   * media's `media.ready` / `media.failed` event. Without one, `waitForMedia` opens a
   * subscription of its own for the while.
   */
  subscription?: Subscription;
  /** Stop waiting: rejects with the signal's reason (`AbortSignal.timeout(ms)` makes a
   * deadline). */
  signal?: AbortSignal;
}

function settled(media: Media): boolean {
  return media.state === Media_State.READY || media.state === Media_State.FAILED ||
    media.state === Media_State.QUARANTINED;
}

function mediaEvent(event: Event, name: string): Media | undefined {
  const { payload } = event;
  if ((payload.case === "mediaReady" || payload.case === "mediaFailed") && payload.value.name === name) {
    return payload.value;
  }
  return undefined;
}

/**
 * Waits until the media (its name, or the Media `uploadMedia` returned) is processed:
 * the READY media, with fresh signed URLs (`uri`, `thumbnails[].uri`). Rejects with a
 * `MediaProcessingError` when processing refused it, with the ConnectError of a
 * refused call (NOT_FOUND: deleted, or not the caller's), with the error of a
 * subscription that closed before it was done, or with the signal's reason.
 *
 * Only the uploader's stream carries media events: this is for the uploader.
 */
export async function waitForMedia(
  client: Pick<CaasClient, "media" | "subscribe">,
  media: string | Media,
  options: WaitForMediaOptions = {},
): Promise<Media> {
  const name = typeof media === "string" ? media : media.name;
  const signal = options.signal ?? new AbortController().signal;
  signal.throwIfAborted();
  const finish = (found: Media): Media => {
    if (found.state === Media_State.READY) return found;
    throw new MediaProcessingError(found);
  };
  const fetchMedia = async (): Promise<Media> => {
    const answer = await client.media.getMedia({ name }, { signal });
    if (!answer.media) throw new Error("GetMedia answered without a media");
    return answer.media;
  };

  let subscription = options.subscription;
  let own: Subscription | undefined;
  if (!subscription) {
    const known = await fetchMedia(); // its uploader, and perhaps it is done already
    if (settled(known)) return finish(known);
    if (!known.uploaderId) throw new Error(`${name} was uploaded by the app's backend: no stream tells`);
    own = client.subscribe(`${appOf(name)}/users/${known.uploaderId}`, {});
    subscription = own;
  }
  const stream = subscription;
  let unlisten = () => {};
  let onAbort = () => {};
  try {
    return await new Promise<Media>((resolve, reject) => {
      let done = false;
      const settle = (found: Media) => {
        if (done || !settled(found)) return;
        done = true;
        try {
          resolve(finish(found));
        } catch (error) {
          reject(error);
        }
      };
      const fail = (error: unknown) => {
        if (done) return;
        done = true;
        reject(error);
      };
      // What the stream cannot tell: what happened before it was listening.
      const check = () => {
        fetchMedia().then(settle, (error: unknown) => {
          if (!signal.aborted) fail(error);
        });
      };
      // The stream is gone: the media's state now, or the stream's error.
      const lastCheck = (error?: ConnectError) => {
        fetchMedia().then(
          (found) => (settled(found) ? settle(found) : fail(error ?? new ConnectError(
            "the subscription closed before the media was processed", Code.Canceled))),
          (failure: unknown) => fail(error ?? failure),
        );
      };
      onAbort = () => fail(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      unlisten = stream.listen({
        event: (event) => {
          const found = mediaEvent(event, name);
          if (found) settle(found);
        },
        // Each time it goes live (a new stream may start after the event) or resyncs
        // (events were skipped), the state so far.
        state: (state, error) => {
          if (state === "live") check();
          if (state === "closed") lastCheck(error);
        },
        resync: check,
      });
      if (stream.state === "closed") {
        lastCheck();
      } else if (!own) {
        check(); // a stream already live may have told before we listened
      }
    });
  } finally {
    unlisten();
    signal.removeEventListener("abort", onAbort);
    own?.close();
  }
}
