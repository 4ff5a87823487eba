/**
 * The services the widget calls, made from the SDK's parts: at first only what the
 * launcher's client needs (conversations, messages, realtime, users); the panel adds
 * uploads and search when it loads (panel.tsx), so their code waits with it.
 */
import { authenticatedTransport, Subscription, type CaasClientOptions, type ChatServices } from "@caas/sdk/client";
import { ConversationsService } from "@caas/sdk/gen/caas/conversations/v1/conversations_service_pb";
import { MessagesService } from "@caas/sdk/gen/caas/messages/v1/messages_service_pb";
import { RealtimeService } from "@caas/sdk/gen/caas/realtime/v1/realtime_service_pb";
import { UsersService } from "@caas/sdk/gen/caas/users/v1/users_service_pb";
import { createClient, type Transport } from "@connectrpc/connect";

/** ChatServices whose `media` and `search` arrive with the panel. */
export type WidgetServices = ChatServices & { transport: Transport };

export function widgetServices(options: CaasClientOptions): WidgetServices {
  const { transport, refresh } = authenticatedTransport(options);
  const realtime = createClient(RealtimeService, transport);
  return {
    transport,
    conversations: createClient(ConversationsService, transport),
    messages: createClient(MessagesService, transport),
    realtime,
    users: createClient(UsersService, transport),
    subscribe: (user, handlers, subscriptionOptions = {}) =>
      new Subscription(realtime, user, handlers, subscriptionOptions, refresh),
    refresh,
  } as WidgetServices; // media and search: see panel.tsx
}
