/** An organization's billing (BillingService): who invoices are addressed to, the card
 * on file (entered into Stripe.js's own field and confirmed by it in the browser: card
 * numbers never reach CAAS), each app's plan and usage this period, invoices and credit
 * notes. For owners, admins and billing members; others see the refusal instead. */
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import {
  useEffect,
  useId,
  useRef,
  useState,
  type ReactNode,
  type TextareaHTMLAttributes,
} from "react";

import { api, idOf, leafOf } from "../api.js";
import type { App } from "../../../sdk/src/gen/caas/apps/v1/resources_pb.js";
import type { ChangePlanResponse } from "../../../sdk/src/gen/caas/billing/v1/billing_service_pb.js";
import {
  Invoice_State as InvoiceState,
  Subscription_State as SubscriptionState,
  Unit,
  type BillingAccount,
  type CreditNote,
  type Invoice,
  type InvoiceLine,
  type PaymentMethod,
  type Plan,
  type Subscription,
  type UnitUsage,
} from "../../../sdk/src/gen/caas/billing/v1/resources_pb.js";
import { reasonOf } from "../errors.js";
import { Link } from "../router.js";
import { Alert, DataTable, Field, Form, Loading, Select, Shell, tableFeatureSet, when } from "../ui.js";

// Money: amounts as the server's invoices print them (no locale: "1,234.56 EUR").

const GROUPED = new Intl.NumberFormat("en-US");

/** A count with thousands separators: 1234567n → "1,234,567". */
export function count(value: bigint): string {
  return GROUPED.format(value);
}

/** Minor units (cents) → "1,234.56 EUR". */
export function formatMinor(amount: bigint, currency: string): string {
  const sign = amount < 0n ? "-" : "";
  const abs = amount < 0n ? -amount : amount;
  const cents = (abs % 100n).toString().padStart(2, "0");
  return `${sign}${GROUPED.format(abs / 100n)}.${cents} ${currency}`.trimEnd();
}

/** Millionths of the currency → as many decimals as needed, at least two:
 * 49000000n → "49.00 EUR", 100n → "0.0001 EUR". */
export function formatMicros(amount: bigint, currency: string): string {
  const sign = amount < 0n ? "-" : "";
  const abs = amount < 0n ? -amount : amount;
  const fraction = (abs % 1_000_000n).toString().padStart(6, "0").replace(/0+$/, "").padEnd(2, "0");
  return `${sign}${GROUPED.format(abs / 1_000_000n)}.${fraction} ${currency}`.trimEnd();
}

/** Basis points → a percentage: 1900 → "19 %", 1950 → "19.5 %". */
function percentOf(bps: number): string {
  return `${(bps / 100).toLocaleString("en-US", { maximumFractionDigits: 2 })} %`;
}

/** A day of a billing period (they are in UTC): "1 Nov 2026". */
function day(timestamp: Timestamp | undefined, before = false): string {
  if (!timestamp) return "—";
  const date = timestampDate(timestamp);
  if (before) date.setTime(date.getTime() - 1); // an end is the next period's start
  return date.toLocaleDateString(undefined, { timeZone: "UTC", day: "numeric", month: "short", year: "numeric" });
}

/** The month a period starts in: "2026-11". */
function month(timestamp: Timestamp | undefined): string {
  if (!timestamp) return "—";
  const date = timestampDate(timestamp);
  return `${date.getUTCFullYear()}-${String(date.getUTCMonth() + 1).padStart(2, "0")}`;
}

const UNITS: Record<Unit, string> = {
  [Unit.UNSPECIFIED]: "Other",
  [Unit.MONTHLY_ACTIVE_USERS]: "Monthly active users",
  [Unit.MESSAGES]: "Messages",
  [Unit.PEAK_CONNECTIONS]: "Peak connections",
  [Unit.STORAGE_GIB]: "Storage (GiB)",
  [Unit.WEBHOOK_DELIVERIES]: "Webhook deliveries",
  [Unit.API_CALLS]: "API calls",
};

const SUBSCRIPTION_STATES: Record<SubscriptionState, string> = {
  [SubscriptionState.UNSPECIFIED]: "—",
  [SubscriptionState.TRIALING]: "Trial",
  [SubscriptionState.ACTIVE]: "Active",
  [SubscriptionState.PAST_DUE]: "Past due: a payment failed and is retried",
  [SubscriptionState.UNPAID]: "Unpaid: capped units are held to the free plan's until the invoice is paid",
};

const INVOICE_STATES: Record<InvoiceState, string> = {
  [InvoiceState.UNSPECIFIED]: "—",
  [InvoiceState.DRAFT]: "Draft",
  [InvoiceState.OPEN]: "Open",
  [InvoiceState.PAID]: "Paid",
  [InvoiceState.VOID]: "Void",
};

const BRANDS: Record<string, string> = {
  amex: "American Express",
  diners: "Diners Club",
  jcb: "JCB",
  unionpay: "UnionPay",
};

// Stripe.js, loaded from Stripe the first time a card is added (never bundled: Stripe
// requires it be loaded from js.stripe.com; the portal's CSP allows that origin).

const STRIPE_JS = "https://js.stripe.com/v3/";

interface StripeCardElement {
  mount(element: HTMLElement): void;
  destroy(): void;
}

interface StripeElements {
  create(type: "card", options?: { style?: Record<string, Record<string, string | Record<string, string>>> }): StripeCardElement;
}

interface StripeJs {
  elements(): StripeElements;
  confirmCardSetup(
    clientSecret: string,
    data: { payment_method: { card: StripeCardElement } },
  ): Promise<{ error?: { message?: string } | null; setupIntent?: { id: string; status: string } }>;
}

type StripeFactory = (publishableKey: string) => StripeJs;

declare global {
  interface Window {
    Stripe?: StripeFactory;
  }
}

let stripeLoading: Promise<StripeFactory> | null = null;

/** Stripe.js's `Stripe`, its script injected once. */
function loadStripe(): Promise<StripeFactory> {
  if (window.Stripe) return Promise.resolve(window.Stripe);
  stripeLoading ??= new Promise<StripeFactory>((resolve, reject) => {
    const script = document.createElement("script");
    script.src = STRIPE_JS;
    script.async = true;
    script.onload = () => (window.Stripe ? resolve(window.Stripe) : reject(new Error("Stripe.js did not load.")));
    script.onerror = () => {
      script.remove();
      stripeLoading = null; // try again next time
      reject(new Error("Stripe.js could not be loaded: check your connection and try again."));
    };
    document.head.appendChild(script);
  });
  return stripeLoading;
}

/** The card field's look, from the page's colors (it lives in Stripe's frame). */
function cardStyle() {
  const css = getComputedStyle(document.documentElement);
  const color = (name: string) => css.getPropertyValue(name).trim();
  return {
    base: { color: color("--fg"), fontFamily: css.fontFamily, fontSize: "16px", "::placeholder": { color: color("--muted") } },
    invalid: { color: color("--error") },
  };
}

// The page.

export function BillingPage(props: { name: string }) {
  const organization = useQuery({
    queryKey: ["organization", props.name],
    queryFn: () => api.organizations.getOrganization({ name: props.name }),
  });
  const account = useQuery({
    queryKey: ["billing-account", props.name],
    queryFn: () => api.billing.getBillingAccount({ name: `${props.name}/billingAccount` }),
  });
  const billing = account.data?.billingAccount;
  return (
    <Shell>
      <p className="crumbs">
        <Link to="/">Organizations</Link> /{" "}
        <Link to={`/${props.name}`}>{organization.data?.organization?.displayName ?? idOf(props.name)}</Link> /
      </p>
      <h1>Billing</h1>
      {account.isPending && <Loading what="the billing account" />}
      <Alert error={account.error} />
      {billing && (
        <>
          <AccountSection organization={props.name} account={billing} />
          <PaymentSection organization={props.name} card={billing.paymentMethod} />
          <AppsSection organization={props.name} />
          <InvoicesSection organization={props.name} />
          <CreditNotesSection organization={props.name} />
        </>
      )}
    </Shell>
  );
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

type Editable = Pick<BillingAccount, "email" | "legalName" | "address" | "countryCode" | "taxId">;
const EDITABLE: [keyof Editable, string][] = [
  ["email", "email"],
  ["legalName", "legal_name"],
  ["address", "address"],
  ["countryCode", "country_code"],
  ["taxId", "tax_id"],
];

function editable(account: BillingAccount): Editable {
  const { email, legalName, address, countryCode, taxId } = account;
  return { email, legalName, address, countryCode, taxId };
}

function AccountSection(props: { organization: string; account: BillingAccount }) {
  const queries = useQueryClient();
  const [draft, setDraft] = useState<Editable>(() => editable(props.account));
  const [saved, setSaved] = useState("");
  const edit = (key: keyof Editable, value: string) => {
    setSaved("");
    setDraft({ ...draft, [key]: value });
  };
  return (
    <section className="card" aria-labelledby="billing-account">
      <h2 id="billing-account">Billing account</h2>
      <p>Invoices are addressed to these details; they and usage warnings also go to the
        billing email, besides the organization&apos;s owners, admins and billing members.</p>
      <Form label="Billing account" submit="Save billing details" action={async () => {
        setSaved("");
        const changed = EDITABLE.filter(([key]) => draft[key] !== props.account[key]);
        if (!changed.length) {
          setSaved("Nothing changed.");
          return;
        }
        const done = await api.billing.updateBillingAccount({
          billingAccount: { name: `${props.organization}/billingAccount`, ...draft },
          updateMask: { paths: changed.map(([, path]) => path) },
        });
        // The account as saved: with what others changed meanwhile in the other fields.
        if (done.billingAccount) setDraft(editable(done.billingAccount));
        await queries.invalidateQueries({ queryKey: ["billing-account", props.organization] });
        setSaved("Billing details saved.");
      }}>
        <div className="form-grid">
          <Field label="Billing email" type="email" maxLength={254} value={draft.email}
                 onChange={(e) => edit("email", e.target.value)} />
          <Field label="Legal name" maxLength={200} value={draft.legalName}
                 onChange={(e) => edit("legalName", e.target.value)} />
          <TextArea label="Address" rows={3} maxLength={500} value={draft.address}
                    hint="As printed on invoices, one line per line."
                    onChange={(e) => edit("address", e.target.value)} />
          <div>
            <Field label="Country code" maxLength={2} pattern="[A-Z]{2}" value={draft.countryCode}
                   hint="Two letters (ISO 3166), e.g. DE." autoComplete="country"
                   onChange={(e) => edit("countryCode", e.target.value.toUpperCase())} />
            <Field label="Tax id" maxLength={40} value={draft.taxId} hint="Your VAT or tax number, printed on invoices."
                   onChange={(e) => edit("taxId", e.target.value)} />
          </div>
        </div>
        <p>
          Tax rate: <strong data-testid="tax-rate">{percentOf(props.account.taxRateBps)}</strong>{" "}
          <small>(set by the operator from your country and tax status)</small>
        </p>
      </Form>
      {saved && <Alert kind={saved === "Nothing changed." ? "info" : "ok"}>{saved}</Alert>}
    </section>
  );
}

interface CardSetup {
  intent: string;
  secret: string;
  stripe: StripeJs;
}

function describeCard(card: PaymentMethod): string {
  const brand = BRANDS[card.brand] ?? (card.brand.charAt(0).toUpperCase() + card.brand.slice(1));
  const expiry = `${String(card.expMonth).padStart(2, "0")}/${String(card.expYear % 100).padStart(2, "0")}`;
  return `${brand} •••• ${card.last4}, expires ${expiry}`;
}

function PaymentSection(props: { organization: string; card: PaymentMethod | undefined }) {
  const [setup, setSetup] = useState<CardSetup | null>(null);
  const [noProvider, setNoProvider] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [added, setAdded] = useState(false);
  const start = async () => {
    setBusy(true);
    setError(null);
    setAdded(false);
    try {
      const started = await api.billing.setupPaymentMethod({ name: `${props.organization}/billingAccount` });
      const stripe = await loadStripe();
      setSetup({ intent: started.setupIntent, secret: started.clientSecret, stripe: stripe(started.publishableKey) });
    } catch (failure) {
      if (reasonOf(failure) === "BILLING_PROVIDER_NOT_CONFIGURED") setNoProvider(true);
      else setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card" aria-labelledby="payment-method">
      <h2 id="payment-method">Payment method</h2>
      {props.card?.last4
        ? <p data-testid="card-on-file">{describeCard(props.card)}</p>
        : <p className="empty" data-testid="card-on-file">No card on file.</p>}
      {added && <Alert kind="ok">Card saved: invoices are charged to it from now on.</Alert>}
      {noProvider ? (
        <p>This deployment takes no card payments: invoices are paid by bank transfer.</p>
      ) : setup ? (
        <CardForm organization={props.organization} setup={setup}
                  onDone={() => { setSetup(null); setAdded(true); }}
                  onCancel={() => setSetup(null)} />
      ) : (
        <>
          <Alert error={error} />
          <button type="button" onClick={start} disabled={busy}>
            {busy ? "Working…" : props.card?.last4 ? "Replace card" : "Add card"}
          </button>
        </>
      )}
    </section>
  );
}

/** Stripe's card field, and confirming the setup with it. */
function CardForm(props: { organization: string; setup: CardSetup; onDone: () => void; onCancel: () => void }) {
  const queries = useQueryClient();
  const holder = useRef<HTMLDivElement>(null);
  const card = useRef<StripeCardElement | null>(null);
  const label = useId();
  useEffect(() => {
    const element = props.setup.stripe.elements().create("card", { style: cardStyle() });
    element.mount(holder.current!);
    card.current = element;
    return () => {
      element.destroy();
      card.current = null;
    };
  }, [props.setup]);
  return (
    <>
      <Form label="Card details" submit="Save card" action={async () => {
        if (!card.current) throw new Error("The card field is not ready yet.");
        const confirmed = await props.setup.stripe.confirmCardSetup(props.setup.secret, {
          payment_method: { card: card.current },
        });
        if (confirmed.error) throw new Error(confirmed.error.message || "The card could not be confirmed.");
        await api.billing.completePaymentMethodSetup({
          name: `${props.organization}/billingAccount`,
          setupIntent: props.setup.intent,
        });
        await queries.invalidateQueries({ queryKey: ["billing-account", props.organization] });
        props.onDone();
      }}>
        <div className="field">
          <span id={label}>Card</span>
          <div ref={holder} className="card-element" role="group" aria-labelledby={label} />
          <small>Entered into Stripe&apos;s own field: the card number goes to Stripe, our payment
            provider, never to CAAS.</small>
        </div>
      </Form>
      <button type="button" className="link" onClick={props.onCancel}>Cancel</button>
    </>
  );
}

function AppsSection(props: { organization: string }) {
  const apps = useQuery({
    queryKey: ["apps", props.organization],
    queryFn: () => api.apps.listApps({ organization: props.organization }),
  });
  const plans = useQuery({
    queryKey: ["plans", props.organization],
    queryFn: () => api.billing.listPlans({ organization: props.organization }),
  });
  const offered = plans.data?.plans;
  return (
    <section className="card" aria-labelledby="apps-billing">
      <h2 id="apps-billing">Plans and usage</h2>
      {(apps.isPending || plans.isPending) && <Loading what="apps and plans" />}
      <Alert error={apps.error ?? plans.error} />
      {apps.data && offered && (
        apps.data.apps.length
          ? apps.data.apps.map((app) => <AppBilling key={app.name} app={app} plans={offered} />)
          : <p className="empty">No apps yet: each app has its own plan.</p>
      )}
    </section>
  );
}

function AppBilling(props: { app: App; plans: Plan[] }) {
  const subscription = useQuery({
    queryKey: ["subscription", props.app.name],
    queryFn: () => api.billing.getSubscription({ name: `${props.app.name}/subscription` }),
  });
  const usage = useQuery({
    queryKey: ["usage", props.app.name],
    queryFn: () => api.billing.getUsage({ name: `${props.app.name}/usage/current` }),
    refetchInterval: 60_000,
  });
  const heading = useId();
  const current = subscription.data?.subscription;
  return (
    <article className="app-billing" aria-labelledby={heading}>
      <h3 id={heading}><Link to={`/${props.app.name}`}>{props.app.displayName}</Link></h3>
      {subscription.isPending && <Loading what="the subscription" />}
      <Alert error={subscription.error} />
      {current && <SubscriptionFacts subscription={current} plans={props.plans} />}
      {usage.isPending && <Loading what="usage" />}
      <Alert error={usage.error} />
      {usage.data?.usage && (
        <DataTable
          caption={`Usage of ${props.app.displayName} this period, as of ${when(usage.data.usage.asOfTime)}`}
          rows={usage.data.usage.units} columns={usageColumnList} empty="Nothing used yet this period." />
      )}
      {current && <PlanChange app={props.app} subscription={current} plans={props.plans} />}
    </article>
  );
}

function planName(plans: Plan[], name: string): string {
  return plans.find((p) => p.name === name)?.displayName ?? leafOf(name);
}

function SubscriptionFacts(props: { subscription: Subscription; plans: Plan[] }) {
  const s = props.subscription;
  return (
    <dl className="facts">
      <dt>Plan</dt><dd data-testid="current-plan">{planName(props.plans, s.plan)}</dd>
      <dt>State</dt><dd>{SUBSCRIPTION_STATES[s.state]}</dd>
      <dt>Current period</dt><dd>{day(s.currentPeriodStart)} to {day(s.currentPeriodEnd, true)}</dd>
      {s.trialEndTime && <><dt>Trial ends</dt><dd>{day(s.trialEndTime)}</dd></>}
      {s.pendingPlan && !s.cancelAtPeriodEnd && (
        <><dt>Next period</dt><dd>Changes to {planName(props.plans, s.pendingPlan)} on {day(s.currentPeriodEnd)}</dd></>
      )}
      {s.cancelAtPeriodEnd && <><dt>Next period</dt><dd>Back to the free plan on {day(s.currentPeriodEnd)}</dd></>}
    </dl>
  );
}

/** How far a unit is used: a meter of used / included (of the cap when nothing is
 * included), its numbers, and a warning from 80 % and at the cap. */
function UsageMeter(props: { usage: UnitUsage }) {
  const u = props.usage;
  const max = u.included > 0n ? u.included : u.hardCap;
  const atCap = u.hardCap > 0n && u.used >= u.hardCap;
  const warn = !atCap && u.included > 0n && u.percent >= 80;
  const level = atCap ? "cap" : warn ? "warn" : "ok";
  const text = u.included > 0n
    ? `${count(u.used)} of ${count(u.included)} included (${u.percent} %)`
    : `${count(u.used)}, none included`;
  const filled = max > 0n ? Number(((u.used > max ? max : u.used) * 1000n) / max) / 10 : 0;
  return (
    <div className={`usage ${level}`}>
      {max > 0n && (
        <div className="meter" role="meter" aria-label={`${UNITS[u.unit]} used`}
             aria-valuemin={0} aria-valuemax={Number(max)} aria-valuenow={Number(u.used > max ? max : u.used)}
             aria-valuetext={text}>
          <span style={{ width: `${filled}%` }} />
        </div>
      )}
      {/* With a meter, its value text says it: not twice to screen readers. */}
      <span aria-hidden={max > 0n ? true : undefined}>{text}</span>
      {atCap && <span className="badge cap">At the cap: more is refused</span>}
      {warn && <span className="badge warn">{u.percent >= 100 ? "Over the included units" : "Over 80 % used"}</span>}
      <small className="usage-more">
        {u.hardCap > 0n ? `Hard cap ${count(u.hardCap)}` : "No hard cap"} · {count(u.projected)} projected
        by the period&apos;s end{u.billable > 0n ? ` · ${count(u.billable)} billable` : ""}
      </small>
    </div>
  );
}

const usageColumns = createColumnHelper<typeof tableFeatureSet, UnitUsage>();
const usageColumnList = [
  usageColumns.accessor((u) => UNITS[u.unit], { id: "unit", header: "Unit" }),
  usageColumns.display({ id: "used", header: "Used this period", cell: ({ row }) => <UsageMeter usage={row.original} /> }),
];

const lineColumns = createColumnHelper<typeof tableFeatureSet, InvoiceLine>();

function PlanChange(props: { app: App; subscription: Subscription; plans: Plan[] }) {
  const queries = useQueryClient();
  const [plan, setPlan] = useState(props.subscription.plan);
  const [preview, setPreview] = useState<ChangePlanResponse | null>(null);
  const [done, setDone] = useState("");
  const name = `${props.app.name}/subscription`;
  const options: [string, string][] = props.plans.map((p) => [
    p.name, `${p.displayName} — ${formatMicros(p.basePriceMicros, p.currencyCode)} a month`,
  ]);
  if (!options.some(([value]) => value === props.subscription.plan)) {
    options.unshift([props.subscription.plan, planName(props.plans, props.subscription.plan)]);
  }
  const target = props.plans.find((p) => p.name === plan);
  const currency = target?.currencyCode ?? props.plans[0]?.currencyCode ?? "";
  const lineColumnList = [
    lineColumns.accessor("description", { header: "Line" }),
    lineColumns.accessor((line) => formatMinor(line.amountMinor, currency), { id: "amount", header: "Amount" }),
  ];
  return (
    <div className="plan-change">
      <Form label={`Preview a plan change for ${props.app.displayName}`} submit="Preview" action={async () => {
        setDone("");
        setPreview(null);
        setPreview(await api.billing.changePlan({ name, plan, validateOnly: true }));
      }}>
        <Select label="Plan" value={plan} options={options} onChange={(value) => {
          setPlan(value);
          setPreview(null);
          setDone("");
        }} />
      </Form>
      {preview && (
        <div className="preview" data-testid="plan-preview">
          <Alert kind="info">{effect(preview, props.subscription, props.plans)}</Alert>
          <DataTable caption="This period's invoice for the plan, as of now (prorated)"
                     rows={preview.prorationLines} columns={lineColumnList} empty="No plan lines." />
          <Form label={`Confirm the plan change for ${props.app.displayName}`}
                submit={`Change to ${planName(props.plans, plan)}`} action={async () => {
                  const changed = await api.billing.changePlan({ name, plan });
                  setPreview(null);
                  setDone(changed.immediate
                    ? `Now on ${planName(props.plans, plan)}.`
                    : `Changes to ${planName(props.plans, plan)} at the period's end.`);
                  await Promise.all([
                    queries.invalidateQueries({ queryKey: ["subscription", props.app.name] }),
                    queries.invalidateQueries({ queryKey: ["usage", props.app.name] }),
                    queries.invalidateQueries({ queryKey: ["apps", props.app.organization] }),
                  ]);
                }}>{null}</Form>
        </div>
      )}
      {done && <Alert kind="ok">{done}</Alert>}
    </div>
  );
}

/** What a previewed change does, in a sentence. */
function effect(preview: ChangePlanResponse, current: Subscription, plans: Plan[]): ReactNode {
  const next = preview.subscription;
  if (preview.immediate) {
    const trial = next?.state === SubscriptionState.TRIALING && next.trialEndTime
      ? `, on a free trial until ${day(next.trialEndTime)}` : "";
    return `Applies now${trial}: the new plan's units and caps count for the whole period, its price from today.`;
  }
  if (next?.cancelAtPeriodEnd) return `Applies at the period's end: back to the free plan on ${day(current.currentPeriodEnd)}.`;
  if (next?.pendingPlan) {
    return `Applies at the period's end: ${planName(plans, next.pendingPlan)} from ${day(current.currentPeriodEnd)}; until then the app keeps its plan.`;
  }
  return "Keeps the current plan: nothing else changes.";
}

/** A wide table that may scroll sideways on a small screen: a region keyboards reach. */
function Scroller(props: { label: string; children: ReactNode }) {
  return <div className="scroller" role="region" aria-label={props.label} tabIndex={0}>{props.children}</div>;
}

/** Pages of a list: the tokens that led to the current one. */
function usePages() {
  const [tokens, setTokens] = useState<string[]>([""]);
  return {
    token: tokens[tokens.length - 1],
    first: tokens.length === 1,
    next: (token: string) => setTokens([...tokens, token]),
    previous: () => setTokens(tokens.slice(0, -1)),
  };
}

function Pager(props: { pages: ReturnType<typeof usePages>; next: string; what: string }) {
  if (props.pages.first && !props.next) return null;
  return (
    <div className="actions">
      {!props.pages.first && (
        <button type="button" onClick={props.pages.previous}>Newer {props.what}</button>
      )}
      {props.next && (
        <button type="button" onClick={() => props.pages.next(props.next)}>Older {props.what}</button>
      )}
    </div>
  );
}

const invoiceColumns = createColumnHelper<typeof tableFeatureSet, Invoice>();
const invoiceColumnList = [
  invoiceColumns.accessor("number", { header: "Number" }),
  invoiceColumns.accessor((i) => idOf(i.app), { id: "app", header: "App" }),
  invoiceColumns.accessor((i) => month(i.periodStart), { id: "period", header: "Period" }),
  invoiceColumns.accessor((i) => formatMinor(i.totalMinor, i.currencyCode), { id: "total", header: "Total" }),
  invoiceColumns.accessor((i) => invoiceState(i), { id: "state", header: "State" }),
  invoiceColumns.display({
    id: "pdf",
    header: "Download",
    cell: ({ row }) => row.original.pdfUri ? (
      <a href={row.original.pdfUri}>PDF<span className="visually-hidden"> of {row.original.number}</span></a>
    ) : "—",
  }),
];

function invoiceState(invoice: Invoice): string {
  const state = INVOICE_STATES[invoice.state];
  if (invoice.state !== InvoiceState.OPEN) return state;
  const due = invoice.amountDueMinor !== invoice.totalMinor
    ? `, ${formatMinor(invoice.amountDueMinor, invoice.currencyCode)} due` : "";
  const failed = invoice.lastPaymentError ? `; payment failed (${invoice.lastPaymentError})` : "";
  return `${state}${due}, due ${day(invoice.dueTime)}${failed}`;
}

function InvoicesSection(props: { organization: string }) {
  const pages = usePages();
  const invoices = useQuery({
    queryKey: ["invoices", props.organization, pages.token],
    queryFn: () => api.billing.listInvoices({ parent: props.organization, pageToken: pages.token }),
  });
  return (
    <section className="card" aria-labelledby="invoices">
      <h2 id="invoices">Invoices</h2>
      {invoices.isPending && <Loading what="invoices" />}
      <Alert error={invoices.error} />
      {invoices.data && (
        <>
          {invoices.data.invoices.length ? (
            <Scroller label="Invoices">
              <DataTable caption="Invoices, newest first" rows={invoices.data.invoices}
                         columns={invoiceColumnList} empty="No invoices yet." />
            </Scroller>
          ) : <p className="empty">No invoices yet.</p>}
          <Pager pages={pages} next={invoices.data.nextPageToken} what="invoices" />
        </>
      )}
    </section>
  );
}

const creditColumns = createColumnHelper<typeof tableFeatureSet, CreditNote>();

function CreditNotesSection(props: { organization: string }) {
  const pages = usePages();
  const notes = useQuery({
    queryKey: ["credit-notes", props.organization, pages.token],
    queryFn: () => api.billing.listCreditNotes({ parent: props.organization, pageToken: pages.token }),
  });
  // A credit note's amount is in its invoice's currency.
  const invoices = useQuery({
    queryKey: ["invoices", props.organization, ""],
    queryFn: () => api.billing.listInvoices({ parent: props.organization }),
    enabled: Boolean(notes.data?.creditNotes.length),
  });
  const currency = (invoice: string) =>
    invoices.data?.invoices.find((i) => i.name === invoice)?.currencyCode ?? invoices.data?.invoices[0]?.currencyCode ?? "";
  if (notes.error) return <Alert error={notes.error} />;
  if (!notes.data || (pages.first && !notes.data.creditNotes.length)) return null;
  const columns = [
    creditColumns.accessor("number", { header: "Number" }),
    creditColumns.accessor((n) => invoices.data?.invoices.find((i) => i.name === n.invoice)?.number || leafOf(n.invoice),
                           { id: "invoice", header: "Invoice" }),
    creditColumns.accessor((n) => formatMinor(n.amountMinor, currency(n.invoice)), { id: "amount", header: "Amount" }),
    creditColumns.accessor("reason", { header: "Reason" }),
    creditColumns.accessor((n) => day(n.issueTime), { id: "issued", header: "Issued" }),
    creditColumns.accessor((n) => (n.refunded ? "Refunded to the card" : "Deducted from the amount due"),
                           { id: "settled", header: "Settled" }),
  ];
  return (
    <section className="card" aria-labelledby="credit-notes">
      <h2 id="credit-notes">Credit notes</h2>
      <Scroller label="Credit notes">
        <DataTable caption="Credit notes, newest first" rows={notes.data.creditNotes} columns={columns}
                   empty="No credit notes." />
      </Scroller>
      <Pager pages={pages} next={notes.data.nextPageToken} what="credit notes" />
    </section>
  );
}
