/**
 * Where unconfirmed sends wait: kept in IndexedDB in browsers, so that a message
 * written offline survives a reload and goes out, in order, once the network is back.
 * Each entry is the whole CreateMessageRequest with its request id, so a send that
 * reached the server before the page died is not sent twice (the server answers the
 * first message for a repeated request id).
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";

import {
  CreateMessageRequestSchema,
  type CreateMessageRequest,
} from "../gen/caas/messages/v1/messages_service_pb.js";
import { objectStore } from "../idb.js";

export interface QueuedSend {
  /** The request id (also the optimistic message's key). */
  requestId: string;
  request: CreateMessageRequest;
  /** When it was written (ms since the epoch): the queue's order. */
  queuedAt: number;
  /** Refused by the server: kept (shown as failed) until retried or discarded. */
  error?: string;
}

/** Storage for the queue; `load` answers the entries in the order they were queued. */
export interface QueueStorage {
  load(): Promise<QueuedSend[]>;
  put(item: QueuedSend): Promise<void>;
  remove(requestId: string): Promise<void>;
}

interface StoredSend {
  requestId: string;
  /** The request in the protobuf binary format (IndexedDB stores bytes as they are). */
  request: Uint8Array;
  queuedAt: number;
  error?: string;
}

const toStored = (item: QueuedSend): StoredSend => ({
  ...item,
  request: toBinary(CreateMessageRequestSchema, item.request),
});

const fromStored = (item: StoredSend): QueuedSend => ({
  ...item,
  request: fromBinary(CreateMessageRequestSchema, item.request),
});

const byQueuedAt = (a: QueuedSend, b: QueuedSend) => a.queuedAt - b.queuedAt;

/** A queue that lives as long as the page (Node, or browsers without IndexedDB). */
export function memoryQueueStorage(): QueueStorage {
  const items = new Map<string, StoredSend>();
  return {
    load: async () => [...items.values()].map(fromStored).sort(byQueuedAt),
    put: async (item) => {
      items.set(item.requestId, toStored(item));
    },
    remove: async (requestId) => {
      items.delete(requestId);
    },
  };
}

/**
 * The queue in IndexedDB: one database per user (`name`, e.g. `caas:apps/a/users/u`),
 * one object store keyed by request id.
 */
export function indexedDbQueueStorage(name: string, factory: IDBFactory = globalThis.indexedDB): QueueStorage {
  const run = objectStore(factory, name, "sends", { keyPath: "requestId" });
  return {
    load: async () => ((await run("readonly", (store) => store.getAll())) as StoredSend[])
      .map(fromStored).sort(byQueuedAt),
    put: async (item) => {
      await run("readwrite", (store) => store.put(toStored(item)));
    },
    remove: async (requestId) => {
      await run("readwrite", (store) => store.delete(requestId));
    },
  };
}

/** IndexedDB where there is one, else memory. */
export function defaultQueueStorage(name: string): QueueStorage {
  return typeof globalThis.indexedDB === "undefined" ? memoryQueueStorage() : indexedDbQueueStorage(name);
}
