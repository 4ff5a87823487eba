/**
 * A small chat app made of @caas/react's hooks and kit: what an app developer writes.
 * Sign-in as the demo page does it: the app's backend hands over the user's tokens in
 * the URL's fragment (`#api=…&user=…&token=…&refresh=…`, never sent to a server),
 * which the page moves to sessionStorage (renewed tokens too) and removes from the
 * address bar. `?locale=ar` and `?theme=dark` show the kit's other faces; `?stall=ms`
 * sets the stream's stall timeout (the tests cut the network). The open conversation is
 * remembered for the tab, so a reload (offline too) shows it with its unsent messages.
 */
import { StrictMode, useMemo } from "react";
import { createRoot } from "react-dom/client";
import { ChatClient, createCaasClient, type Tokens } from "@caas/sdk";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Chat, ChatProvider, ChatRoot } from "@caas/react";

import "@caas/react/styles.css";

interface Kept {
  api: string;
  user: string;
  tokens: Tokens;
}

const KEY = "caas-react-example";

function fromFragment(): Kept | undefined {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (!token) return undefined;
  history.replaceState(null, "", location.pathname + location.search);
  const kept: Kept = {
    api: fragment.get("api") ?? location.origin,
    user: fragment.get("user") ?? "",
    tokens: { accessToken: token, refreshToken: fragment.get("refresh") ?? "", accessTokenExpiresAt: 0 },
  };
  sessionStorage.setItem(KEY, JSON.stringify(kept));
  return kept;
}

function signedIn(): Kept | undefined {
  const fresh = fromFragment();
  if (fresh) return fresh;
  const kept = sessionStorage.getItem(KEY);
  return kept ? (JSON.parse(kept) as Kept) : undefined;
}

function App({ kept }: { kept: Kept }) {
  const query = new URLSearchParams(location.search);
  const client = useMemo(() => {
    const caas = createCaasClient({
      transport: (interceptors) => createGrpcWebTransport({ baseUrl: kept.api, interceptors }),
      tokens: kept.tokens,
      onTokens: (tokens) => sessionStorage.setItem(KEY, JSON.stringify({ ...kept, tokens })),
    });
    const stall = Number(query.get("stall") ?? "") || undefined;
    return new ChatClient({ client: caas, user: kept.user, subscription: { stallTimeoutMs: stall, maxDelayMs: 2_000 } });
    // One client for the page's life.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const locale = query.get("locale") ?? "en";
  const theme = query.get("theme") === "dark" ? "dark" : "light";
  return (
    <ChatProvider client={client}>
      <ChatRoot locale={locale} theme={theme} className="example-root">
        <Chat
          initialConversation={sessionStorage.getItem(`${KEY}:conversation`) ?? undefined}
          onConversationChange={(name) => (name
            ? sessionStorage.setItem(`${KEY}:conversation`, name)
            : sessionStorage.removeItem(`${KEY}:conversation`))}
        />
      </ChatRoot>
    </ChatProvider>
  );
}

const kept = signedIn();
const root = createRoot(document.getElementById("root")!);
root.render(
  kept && kept.user
    ? <StrictMode><App kept={kept} /></StrictMode>
    : <p>Open this page with <code>#api=…&amp;user=apps/…/users/…&amp;token=…&amp;refresh=…</code>.</p>,
);
