/** End-to-end encryption (MLS): the browser-safe parts. Node's file store is in `@caas/sdk/e2ee-node`. */
export * from "./device.js";
export { indexedDbKeyStore, memoryKeyStore, type KeyStore } from "./store.js";
