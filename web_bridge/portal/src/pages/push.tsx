/** Push notifications: the app's settings (Web Push key, contact, APNs and FCM
 * credentials, wording) and, on a user's page, their push channels and deliveries. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { useInfiniteQuery, useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import {
  Fragment,
  useId,
  useRef,
  useState,
  type ReactNode,
  type TextareaHTMLAttributes,
} from "react";

import { leafOf, transport } from "../api.js";
import { reasonOf } from "../errors.js";
import {
  PushService,
  type GetPushConfigResponse,
} from "../../../sdk/src/gen/caas/push/v1/push_service_pb.js";
import {
  NotificationKind,
  NotificationLevel,
  PushDelivery_State,
  ApnsToken_Environment,
  type NotificationSettings,
  type NotificationTemplate,
  type PushAttempt,
  type PushConfig,
  type ApnsCredentialsSchema,
  type FcmCredentialsSchema,
  type NotificationTemplateSchema,
  type PushDelivery,
  type PushDevice,
} from "../../../sdk/src/gen/caas/push/v1/resources_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../../sdk/src/gen/google/rpc/error_details_pb.js";
import { Link } from "../router.js";
import { Alert, DataTable, Field, Form, Loading, Select, tableFeatureSet, when } from "../ui.js";

// Here rather than in api.ts: its descriptors load with this page, not the first one.
const push = createClient(PushService, transport);

const APNS_KEY_MAX = 4096;
const FCM_FILE_MAX = 16384;
const ID_PATTERN = "[A-Z0-9]{10}";
const LOCALE_PATTERN = "[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}";

const KINDS: [NotificationKind, string][] = [
  [NotificationKind.MESSAGE, "Message"],
  [NotificationKind.MENTION, "Mention"],
  [NotificationKind.THREAD_REPLY, "Thread reply"],
  [NotificationKind.REACTION, "Reaction"],
  [NotificationKind.CALL, "Call"],
];
const KIND_WORDS: Record<number, string> = {
  ...Object.fromEntries(KINDS),
  [NotificationKind.CLEAR]: "Clear (read elsewhere)",
};
/** The built-in English wording (services/push/render.py): what a template replaces. */
const BUILT_IN: Record<number, [string, string]> = {
  [NotificationKind.MESSAGE]: ["{conversation}", "{sender}: {text}"],
  [NotificationKind.MENTION]: ["{sender} mentioned you in {conversation}", "{text}"],
  [NotificationKind.THREAD_REPLY]: ["{sender} replied in {conversation}", "{text}"],
  [NotificationKind.REACTION]: ["{sender} reacted {emoji}", "{text}"],
  [NotificationKind.CALL]: ["{sender}", "Incoming {call} call"],
};
const PLACEHOLDERS: [string, string][] = [
  ["{sender}", "the sender's display name"],
  ["{conversation}", "the conversation's title (the sender's name in a direct conversation)"],
  ["{text}", "the message on one line, cut at 150 characters"],
  ["{count}", "how many messages were collapsed into the notification"],
  ["{emoji}", "the reaction"],
  ["{call}", "voice or video"],
];
const STATE_WORDS: Record<number, string> = {
  [PushDelivery_State.UNSPECIFIED]: "—",
  [PushDelivery_State.PENDING]: "Waiting (collapse window or retry)",
  [PushDelivery_State.SENT]: "Sent",
  [PushDelivery_State.FAILED]: "Failed",
  [PushDelivery_State.PRUNED]: "Channel gone (deleted)",
  [PushDelivery_State.CANCELED]: "Canceled (read first)",
};
const LEVEL_WORDS: Record<number, string> = {
  [NotificationLevel.UNSPECIFIED]: "All (the default)",
  [NotificationLevel.ALL]: "All",
  [NotificationLevel.MENTIONS]: "Mentions, followed threads and calls only",
  [NotificationLevel.NONE]: "None",
};
const PROVIDERS: Record<string, string> = { apns: "APNs", fcm: "FCM" };
const FIELD_WORDS: Record<string, string> = {
  "apns.private_key": "the .p8 key",
  "fcm.service_account_json": "the service account file",
};

/** The key's bytes in base64url, as `PushManager.subscribe` and the VAPID spec write it. */
function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Runs `call`; a refusal of credentials comes back as words a developer can act on. */
async function explained<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof ConnectError && reasonOf(error) === "PUSH_CREDENTIALS_INVALID") {
      const provider = error.findDetails(ErrorInfoSchema)[0]?.metadata.provider ?? "";
      // "APNs key: not a P-256 (ES256) private key": the field's name says what is refused.
      const problems = error.findDetails(BadRequestSchema).flatMap((request) =>
        request.fieldViolations.map((v) =>
          `${FIELD_WORDS[v.field] ?? v.field} was refused — ${v.description.replace(/^[^:]{1,40}: /, "")}`));
      const refused = problems.join("; ") || `the ${PROVIDERS[provider] ?? ""} credentials were refused`;
      throw new Error(`Not saved: ${refused}. Nothing was changed.`);
    }
    throw error;
  }
}

/** A file input's text (undefined when no file was chosen), refused above `max` characters. */
async function fileText(file: File | undefined, max: number, what: string): Promise<string | undefined> {
  if (!file) return undefined;
  const text = await file.text();
  if (text.length > max) throw new Error(`${file.name} is too large for ${what} (at most ${max} characters).`);
  return text;
}

function TextArea(props: TextareaHTMLAttributes<HTMLTextAreaElement> & { label: string; hint?: string }) {
  const { label, hint, ...area } = props;
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <textarea id={id} aria-describedby={hint ? `${id}-hint` : undefined} {...area} />
      {hint && <small id={`${id}-hint`}>{hint}</small>}
    </div>
  );
}

/** A destructive action behind a confirmation: the button discloses what it does and
 * asks again. */
function Confirmed(props: { ask: string; confirm: string; children: ReactNode; action: () => Promise<void> }) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const asker = useRef<HTMLButtonElement>(null);
  const panel = useId();
  return (
    <div className="confirmed">
      <button type="button" ref={asker} aria-expanded={open} aria-controls={panel}
              className="secondary" onClick={() => { setError(null); setOpen(!open); }}>
        {props.ask}
      </button>
      {open && (
        <div className="confirm" id={panel} role="group" aria-label={props.ask}>
          {props.children}
          <Alert error={error} />
          <div className="actions">
            <button type="button" disabled={busy} onClick={async () => {
              setBusy(true);
              setError(null);
              try {
                await props.action();
                setOpen(false);
                asker.current?.focus();
              } catch (failure) {
                setError(failure);
              } finally {
                setBusy(false);
              }
            }}>{busy ? "Working…" : props.confirm}</button>
            <button type="button" className="secondary" onClick={() => {
              setOpen(false);
              asker.current?.focus();
            }}>Cancel</button>
          </div>
        </div>
      )}
    </div>
  );
}

/** The app's push settings page (its shell is app.tsx's `PushPage`). */
export function PushSettings(props: { app: string }) {
  const config = useQuery({
    queryKey: ["push-config", props.app],
    queryFn: () => push.getPushConfig({ name: `${props.app}/pushConfig` }),
  });
  const data = config.data?.pushConfig;
  return (
    <>
      <p>CAAS tells your users&apos; devices of messages, mentions, reactions and calls while your
        app is closed: browsers by Web Push, Apple devices by APNs, Android devices by Firebase
        Cloud Messaging. Each user&apos;s push channels and deliveries are on their page
        under <Link to={`/${props.app}/users`}>Users</Link>.</p>
      {data?.updateTime && <p className="muted">Settings last changed {when(data.updateTime)}.</p>}
      <WebPushKeyCard app={props.app} />
      {config.isPending && <Loading what="the push settings" />}
      <Alert error={config.error} />
      {data && (
        <>
          <ContactCard app={props.app} config={data} />
          <ApnsCard app={props.app} config={data} />
          <FcmCard app={props.app} config={data} />
          <WordingCard app={props.app} config={data} />
        </>
      )}
    </>
  );
}

/** Fields of the push settings to change (unset in `paths`: cleared). */
type Changes = {
  webPushContact?: string;
  apns?: MessageInitShape<typeof ApnsCredentialsSchema>;
  fcm?: MessageInitShape<typeof FcmCredentialsSchema>;
  templates?: MessageInitShape<typeof NotificationTemplateSchema>[];
  defaultLocale?: string;
};

/** Saves the fields of `paths` of the app's push settings; the page shows the answer. */
function useSave(app: string) {
  const queries = useQueryClient();
  return async (config: Changes, paths: string[]) => {
    const updated = await explained(push.updatePushConfig({
      pushConfig: { ...config, name: `${app}/pushConfig` },
      updateMask: { paths },
    }));
    queries.setQueryData<GetPushConfigResponse>(["push-config", app], (before) =>
      before && updated.pushConfig ? { ...before, pushConfig: updated.pushConfig } : before);
  };
}

function WebPushKeyCard(props: { app: string }) {
  const queries = useQueryClient();
  const name = `${props.app}/webPushKey`;
  const key = useQuery({ queryKey: ["web-push-key", props.app], queryFn: () => push.getWebPushKey({ name }) });
  const [copied, setCopied] = useState("");
  const [rotated, setRotated] = useState(false);
  const data = key.data?.webPushKey;
  const current = data ? base64url(data.publicKey) : "";
  const previous = data?.previousPublicKey.length ? base64url(data.previousPublicKey) : "";
  return (
    <section className="card" aria-labelledby="web-push-key">
      <h2 id="web-push-key">Web Push key</h2>
      <p>Browsers subscribe with this public key (VAPID: the <code>applicationServerKey</code> of
        {" "}<code>PushManager.subscribe</code>; the SDK&apos;s <code>enableWebPush</code> fetches
        it). Its private half never leaves the server.</p>
      {key.isPending && <Loading what="the Web Push key" />}
      <Alert error={key.error} />
      {data && (
        <dl className="facts">
          <dt>Public key</dt>
          <dd>
            <code className="secret" data-testid="web-push-public-key">{current}</code>
            <button type="button" className="secondary copy" onClick={async () => {
              try {
                await navigator.clipboard.writeText(current);
                setCopied("Copied.");
              } catch {
                setCopied("Copying was refused: select the key and copy it.");
              }
            }}>Copy</button>
            {copied && <span role="status"> {copied}</span>}
          </dd>
          <dt>Created</dt><dd>{when(data.createTime)}</dd>
          <dt>Previous key</dt>
          <dd>{previous
            ? <code className="secret" data-testid="web-push-previous-key">{previous}</code>
            : "None: the key was never rotated."}</dd>
        </dl>
      )}
      {rotated && <Alert kind="ok">The key was rotated: new subscriptions use the new key.</Alert>}
      {data && (
        <Confirmed ask="Rotate the key" confirm="Rotate now" action={async () => {
          setRotated(false);
          setCopied("");
          const made = await push.rotateWebPushKey({ name });
          queries.setQueryData(["web-push-key", props.app], made);
          setRotated(true);
        }}>
          <p><strong>Make a new Web Push key?</strong></p>
          <p>Browsers subscribed with the current key go on getting notifications: it becomes the
            previous key, until they subscribe again with the new one.{" "}
            {previous
              ? "The previous key is forgotten: browsers still subscribed with it get nothing until they subscribe again (the SDK's enableWebPush does so at the page's next start)."
              : "There is no previous key, so no subscription stops working."}</p>
        </Confirmed>
      )}
    </section>
  );
}

function ContactCard(props: { app: string; config: PushConfig }) {
  const save = useSave(props.app);
  const [contact, setContact] = useState(props.config.webPushContact);
  const [saved, setSaved] = useState(false);
  return (
    <section className="card" aria-labelledby="push-contact">
      <h2 id="push-contact">Contact</h2>
      <p>Push services may write to this address about your app&apos;s Web Push traffic (the
        VAPID <code>sub</code>). Currently: <strong data-testid="push-contact">
          {props.config.webPushContact || "the server's (CAAS_PUSH_CONTACT)"}</strong>.</p>
      <Form label="Web Push contact" submit="Save contact" action={async () => {
        setSaved(false);
        await save({ webPushContact: contact.trim() }, ["web_push_contact"]);
        setSaved(true);
      }}>
        <Field label="Contact address" value={contact} maxLength={256} placeholder="mailto:push@example.com"
               pattern="(mailto:[^\s@]+@[^\s@]+|https://\S+)"
               title="mailto:someone@example.com or an https:// address"
               onChange={(e) => { setContact(e.target.value); setSaved(false); }}
               hint="mailto: or https:; empty: the server's contact." />
      </Form>
      {saved && <Alert kind="ok">Contact saved.</Alert>}
    </section>
  );
}

function ApnsCard(props: { app: string; config: PushConfig }) {
  const save = useSave(props.app);
  const apns = props.config.apns;
  const stored = Boolean(apns?.privateKeySet);
  const configured = Boolean(apns && (apns.keyId || apns.privateKeySet));
  const [keyId, setKeyId] = useState(apns?.keyId ?? "");
  const [teamId, setTeamId] = useState(apns?.teamId ?? "");
  const [topic, setTopic] = useState(apns?.topic ?? "");
  const [file, setFile] = useState<File>();
  const [chooser, setChooser] = useState(0); // a new file input after each save
  const [saved, setSaved] = useState("");
  return (
    <section className="card" aria-labelledby="apns">
      <h2 id="apns">Apple devices (APNs)</h2>
      {configured && apns ? (
        <dl className="facts">
          <dt>Key id</dt><dd><code>{apns.keyId}</code></dd>
          <dt>Team id</dt><dd><code>{apns.teamId}</code></dd>
          <dt>Topic (bundle id)</dt><dd><code>{apns.topic}</code></dd>
          <dt>Signing key</dt>
          <dd data-testid="apns-key">{stored ? "Key stored (it is never shown)" : "No key stored"}</dd>
        </dl>
      ) : (
        <p data-testid="apns-key">Not configured: pushes to Apple devices fail until you add the
          app&apos;s signing key.</p>
      )}
      <Form label="APNs credentials" submit="Save APNs credentials" action={async () => {
        setSaved("");
        const privateKey = await fileText(file, APNS_KEY_MAX, "a .p8 key");
        await save({ apns: { keyId, teamId, topic, privateKey: privateKey ?? "" } }, ["apns"]);
        setFile(undefined);
        setChooser(chooser + 1);
        setSaved(privateKey ? "APNs credentials saved with the new key." : "APNs credentials saved; the stored key stays.");
      }}>
        <div className="form-grid">
          <Field label="Key id" required pattern={ID_PATTERN} maxLength={10} value={keyId}
                 title="10 characters, A–Z and 0–9" autoComplete="off" spellCheck={false}
                 onChange={(e) => setKeyId(e.target.value.toUpperCase().trim())}
                 hint="10 characters, A–Z and 0–9 (Apple Developer: Keys)." />
          <Field label="Team id" required pattern={ID_PATTERN} maxLength={10} value={teamId}
                 title="10 characters, A–Z and 0–9" autoComplete="off" spellCheck={false}
                 onChange={(e) => setTeamId(e.target.value.toUpperCase().trim())}
                 hint="10 characters, A–Z and 0–9 (Apple Developer: Membership)." />
        </div>
        <Field label="Topic (the app's bundle id)" required maxLength={255} value={topic}
               pattern="[A-Za-z0-9][A-Za-z0-9.\-]{0,254}" placeholder="com.example.chat"
               autoComplete="off" spellCheck={false} onChange={(e) => setTopic(e.target.value.trim())} />
        <Field key={chooser} label="Signing key (.p8 file)" type="file" accept=".p8,.pem,text/plain"
               required={!stored} onChange={(e) => setFile(e.target.files?.[0])}
               hint={stored
                 ? "Leave empty to keep the stored key; a new file replaces it."
                 : "The AuthKey_….p8 file Apple lets you download once; kept sealed, never shown again."} />
      </Form>
      {saved && <Alert kind="ok">{saved}</Alert>}
      {configured && (
        <Confirmed ask="Remove APNs" confirm="Remove the APNs credentials" action={async () => {
          setSaved("");
          await save({ apns: undefined }, ["apns"]);
        }}>
          <p><strong>Remove the APNs key and ids?</strong> Pushes to Apple devices then fail
            (&ldquo;APNs is not configured&rdquo;) until you upload a key again.</p>
        </Confirmed>
      )}
    </section>
  );
}

function FcmCard(props: { app: string; config: PushConfig }) {
  const save = useSave(props.app);
  const fcm = props.config.fcm;
  const configured = Boolean(fcm?.projectId);
  const [file, setFile] = useState<File>();
  const [chooser, setChooser] = useState(0);
  const [saved, setSaved] = useState(false);
  return (
    <section className="card" aria-labelledby="fcm">
      <h2 id="fcm">Android devices (Firebase Cloud Messaging)</h2>
      {configured && fcm ? (
        <dl className="facts">
          <dt>Project</dt><dd><code data-testid="fcm-project">{fcm.projectId}</code></dd>
          <dt>Service account</dt><dd><code>{fcm.clientEmail}</code></dd>
          <dt>Key file</dt><dd>Stored (it is never shown)</dd>
        </dl>
      ) : (
        <p data-testid="fcm-project">Not configured: pushes to FCM tokens fail until you add a
          service account.</p>
      )}
      <Form label="FCM service account" submit="Save service account" action={async () => {
        setSaved(false);
        const account = await fileText(file, FCM_FILE_MAX, "a service account file");
        if (account === undefined) throw new Error("Choose the service account's JSON key file.");
        await save({ fcm: { serviceAccountJson: account } }, ["fcm"]);
        setFile(undefined);
        setChooser(chooser + 1);
        setSaved(true);
      }}>
        <Field key={chooser} label="Service account key (JSON file)" type="file"
               accept=".json,application/json" required onChange={(e) => setFile(e.target.files?.[0])}
               hint={`Firebase console: Project settings, Service accounts, Generate new private key. ${configured ? "A new file replaces the stored one." : "Kept sealed, never shown again."}`} />
      </Form>
      {saved && <Alert kind="ok">Service account saved.</Alert>}
      {configured && (
        <Confirmed ask="Remove FCM" confirm="Remove the service account" action={async () => {
          setSaved(false);
          await save({ fcm: undefined }, ["fcm"]);
        }}>
          <p><strong>Remove the FCM service account?</strong> Pushes to Android devices then
            fail (&ldquo;FCM is not configured&rdquo;) until you upload one again.</p>
        </Confirmed>
      )}
    </section>
  );
}

type Draft = { kind: NotificationKind; locale: string; title: string; body: string };
const templateColumns = createColumnHelper<typeof tableFeatureSet, Draft>();
const same = (a: Draft, b: Draft) => a.kind === b.kind && a.locale.toLowerCase() === b.locale.toLowerCase();

function WordingCard(props: { app: string; config: PushConfig }) {
  const save = useSave(props.app);
  const [locale, setLocale] = useState(props.config.defaultLocale);
  const [localeSaved, setLocaleSaved] = useState(false);
  const stored = (templates: NotificationTemplate[]): Draft[] =>
    templates.map(({ kind, locale, title, body }) => ({ kind, locale, title, body }));
  const [drafts, setDrafts] = useState<Draft[]>(() => stored(props.config.templates));
  const [changed, setChanged] = useState(false);
  const [saved, setSaved] = useState(false);
  const [kind, setKind] = useState(String(NotificationKind.MESSAGE));
  const [language, setLanguage] = useState("");
  const [title, setTitle] = useState("");
  const [body, setBody] = useState("");
  const edit = (next: Draft[]) => { setDrafts(next); setChanged(true); setSaved(false); };
  const builtIn = BUILT_IN[Number(kind)] ?? ["", ""];
  const columns = [
    templateColumns.accessor((t) => KIND_WORDS[t.kind] ?? String(t.kind), { id: "kind", header: "Kind" }),
    templateColumns.accessor((t) => t.locale || "every language", { id: "locale", header: "Language" }),
    templateColumns.accessor("title", { header: "Title" }),
    templateColumns.accessor("body", { header: "Body" }),
    templateColumns.display({
      id: "remove",
      header: "Actions",
      cell: ({ row }) => (
        <button type="button" aria-label={`Remove the ${KIND_WORDS[row.original.kind]} template (${row.original.locale || "every language"})`}
                onClick={() => edit(drafts.filter((t) => t !== row.original))}>Remove</button>
      ),
    }),
  ];
  return (
    <section className="card" aria-labelledby="wording">
      <h2 id="wording">Wording</h2>
      <p>Notifications are worded in the device&apos;s language: a template of that language, else
        of its base language (<code>pt</code> for <code>pt-BR</code>), else of the default
        language, else one for every language, else the built-in English.</p>
      <Form label="Default language" submit="Save default language" action={async () => {
        setLocaleSaved(false);
        await save({ defaultLocale: locale.trim() }, ["default_locale"]);
        setLocaleSaved(true);
      }}>
        <Field label="Default language" value={locale} pattern={LOCALE_PATTERN} maxLength={35}
               placeholder="en" onChange={(e) => { setLocale(e.target.value); setLocaleSaved(false); }}
               hint="For devices that registered no language (BCP 47, such as fr or pt-BR); empty: en." />
      </Form>
      {localeSaved && <Alert kind="ok">Default language saved.</Alert>}

      <h3>Templates</h3>
      <DataTable caption="The app's notification templates" rows={drafts} columns={columns}
                 empty="No templates: the built-in English wording is used." />
      <details className="placeholders">
        <summary>Placeholders</summary>
        <dl className="facts">
          {PLACEHOLDERS.map(([name, meaning]) => (
            <Fragment key={name}><dt><code>{name}</code></dt><dd>{meaning}</dd></Fragment>
          ))}
        </dl>
      </details>
      <div className="subform">
        <h4>Add a template</h4>
        <Form label="Add a template" submit="Add template" action={async () => {
          const added: Draft = { kind: Number(kind), locale: language.trim(), title, body };
          edit([...drafts.filter((t) => !same(t, added)), added]);
          setTitle("");
          setBody("");
        }}>
          <div className="form-grid">
            <Select label="Kind" value={kind} onChange={setKind}
                    options={KINDS.map(([value, text]) => [String(value), text])} />
            <Field label="Language" value={language} pattern={LOCALE_PATTERN} maxLength={35}
                   placeholder="fr" onChange={(e) => setLanguage(e.target.value)}
                   hint="BCP 47; empty: every language. The same kind and language replaces the one listed." />
          </div>
          <Field label="Title" required maxLength={200} value={title} placeholder={builtIn[0]}
                 onChange={(e) => setTitle(e.target.value)} hint={`Built-in: ${builtIn[0]}`} />
          <TextArea label="Body" required maxLength={500} rows={2} value={body} placeholder={builtIn[1]}
                    onChange={(e) => setBody(e.target.value)} hint={`Built-in: ${builtIn[1]}`} />
        </Form>
      </div>
      {changed && <Alert kind="info">The templates above are not saved yet.</Alert>}
      <Form label="Save the templates" submit="Save templates" action={async () => {
        setSaved(false);
        await save({ templates: drafts.map((t) => ({ ...t })) }, ["templates"]);
        setChanged(false);
        setSaved(true);
      }}>{null}</Form>
      {saved && <Alert kind="ok">Templates saved.</Alert>}
    </section>
  );
}

const deviceColumns = createColumnHelper<typeof tableFeatureSet, PushDevice>();
const deliveryColumns = createColumnHelper<typeof tableFeatureSet, PushDelivery>();

function provider(device: PushDevice): string {
  const channel = device.channel;
  if (channel.case === "webPush") return "Web Push";
  if (channel.case === "apns") {
    return channel.value.environment === ApnsToken_Environment.SANDBOX ? "APNs (sandbox)" : "APNs (production)";
  }
  if (channel.case === "fcm") return "FCM";
  return "—";
}

/** Where the channel points, shortened: a Web Push service's host, a token's ends. */
function address(device: PushDevice): string {
  const channel = device.channel;
  const short = (token: string) => (token.length > 20 ? `${token.slice(0, 8)}…${token.slice(-8)}` : token);
  if (channel.case === "webPush") {
    try {
      return new URL(channel.value.endpoint).host;
    } catch {
      return channel.value.endpoint;
    }
  }
  if (channel.case === "apns") return short(channel.value.deviceToken);
  if (channel.case === "fcm") return short(channel.value.token);
  return "";
}

function attempt(a: PushAttempt): string {
  const status = a.statusCode ? `HTTP ${a.statusCode}` : "no answer";
  return `${status}${a.error ? `: ${a.error}` : ""}, ${a.latencyMs} ms`;
}

function minutes(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;
}

function quietHours(settings: NotificationSettings): string {
  const dnd = settings.doNotDisturb;
  if (!dnd) return "None";
  return `${minutes(dnd.startMinute)} to ${minutes(dnd.endMinute)} (${dnd.timeZone || "UTC"}): calls only`;
}

/** A user's push channels, preferences and latest deliveries (on their page). */
export function UserPush(props: { user: string }) {
  const queries = useQueryClient();
  const devices = useQuery({
    queryKey: ["push-devices", props.user],
    queryFn: () => push.listPushDevices({ parent: props.user }),
  });
  const settings = useQuery({
    queryKey: ["notification-settings", props.user],
    queryFn: () => push.getNotificationSettings({ name: `${props.user}/notificationSettings` }),
  });
  const deliveries = useInfiniteQuery({
    queryKey: ["push-deliveries", props.user],
    queryFn: ({ pageParam }) => push.listPushDeliveries({ parent: props.user, pageSize: 20, pageToken: pageParam }),
    initialPageParam: "",
    getNextPageParam: (last) => last.nextPageToken || undefined,
  });
  const known = new Map((devices.data?.pushDevices ?? []).map((d) => [d.name, d]));
  const deviceList = [
    deviceColumns.accessor(provider, { id: "provider", header: "Provider" }),
    deviceColumns.accessor(address, { id: "address", header: "Channel", cell: (c) => <code>{c.getValue()}</code> }),
    deviceColumns.accessor((d) => leafOf(d.name), { id: "id", header: "Id", cell: (c) => <code>{c.getValue()}</code> }),
    deviceColumns.accessor((d) => d.deviceId || "—", { id: "device", header: "Device id" }),
    deviceColumns.accessor((d) => d.locale || "the app's default", { id: "locale", header: "Language" }),
    deviceColumns.accessor((d) => when(d.createTime), { id: "created", header: "Registered" }),
    deviceColumns.accessor((d) => when(d.updateTime), { id: "updated", header: "Last registered" }),
  ];
  const deliveryList = [
    deliveryColumns.accessor((d) => when(d.createTime), { id: "time", header: "When" }),
    deliveryColumns.accessor((d) => KIND_WORDS[d.kind] ?? "—", { id: "kind", header: "Kind" }),
    deliveryColumns.accessor((d) => leafOf(d.conversation), {
      id: "conversation", header: "Conversation",
      cell: ({ row }) => row.original.conversation ? (
        <Link to={`/${row.original.conversation}?as=${encodeURIComponent(props.user)}`}>
          {leafOf(row.original.conversation)}
        </Link>
      ) : "—",
    }),
    deliveryColumns.accessor((d) => {
      const device = known.get(d.pushDevice);
      return device ? `${provider(device)} ${leafOf(d.pushDevice)}` : `${leafOf(d.pushDevice)} (deleted)`;
    }, { id: "channel", header: "Channel" }),
    deliveryColumns.accessor((d) => STATE_WORDS[d.state] ?? "—", {
      id: "state", header: "State",
      cell: ({ row, getValue }) => (
        <span className={`state state-${PushDelivery_State[row.original.state]?.toLowerCase()}`}>
          {getValue()}{row.original.sendTime ? ` ${when(row.original.sendTime)}` : ""}
        </span>
      ),
    }),
    deliveryColumns.accessor("count", { header: "Count" }),
    deliveryColumns.accessor((d) => d.attempts.length, {
      id: "attempts", header: "Attempts",
      cell: ({ row }) => row.original.attempts.length ? (
        <ol className="attempts">
          {row.original.attempts.map((a, index) => <li key={index}>{attempt(a)}</li>)}
        </ol>
      ) : "None yet",
    }),
  ];
  const rows = deliveries.data?.pages.flatMap((page) => page.pushDeliveries) ?? [];
  const settingsData = settings.data?.notificationSettings;
  return (
    <section className="card" aria-labelledby="user-push">
      <h2 id="user-push">Push</h2>
      <p>No notification? The user may have no channel (their device never registered, or the
        provider said it was gone), a delivery may have failed (the provider&apos;s answer is below),
        or none was made: the user was connected in the foreground, muted the conversation, set a
        level or quiet hours that hold it back, or blocks the sender.</p>
      <div className="actions">
        <button type="button" className="secondary" onClick={() => queries.invalidateQueries({
          predicate: (query) => query.queryKey[1] === props.user
            && ["push-devices", "push-deliveries", "notification-settings"].includes(String(query.queryKey[0])),
        })}>Refresh</button>
      </div>
      <h3>Preferences</h3>
      <Alert error={settings.error} />
      {settingsData && (
        <dl className="facts">
          <dt>Level</dt><dd>{LEVEL_WORDS[settingsData.level] ?? "—"}</dd>
          <dt>Quiet hours</dt><dd>{quietHours(settingsData)}</dd>
          <dt>Per conversation</dt>
          <dd>{settingsData.conversations.length
            ? settingsData.conversations.map((c) => `${c.conversationId}: ${LEVEL_WORDS[c.level]}`).join("; ")
            : "None"}</dd>
        </dl>
      )}
      <h3>Channels</h3>
      {devices.isPending && <Loading what="push channels" />}
      <Alert error={devices.error} />
      {devices.data && (
        <DataTable caption="The user's push channels, oldest first" rows={devices.data.pushDevices}
                   columns={deviceList} empty="No push channels: no device of this user registered one." />
      )}
      <h3>Deliveries</h3>
      {deliveries.isPending && <Loading what="push deliveries" />}
      <Alert error={deliveries.error} />
      {deliveries.data && (
        <DataTable caption="The user's notifications, newest first, with each try's answer" rows={rows}
                   columns={deliveryList} empty="No deliveries: nothing was pushed to this user lately." />
      )}
      {deliveries.hasNextPage && (
        <button type="button" className="secondary" disabled={deliveries.isFetchingNextPage}
                onClick={() => deliveries.fetchNextPage()}>
          {deliveries.isFetchingNextPage ? "Loading…" : "Show older deliveries"}
        </button>
      )}
    </section>
  );
}
