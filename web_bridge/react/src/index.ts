/**
 * @caas/react: React hooks over the CAAS SDK's ChatClient, a chat UI kit
 * (presentational components, themable, localizable, accessible), and the two joined
 * (`<Chat />`, `<Inbox>`, `<ConversationPane>`, `<ThreadPane>`). Styles:
 * `import "@caas/react/styles.css"`.
 */
export * from "./hooks/index.js";
export * from "./kit/index.js";
export * from "./chat/index.js";
