/** The CAAS services the portal calls, over gRPC-Web through Envoy on this origin. */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { AccountsService } from "../../sdk/src/gen/caas/accounts/v1/accounts_service_pb.js";
import { AnalyticsService } from "../../sdk/src/gen/caas/analytics/v1/analytics_service_pb.js";
import { AppsService } from "../../sdk/src/gen/caas/apps/v1/apps_service_pb.js";
import { AuditService } from "../../sdk/src/gen/caas/audit/v1/audit_service_pb.js";
import { AuthService } from "../../sdk/src/gen/caas/auth/v1/auth_service_pb.js";
import { BillingService } from "../../sdk/src/gen/caas/billing/v1/billing_service_pb.js";
import { ComplianceService } from "../../sdk/src/gen/caas/compliance/v1/compliance_service_pb.js";
import { ConversationsService } from "../../sdk/src/gen/caas/conversations/v1/conversations_service_pb.js";
import { MessagesService } from "../../sdk/src/gen/caas/messages/v1/messages_service_pb.js";
import { OrganizationsService } from "../../sdk/src/gen/caas/organizations/v1/organizations_service_pb.js";
import { UsersService } from "../../sdk/src/gen/caas/users/v1/users_service_pb.js";
import { WebhooksService } from "../../sdk/src/gen/caas/webhooks/v1/webhooks_service_pb.js";
import { getSession, setSession } from "./session.js";
import { reasonOf } from "./errors.js";

const withToken: Interceptor = (next) => async (request) => {
  const session = getSession();
  if (session) request.header.set("authorization", `Bearer ${session.token}`);
  try {
    return await next(request);
  } catch (error) {
    // An ended session (signed out elsewhere, expired, password reset): back to login.
    if (reasonOf(error) === "ACCOUNT_SESSION_INVALID") setSession(null);
    throw error;
  }
};

/** The portal's transport (for clients made in lazily loaded pages). */
export const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  interceptors: [withToken],
});

export const api = {
  accounts: createClient(AccountsService, transport),
  organizations: createClient(OrganizationsService, transport),
  apps: createClient(AppsService, transport),
  analytics: createClient(AnalyticsService, transport),
  audit: createClient(AuditService, transport),
  auth: createClient(AuthService, transport),
  billing: createClient(BillingService, transport),
  compliance: createClient(ComplianceService, transport),
  conversations: createClient(ConversationsService, transport),
  messages: createClient(MessagesService, transport),
  users: createClient(UsersService, transport),
  webhooks: createClient(WebhooksService, transport),
};

/** `organizations/{id}` → id, `apps/{id}` → id. */
export function idOf(name: string): string {
  return name.split("/")[1] ?? "";
}

/** The last id of a resource name: `apps/a/users/ada` → `ada`. */
export function leafOf(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}
