/** The portal: routes, and who may see them (pages after login need a session). */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode, useEffect, type ReactNode } from "react";
import { createRoot } from "react-dom/client";

import "./styles.css";
import { AccountPage } from "./pages/account.js";
import {
  ApiKeysPage,
  AppOverviewPage,
  ConversationPage,
  PushPage,
  SettingsPage,
  UserPage,
  UsersPage,
  WebhooksPage,
} from "./pages/app.js";
import {
  ForgotPasswordPage,
  LoginPage,
  ResetPasswordPage,
  SignUpPage,
  VerifyEmailPage,
} from "./pages/auth.js";
import { BillingPage } from "./pages/billing.js";
import { AcceptInvitationPage, HomePage, OrganizationPage } from "./pages/organizations.js";
import { navigate, useLocation } from "./router.js";
import { useSession } from "./session.js";
import { Shell } from "./ui.js";

const queries = new QueryClient({
  defaultOptions: { queries: { retry: 1, staleTime: 5_000, refetchOnWindowFocus: false } },
});

const PUBLIC: Record<string, () => ReactNode> = {
  "/login": () => <LoginPage />,
  "/signup": () => <SignUpPage />,
  "/verify-email": () => <VerifyEmailPage />,
  "/forgot-password": () => <ForgotPasswordPage />,
  "/reset-password": () => <ResetPasswordPage />,
};

function page(path: string, query: URLSearchParams): ReactNode {
  if (path === "/") return <HomePage />;
  if (path === "/account") return <AccountPage />;
  if (path === "/accept-invitation") return <AcceptInvitationPage />;
  const parts = path.slice(1).split("/");
  if (parts[0] === "organizations" && parts.length === 2) return <OrganizationPage name={`organizations/${parts[1]}`} />;
  if (parts[0] === "organizations" && parts.length === 3 && parts[2] === "billing") {
    return <BillingPage name={`organizations/${parts[1]}`} />;
  }
  if (parts[0] === "apps" && parts.length >= 2) {
    const app = `apps/${parts[1]}`;
    const rest = parts.slice(2);
    if (!rest.length) return <AppOverviewPage app={app} />;
    if (rest.length === 1 && rest[0] === "keys") return <ApiKeysPage app={app} />;
    if (rest.length === 1 && rest[0] === "webhooks") return <WebhooksPage app={app} />;
    if (rest.length === 1 && rest[0] === "push") return <PushPage app={app} />;
    if (rest.length === 1 && rest[0] === "users") return <UsersPage app={app} />;
    if (rest.length === 1 && rest[0] === "settings") return <SettingsPage app={app} />;
    if (rest.length === 2 && rest[0] === "users") return <UserPage user={`${app}/users/${rest[1]}`} />;
    if (rest.length === 2 && rest[0] === "conversations") {
      return <ConversationPage conversation={`${app}/conversations/${rest[1]}`} as={query.get("as") ?? ""} />;
    }
  }
  return (
    <Shell>
      <h1>Not found</h1>
      <p>No page here.</p>
    </Shell>
  );
}

function App() {
  const { path, query } = useLocation();
  const session = useSession();
  const open = PUBLIC[path];
  useEffect(() => {
    if (!open && !session) {
      const here = window.location.pathname.replace(/^\/portal/, "") + window.location.search;
      navigate(`/login?next=${encodeURIComponent(here)}`, true);
    }
  }, [open, session]);
  useEffect(() => {
    // Focus the page's heading for screen readers after each navigation.
    document.querySelector<HTMLElement>("main h1")?.focus?.();
  }, [path]);
  if (open) return open();
  if (!session) return null;
  return page(path, query);
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queries}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
