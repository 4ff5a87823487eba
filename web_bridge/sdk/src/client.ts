/**
 * The CAAS client for browsers and Node: typed clients for every service over an
 * injected transport (gRPC-Web in browsers, gRPC in Node), a user session that renews
 * its access token by itself, and a realtime subscription that reconnects by itself
 * and resumes from its last token, so the app sees every durable event once, in order.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";

import type { AppsService } from "./gen/caas/apps/v1/apps_service_pb.js";
import { AuthService } from "./gen/caas/auth/v1/auth_service_pb.js";
import type { ConversationsService } from "./gen/caas/conversations/v1/conversations_service_pb.js";
import type { CallsService } from "./gen/caas/calls/v1/calls_service_pb.js";
import type { PushService } from "./gen/caas/push/v1/push_service_pb.js";
import type { E2eeService } from "./gen/caas/e2ee/v1/e2ee_service_pb.js";
import type { Event } from "./gen/caas/events/v1/events_pb.js";
import type { MediaService } from "./gen/caas/media/v1/media_service_pb.js";
import type { MessagesService } from "./gen/caas/messages/v1/messages_service_pb.js";
import {
  RealtimeService,
  type Presence,
  type SubscribeResponse,
  type Typing,
} from "./gen/caas/realtime/v1/realtime_service_pb.js";
import type { SearchService } from "./gen/caas/search/v1/search_service_pb.js";
import type { UsersService } from "./gen/caas/users/v1/users_service_pb.js";
import type { WebhooksService } from "./gen/caas/webhooks/v1/webhooks_service_pb.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import type { Credentials } from "./gen/caas/auth/v1/resources_pb.js";

/** A signed-in user's tokens, as CreateSession and RefreshSession return them. */
export interface Tokens {
  accessToken: string;
  refreshToken: string;
  /** Milliseconds since the epoch; 0 if unknown. */
  accessTokenExpiresAt: number;
}

export interface CaasClientOptions {
  /**
   * Makes the transport with the client's interceptors: gRPC-Web in browsers,
   * `(interceptors) => createGrpcWebTransport({ baseUrl, interceptors })`, or gRPC in
   * Node, `(interceptors) => createGrpcTransport({ baseUrl, interceptors })`.
   */
  transport: (interceptors: Interceptor[]) => Transport;
  /** The user's tokens: from the app's backend, which signs users in with its API key. */
  tokens?: Tokens;
  /**
   * Or, for an app's backend (Node), its API key: sent as is on every call, never in a
   * browser. One of `tokens` and `apiKey`.
   */
  apiKey?: string;
  /** Told whenever the tokens are renewed (store them to survive a reload). */
  onTokens?: (tokens: Tokens) => void;
  /** Renew this long before the access token expires (default 30 s). */
  refreshMarginMs?: number;
}

/** Refusals of a resume token: resync with the list RPCs and subscribe afresh. */
const RESYNC_REASONS = new Set(["RESUME_TOKEN_EXPIRED", "RESUME_TOKEN_FOREIGN", "RESUME_TOKEN_AHEAD"]);

/** The ErrorInfo reason of a failed call ("" if none). */
export function errorReason(error: unknown): string {
  const connectError = ConnectError.from(error);
  const info = connectError.findDetails(ErrorInfoSchema)[0];
  return info?.reason ?? "";
}

export function tokensFrom(credentials: Credentials | undefined): Tokens {
  if (!credentials) throw new Error("no credentials in the response");
  return {
    accessToken: credentials.accessToken,
    refreshToken: credentials.refreshToken,
    accessTokenExpiresAt: credentials.accessTokenExpireTime
      ? timestampMs(credentials.accessTokenExpireTime)
      : 0,
  };
}

/** A user session: attaches the access token to every call and renews it. */
class Session {
  private refreshing: Promise<void> | undefined;
  private issuedAt = Date.now();

  constructor(
    private tokens: Tokens,
    private readonly auth: Client<typeof AuthService>,
    private readonly marginMs: number,
    private readonly onTokens?: (tokens: Tokens) => void,
  ) {}

  get accessToken(): string {
    return this.tokens.accessToken;
  }

  /** Renew now (concurrent callers share one renewal). */
  refresh(): Promise<void> {
    this.refreshing ??= this.auth
      .refreshSession({ refreshToken: this.tokens.refreshToken })
      .then((response) => {
        this.tokens = tokensFrom(response.credentials);
        this.issuedAt = Date.now();
        this.onTokens?.(this.tokens);
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /** Renew first if the token is about to expire: within the margin, or within half
   * its lifetime when that is shorter (short-lived tokens are not renewed per call). */
  async fresh(): Promise<void> {
    const expires = this.tokens.accessTokenExpiresAt;
    if (!expires) return;
    const margin = Math.max(0, Math.min(this.marginMs, (expires - this.issuedAt) / 2));
    if (Date.now() > expires - margin) await this.refresh();
  }
}

function isExpiredToken(error: unknown): boolean {
  const connectError = ConnectError.from(error);
  return (
    connectError.code === Code.Unauthenticated &&
    errorReason(connectError) === "ACCESS_TOKEN_EXPIRED"
  );
}

/** Bearer token on every call; renew before expiry, and once on ACCESS_TOKEN_EXPIRED. */
function authInterceptor(session: Session): Interceptor {
  return (next) => async (request) => {
    await session.fresh();
    request.header.set("authorization", `Bearer ${session.accessToken}`);
    try {
      return await next(request);
    } catch (error) {
      if (request.stream || !isExpiredToken(error)) throw error;
      await session.refresh();
      request.header.set("authorization", `Bearer ${session.accessToken}`);
      return next(request);
    }
  };
}

export type ConnectionState = "connecting" | "live" | "reconnecting" | "closed";

export interface SubscriptionHandlers {
  /** Each durable event, once, in order (batches arrive here one event at a time). */
  event?: (event: Event) => void;
  typing?: (typing: Typing) => void;
  presence?: (presence: Presence) => void;
  state?: (state: ConnectionState, error?: ConnectError) => void;
  /** The resume token was too old: refetch state with the list RPCs, then go on. */
  resync?: () => void;
}

export interface SubscriptionOptions {
  /** Resume after this point (a token from an earlier subscription). */
  resumeToken?: string;
  deviceId?: string;
  /** Reconnection backoff: first delay and cap, in ms (full jitter). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /**
   * A stream silent this long is taken for dead and replaced (the server sends a
   * heartbeat at least every 15 s by default; a lost network may never say so).
   */
  stallTimeoutMs?: number;
}

/** A realtime stream that reconnects with its resume token until closed. */
export class Subscription {
  /** The latest resume token: everything before it has been delivered. */
  resumeToken: string;
  private readonly abort = new AbortController();
  private readonly listeners = new Set<SubscriptionHandlers>();
  private current: ConnectionState = "connecting";
  readonly done: Promise<void>;

  constructor(
    private readonly realtime: Client<typeof RealtimeService>,
    private readonly user: string,
    private readonly handlers: SubscriptionHandlers,
    private readonly options: SubscriptionOptions,
    private readonly renew: () => Promise<void>,
  ) {
    this.resumeToken = options.resumeToken ?? "";
    this.done = this.run();
  }

  close(): void {
    this.abort.abort();
  }

  /** Where the stream is now ("closed" once it has stopped for good). */
  get state(): ConnectionState {
    return this.current;
  }

  /**
   * More handlers for the same stream, called after the subscription's own, until the
   * returned function is called: a part of the app (or a helper such as
   * `waitForMedia`) can follow events without a stream of its own.
   */
  listen(handlers: SubscriptionHandlers): () => void {
    const added = { ...handlers };
    this.listeners.add(added);
    return () => {
      this.listeners.delete(added);
    };
  }

  private emit<K extends keyof SubscriptionHandlers>(
    key: K,
    ...args: Parameters<NonNullable<SubscriptionHandlers[K]>>
  ): void {
    if (key === "state") this.current = args[0] as ConnectionState;
    for (const handlers of [this.handlers, ...this.listeners]) {
      const handler = handlers[key] as ((...values: typeof args) => void) | undefined;
      handler?.(...args);
    }
  }

  private async run(): Promise<void> {
    let failures = 0;
    let renewed = false; // the access token was renewed since the stream last worked
    const minDelay = this.options.minDelayMs ?? 250;
    const maxDelay = this.options.maxDelayMs ?? 15_000;
    while (!this.abort.signal.aborted) {
      this.emit("state", failures === 0 ? "connecting" : "reconnecting");
      const attempt = new AbortController();
      const stop = () => attempt.abort();
      this.abort.signal.addEventListener("abort", stop);
      const stall = this.options.stallTimeoutMs ?? 45_000;
      let watchdog = setTimeout(stop, stall);
      try {
        const stream = this.realtime.subscribe(
          { name: this.user, resumeToken: this.resumeToken, deviceId: this.options.deviceId ?? "" },
          { signal: attempt.signal },
        );
        for await (const item of stream) {
          clearTimeout(watchdog);
          watchdog = setTimeout(stop, stall);
          this.deliver(item);
          failures = 0;
          renewed = false;
        }
        failures += 1; // the server ended the stream (a drain): come back
      } catch (error) {
        if (this.abort.signal.aborted) break;
        const connectError = ConnectError.from(error);
        if (RESYNC_REASONS.has(errorReason(connectError))) {
          this.resumeToken = "";
          this.emit("resync");
          continue;
        }
        if (isExpiredToken(connectError) && !renewed) {
          renewed = true; // once per failure: a renewal that does not help ends here
          try {
            await this.renew();
            continue;
          } catch (renewal) {
            this.emit("state", "closed", ConnectError.from(renewal));
            return;
          }
        }
        if (connectError.code === Code.Unauthenticated || connectError.code === Code.PermissionDenied) {
          this.emit("state", "closed", connectError);
          return; // reconnecting would not help
        }
        failures += 1;
        this.emit("state", "reconnecting", connectError);
      } finally {
        clearTimeout(watchdog);
        this.abort.signal.removeEventListener("abort", stop);
      }
      if (this.abort.signal.aborted) break;
      const delay = Math.random() * Math.min(maxDelay, minDelay * 2 ** Math.min(failures, 16));
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    this.emit("state", "closed");
  }

  private deliver(item: SubscribeResponse): void {
    switch (item.item.case) {
      case "event":
        this.emit("event", item.item.value);
        break;
      case "events":
        for (const event of item.item.value.events) this.emit("event", event);
        break;
      case "typing":
        this.emit("typing", item.item.value);
        break;
      case "presence":
        this.emit("presence", item.item.value);
        break;
      case "ready":
        this.emit("state", "live");
        break;
      default:
        break; // heartbeats only carry a token
    }
    if (item.resumeToken) this.resumeToken = item.resumeToken;
  }
}

export interface CaasClient {
  apps: Client<typeof AppsService>;
  auth: Client<typeof AuthService>;
  users: Client<typeof UsersService>;
  conversations: Client<typeof ConversationsService>;
  messages: Client<typeof MessagesService>;
  /** Uploads and media (`uploadMedia` and `waitForMedia` do the whole dance). */
  media: Client<typeof MediaService>;
  realtime: Client<typeof RealtimeService>;
  /** Message, conversation and user search (mention autocomplete: `searchUsers`). */
  search: Client<typeof SearchService>;
  /** Webhook endpoints, their delivery attempts and dead letters (an app's backend). */
  webhooks: Client<typeof WebhooksService>;
  /** Devices, KeyPackages and groups of end-to-end encrypted conversations (`E2eeDevice`). */
  e2ee: Client<typeof E2eeService>;
  /** Voice and video calls: ringing, answering, signaling, ICE servers (`Calls`). */
  calls: Client<typeof CallsService>;
  /** Push channels and the app's Web Push key (`enableWebPush`). */
  push: Client<typeof PushService>;
  /** Follow `user`'s events (`apps/{app}/users/{user}`) until `close()`. */
  subscribe(user: string, handlers: SubscriptionHandlers, options?: SubscriptionOptions): Subscription;
  /** Renew the access token now. */
  refresh(): Promise<void>;
}

/** The API key on every call (an app's backend). */
function apiKeyInterceptor(apiKey: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${apiKey}`);
    return next(request);
  };
}

/**
 * The authenticated transport and how to renew its credential: for building clients
 * of only the services a bundle needs (`createClient(Service, transport)`).
 */
export function authenticatedTransport(options: CaasClientOptions): { transport: Transport; refresh: () => Promise<void> } {
  if (options.tokens) {
    const plain = createClient(AuthService, options.transport([]));
    const session = new Session(options.tokens, plain, options.refreshMarginMs ?? 30_000, options.onTokens);
    return { transport: options.transport([authInterceptor(session)]), refresh: () => session.refresh() };
  }
  if (options.apiKey) {
    return {
      transport: options.transport([apiKeyInterceptor(options.apiKey)]),
      refresh: () => Promise.reject(new Error("an API key is not renewed")),
    };
  }
  throw new Error("createCaasClient needs tokens or an apiKey");
}

/** What a chat UI uses of the CaasClient (ChatClient, uploads, search). */
export type ChatServices = Pick<CaasClient, "conversations" | "messages" | "media" | "realtime" | "search" | "users" | "subscribe" | "refresh">;

export type { MessageInitShape };
export { create };
