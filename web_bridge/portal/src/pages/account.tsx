/** The developer's own account: email verification, two-factor authentication,
 * sessions and the login history. */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useState } from "react";

import { api } from "../api.js";
import type { AccountSession, LoginEvent } from "../../../sdk/src/gen/caas/accounts/v1/resources_pb.js";
import { LoginEvent_Outcome } from "../../../sdk/src/gen/caas/accounts/v1/resources_pb.js";
import { useSession } from "../session.js";
import { Alert, DataTable, Field, Form, Loading, Shell, tableFeatureSet, when } from "../ui.js";

const OUTCOMES: Record<number, string> = {
  [LoginEvent_Outcome.SUCCEEDED]: "Signed in",
  [LoginEvent_Outcome.WRONG_PASSWORD]: "Wrong password",
  [LoginEvent_Outcome.MFA_REQUIRED]: "Asked for a code",
  [LoginEvent_Outcome.WRONG_MFA_CODE]: "Wrong code",
  [LoginEvent_Outcome.LOCKED]: "Refused: locked",
};

const sessionColumns = createColumnHelper<typeof tableFeatureSet, AccountSession>();
const eventColumns = createColumnHelper<typeof tableFeatureSet, LoginEvent>();

export function AccountPage() {
  const session = useSession()!;
  const queries = useQueryClient();
  const account = useQuery({
    queryKey: ["account", session.account],
    queryFn: () => api.accounts.getAccount({ name: session.account }),
  });
  const sessions = useQuery({
    queryKey: ["sessions", session.account],
    queryFn: () => api.accounts.listAccountSessions({ parent: session.account }),
  });
  const history = useQuery({
    queryKey: ["logins", session.account],
    queryFn: () => api.accounts.listLoginEvents({ parent: session.account, pageSize: 20 }),
  });
  const [enrollment, setEnrollment] = useState<{ secret: string; svg: string } | null>(null);
  const [code, setCode] = useState("");
  const [recovery, setRecovery] = useState<string[]>([]);
  const [resent, setResent] = useState(false);
  const me = account.data?.account;
  const refresh = () => queries.invalidateQueries({ queryKey: ["account", session.account] });

  const columns = [
    sessionColumns.accessor((s) => when(s.createTime), { id: "created", header: "Signed in" }),
    sessionColumns.accessor("ipAddress", { header: "Address" }),
    sessionColumns.accessor("userAgent", { header: "Browser" }),
    sessionColumns.accessor((s) => (s.revokeTime ? "Ended" : s.current ? "This one" : "Active"),
                            { id: "state", header: "State" }),
    sessionColumns.display({
      id: "actions",
      header: "Actions",
      cell: ({ row }) =>
        !row.original.revokeTime && !row.original.current ? (
          <button type="button" onClick={async () => {
            await api.accounts.revokeAccountSession({ name: row.original.name });
            await queries.invalidateQueries({ queryKey: ["sessions", session.account] });
          }}>End</button>
        ) : null,
    }),
  ];
  const eventColumnList = [
    eventColumns.accessor((e) => when(e.time), { id: "time", header: "When" }),
    eventColumns.accessor((e) => OUTCOMES[e.outcome] ?? "", { id: "outcome", header: "Outcome" }),
    eventColumns.accessor("ipAddress", { header: "Address" }),
    eventColumns.accessor("userAgent", { header: "Browser" }),
  ];

  return (
    <Shell>
      <h1>Security</h1>
      {account.isPending && <Loading what="your account" />}
      <Alert error={account.error} />
      {me && (
        <section className="card" aria-labelledby="profile">
          <h2 id="profile">Account</h2>
          <p>{me.displayName} · {me.email}</p>
          {me.emailVerified ? (
            <p className="ok-text">Email verified.</p>
          ) : resent ? (
            <Alert kind="ok">We sent a new verification link.</Alert>
          ) : (
            <Form label="Verify your email" submit="Send the verification link again" action={async () => {
              await api.accounts.sendVerificationEmail({ name: session.account });
              setResent(true);
            }}>
              <p>Your email address is not verified yet.</p>
            </Form>
          )}
        </section>
      )}
      {me && (
        <section className="card" aria-labelledby="mfa">
          <h2 id="mfa">Two-factor authentication</h2>
          {recovery.length > 0 && (
            <Alert kind="ok">
              Two-factor authentication is on. Keep these recovery codes somewhere safe; each works
              once, and they are shown only now:
              <ul className="codes">{recovery.map((c) => <li key={c}><code>{c}</code></li>)}</ul>
            </Alert>
          )}
          {me.mfaEnabled ? (
            <>
              <p>On. {me.recoveryCodesLeft} recovery codes left.</p>
              <Form label="Turn off two-factor authentication" submit="Turn off" action={async () => {
                await api.accounts.disableTotp({ name: session.account, code });
                setCode("");
                setRecovery([]);
                await refresh();
              }}>
                <Field label="Current code or a recovery code" value={code} required
                       autoComplete="one-time-code" onChange={(e) => setCode(e.target.value.trim())} />
              </Form>
            </>
          ) : enrollment ? (
            <>
              <p>Scan this code with an authenticator app, or type the key in it, then enter the
                 6-digit code it shows.</p>
              <img className="qr" alt="QR code of the authenticator key" width={200} height={200}
                   src={`data:image/svg+xml;utf8,${encodeURIComponent(enrollment.svg)}`} />
              <p>Key: <code className="secret">{enrollment.secret}</code></p>
              <Form label="Confirm the authenticator" submit="Turn on" action={async () => {
                const done = await api.accounts.confirmTotpEnrollment({ name: session.account, code });
                setRecovery(done.recoveryCodes);
                setEnrollment(null);
                setCode("");
                await refresh();
              }}>
                <Field label="Authentication code" inputMode="numeric" autoComplete="one-time-code"
                       pattern="[0-9]{6}" required value={code}
                       onChange={(e) => setCode(e.target.value.trim())} />
              </Form>
            </>
          ) : (
            <Form label="Set up two-factor authentication" submit="Set up an authenticator" action={async () => {
              const started = await api.accounts.startTotpEnrollment({ name: session.account });
              setEnrollment({ secret: started.secret, svg: started.qrCodeSvg });
            }}>
              <p>Off. Organizations may require it of their members.</p>
            </Form>
          )}
        </section>
      )}
      <section className="card" aria-labelledby="sessions">
        <h2 id="sessions">Sessions</h2>
        {sessions.isPending && <Loading what="sessions" />}
        <Alert error={sessions.error} />
        {sessions.data && (
          <DataTable caption="Your portal sessions" rows={sessions.data.sessions}
                     columns={columns} empty="No sessions." />
        )}
      </section>
      <section className="card" aria-labelledby="history">
        <h2 id="history">Login history</h2>
        {history.isPending && <Loading what="the login history" />}
        <Alert error={history.error} />
        {history.data && (
          <DataTable caption="The last 20 login attempts" rows={history.data.loginEvents}
                     columns={eventColumnList} empty="No logins yet." />
        )}
      </section>
    </Shell>
  );
}
