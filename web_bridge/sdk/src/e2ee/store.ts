/**
 * Where a device keeps its end-to-end encryption secrets: its signature key pair, the
 * private parts of the KeyPackages it uploaded, and the MLS state of each group it is
 * in. Nothing here ever goes to the server. A KeyStore holds one device's secrets;
 * use one E2eeDevice per store at a time.
 *
 * Browsers keep them in IndexedDB (`indexedDbKeyStore`); Node in a file
 * (`fileKeyStore`, from `@caas/sdk/e2ee-node`, kept apart so that browser bundles never
 * pull in `node:fs`).
 */

import { objectStore } from "../idb.js";

/** Bytes by key: each `put` replaces the value whole (or not at all). */
export interface KeyStore {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
}

/** Secrets that live as long as the page or process (tests, throwaway devices). */
export function memoryKeyStore(): KeyStore {
  const values = new Map<string, Uint8Array>();
  return {
    get: async (key) => values.get(key)?.slice(),
    put: async (key, value) => {
      values.set(key, value.slice());
    },
    delete: async (key) => {
      values.delete(key);
    },
  };
}

/**
 * The secrets in IndexedDB: one database per device (`name`, e.g.
 * `caas-e2ee:apps/a/users/u/devices/d`), one object store of bytes by key.
 */
export function indexedDbKeyStore(name: string, factory: IDBFactory = globalThis.indexedDB): KeyStore {
  const run = objectStore(factory, name, "keys");
  return {
    get: async (key) => {
      const value = (await run("readonly", (store) => store.get(key))) as Uint8Array | undefined;
      return value === undefined ? undefined : new Uint8Array(value);
    },
    put: async (key, value) => {
      await run("readwrite", (store) => store.put(value.slice(), key));
    },
    delete: async (key) => {
      await run("readwrite", (store) => store.delete(key));
    },
  };
}

// Bytes in the JSON records the device keeps (and in the Node file store).

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

/** A JSON record as the bytes a KeyStore holds, and back. */
export function encodeRecord(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

export function decodeRecord<T>(bytes: Uint8Array | undefined): T | undefined {
  return bytes === undefined ? undefined : (JSON.parse(new TextDecoder().decode(bytes)) as T);
}
