/**
 * React hooks over a ChatClient (@caas/sdk): the context (ChatProvider), the chat's
 * state (state.ts), search and uploads. One module each, so that a bundle that needs
 * only some of them (the widget's launcher) leaves the others out.
 */
export * from "./context.js";
export * from "./state.js";
export * from "./search.js";
export * from "./upload.js";
