/** The portal's building blocks: layout, forms, messages, tables. */
import {
  tableFeatures,
  useTable,
  type ColumnDef,
  type RowData,
} from "@tanstack/react-table";
import { useId, useState, type FormEvent, type InputHTMLAttributes, type ReactNode } from "react";

import { describe } from "./errors.js";
import { Link, navigate } from "./router.js";
import { setSession, useSession } from "./session.js";
import { api } from "./api.js";

export function Shell(props: { children: ReactNode; nav?: ReactNode }) {
  const session = useSession();
  return (
    <>
      <a className="skip" href="#main">Skip to content</a>
      <header className="top">
        <Link to={session ? "/" : "/login"} className="brand">CAAS portal</Link>
        {session && (
          <nav aria-label="Account">
            <Link to="/">Organizations</Link>
            <Link to="/account">Security</Link>
            <button
              type="button"
              className="link"
              onClick={async () => {
                try {
                  const mine = await api.accounts.listAccountSessions({ parent: session.account });
                  const current = mine.sessions.find((s) => s.current);
                  if (current) await api.accounts.revokeAccountSession({ name: current.name });
                } catch {
                  // Signed out here whatever the server says.
                }
                setSession(null);
                navigate("/login");
              }}
            >
              Log out
            </button>
          </nav>
        )}
      </header>
      <div className="layout">
        {props.nav && <nav className="side" aria-label="Sections">{props.nav}</nav>}
        <main id="main" tabIndex={-1}>{props.children}</main>
      </div>
    </>
  );
}

export function Field(props: InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: string }) {
  const { label, hint, ...input } = props;
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} aria-describedby={hint ? `${id}-hint` : undefined} {...input} />
      {hint && <small id={`${id}-hint`}>{hint}</small>}
    </div>
  );
}

export function Select(props: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  options: [string, string][];
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <select id={id} value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        {props.options.map(([value, text]) => (
          <option key={value} value={value}>{text}</option>
        ))}
      </select>
    </div>
  );
}

export function Alert(props: { error?: unknown; children?: ReactNode; kind?: "error" | "ok" | "info" }) {
  if (!props.error && !props.children) return null;
  const kind = props.kind ?? (props.error ? "error" : "info");
  return (
    <div className={`alert ${kind}`} role={kind === "error" ? "alert" : "status"}>
      {props.error ? describe(props.error) : props.children}
    </div>
  );
}

export function Loading(props: { what?: string }) {
  return <p className="loading" role="status" aria-live="polite">Loading {props.what ?? ""}…</p>;
}

/** A form that runs `action` on submit, showing its progress and its error. */
export function Form(props: {
  action: () => Promise<void>;
  submit: string;
  children: ReactNode;
  label?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await props.action();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={onSubmit} aria-label={props.label} aria-busy={busy}>
      {props.children}
      <Alert error={error} />
      <button type="submit" disabled={busy}>{busy ? "Working…" : props.submit}</button>
    </form>
  );
}

const features = tableFeatures({});

/** A table of `rows` (TanStack Table), with a caption and a message when empty. */
export function DataTable<T extends RowData>(props: {
  caption: string;
  rows: T[];
  columns: ColumnDef<typeof features, T, any>[];
  empty: string;
}) {
  const table = useTable({ features, columns: props.columns, data: props.rows });
  if (!props.rows.length) return <p className="empty">{props.empty}</p>;
  return (
    <div className="table-wrap">
      <table>
        <caption>{props.caption}</caption>
        <thead>
          {table.getHeaderGroups().map((group) => (
            <tr key={group.id}>
              {group.headers.map((header) => (
                <th key={header.id} scope="col">
                  {header.isPlaceholder ? null : <table.FlexRender header={header} />}
                </th>
              ))}
            </tr>
          ))}
        </thead>
        <tbody>
          {table.getRowModel().rows.map((row) => (
            <tr key={row.id}>
              {row.getAllCells().map((cell) => (
                <td key={cell.id}><table.FlexRender cell={cell} /></td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export { features as tableFeatureSet };

export function when(timestamp: { seconds: bigint } | undefined): string {
  if (!timestamp) return "—";
  return new Date(Number(timestamp.seconds) * 1000).toLocaleString();
}
