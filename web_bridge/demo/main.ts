// The demo chat page: sign in with a user's tokens, list conversations, create a group
// and add members, send and receive in real time (pictures too: uploaded with the SDK's
// `uploadMedia`, shown by their small thumbnail), show who is typing. Plain DOM on
// purpose: it shows the SDK, not a UI framework.
//
// Tokens never travel in a URL (server logs, browser history, Referer): the page takes
// them from its sign-in form, or from the URL's fragment, which browsers never send,
//   index.html#api=http://127.0.0.1:8080&token=…&refresh=…   (user=… optional)
// and removes the fragment from the address bar at once. They are kept in this tab's
// sessionStorage (renewed tokens too: a refresh token works once) until "Sign out",
// which revokes the session. The query string carries no secrets; `?stall=ms` sets the
// realtime stall timeout, `?partStall=ms` an upload part's (tests).
//
// Calls: "Voice call" / "Video call" ring the open conversation's other members with
// the SDK's `Calls`; a call to this user shows Accept / Decline wherever it comes from;
// the call panel shows its state, this camera and each other device's video, and
// "Hang up". The tab is one device (its id kept in sessionStorage): the realtime stream
// is opened with it, so the call's signals reach this tab. Tests read
// `window.caasCalls` (the phase and what the SDK told).
//
// Notifications: the "Notifications" switch subscribes this browser to Web Push and
// registers it as the user's push channel (the SDK's `enableWebPush`), with the service
// worker `sw.js` (the SDK's `caas-push-sw.js` inside), or turns that off; it says why
// when the browser refuses (a private window or a headless browser has no push
// service). A click on a notification brings this page forward and opens its
// conversation (or opens the page at `index.html#conversation=…`). Tests read
// `window.caasPush`.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import {
  Attachment_Kind,
  Call_Media,
  Call_Outcome,
  Call_State,
  Calls,
  CallsService,
  Conversation_Kind,
  createCaasClient,
  disableWebPush,
  enableWebPush,
  errorReason,
  onNotificationClick,
  Presence_Status,
  registerPushServiceWorker,
  uploadMedia,
  waitForMedia,
  type Attachment,
  type CaasClient,
  type Call,
  type CallPeer,
  type CallPhase,
  type CallsServices,
  type Event,
  type Message,
  type Subscription,
  type Tokens,
  type UploadProgress,
} from "../sdk/src/index.js";

const STORE = "caas-demo";
const PUSH_DEVICE = "caas-demo-push-device:"; // + the user: the push channel's name
const PUSH_SLOW_MS = 10_000;
const DEVICE = "caas-demo-device";
const DEFAULT_API = "http://127.0.0.1:8080";

interface SignedIn {
  api: string;
  user: string; // apps/{app}/users/{user}
  tokens: Tokens;
}

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const input = (id: string) => element<HTMLInputElement>(id);

/** The access token's claims (a JWT: the app, the user `sub` and the session `sid`). */
function claims(token: string): { app?: string; sub?: string; sid?: string } {
  try {
    const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    return JSON.parse(atob(payload)) as { app?: string; sub?: string; sid?: string };
  } catch {
    return {};
  }
}

function tokenUser(token: string): string {
  const { app, sub } = claims(token);
  return app && sub ? `apps/${app}/users/${sub}` : "";
}

function stored(): SignedIn | undefined {
  try {
    const value = JSON.parse(sessionStorage.getItem(STORE) ?? "null") as SignedIn | null;
    return value?.tokens?.accessToken ? value : undefined;
  } catch {
    return undefined;
  }
}

function store(signedIn: SignedIn): void {
  sessionStorage.setItem(STORE, JSON.stringify(signedIn));
}

/** Credentials handed over in the fragment, read once and removed from the address bar
 * (replaceState: no reload, no request, and Back does not bring them back). */
function fromFragment(): Partial<SignedIn> | undefined {
  const fields = new URLSearchParams(location.hash.slice(1));
  if (!["api", "user", "token", "refresh"].some((key) => fields.has(key))) return undefined;
  history.replaceState(history.state, "", location.pathname + location.search);
  const accessToken = fields.get("token") ?? "";
  return {
    api: fields.get("api") ?? undefined,
    user: fields.get("user") || tokenUser(accessToken),
    tokens: { accessToken, refreshToken: fields.get("refresh") ?? "", accessTokenExpiresAt: 0 },
  };
}

/** The conversation a notification click opened this page for (`#conversation=…`, or
 * `?conversation=…`), taken out of the fragment at once (the rest stays). */
function conversationFromUrl(): string {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const name = fragment.get("conversation") ?? new URLSearchParams(location.search).get("conversation") ?? "";
  if (fragment.has("conversation")) {
    fragment.delete("conversation");
    const rest = fragment.toString();
    history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return name;
}

function complete(partial: Partial<SignedIn>): SignedIn | undefined {
  const { api, user, tokens } = partial;
  return api && user && tokens?.accessToken && tokens.refreshToken ? { api, user, tokens } : undefined;
}

function describe(error: unknown): string {
  const connectError = ConnectError.from(error);
  const reason = errorReason(connectError);
  return `${connectError.rawMessage || Code[connectError.code]}${reason ? ` (${reason})` : ""}`;
}

// --- Signing in ---------------------------------------------------------------------

function showSignIn(prefill: Partial<SignedIn>, problem = ""): void {
  element("chat").hidden = true;
  element("sign-in").hidden = false;
  input("api").value = prefill.api ?? DEFAULT_API;
  input("user").value = prefill.user ?? "";
  input("access-token").value = prefill.tokens?.accessToken ?? "";
  input("refresh-token").value = prefill.tokens?.refreshToken ?? "";
  element("sign-in-notice").textContent = problem;
  (prefill.tokens?.accessToken ? element<HTMLButtonElement>("sign-in-form").querySelector("button")
    : input("access-token"))?.focus();
}

element<HTMLFormElement>("sign-in-form").onsubmit = (submit) => {
  submit.preventDefault();
  const accessToken = input("access-token").value.trim();
  const user = input("user").value.trim() || tokenUser(accessToken);
  if (!user) {
    element("sign-in-notice").textContent = "Which user? The token does not say: fill in User.";
    return;
  }
  const signedIn = { api: input("api").value.trim().replace(/\/+$/, ""), user,
    tokens: { accessToken, refreshToken: input("refresh-token").value.trim(), accessTokenExpiresAt: 0 } };
  store(signedIn);
  start(signedIn);
};

// --- Chatting -----------------------------------------------------------------------

let client: CaasClient;
let session: SignedIn;
let subscription: Subscription | undefined;
let calls: Calls | undefined;
let current = "";
let pendingConversation = ""; // to open once the inbox is loaded
let loads = 0;
const shown = new Set<string>(); // message names on screen: an event never shows twice
const typers = new Map<string, ReturnType<typeof setTimeout>>();
const list = element<HTMLUListElement>("conversations");
const messages = element<HTMLUListElement>("messages");
const text = input("text");
const attach = input("attach");
const send = document.querySelector<HTMLButtonElement>("[data-testid=send]")!;
const enableComposer = (enabled: boolean) => {
  text.disabled = send.disabled = !enabled;
  attach.disabled = !enabled || uploading !== undefined; // one picture at a time
};
const me = () => session.user.split("/").pop() ?? "";
const appName = () => session.user.split("/").slice(0, 2).join("/");

function notice(message: string, error = false): void {
  const line = element("notice");
  line.textContent = message;
  line.classList.toggle("error", error);
}

/** A picture as its smallest thumbnail (a link to the picture itself), any other file
 * as a download link. Signed URLs: they work for an hour or so, as the server says. */
function showAttachment(attachment: Attachment): HTMLElement | undefined {
  const thumbnail = attachment.thumbnails[0];
  if (thumbnail?.uri) {
    const link = document.createElement("a");
    link.href = attachment.uri || thumbnail.uri;
    link.target = "_blank";
    link.rel = "noopener";
    const image = document.createElement("img");
    image.dataset.testid = "attachment-image";
    image.dataset.size = thumbnail.size;
    image.alt = attachment.title || "picture";
    image.width = thumbnail.width;
    image.height = thumbnail.height;
    image.src = thumbnail.uri;
    link.append(image);
    return link;
  }
  const href = attachment.downloadUri || attachment.uri;
  if (!href || attachment.kind === Attachment_Kind.LINK) return undefined;
  const link = document.createElement("a");
  link.className = "file";
  link.dataset.testid = "attachment-file";
  link.href = href;
  link.textContent = attachment.title || "file";
  return link;
}

/** An ended call's record message, in words: "📞 Video call, 2:05", "📞 Voice call: missed". */
function callRecord(call: Call): string {
  const kind = kindOf(call);
  const named = `📞 ${kind[0]!.toUpperCase()}${kind.slice(1)}`;
  if (call.outcome !== Call_Outcome.COMPLETED) return `${named}: ${OUTCOMES[call.outcome] ?? "ended"}`;
  const seconds = Number(call.duration?.seconds ?? 0n);
  return `${named}, ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

function showMessage(message: Message): void {
  if (shown.has(message.name)) {
    const existing = messages.querySelector<HTMLElement>(`[data-name="${message.name}"] .text`);
    if (existing) existing.textContent = message.text;
    return;
  }
  shown.add(message.name);
  const item = document.createElement("li");
  item.dataset.testid = "message";
  item.dataset.name = message.name;
  item.classList.toggle("mine", message.senderId === me());
  item.innerHTML = '<span class="sender"></span><span class="text" data-testid="message-text"></span>';
  item.querySelector(".sender")!.textContent = message.senderId;
  item.querySelector(".text")!.textContent = message.call ? callRecord(message.call) : message.text;
  const attachments = message.attachments.map(showAttachment).filter((shown) => shown !== undefined);
  if (attachments.length) {
    const box = document.createElement("div");
    box.className = "attachments";
    box.append(...attachments);
    item.append(box);
  }
  messages.append(item);
  messages.scrollTop = messages.scrollHeight;
}

function clearConversation(): void {
  current = "";
  shown.clear();
  messages.replaceChildren();
  element("title").textContent = "Pick a conversation";
  element("members").textContent = "";
  element("add-member").hidden = true;
  enableComposer(false);
  showCallButtons();
}

async function showMembers(name: string): Promise<void> {
  const page = await client.conversations.listMembers({ parent: name, pageSize: 100 });
  if (name !== current) return;
  const ids = page.members.map((member) => member.userId).sort();
  element("members").textContent = `Members: ${ids.join(", ")}${page.nextPageToken ? ", …" : ""}`;
}

async function open(name: string, title: string): Promise<void> {
  current = name;
  shown.clear();
  messages.replaceChildren();
  element("title").textContent = title;
  element("members").textContent = "";
  element("add-member").hidden = false;
  showCallButtons();
  notice("");
  for (const li of list.children) li.classList.toggle("selected", (li as HTMLElement).dataset.name === name);
  enableComposer(true);
  text.focus();
  try {
    const [page] = await Promise.all([
      client.messages.listMessages({ parent: name, pageSize: 50 }), showMembers(name)]);
    if (name !== current) return;
    for (const message of [...page.messages].sort((a, b) => Number(a.sequence - b.sequence))) {
      showMessage(message);
    }
  } catch (error) {
    notice(`Could not open the conversation: ${describe(error)}`, true);
  }
}

/** The inbox again; the newest call wins when several overlap. */
async function loadConversations(): Promise<void> {
  const load = ++loads;
  const inbox = await client.conversations.listConversations({ parent: session.user, pageSize: 50 });
  if (load !== loads) return;
  list.replaceChildren();
  for (const conversation of inbox.conversations) {
    const item = document.createElement("li");
    item.dataset.testid = "conversation";
    item.dataset.name = conversation.name;
    item.textContent = conversation.title || conversation.name.split("/").pop()!;
    item.title = item.textContent;
    item.classList.toggle("selected", conversation.name === current);
    item.onclick = () => void open(conversation.name, item.textContent ?? "");
    list.append(item);
  }
  if (!inbox.conversations.length) {
    list.innerHTML = '<li class="empty">No conversations yet: create one above.</li>';
  }
  if (current && !inbox.conversations.some((conversation) => conversation.name === current)) {
    clearConversation(); // deleted, or we were removed
  }
}

function refreshConversations(): void {
  loadConversations().catch((error: unknown) => notice(`Could not list conversations: ${describe(error)}`, true));
}

// Every durable event received, in order (tests check that none came twice).
const received: string[] = [];
(window as unknown as { caasEvents: string[] }).caasEvents = received;

function onEvent(event: Event): void {
  received.push(event.name);
  const { payload } = event;
  switch (payload.case) {
    case "conversationCreated":
    case "conversationUpdated":
    case "conversationDeleted":
      refreshConversations();
      break;
    case "memberAdded":
    case "memberRemoved":
      if (event.userId === me()) refreshConversations();
      else if (event.conversation === current) void showMembers(current).catch(() => undefined);
      break;
    case "messageCreated":
    case "messageUpdated":
      if (event.conversation === current) showMessage(payload.value);
      break;
    default:
      break;
  }
}

element<HTMLFormElement>("composer").onsubmit = async (submit) => {
  submit.preventDefault();
  const value = text.value.trim();
  if (!value || !current) return;
  text.value = "";
  try {
    const sent = await client.messages.createMessage({
      parent: current, message: { text: value }, requestId: crypto.randomUUID() });
    if (sent.message) showMessage(sent.message);
  } catch (error) {
    text.value = value;
    notice(`Not sent: ${describe(error)}`, true);
  }
};

// Sending a picture: upload (progress, cancel), wait until processed, then send it.
// Every progress report is kept for the tests, as `window.caasUploadProgress`.
const progressSeen: UploadProgress[] = [];
(window as unknown as { caasUploadProgress: UploadProgress[] }).caasUploadProgress = progressSeen;
let uploading: AbortController | undefined;

function showUpload(status: string, progress?: UploadProgress): void {
  element("upload").hidden = !status;
  element("upload-text").textContent = status;
  const bar = element<HTMLProgressElement>("upload-progress");
  if (progress) {
    bar.max = progress.totalBytes;
    bar.value = progress.loadedBytes;
  } else {
    bar.removeAttribute("value"); // indeterminate: processing
  }
}

element("upload-cancel").onclick = () => uploading?.abort();

attach.onchange = async () => {
  const file = attach.files?.[0];
  attach.value = "";
  if (!file || !current || uploading) return;
  const conversation = current;
  const controller = new AbortController();
  uploading = controller;
  attach.disabled = true;
  const name = file.name || "picture";
  try {
    showUpload(`Uploading ${name}…`, { loadedBytes: 0, totalBytes: file.size });
    const partStall = new URLSearchParams(location.search).get("partStall");
    const uploaded = await uploadMedia(client, {
      conversation, file, signal: controller.signal,
      stallTimeoutMs: partStall ? Number(partStall) : undefined,
      onProgress: (progress) => {
        progressSeen.push(progress);
        const percent = Math.floor((100 * progress.loadedBytes) / progress.totalBytes);
        showUpload(`Uploading ${name}… ${percent} %`, progress);
      },
    });
    showUpload(`Processing ${name}…`);
    const media = await waitForMedia(client, uploaded, { subscription, signal: controller.signal });
    const sent = await client.messages.createMessage({
      parent: conversation, message: { attachments: [{ media: media.name }] },
      requestId: crypto.randomUUID() });
    if (sent.message && conversation === current) showMessage(sent.message);
    notice("");
  } catch (error) {
    if (controller.signal.aborted) notice(`Cancelled: ${name} was not sent.`);
    else notice(`Could not send ${name}: ${describe(error)}`, true);
  } finally {
    uploading = undefined;
    showUpload("");
    attach.disabled = !current;
  }
};

element<HTMLFormElement>("new-conversation").onsubmit = async (submit) => {
  submit.preventDefault();
  const title = input("new-title").value.trim();
  if (!title) return;
  try {
    const created = await client.conversations.createConversation({
      parent: appName(), conversation: { kind: Conversation_Kind.GROUP, title } });
    input("new-title").value = "";
    await loadConversations();
    if (created.conversation) await open(created.conversation.name, created.conversation.title);
    notice(`Created “${title}”: add members by their user id.`);
  } catch (error) {
    notice(`Could not create the conversation: ${describe(error)}`, true);
  }
};

element<HTMLFormElement>("add-member").onsubmit = async (submit) => {
  submit.preventDefault();
  const userId = input("member-id").value.trim().split("/").pop() ?? "";
  if (!userId || !current) return;
  try {
    const added = await client.conversations.addMembers({ conversation: current, userIds: [userId] });
    input("member-id").value = "";
    notice(added.members.length ? `Added ${userId}.` : `${userId} is already a member.`);
    await showMembers(current);
  } catch (error) {
    notice(`Could not add ${userId}: ${describe(error)}`, true);
  }
};

let lastTyping = 0;
text.oninput = () => {
  if (!current || Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  void client.realtime.sendTyping({ conversation: current, typing: true }).catch(() => undefined);
};

function showTyping(): void {
  element("typing").textContent = typers.size ? `${[...typers.keys()].join(", ")} typing…` : "";
}

element("sign-out").onclick = async () => {
  await calls?.leave().catch(() => undefined); // hang up first, while the session works
  // No more notifications for this user here (their channel goes, with its subscription).
  if (localStorage.getItem(pushDeviceKey())) await turnPushOff().catch(() => undefined);
  calls?.close();
  subscription?.close();
  const { sid } = claims(session.tokens.accessToken);
  try {
    // Revoked: its refresh token stops working at once, its access tokens shortly after.
    if (sid) await client.auth.revokeSession({ name: `${session.user}/sessions/${sid}` });
  } catch {
    // Signed out here all the same.
  }
  sessionStorage.removeItem(STORE);
  location.reload();
};

// --- Calls --------------------------------------------------------------------------

/** This tab's device id: made once, kept for reloads (a reload can join its call again). */
function deviceId(): string {
  let id = sessionStorage.getItem(DEVICE);
  if (!id) {
    id = `web-${crypto.randomUUID().slice(0, 8)}`;
    sessionStorage.setItem(DEVICE, id);
  }
  return id;
}

/** What the SDK told, for the tests: the phase, and each event in order. */
const callLog = {
  phase: "idle" as CallPhase, call: "", outcome: "", events: [] as string[],
  restartIce: () => calls?.restartIce(), // what a network change would do
};
(window as unknown as { caasCalls: typeof callLog }).caasCalls = callLog;

const OUTCOMES: Record<number, string> = {
  [Call_Outcome.COMPLETED]: "completed", [Call_Outcome.MISSED]: "missed",
  [Call_Outcome.DECLINED]: "declined", [Call_Outcome.BUSY]: "busy",
  [Call_Outcome.CANCELED]: "canceled",
};
const PHASES: Record<CallPhase, string> = {
  idle: "", ringing: "Incoming call", calling: "Calling…", connecting: "Connecting…",
  connected: "Connected", reconnecting: "Reconnecting…", ended: "Call ended",
};

const kindOf = (call: Call) => (call.media === Call_Media.VIDEO ? "video call" : "voice call");
const peerKey = (peer: CallPeer) => `${peer.userId}/${peer.deviceId}`;
let ringingCall: Call | undefined;

function showCallButtons(): void {
  const idle = !calls?.call && !calls?.ringing.length;
  element("call-buttons").hidden = !current;
  for (const id of ["call-audio", "call-video"]) element<HTMLButtonElement>(id).disabled = !idle;
}

function showCallState(text: string): void {
  element("call-state").textContent = text;
  element("call-state").dataset.phase = calls?.phase ?? "idle";
}

function showIncoming(): void {
  const ringing = calls?.call ? undefined : calls?.ringing[0];
  ringingCall = ringing;
  element("incoming").hidden = !ringing;
  if (ringing) {
    element("incoming-text").textContent = `Incoming ${kindOf(ringing)} from ${ringing.callerId}`;
    element("call").hidden = false;
  }
}

function removeRemote(peer: CallPeer): void {
  document.querySelector(`#videos figure[data-peer="${CSS.escape(peerKey(peer))}"]`)?.remove();
}

function clearVideos(): void {
  for (const figure of document.querySelectorAll("#videos figure[data-peer]")) figure.remove();
  element<HTMLVideoElement>("local-video").srcObject = null;
  element("local").hidden = true;
}

function startCalls(callsClient: CallsServices["calls"], stream: Subscription): void {
  calls = new Calls({ client: { calls: callsClient }, user: session.user, deviceId: deviceId(), events: stream });
  const log = (entry: string) => callLog.events.push(entry);
  calls.on("state", (phase) => {
    callLog.phase = phase;
    log(`state:${phase}`);
    element("hang-up").hidden = !calls?.call;
    element("call").hidden = phase === "idle";
    const call = calls?.call;
    showCallState(phase === "ringing" || phase === "ended" ? element("call-state").textContent ?? ""
      : `${PHASES[phase]}${call ? ` (${kindOf(call)})` : ""}`);
    showIncoming();
    showCallButtons();
  });
  calls.on("ringing", (call) => {
    log(`ringing:${call.callerId}`);
    showIncoming(); // the dialog says who calls; the status line only that it rings
    showCallState("Ringing…");
    showCallButtons();
    element("accept").focus();
  });
  calls.on("ringEnded", (call) => {
    log(`ringEnded:${OUTCOMES[call.outcome] ?? ""}`);
    showIncoming();
    if (!calls?.call && !calls?.ringing.length) {
      showCallState(call.state === Call_State.ENDED ? `Missed ${kindOf(call)} from ${call.callerId}`
        : `Answered or declined on another device`);
    }
    showCallButtons();
  });
  calls.on("call", (call) => { callLog.call = call.name; });
  calls.on("localStream", (stream) => {
    const video = element<HTMLVideoElement>("local-video");
    video.srcObject = stream;
    element("local").hidden = stream.getVideoTracks().length === 0;
  });
  calls.on("track", (peer, stream) => {
    log(`track:${peer.userId}`);
    removeRemote(peer);
    const figure = document.createElement("figure");
    figure.dataset.peer = peerKey(peer);
    const voice = calls?.call?.media === Call_Media.AUDIO;
    const media = document.createElement(voice ? "audio" : "video");
    media.dataset.testid = voice ? "remote-audio" : "remote-video";
    media.autoplay = true;
    if (media instanceof HTMLVideoElement) media.playsInline = true;
    media.setAttribute("aria-label", `${voice ? "Audio" : "Video"} of ${peer.userId}`);
    media.srcObject = stream;
    const caption = document.createElement("figcaption");
    caption.textContent = peer.userId;
    figure.append(media, caption);
    element("videos").append(figure);
  });
  calls.on("connected", (peer) => log(`connected:${peer.userId}`));
  calls.on("reconnecting", (peer) => log(`reconnecting:${peer.userId}`));
  calls.on("peerClosed", (peer) => {
    log(`peerClosed:${peer.userId}`);
    removeRemote(peer);
  });
  calls.on("ended", (call) => {
    const outcome = OUTCOMES[call.outcome] ?? "";
    callLog.outcome = outcome;
    log(`ended:${outcome}`);
    clearVideos();
    element("hang-up").hidden = true;
    const seconds = Number(call.duration?.seconds ?? 0n);
    const length = seconds ? `, ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}` : "";
    showCallState(call.state === Call_State.ENDED ? `Call ended: ${outcome}${length}` : "You left the call");
    showCallButtons();
  });
  calls.on("error", (error) => {
    log(`error:${describe(error)}`);
    console.warn("call:", error);
  });
}

async function placeCall(video: boolean): Promise<void> {
  if (!calls || !current) return;
  element("call").hidden = false;
  showCallState(`Starting a ${video ? "video" : "voice"} call…`);
  showCallButtons();
  try {
    await calls.start(current, { video });
    element("hang-up").hidden = false;
    element("hang-up").focus();
  } catch (error) {
    showCallState(`Could not call: ${describe(error)}`);
    notice(`Could not call: ${describe(error)}`, true);
  } finally {
    showCallButtons();
  }
}

element("call-audio").onclick = () => void placeCall(false);
element("call-video").onclick = () => void placeCall(true);

element("accept").onclick = async () => {
  if (!calls || !ringingCall) return;
  const call = ringingCall;
  element("incoming").hidden = true;
  showCallState(`Answering ${kindOf(call)}…`);
  try {
    await calls.accept(call);
    element("hang-up").hidden = false;
    element("hang-up").focus();
  } catch (error) {
    showIncoming();
    showCallState(`Could not answer: ${describe(error)}`);
  }
};

element("decline").onclick = async () => {
  if (!calls || !ringingCall) return;
  try {
    await calls.decline(ringingCall);
    showCallState("Declined");
  } catch (error) {
    showCallState(`Could not decline: ${describe(error)}`);
  }
};

element("hang-up").onclick = async () => {
  try {
    await calls?.leave();
  } catch (error) {
    notice(`Hanging up: ${describe(error)}`, true);
  }
};

// --- Notifications (Web Push) --------------------------------------------------------

type PushState = "off" | "on" | "busy" | "unavailable";
const pushToggle = element<HTMLButtonElement>("push-toggle");
let pushRegistration: Promise<ServiceWorkerRegistration> | undefined;
/** What the page did, for the tests: the switch's state, the service worker's scope,
 * what the browser refused (`name`, `message`) and the notification clicks heard. */
const pushLog = {
  state: "off" as PushState, scope: "", errors: [] as { name: string; message: string }[],
  clicks: [] as Record<string, string>[],
};
(window as unknown as { caasPush: typeof pushLog }).caasPush = pushLog;
const pushDeviceKey = () => PUSH_DEVICE + session.user;

function showPush(state: PushState, message = "", error = false): void {
  pushLog.state = state;
  pushToggle.setAttribute("aria-checked", String(state === "on"));
  pushToggle.setAttribute("aria-busy", String(state === "busy"));
  pushToggle.disabled = state === "unavailable"; // never while busy: it would lose the focus
  const line = element("push-state");
  line.textContent = message;
  line.classList.toggle("error", error);
}

const PUSH_ON = "On: new messages and calls notify this browser, even with the page closed.";

/** Why turning notifications on failed, in words (what the browser said, verbatim). */
function pushProblem(error: unknown): string {
  if (error instanceof ConnectError) return `Could not register with CAAS: ${describe(error)}`;
  const { name = "Error", message = String(error) } = error as { name?: string; message?: string };
  pushLog.errors.push({ name, message });
  if (typeof Notification !== "undefined" && Notification.permission === "denied") {
    return `Notifications are blocked for this page: allow them in the browser's site settings (${name}: ${message}).`;
  }
  return `The browser refused push notifications: “${message}” (${name}). Private windows and headless `
    + "browsers have no push service; elsewhere, allow notifications for this page.";
}

/** The switch as this browser stands: service worker registered, subscribed or not. */
async function setupPush(): Promise<void> {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    showPush("unavailable", "This browser cannot get push notifications here: no service workers or "
      + "Push API (they need https, or localhost).");
    return;
  }
  let registration: ServiceWorkerRegistration;
  try {
    pushRegistration ??= registerPushServiceWorker("sw.js");
    registration = await pushRegistration;
    pushLog.scope = registration.scope;
  } catch (error) {
    pushRegistration = undefined;
    showPush("unavailable", `The notifications' service worker did not start: ${pushProblem(error)}`, true);
    return;
  }
  if (Notification.permission === "denied") {
    showPush("unavailable", "Notifications are blocked for this page: allow them in the browser's site settings.");
    return;
  }
  const device = localStorage.getItem(pushDeviceKey());
  const subscription = await registration.pushManager.getSubscription().catch(() => null);
  if (!device || !subscription) {
    showPush("off");
    return;
  }
  showPush("on", PUSH_ON);
  // Subscriptions change: register it again at each start (the same channel updates).
  enableWebPush({ client, user: session.user, registration, deviceId: deviceId(), locale: navigator.language })
    .then((pushDevice) => localStorage.setItem(pushDeviceKey(), pushDevice.name))
    .catch((error: unknown) => showPush("off", pushProblem(error), true));
}

async function turnPushOn(registration: ServiceWorkerRegistration): Promise<void> {
  showPush("busy", "Turning notifications on…");
  const slow = setTimeout(() => showPush("busy", "Still waiting for the browser's push service "
    + "(it may be out of reach from here)…"), PUSH_SLOW_MS);
  try {
    const pushDevice = await enableWebPush({ client, user: session.user, registration, deviceId: deviceId(),
      locale: navigator.language });
    localStorage.setItem(pushDeviceKey(), pushDevice.name);
    showPush("on", PUSH_ON);
  } catch (error) {
    showPush(Notification.permission === "denied" ? "unavailable" : "off", pushProblem(error), true);
  } finally {
    clearTimeout(slow);
  }
}

async function turnPushOff(): Promise<void> {
  const registration = await pushRegistration;
  if (!registration) return;
  const pushDevice = localStorage.getItem(pushDeviceKey());
  if (pushDevice) await disableWebPush({ client, user: session.user, registration, pushDevice });
  else await (await registration.pushManager.getSubscription())?.unsubscribe();
  localStorage.removeItem(pushDeviceKey());
}

pushToggle.onclick = async () => {
  if (pushLog.state === "busy" || pushLog.state === "unavailable" || !pushRegistration) return;
  const registration = await pushRegistration;
  if (pushLog.state === "off") {
    await turnPushOn(registration);
    return;
  }
  showPush("busy", "Turning notifications off…");
  try {
    await turnPushOff();
    showPush("off", "Off: this browser gets no notifications.");
  } catch (error) {
    showPush("on", `Could not turn notifications off: ${error instanceof ConnectError ? describe(error) : String(error)}`, true);
  }
};

/** A conversation by name, as if picked in the list (its title from there). */
function openNamed(name: string): Promise<void> {
  const item = [...list.children].find((li) => (li as HTMLElement).dataset.name === name);
  return open(name, item?.textContent || name.split("/").pop() || name);
}

// A click on a notification while this page is open: it comes forward (the service
// worker focuses it) and shows the conversation.
onNotificationClick(({ data }) => {
  pushLog.clicks.push(data);
  if (data.conversation && session) void openNamed(data.conversation);
});

// A hidden page is away: the server then pushes to this user's devices (a page in
// view sees what happens live, and is not pushed to).
function tellPresence(): void {
  if (!session) return;
  const status = document.hidden ? Presence_Status.AWAY : Presence_Status.ONLINE;
  void client.realtime.setPresence({ name: session.user, status, deviceId: deviceId() })
    .catch(() => undefined);
}
document.addEventListener("visibilitychange", tellPresence);

function start(signedIn: SignedIn): void {
  session = signedIn;
  let authenticated: Interceptor[] = [];
  client = createCaasClient({
    transport: (interceptors) => {
      if (interceptors.length) authenticated = interceptors; // the session's: for calls below
      return createGrpcWebTransport({ baseUrl: signedIn.api, interceptors });
    },
    tokens: signedIn.tokens,
    onTokens: (tokens) => { session.tokens = tokens; store(session); },
  });
  // The CallsService client on the same session (one renewal of its tokens for all).
  const callsClient = createClient(CallsService,
    createGrpcWebTransport({ baseUrl: signedIn.api, interceptors: authenticated }));
  element("sign-in").hidden = true;
  element("chat").hidden = false;
  element("me").textContent = me();
  element("me").title = signedIn.user;
  clearConversation();
  const stall = Number(new URLSearchParams(location.search).get("stall") ?? 45_000);
  subscription = client.subscribe(signedIn.user, {
    event: onEvent,
    typing: (typing) => {
      if (typing.conversation !== current || typing.userId === me()) return;
      clearTimeout(typers.get(typing.userId));
      if (typing.typing) {
        typers.set(typing.userId, setTimeout(() => { typers.delete(typing.userId); showTyping(); }, 6000));
      } else {
        typers.delete(typing.userId);
      }
      showTyping();
    },
    state: (state, error) => {
      element("state").textContent = state;
      element("state").dataset.state = state;
      if (state === "live") tellPresence(); // a new stream starts online
      if (state === "closed" && error) notice(`Disconnected: ${describe(error)}`, true);
    },
    resync: () => { if (current) void open(current, element("title").textContent ?? ""); },
  }, { stallTimeoutMs: stall, deviceId: deviceId() });
  startCalls(callsClient, subscription);
  void setupPush();
  loadConversations().then(() => {
    const asked = pendingConversation;
    pendingConversation = "";
    if (asked) void openNamed(asked);
  }, (error: unknown) => {
    const code = ConnectError.from(error).code;
    if (code === Code.Unauthenticated || code === Code.PermissionDenied) {
      // Tokens refused: back to the form, with what was typed (the API, the user).
      subscription?.close();
      sessionStorage.removeItem(STORE);
      showSignIn({ api: signedIn.api, user: signedIn.user }, `Not signed in: ${describe(error)}`);
    } else {
      notice(`Could not list conversations: ${describe(error)}`, true);
    }
  });
}

// The fragment first (a fresh hand-over), then what this tab kept, else the form.
pendingConversation = conversationFromUrl();
const handedOver = fromFragment();
const signedIn = handedOver
  ? complete({ ...handedOver, api: handedOver.api ?? stored()?.api ?? DEFAULT_API })
  : stored();
if (signedIn) {
  store(signedIn);
  start(signedIn);
} else {
  showSignIn(handedOver ?? { api: stored()?.api });
}
