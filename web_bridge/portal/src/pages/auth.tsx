/** Sign-up, email verification, login (with the second factor), password reset. */
import { useEffect, useState } from "react";

import { api } from "../api.js";
import { reasonOf } from "../errors.js";
import { Link, navigate, useLocation } from "../router.js";
import { setSession } from "../session.js";
import { Alert, Field, Form, Loading, Shell } from "../ui.js";

function Card(props: { title: string; children: React.ReactNode }) {
  return (
    <Shell>
      <section className="card narrow">
        <h1>{props.title}</h1>
        {props.children}
      </section>
    </Shell>
  );
}

export function LoginPage() {
  const { query } = useLocation();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [needsCode, setNeedsCode] = useState(false);
  const [useRecovery, setUseRecovery] = useState(false);
  const login = async () => {
    try {
      const done = await api.accounts.login({
        email,
        password,
        totpCode: needsCode && !useRecovery ? code : "",
        recoveryCode: needsCode && useRecovery ? code : "",
      });
      setSession({
        token: done.token,
        account: done.account!.name,
        email: done.account!.email,
        mfaVerified: done.session!.mfaVerified,
      });
      navigate(query.get("next") ?? "/", true);
    } catch (error) {
      if (reasonOf(error) === "MFA_REQUIRED") {
        setNeedsCode(true);
        return;
      }
      throw error;
    }
  };
  return (
    <Card title="Log in">
      <Form action={login} submit={needsCode ? "Verify and log in" : "Log in"} label="Log in">
        <Field label="Email" type="email" autoComplete="username" required value={email}
               onChange={(e) => setEmail(e.target.value)} />
        <Field label="Password" type="password" autoComplete="current-password" required
               value={password} onChange={(e) => setPassword(e.target.value)} />
        {needsCode && (
          <>
            <Alert kind="info">
              {useRecovery
                ? "Enter one of your recovery codes."
                : "Enter the 6-digit code of your authenticator app."}
            </Alert>
            <Field label={useRecovery ? "Recovery code" : "Authentication code"}
                   autoComplete="one-time-code" inputMode={useRecovery ? "text" : "numeric"}
                   required autoFocus value={code} onChange={(e) => setCode(e.target.value.trim())} />
            <button type="button" className="link" onClick={() => setUseRecovery(!useRecovery)}>
              {useRecovery ? "Use the authenticator app" : "Use a recovery code"}
            </button>
          </>
        )}
      </Form>
      <p>
        <Link to="/signup">Create an account</Link> · <Link to="/forgot-password">Forgot your password?</Link>
      </p>
    </Card>
  );
}

export function SignUpPage() {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [sent, setSent] = useState(false);
  if (sent) {
    return (
      <Card title="Check your email">
        <Alert kind="ok">
          We sent a link to {email}. Open it to verify your address, then log in.
        </Alert>
        <p><Link to="/login">Log in</Link></p>
      </Card>
    );
  }
  return (
    <Card title="Create your CAAS account">
      <Form label="Sign up" submit="Create account" action={async () => {
        await api.accounts.signUp({ email, password, displayName: name });
        setSent(true);
      }}>
        <Field label="Your name" autoComplete="name" required maxLength={100} value={name}
               onChange={(e) => setName(e.target.value)} />
        <Field label="Email" type="email" autoComplete="email" required value={email}
               onChange={(e) => setEmail(e.target.value)} />
        <Field label="Password" type="password" autoComplete="new-password" required
               minLength={10} maxLength={128} value={password}
               hint="At least 10 characters; a few unrelated words make a strong one."
               onChange={(e) => setPassword(e.target.value)} />
      </Form>
      <p>Have an account? <Link to="/login">Log in</Link></p>
    </Card>
  );
}

export function VerifyEmailPage() {
  const { query } = useLocation();
  const token = query.get("token") ?? "";
  const [state, setState] = useState<{ done?: boolean; error?: unknown }>({});
  useEffect(() => {
    let live = true;
    api.accounts.verifyEmail({ token }).then(
      () => live && setState({ done: true }),
      (error: unknown) => live && setState({ error }),
    );
    return () => {
      live = false;
    };
  }, [token]);
  return (
    <Card title="Verify your email">
      {!state.done && !state.error && <Loading what="your verification" />}
      {state.done && <Alert kind="ok">Your email address is verified.</Alert>}
      <Alert error={state.error} />
      <p><Link to="/">Continue</Link></p>
    </Card>
  );
}

export function ForgotPasswordPage() {
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState(false);
  return (
    <Card title="Reset your password">
      {sent ? (
        <Alert kind="ok">If {email} has an account, we sent it a link to choose a new password.</Alert>
      ) : (
        <Form label="Password reset" submit="Send the link" action={async () => {
          await api.accounts.requestPasswordReset({ email });
          setSent(true);
        }}>
          <Field label="Email" type="email" autoComplete="email" required value={email}
                 onChange={(e) => setEmail(e.target.value)} />
        </Form>
      )}
      <p><Link to="/login">Back to log in</Link></p>
    </Card>
  );
}

export function ResetPasswordPage() {
  const { query } = useLocation();
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  return (
    <Card title="Choose a new password">
      {done ? (
        <Alert kind="ok">Your password is changed; every session was signed out.</Alert>
      ) : (
        <Form label="Choose a new password" submit="Set the password" action={async () => {
          await api.accounts.resetPassword({ token: query.get("token") ?? "", newPassword: password });
          setSession(null);
          setDone(true);
        }}>
          <Field label="New password" type="password" autoComplete="new-password" required
                 minLength={10} maxLength={128} value={password}
                 onChange={(e) => setPassword(e.target.value)} />
        </Form>
      )}
      <p><Link to="/login">Log in</Link></p>
    </Card>
  );
}
