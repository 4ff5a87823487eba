/** One app: its dashboard, API keys, webhooks, push notifications, users and their
 * conversations, settings. */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { lazy, Suspense, useState, type ReactNode } from "react";

import { api, idOf, leafOf } from "../api.js";
import type { ApiKey } from "../../../sdk/src/gen/caas/apps/v1/resources_pb.js";
import type { Conversation } from "../../../sdk/src/gen/caas/conversations/v1/resources_pb.js";
import type { Message } from "../../../sdk/src/gen/caas/messages/v1/resources_pb.js";
import type { Session } from "../../../sdk/src/gen/caas/auth/v1/resources_pb.js";
import type { User } from "../../../sdk/src/gen/caas/users/v1/resources_pb.js";
import type {
  DeadLetter,
  DeliveryAttempt,
  Webhook,
} from "../../../sdk/src/gen/caas/webhooks/v1/resources_pb.js";
import { Link } from "../router.js";
import { Alert, DataTable, Field, Form, Loading, Shell, tableFeatureSet, when } from "../ui.js";

const Dashboard = lazy(() => import("./dashboard.js"));
const PushSettings = lazy(() => import("./push.js").then((m) => ({ default: m.PushSettings })));
const UserPush = lazy(() => import("./push.js").then((m) => ({ default: m.UserPush })));

const SECTIONS: [string, string][] = [
  ["", "Overview"],
  ["/keys", "API keys"],
  ["/webhooks", "Webhooks"],
  ["/push", "Push notifications"],
  ["/users", "Users"],
  ["/settings", "Settings"],
];

function AppShell(props: { app: string; section: string; title: string; children: ReactNode }) {
  const app = useQuery({ queryKey: ["app", props.app], queryFn: () => api.apps.getApp({ name: props.app }) });
  const organization = app.data?.app?.organization;
  const owner = useQuery({
    queryKey: ["organization", organization],
    queryFn: () => api.organizations.getOrganization({ name: organization! }),
    enabled: Boolean(organization),
  });
  return (
    <Shell nav={
      <ul>
        {SECTIONS.map(([path, text]) => (
          <li key={path}>
            <Link to={`/${props.app}${path}`} aria-current={props.section === path ? "page" : undefined}>
              {text}
            </Link>
          </li>
        ))}
      </ul>
    }>
      <p className="crumbs">
        <Link to="/">Organizations</Link> /{" "}
        {organization && (
          <><Link to={`/${organization}`}>{owner.data?.organization?.displayName ?? idOf(organization)}</Link> / </>
        )}
        {app.data?.app?.displayName ?? idOf(props.app)}
      </p>
      <h1>{props.title}</h1>
      <Alert error={app.error} />
      {props.children}
    </Shell>
  );
}

export function AppOverviewPage(props: { app: string }) {
  return (
    <AppShell app={props.app} section="" title="Overview">
      <Suspense fallback={<Loading what="the dashboard" />}>
        <Dashboard app={props.app} />
      </Suspense>
    </AppShell>
  );
}

export function PushPage(props: { app: string }) {
  return (
    <AppShell app={props.app} section="/push" title="Push notifications">
      <Suspense fallback={<Loading what="the push settings" />}>
        <PushSettings app={props.app} />
      </Suspense>
    </AppShell>
  );
}

const keyColumns = createColumnHelper<typeof tableFeatureSet, ApiKey>();

export function ApiKeysPage(props: { app: string }) {
  const queries = useQueryClient();
  const keys = useQuery({ queryKey: ["keys", props.app], queryFn: () => api.apps.listApiKeys({ parent: props.app }) });
  const [name, setName] = useState("");
  const [secret, setSecret] = useState("");
  const [error, setError] = useState<unknown>(null);
  const columns = [
    keyColumns.accessor("displayName", { header: "Name" }),
    keyColumns.accessor("secretHint", { header: "Starts with", cell: (c) => <code>{c.getValue()}…</code> }),
    keyColumns.accessor((k) => k.scopes.join(", ") || "*", { id: "scopes", header: "Scopes" }),
    keyColumns.accessor((k) => when(k.createTime), { id: "created", header: "Created" }),
    keyColumns.accessor((k) => (k.revokeTime ? `Revoked ${when(k.revokeTime)}` : "Active"), { id: "state", header: "State" }),
    keyColumns.display({
      id: "revoke",
      header: "Actions",
      cell: ({ row }) => row.original.revokeTime ? null : (
        <button type="button" onClick={async () => {
          setError(null);
          try {
            await api.apps.revokeApiKey({ name: row.original.name });
            await queries.invalidateQueries({ queryKey: ["keys", props.app] });
          } catch (failure) {
            setError(failure);
          }
        }}>Revoke</button>
      ),
    }),
  ];
  return (
    <AppShell app={props.app} section="/keys" title="API keys">
      <p>Your app's backend calls CAAS with these keys; never put one in a browser or a phone app.</p>
      {keys.isPending && <Loading what="keys" />}
      <Alert error={keys.error ?? error} />
      {keys.data && <DataTable caption="API keys" rows={keys.data.apiKeys} columns={columns} empty="No keys." />}
      {secret && (
        <Alert kind="ok">
          The new key, shown only now: <code className="secret" data-testid="new-secret">{secret}</code>
        </Alert>
      )}
      <section className="card" aria-labelledby="new-key">
        <h2 id="new-key">New key</h2>
        <Form label="New API key" submit="Create key" action={async () => {
          const made = await api.apps.createApiKey({ parent: props.app, apiKey: { displayName: name } });
          setSecret(made.secret);
          setName("");
          await queries.invalidateQueries({ queryKey: ["keys", props.app] });
        }}>
          <Field label="Key name" maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        </Form>
      </section>
    </AppShell>
  );
}

const hookColumns = createColumnHelper<typeof tableFeatureSet, Webhook>();
const attemptColumns = createColumnHelper<typeof tableFeatureSet, DeliveryAttempt>();
const deadColumns = createColumnHelper<typeof tableFeatureSet, DeadLetter>();

export function WebhooksPage(props: { app: string }) {
  const queries = useQueryClient();
  const hooks = useQuery({ queryKey: ["webhooks", props.app], queryFn: () => api.webhooks.listWebhooks({ parent: props.app }) });
  const [url, setUrl] = useState("");
  const [types, setTypes] = useState("");
  const [secret, setSecret] = useState("");
  const [open, setOpen] = useState("");
  const [error, setError] = useState<unknown>(null);
  const columns = [
    hookColumns.accessor("url", { header: "URL" }),
    hookColumns.accessor((h) => h.eventTypes.join(", ") || "every event", { id: "types", header: "Events" }),
    hookColumns.accessor((h) => when(h.createTime), { id: "created", header: "Created" }),
    hookColumns.display({
      id: "actions",
      header: "Actions",
      cell: ({ row }) => (
        <span className="actions">
          <button type="button" onClick={() => setOpen(open === row.original.name ? "" : row.original.name)}>
            {open === row.original.name ? "Hide deliveries" : "Deliveries"}
          </button>
          <button type="button" onClick={async () => {
            setError(null);
            try {
              const rotated = await api.webhooks.rotateWebhookSecret({ name: row.original.name });
              setSecret(rotated.secret);
            } catch (failure) {
              setError(failure);
            }
          }}>Rotate secret</button>
        </span>
      ),
    }),
  ];
  return (
    <AppShell app={props.app} section="/webhooks" title="Webhooks">
      {hooks.isPending && <Loading what="webhooks" />}
      <Alert error={hooks.error ?? error} />
      {secret && <Alert kind="ok">The signing secret, shown only now: <code className="secret">{secret}</code></Alert>}
      {hooks.data && <DataTable caption="Webhook endpoints" rows={hooks.data.webhooks} columns={columns} empty="No webhooks." />}
      {open && <Deliveries webhook={open} />}
      <section className="card" aria-labelledby="new-hook">
        <h2 id="new-hook">New endpoint</h2>
        <Form label="New webhook" submit="Create webhook" action={async () => {
          const made = await api.webhooks.createWebhook({
            parent: props.app,
            webhook: { url, eventTypes: types.split(",").map((t) => t.trim()).filter(Boolean) },
          });
          setSecret(made.secret);
          setUrl("");
          await queries.invalidateQueries({ queryKey: ["webhooks", props.app] });
        }}>
          <Field label="URL" type="url" required value={url} onChange={(e) => setUrl(e.target.value)}
                 hint="https:// only; CAAS signs every delivery with the endpoint's secret." />
          <Field label="Event types" value={types} onChange={(e) => setTypes(e.target.value)}
                 hint="Comma-separated, e.g. message.created, member.*; empty: every event." />
        </Form>
      </section>
    </AppShell>
  );
}

function Deliveries(props: { webhook: string }) {
  const queries = useQueryClient();
  const attempts = useQuery({ queryKey: ["attempts", props.webhook], queryFn: () => api.webhooks.listDeliveryAttempts({ parent: props.webhook, pageSize: 20 }) });
  const dead = useQuery({ queryKey: ["dead", props.webhook], queryFn: () => api.webhooks.listDeadLetters({ parent: props.webhook }) });
  const [replayed, setReplayed] = useState<number | null>(null);
  const attemptList = [
    attemptColumns.accessor((a) => when(a.createTime), { id: "time", header: "When" }),
    attemptColumns.accessor("eventType", { header: "Event" }),
    attemptColumns.accessor((a) => (a.succeeded ? "Delivered" : `Failed: ${a.error}`), { id: "outcome", header: "Outcome" }),
  ];
  const deadList = [
    deadColumns.accessor((d) => when(d.createTime), { id: "time", header: "When" }),
    deadColumns.accessor("eventType", { header: "Event" }),
    deadColumns.accessor("lastError", { header: "Last error" }),
  ];
  return (
    <section className="card" aria-labelledby="deliveries">
      <h2 id="deliveries">Deliveries of {leafOf(props.webhook)}</h2>
      <Alert error={attempts.error ?? dead.error} />
      {attempts.data && <DataTable caption="The last 20 attempts" rows={attempts.data.deliveryAttempts} columns={attemptList} empty="No attempts yet." />}
      {dead.data && <DataTable caption="Dead letters" rows={dead.data.deadLetters} columns={deadList} empty="No dead letters." />}
      {replayed !== null && <Alert kind="ok">{replayed} dead letters queued again.</Alert>}
      {dead.data && dead.data.deadLetters.length > 0 && (
        <Form label="Replay the dead letters" submit="Replay all dead letters" action={async () => {
          const done = await api.webhooks.replayDeadLetters({ parent: props.webhook });
          setReplayed(done.replayed);
          await queries.invalidateQueries({ queryKey: ["dead", props.webhook] });
        }}>{null}</Form>
      )}
    </section>
  );
}

const userColumns = createColumnHelper<typeof tableFeatureSet, User>();

export function UsersPage(props: { app: string }) {
  const [search, setSearch] = useState("");
  const [filter, setFilter] = useState("");
  const users = useQuery({
    queryKey: ["users", props.app, filter],
    queryFn: () => api.users.listUsers({ parent: props.app, filter }),
  });
  const columns = [
    userColumns.accessor((u) => leafOf(u.name), {
      id: "id", header: "User id",
      cell: ({ row }) => <Link to={`/${row.original.name}`}>{leafOf(row.original.name)}</Link>,
    }),
    userColumns.accessor("displayName", { header: "Name" }),
    userColumns.accessor("role", { header: "Role" }),
    userColumns.accessor((u) => when(u.createTime), { id: "created", header: "Created" }),
  ];
  return (
    <AppShell app={props.app} section="/users" title="Users">
      <form role="search" onSubmit={(e) => {
        e.preventDefault();
        const term = search.trim().replaceAll('"', "");
        setFilter(term ? `user_id = "${term}*" OR display_name = "${term}*"` : "");
      }}>
        <Field label="Find users by id or name (prefix)" type="search" value={search}
               onChange={(e) => setSearch(e.target.value)} />
        <button type="submit">Search</button>
      </form>
      {users.isPending && <Loading what="users" />}
      <Alert error={users.error} />
      {users.data && <DataTable caption="Users" rows={users.data.users} columns={columns} empty="No users found." />}
    </AppShell>
  );
}

const sessionColumns = createColumnHelper<typeof tableFeatureSet, Session>();
const conversationColumns = createColumnHelper<typeof tableFeatureSet, Conversation>();

export function UserPage(props: { user: string }) {
  const app = props.user.split("/users/")[0];
  const [erased, setErased] = useState("");
  const user = useQuery({ queryKey: ["user", props.user], queryFn: () => api.users.getUser({ name: props.user }) });
  const sessions = useQuery({ queryKey: ["user-sessions", props.user], queryFn: () => api.auth.listSessions({ parent: props.user }) });
  const conversations = useQuery({ queryKey: ["conversations", props.user], queryFn: () => api.conversations.listConversations({ parent: props.user }) });
  const sessionList = [
    sessionColumns.accessor((s) => when(s.createTime), { id: "created", header: "Signed in" }),
    sessionColumns.accessor("deviceName", { header: "Device" }),
    sessionColumns.accessor((s) => (s.revokeTime ? "Revoked" : "Active"), { id: "state", header: "State" }),
  ];
  const conversationList = [
    conversationColumns.accessor((c) => c.title || leafOf(c.name), {
      id: "title", header: "Conversation",
      cell: ({ row }) => (
        <Link to={`/${row.original.name}?as=${encodeURIComponent(props.user)}`}>
          {row.original.title || leafOf(row.original.name)}
        </Link>
      ),
    }),
    conversationColumns.accessor((c) => when(c.lastActivityTime), { id: "last", header: "Last activity" }),
  ];
  return (
    <AppShell app={app} section="/users" title={user.data?.user?.displayName || leafOf(props.user) || "User"}>
      {user.isPending && <Loading what="the user" />}
      <Alert error={user.error} />
      {user.data?.user && <p>{props.user} · role {user.data.user.role || "user"}</p>}
      <section className="card" aria-labelledby="user-sessions">
        <h2 id="user-sessions">Sessions</h2>
        <Alert error={sessions.error} />
        {sessions.data && <DataTable caption="The user's sessions" rows={sessions.data.sessions} columns={sessionList} empty="No sessions." />}
      </section>
      <section className="card" aria-labelledby="user-conversations">
        <h2 id="user-conversations">Conversations</h2>
        <Alert error={conversations.error} />
        {conversations.data && <DataTable caption="The user's conversations" rows={conversations.data.conversations} columns={conversationList} empty="No conversations." />}
      </section>
      <Suspense fallback={<Loading what="the user's push channels" />}>
        <UserPush user={props.user} />
      </Suspense>
      <section className="card danger" aria-labelledby="erase">
        <h2 id="erase">Erase this user</h2>
        {erased ? <Alert kind="ok">Erasure started: {erased}</Alert> : (
          <Form label="Erase the user" submit="Erase the user's data" action={async () => {
            if (!window.confirm(`Erase every piece of ${props.user}'s data? This cannot be undone.`)) return;
            const operation = await api.compliance.eraseUser({ name: props.user });
            setErased(operation.name);
          }}>
            <p>Deletes the user, their messages, media and sessions, and destroys their data key.</p>
          </Form>
        )}
      </section>
    </AppShell>
  );
}

const messageColumns = createColumnHelper<typeof tableFeatureSet, Message>();

export function ConversationPage(props: { conversation: string; as: string }) {
  const app = props.conversation.split("/conversations/")[0];
  const messages = useQuery({
    queryKey: ["messages", props.conversation],
    queryFn: () => api.messages.listMessages({ parent: props.conversation, pageSize: 50 }),
  });
  const columns = [
    messageColumns.accessor((m) => when(m.createTime), { id: "time", header: "When" }),
    messageColumns.accessor("senderId", { header: "From" }),
    messageColumns.accessor("text", { header: "Text" }),
  ];
  return (
    <AppShell app={app} section="/users" title={`Conversation ${leafOf(props.conversation)}`}>
      {props.as && <p><Link to={`/${props.as}`}>Back to {leafOf(props.as)}</Link></p>}
      {messages.isPending && <Loading what="messages" />}
      <Alert error={messages.error} />
      {messages.data && <DataTable caption="The latest messages" rows={messages.data.messages} columns={columns} empty="No messages." />}
    </AppShell>
  );
}

export function SettingsPage(props: { app: string }) {
  const app = useQuery({ queryKey: ["app", props.app], queryFn: () => api.apps.getApp({ name: props.app }) });
  const retention = useQuery({ queryKey: ["retention", props.app], queryFn: () => api.compliance.getRetentionPolicy({ name: `${props.app}/retentionPolicy` }) });
  const data = app.data?.app;
  return (
    <AppShell app={props.app} section="/settings" title="Settings">
      {app.isPending && <Loading what="the app" />}
      {data && (
        <dl className="facts">
          <dt>Name</dt><dd>{data.displayName}</dd>
          <dt>Id</dt><dd><code>{data.name}</code></dd>
          <dt>Organization</dt><dd>{data.organization || "—"}</dd>
          <dt>Plan</dt><dd>{data.plan} (rate limits and quotas; the operator changes plans)</dd>
          <dt>Media kept after deletion</dt>
          <dd>{data.mediaRetention ? `${Number(data.mediaRetention.seconds) / 86400} days` : "the server's default"}</dd>
          <dt>Message retention</dt>
          <dd>{retention.data?.retentionPolicy?.messageRetention
            ? `${Number(retention.data.retentionPolicy.messageRetention.seconds) / 86400} days`
            : retention.error ? "—" : "kept until deleted"}</dd>
          <dt>Browser origins (CORS)</dt>
          <dd>Set for the whole server by its operator (<code>CAAS_CORS_ORIGINS</code>).</dd>
        </dl>
      )}
      <Alert error={app.error} />
      {data && <GuestsAndWidget app={props.app} enabled={data.guestAccess?.enabled ?? false}
        hours={data.guestAccess?.sessionLifetime ? Number(data.guestAccess.sessionLifetime.seconds) / 3600 : 24} />}
    </AppShell>
  );
}

/** Guest access (AppsService.UpdateApp, `guest_access`) and the widget's script tag. */
function GuestsAndWidget(props: { app: string; enabled: boolean; hours: number }) {
  const queries = useQueryClient();
  const [enabled, setEnabled] = useState(props.enabled);
  const [hours, setHours] = useState(String(props.hours));
  const [saved, setSaved] = useState(false);
  const origin = location.origin;
  const snippet = `<script async src="${origin}/widget/caas-widget.js"\n        data-app="${props.app}" data-api="${origin}"\n        ` +
    (enabled ? `data-guest="true"` : `data-token-url="/your/caas-session-endpoint"`) + `></script>`;
  return (
    <>
      <section className="card" aria-labelledby="guests">
        <h2 id="guests">Guests</h2>
        <p>Visitors your backend has not signed in may chat as guests (the widget&apos;s
          {" "}<code>data-guest</code>); what they may do is your permission policy&apos;s.</p>
        <Form label="Guest access" submit="Save" action={async () => {
          setSaved(false);
          const lifetime = Math.round(Number(hours) * 3600);
          await api.apps.updateApp({
            app: { name: props.app, guestAccess: { enabled, sessionLifetime: { seconds: BigInt(lifetime) } } },
            updateMask: { paths: ["guest_access"] },
          });
          await queries.invalidateQueries({ queryKey: ["app", props.app] });
          setSaved(true);
        }}>
          <div className="field">
            <label><input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
              {" "}Let visitors chat as guests</label>
          </div>
          <Field label="Guest session lifetime (hours)" type="number" min={0.1} max={720} step={0.1}
            value={hours} onChange={(e) => setHours(e.target.value)}
            hint="A guest becomes a new guest after this long (5 minutes to 30 days)." />
        </Form>
        {saved && <Alert kind="ok">Guest access saved.</Alert>}
      </section>
      <section className="card" aria-labelledby="widget">
        <h2 id="widget">Chat widget</h2>
        <p>Put this tag on your pages (their origins in the server&apos;s <code>CAAS_CORS_ORIGINS</code>).
          {" "}Signed-in visitors need a session endpoint on your backend: see the widget&apos;s README.</p>
        <pre data-testid="widget-snippet"><code>{snippet}</code></pre>
      </section>
    </>
  );
}
