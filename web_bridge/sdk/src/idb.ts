/**
 * One object store of an IndexedDB database, opened on first use: what the offline send
 * queue (store/queue.ts) and the E2EE key store (e2ee/store.ts) keep in browsers.
 */

function request<T>(call: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    call.onsuccess = () => resolve(call.result);
    call.onerror = () => reject(call.error);
  });
}

/** Runs one request on the object store in its own transaction, once that commits. */
export type RunInStore = <T>(mode: IDBTransactionMode, body: (store: IDBObjectStore) => IDBRequest<T>) => Promise<T>;

/**
 * The object store `store` of database `name` (version 1, the store made by
 * `options` on creation: e.g. `{ keyPath: "requestId" }`, or none for explicit keys).
 */
export function objectStore(
  factory: IDBFactory, name: string, store: string, options?: IDBObjectStoreParameters,
): RunInStore {
  let opened: Promise<IDBDatabase> | undefined;
  const database = () => {
    opened ??= new Promise<IDBDatabase>((resolve, reject) => {
      const open = factory.open(name, 1);
      open.onupgradeneeded = () => open.result.createObjectStore(store, options);
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    return opened;
  };
  return async (mode, body) => {
    const db = await database();
    const transaction = db.transaction(store, mode);
    const result = request(body(transaction.objectStore(store)));
    await new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
    return result;
  };
}
