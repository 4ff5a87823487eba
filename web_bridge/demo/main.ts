// The demo chat page: sign in with a user's tokens (from the query string, as an app's
// backend would hand them over), list conversations, send and receive in real time,
// show who is typing. Plain DOM on purpose: it shows the SDK, not a UI framework.
//   index.html?api=http://127.0.0.1:8080&user=apps/A/users/U&token=…&refresh=…
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { createCaasClient, type Event, type Message } from "../src/index.js";

const params = new URLSearchParams(location.search);
const user = params.get("user") ?? "";
const userId = user.split("/").pop() ?? "";
const client = createCaasClient({
  transport: (interceptors) =>
    createGrpcWebTransport({ baseUrl: params.get("api") ?? "http://127.0.0.1:8080", interceptors }),
  tokens: { accessToken: params.get("token") ?? "", refreshToken: params.get("refresh") ?? "",
            accessTokenExpiresAt: 0 },
});

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const list = element<HTMLUListElement>("conversations");
const messages = element<HTMLUListElement>("messages");
const input = element<HTMLInputElement>("text");
const send = document.querySelector<HTMLButtonElement>("[data-testid=send]")!;
let current = "";
const shown = new Set<string>(); // message names on screen: an event never shows twice
const typers = new Map<string, ReturnType<typeof setTimeout>>();

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
  item.innerHTML = '<span class="sender"></span><span class="text" data-testid="message-text"></span>';
  item.querySelector(".sender")!.textContent = message.senderId;
  item.querySelector(".text")!.textContent = message.text;
  messages.append(item);
  messages.scrollTop = messages.scrollHeight;
}

async function open(name: string, title: string): Promise<void> {
  current = name;
  shown.clear();
  messages.replaceChildren();
  element("title").textContent = title;
  for (const li of list.children) li.classList.toggle("selected", (li as HTMLElement).dataset.name === name);
  input.disabled = send.disabled = false;
  const page = await client.messages.listMessages({ parent: name, pageSize: 50 });
  for (const message of [...page.messages].sort((a, b) => Number(a.sequence - b.sequence))) {
    showMessage(message);
  }
}

async function loadConversations(): Promise<void> {
  const inbox = await client.conversations.listConversations({ parent: user, pageSize: 50 });
  list.replaceChildren();
  for (const conversation of inbox.conversations) {
    const item = document.createElement("li");
    item.dataset.testid = "conversation";
    item.dataset.name = conversation.name;
    item.textContent = conversation.title || conversation.name.split("/").pop()!;
    item.onclick = () => void open(conversation.name, item.textContent ?? "");
    list.append(item);
  }
}

// Every durable event received, in order (tests check that none came twice).
const received: string[] = [];
(window as unknown as { caasEvents: string[] }).caasEvents = received;

function onEvent(event: Event): void {
  received.push(event.name);
  if (event.conversation !== current) return;
  if (event.payload.case === "messageCreated" || event.payload.case === "messageUpdated") {
    showMessage(event.payload.value);
  }
}

element<HTMLFormElement>("composer").onsubmit = async (submit) => {
  submit.preventDefault();
  const text = input.value.trim();
  if (!text || !current) return;
  input.value = "";
  const sent = await client.messages.createMessage({
    parent: current, message: { text }, requestId: crypto.randomUUID() });
  if (sent.message) showMessage(sent.message);
};

let lastTyping = 0;
input.oninput = () => {
  if (!current || Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  void client.realtime.sendTyping({ conversation: current, typing: true });
};

function showTyping(): void {
  element("typing").textContent = typers.size ? `${[...typers.keys()].join(", ")} typing…` : "";
}

client.subscribe(user, {
  event: onEvent,
  typing: (typing) => {
    if (typing.conversation !== current || typing.userId === userId) return;
    clearTimeout(typers.get(typing.userId));
    if (typing.typing) {
      typers.set(typing.userId, setTimeout(() => { typers.delete(typing.userId); showTyping(); }, 6000));
    } else {
      typers.delete(typing.userId);
    }
    showTyping();
  },
  state: (state) => { element("state").textContent = state; },
  resync: () => { if (current) void open(current, element("title").textContent ?? ""); },
}, { stallTimeoutMs: Number(params.get("stall") ?? 45_000) });

void loadConversations();
