/**
 * The chat, loaded when the panel first opens: the SDK's ChatClient (started here, it
 * then keeps the launcher's badge), the kit's stylesheet, and its connected components
 * (a conversation with its thread, or the inbox).
 */
import { useEffect, useState } from "react";

import kitCss from "@caas/react/styles.css";
import { ConversationPane, Inbox, ThreadPane } from "@caas/react/chat/index";
import { ChatProvider } from "@caas/react/hooks/context";
import type { Catalog } from "@caas/react/i18n/en";
import { LocaleProvider } from "@caas/react/i18n/index";
import { ChatClient } from "@caas/sdk/chat";
import { MediaService } from "@caas/sdk/gen/caas/media/v1/media_service_pb";
import { SearchService } from "@caas/sdk/gen/caas/search/v1/search_service_pb";
import { createClient } from "@connectrpc/connect";

import type { WidgetServices } from "./services.js";

/** The visitor's chat, connected for the page's life (the widget closes it). */
export function startChat(services: WidgetServices, user: string): ChatClient {
  // Uploads and search come with the panel too (services.ts).
  services.media ??= createClient(MediaService, services.transport);
  services.search ??= createClient(SearchService, services.transport);
  const chat = new ChatClient({ client: services, user, subscription: { maxDelayMs: 10_000 } });
  chat.connect();
  return chat;
}

export interface PanelContentProps {
  chat: ChatClient;
  /** The conversation to show, if one is given; else the inbox. */
  fixed?: string;
  /** A guest joins `fixed` first (a channel the app lets guests join). */
  guest: boolean;
  locale: string;
  /** Tells the panel's header how to go back (undefined: nowhere to go). */
  onBack(back: (() => void) | undefined): void;
}

export default function PanelContent({ chat, fixed, guest, locale, onBack }: PanelContentProps) {
  const [selected, setSelected] = useState<string | undefined>(fixed);
  const [thread, setThread] = useState<bigint | undefined>(undefined);
  useEffect(() => {
    onBack(thread ? () => setThread(undefined) : selected && !fixed ? () => setSelected(undefined) : undefined);
  }, [thread, selected, fixed, onBack]);

  const [joined, setJoined] = useState(!guest || !fixed);
  useEffect(() => {
    if (joined || !fixed) return;
    chat.client.conversations.joinConversation({ name: fixed })
      .catch(() => undefined) // already a member, or not allowed: the pane says so
      .finally(() => setJoined(true));
  }, [chat, fixed, joined]);

  // The kit's Arabic strings load with an Arabic page only.
  const [catalog, setCatalog] = useState<Partial<Catalog> | undefined>(undefined);
  useEffect(() => {
    if (locale.split(/[-_]/)[0] === "ar") void import("@caas/react/i18n/ar").then((module) => setCatalog(module.ar));
  }, [locale]);

  return (
    <ChatProvider client={chat}>
      <LocaleProvider locale={locale} messages={catalog}>
        <style>{kitCss}</style>
        {!joined ? null : selected && thread ? (
          <ThreadPane conversation={selected} root={thread} onClose={() => setThread(undefined)} />
        ) : selected ? (
          <ConversationPane key={selected} conversation={selected} onOpenThread={setThread} header={false} />
        ) : (
          <Inbox onSelect={setSelected} />
        )}
      </LocaleProvider>
    </ChatProvider>
  );
}
