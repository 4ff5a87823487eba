/** A new guest session from CAAS (AuthService.CreateGuestSession), for apps that admit guests. */
import { tokensFrom } from "@caas/sdk/client";
import { AuthService } from "@caas/sdk/gen/caas/auth/v1/auth_service_pb";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import type { WidgetOptions, WidgetSession } from "./config.js";

export async function guestSession(options: WidgetOptions): Promise<WidgetSession> {
  const auth = createClient(AuthService, createGrpcWebTransport({ baseUrl: options.api }));
  const response = await auth.createGuestSession({ parent: options.app, displayName: options.guestName ?? "" });
  return { user: response.user?.name ?? "", ...tokensFrom(response.credentials), conversation: options.conversation };
}
