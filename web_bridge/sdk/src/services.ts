/**
 * Clients of the CAAS services over an authenticated transport: every service
 * (`createCaasClient`), or only what a chat UI needs (`createChatServices`). Apart from
 * client.ts so that a bundle built from the parts (the widget) carries no service it
 * does not call.
 */
import { createClient, type Transport } from "@connectrpc/connect";

import {
  authenticatedTransport,
  Subscription,
  type CaasClient,
  type CaasClientOptions,
  type ChatServices,
} from "./client.js";
import { AppsService } from "./gen/caas/apps/v1/apps_service_pb.js";
import { AuthService } from "./gen/caas/auth/v1/auth_service_pb.js";
import { ConversationsService } from "./gen/caas/conversations/v1/conversations_service_pb.js";
import { CallsService } from "./gen/caas/calls/v1/calls_service_pb.js";
import { PushService } from "./gen/caas/push/v1/push_service_pb.js";
import { E2eeService } from "./gen/caas/e2ee/v1/e2ee_service_pb.js";
import { MediaService } from "./gen/caas/media/v1/media_service_pb.js";
import { MessagesService } from "./gen/caas/messages/v1/messages_service_pb.js";
import { RealtimeService } from "./gen/caas/realtime/v1/realtime_service_pb.js";
import { SearchService } from "./gen/caas/search/v1/search_service_pb.js";
import { UsersService } from "./gen/caas/users/v1/users_service_pb.js";
import { WebhooksService } from "./gen/caas/webhooks/v1/webhooks_service_pb.js";


function chatServices(transport: Transport, refresh: () => Promise<void>): ChatServices {
  const realtime = createClient(RealtimeService, transport);
  return {
    conversations: createClient(ConversationsService, transport),
    messages: createClient(MessagesService, transport),
    media: createClient(MediaService, transport),
    realtime,
    search: createClient(SearchService, transport),
    users: createClient(UsersService, transport),
    subscribe: (user, handlers, subscriptionOptions = {}) =>
      new Subscription(realtime, user, handlers, subscriptionOptions, refresh),
    refresh,
  };
}

/**
 * Only the services a chat UI needs: bundles that use this instead of
 * `createCaasClient` leave the other services' code out.
 */
export function createChatServices(options: CaasClientOptions): ChatServices {
  const { transport, refresh } = authenticatedTransport(options);
  return chatServices(transport, refresh);
}

export function createCaasClient(options: CaasClientOptions): CaasClient {
  const { transport, refresh } = authenticatedTransport(options);
  return {
    ...chatServices(transport, refresh),
    apps: createClient(AppsService, transport),
    auth: createClient(AuthService, transport),
    webhooks: createClient(WebhooksService, transport),
    e2ee: createClient(E2eeService, transport),
    calls: createClient(CallsService, transport),
    push: createClient(PushService, transport),
  };
}
