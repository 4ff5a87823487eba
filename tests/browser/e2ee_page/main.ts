// A minimal end-to-end encrypted chat page for tests/browser/test_e2ee_page.py: one
// device of a user (its MLS secrets in IndexedDB) that calls CAAS over gRPC-Web through
// Envoy, follows the user's realtime stream (joining groups it is added to, decrypting
// as messages arrive), catches up after a reload, and sends.
//
// Signed in from the URL's fragment, read once and removed from the address bar,
//   index.html#api=http://127.0.0.1:8080&user=apps/a/users/bob&device=browser&token=…&refresh=…
// then kept in this tab's sessionStorage (renewed tokens too), so a reload goes on with
// them. The device registers only when asked ("Register this device"); reopened on a
// store that holds its keys already, it resumes from them without registering again.
//
// The SDK never decrypts a message twice (its keys are spent): what was read is the
// page's to keep, here in localStorage ("the transcript"), next to the device's keys.
// The test reads `window.e2eePage`: what this load decrypted, and what failed.
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import {
  E2eeDevice,
  createCaasClient,
  errorReason,
  indexedDbKeyStore,
  type CaasClient,
  type E2eeMessage,
  type Tokens,
} from "@caas/sdk";

interface Session {
  api: string;
  user: string; // apps/{app}/users/{user}
  deviceId: string;
  tokens: Tokens;
}

interface Line {
  conversation: string;
  sequence: number;
  sender: string;
  text: string;
  mine: boolean;
}

const SESSION = "caas-e2ee-page";
const element = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const show = (id: string, text: string) => {
  element(id).textContent = text;
};
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** What this load of the page did, for the test. */
const state = {
  resumed: false,
  decrypted: [] as Array<{ conversation: string; sequence: number; sender: string; text: string }>,
  failed: [] as Array<{ sequence: number; error: string }>,
  errors: [] as string[],
};
(window as unknown as { e2eePage: typeof state }).e2eePage = state;

function fail(error: unknown): void {
  const reason = errorReason(error);
  state.errors.push(`${reason ? `${reason}: ` : ""}${(error as Error)?.message ?? String(error)}`);
  show("error", state.errors.join("\n"));
}

function session(): Session | undefined {
  const fields = new URLSearchParams(location.hash.slice(1));
  if (fields.has("token")) {
    history.replaceState(history.state, "", location.pathname + location.search);
    const given: Session = {
      api: fields.get("api") ?? "",
      user: fields.get("user") ?? "",
      deviceId: fields.get("device") ?? "browser",
      tokens: { accessToken: fields.get("token") ?? "", refreshToken: fields.get("refresh") ?? "", accessTokenExpiresAt: 0 },
    };
    sessionStorage.setItem(SESSION, JSON.stringify(given));
    return given;
  }
  const kept = sessionStorage.getItem(SESSION);
  return kept ? (JSON.parse(kept) as Session) : undefined;
}

// The transcript: what this device read and sent, by conversation and sequence.
let transcriptKey = "";
let current = ""; // the conversation the page shows (and sends to)

function transcript(): Line[] {
  return JSON.parse(localStorage.getItem(transcriptKey) ?? "[]") as Line[];
}

function record(line: Line): void {
  const lines = transcript().filter((l) => !(l.conversation === line.conversation && l.sequence === line.sequence));
  lines.push(line);
  lines.sort((a, b) => a.sequence - b.sequence);
  localStorage.setItem(transcriptKey, JSON.stringify(lines));
  if (!current) choose(line.conversation);
  render();
}

function choose(conversation: string): void {
  current = conversation;
  show("conversation", conversation);
  element<HTMLButtonElement>("send").disabled = false;
  element<HTMLInputElement>("message-input").disabled = false;
}

const freshSequences = new Set<number>();

function render(): void {
  const list = element("transcript");
  list.replaceChildren(
    ...transcript()
      .filter((line) => line.conversation === current)
      .map((line) => {
        const item = document.createElement("li");
        item.dataset.testid = "message";
        item.dataset.sequence = String(line.sequence);
        item.className = line.mine ? "mine" : "theirs";
        if (freshSequences.has(line.sequence)) item.dataset.fresh = "true";
        const meta = document.createElement("span");
        meta.className = "meta";
        meta.textContent = `#${line.sequence} ${line.sender}${line.mine ? " (this device)" : ""}`;
        const words = document.createElement("span");
        words.dataset.testid = "message-text";
        words.textContent = line.text;
        item.append(meta, words);
        return item;
      }),
  );
}

function decoded(plaintext: Uint8Array): string {
  const text = new TextDecoder().decode(plaintext);
  try {
    return (JSON.parse(text) as { text?: string }).text ?? text;
  } catch {
    return text;
  }
}

async function main(): Promise<void> {
  const signedIn = session();
  if (!signedIn) {
    show("device-state", "not signed in: open index.html#api=…&user=…&token=…&refresh=…");
    return;
  }
  const name = `${signedIn.user}/devices/${signedIn.deviceId}`;
  transcriptKey = `caas-e2ee-transcript:${name}`;
  show("device", name);
  const client: CaasClient = createCaasClient({
    transport: (interceptors) => createGrpcWebTransport({ baseUrl: signedIn.api, interceptors }),
    tokens: signedIn.tokens,
    onTokens: (tokens) => sessionStorage.setItem(SESSION, JSON.stringify({ ...signedIn, tokens })),
  });
  const store = indexedDbKeyStore(`caas-e2ee:${name}`);
  state.resumed = (await store.get("identity")) !== undefined;
  const device = await E2eeDevice.open({
    client,
    user: signedIn.user,
    deviceId: signedIn.deviceId,
    store,
    onMessage: (message: E2eeMessage) => {
      const sequence = Number(message.sequence);
      if (!message.plaintext) {
        state.failed.push({ sequence, error: message.error ?? "" });
        return;
      }
      const line = { conversation: message.conversation, sequence, sender: message.senderId, text: decoded(message.plaintext) };
      state.decrypted.push(line);
      freshSequences.add(sequence);
      record({ ...line, mine: false });
    },
  });
  show("signature-key", hex(device.signatureKey));
  render();

  // Follow the user's stream from now on: joins on a commit that added this device.
  const stream = client.subscribe(signedIn.user, { state: (connection) => show("connection-state", connection) },
    { deviceId: signedIn.deviceId, stallTimeoutMs: 5000 });
  device.follow(stream, fail);

  // Catch up: the groups this device was added to meanwhile, then what was said in the
  // ones it is in since it last processed a message.
  const resume = async () => {
    const found = (await client.e2ee.getDevice({ name })).device;
    show("fingerprint", found?.fingerprint ?? "");
    await device.checkWelcomes();
    const { conversations } = await client.conversations.listConversations({ parent: signedIn.user, pageSize: 200 });
    for (const conversation of conversations) {
      if (!conversation.endToEndEncrypted || !(await device.isMember(conversation.name))) continue;
      if (!current) choose(conversation.name);
      await device.catchUp(conversation.name);
    }
    render();
  };

  const register = element<HTMLButtonElement>("register");
  if (state.resumed) {
    show("device-state", "resumed from IndexedDB");
    await resume();
    show("device-state", "resumed from IndexedDB, caught up");
  } else {
    show("device-state", "new device: keys made, not registered");
    register.hidden = false;
    register.onclick = async () => {
      register.disabled = true;
      try {
        const registered = await device.register();
        show("fingerprint", registered.fingerprint);
        register.hidden = true;
        await resume();
        show("device-state", `registered, ${registered.keyPackageCount} KeyPackages uploaded`);
      } catch (error) {
        register.disabled = false;
        fail(error);
      }
    };
  }

  element<HTMLFormElement>("compose").onsubmit = async (event) => {
    event.preventDefault();
    const input = element<HTMLInputElement>("message-input");
    const text = input.value.trim();
    if (!text || !current) return;
    input.value = "";
    try {
      const sent = await device.send(current, new TextEncoder().encode(JSON.stringify({ text })));
      record({ conversation: current, sequence: Number(sent.sequence), sender: device.userId, text, mine: true });
    } catch (error) {
      fail(error);
    }
  };
}

main().catch(fail);
