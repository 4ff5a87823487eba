/** Uploads from the composer: progress, processing, and what to send. */
import { useCallback, useEffect, useRef, useState } from "react";

import { uploadMedia, waitForMedia, type Media } from "@caas/sdk";

import { useChatClient } from "./context.js";

export interface UploadState {
  id: string;
  name: string;
  /** 0 to 1. */
  progress: number;
  /** READY, once processed. */
  media?: Media;
  error?: string;
}

/**
 * Uploads for a conversation: `add(files)` uploads each (progress in `uploads`) and
 * waits until processed; `attachments()` gives what to send; `remove(id)` cancels.
 */
export function useUpload(conversation: string | undefined) {
  const client = useChatClient();
  const [uploads, setUploads] = useState<UploadState[]>([]);
  const aborts = useRef(new Map<string, AbortController>());
  useEffect(() => () => {
    for (const abort of aborts.current.values()) abort.abort();
  }, []);
  const change = useCallback((id: string, patch: Partial<UploadState>) => {
    setUploads((list) => list.map((item) => (item.id === id ? { ...item, ...patch } : item)));
  }, []);
  const add = useCallback((files: Iterable<File>) => {
    if (!conversation) return;
    for (const file of files) {
      const id = globalThis.crypto.randomUUID();
      const abort = new AbortController();
      aborts.current.set(id, abort);
      setUploads((list) => [...list, { id, name: file.name, progress: 0 }]);
      uploadMedia(client.client, {
        conversation, file, signal: abort.signal,
        onProgress: ({ loadedBytes, totalBytes }) => change(id, { progress: totalBytes ? loadedBytes / totalBytes : 1 }),
      })
        .then((media) => waitForMedia(client.client, media, { subscription: client.stream, signal: abort.signal }))
        .then((media) => change(id, { media, progress: 1 }))
        .catch((reason: unknown) => {
          if (!abort.signal.aborted) change(id, { error: reason instanceof Error ? reason.message : String(reason) });
        })
        .finally(() => aborts.current.delete(id));
    }
  }, [client, conversation, change]);
  const remove = useCallback((id: string) => {
    aborts.current.get(id)?.abort();
    setUploads((list) => list.filter((item) => item.id !== id));
  }, []);
  const ready = uploads.length > 0 && uploads.every((item) => item.media);
  return {
    uploads,
    add,
    remove,
    /** Every upload is processed. */
    ready,
    /** The attachments to send, then `clear()`. */
    attachments: () => uploads.filter((item) => item.media).map((item) => ({ media: item.media!.name })),
    clear: () => setUploads([]),
  };
}
