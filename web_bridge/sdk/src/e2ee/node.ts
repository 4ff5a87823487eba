/**
 * A device's end-to-end encryption secrets in a file, for Node: `@caas/sdk/e2ee-node`
 * (apart from the SDK's main entry, which browsers bundle, so that they never pull in
 * `node:fs`). The file is JSON, base64 values by key, written whole on every change
 * to a temporary file that then replaces it: a crash leaves the old file or the new
 * one, never half of one. Keep it where only the app's user can read it (mode 0600).
 */
import { open, readFile, rename, unlink } from "node:fs/promises";

import { fromBase64, toBase64, type KeyStore } from "./store.js";

export function fileKeyStore(path: string): KeyStore {
  let values: Map<string, string> | undefined;
  let writing: Promise<void> = Promise.resolve();

  const load = async (): Promise<Map<string, string>> => {
    if (values) return values;
    try {
      const parsed = JSON.parse(await readFile(path, "utf8")) as Record<string, string>;
      values = new Map(Object.entries(parsed));
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") throw error;
      values = new Map();
    }
    return values;
  };

  const save = async (): Promise<void> => {
    const current = await load();
    const temporary = `${path}.${globalThis.crypto.randomUUID()}.tmp`;
    const file = await open(temporary, "w", 0o600);
    try {
      await file.writeFile(JSON.stringify(Object.fromEntries(current)));
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await rename(temporary, path);
    } catch (error) {
      await unlink(temporary).catch(() => {});
      throw error;
    }
  };

  /** Changes one at a time, each written before the next begins. */
  const change = (body: (current: Map<string, string>) => void): Promise<void> => {
    const next = writing.then(async () => {
      body(await load());
      await save();
    });
    writing = next.catch(() => {});
    return next;
  };

  return {
    get: async (key) => {
      await writing;
      const value = (await load()).get(key);
      return value === undefined ? undefined : fromBase64(value);
    },
    put: (key, value) => change((current) => current.set(key, toBase64(value))),
    delete: (key) => change((current) => current.delete(key)),
  };
}
