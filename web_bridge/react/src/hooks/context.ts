/** The ChatClient the hooks use: given by a ChatProvider, or made by a component. */
import { createContext, createElement, useContext, useEffect, useState, type ReactNode } from "react";

import { ChatClient, type ChatClientOptions } from "@caas/sdk";

const ChatContext = createContext<ChatClient | null>(null);

/** Makes `client` the one the hooks below use, connected while mounted. */
export function ChatProvider({ client, children }: { client: ChatClient; children?: ReactNode }) {
  useEffect(() => client.connect(), [client]);
  return createElement(ChatContext.Provider, { value: client }, children);
}

/** The ChatClient of the nearest ChatProvider. */
export function useChatClient(): ChatClient {
  const client = useContext(ChatContext);
  if (!client) throw new Error("useChatClient: no ChatProvider above this component");
  return client;
}

/**
 * A ChatClient for these options, made once per user and closed when the component
 * unmounts (for apps that do not make their own).
 */
export function useCreateChatClient(options: ChatClientOptions): ChatClient {
  const [client, setClient] = useState(() => new ChatClient(options));
  useEffect(() => {
    if (client.userId !== userIdOf(options.user)) setClient(new ChatClient(options));
    // Only a different user makes a new client; new option objects do not.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [options.user]);
  useEffect(() => client.connect(), [client]);
  return client;
}

function userIdOf(user: string): string {
  return user.slice(user.indexOf("/users/") + "/users/".length);
}

