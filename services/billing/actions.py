"""BillingService's operations: who may do what, then the domain calls.

Organization resources (billing account, invoices, credit notes): the operator, or
a developer who is an owner, admin or billing member of the organization. App
resources (subscription, usage): the operator or the app's backend (a developer of
the app's organization acts as it, with their role's scopes: `billing:read`,
`billing:write`). Plans: the operator manages them; developers read those offered
to their organization."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from services.accounts.store import AccountStore
from services.apps.store import AppStore
from services.billing.collection import AUTHENTICATION_REQUIRED, Collector
from services.billing.invoicing import FREE_PLAN, base_lines, unit_usage
from services.billing.metering import Meter
from services.billing.models import (
    BillingAccount,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceState,
    Issuer,
    Plan,
    Subscription,
    Unit,
    UnitUsage,
    Usage,
    month_after,
    period_id,
)
from services.billing.payments import (
    CardDeclined,
    PaymentProvider,
    ProviderFeatureMissing,
    ProviderUnavailable,
)
from services.billing.plans import Catalogue
from services.billing.store import BillingStore
from services.billing.subscriptions import Subscriptions, downgraded, upgraded
from services.core.clock import Clock
from services.core.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
    already_exists,
    not_found,
)
from services.core.events import DomainEvent, EventBus
from services.core.ids import new_id
from services.core.pagination import Page, time_id_page
from services.core.principal import Developer, Operator, Principal, require_backend
from services.organizations.access import MemberAccess, role_required
from services.organizations.models import Role
from services.organizations.store import OrganizationStore

PLAN_CHANGED = "billing.plan_changed"  # bus event: the catalogue is read again
PAYERS = frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})
# Units whose count is a peak (projected as it is), the others grow with time.
PEAKS = frozenset({Unit.PEAK_CONNECTIONS, Unit.STORAGE_GIB})
OPERATOR_FIELDS = frozenset({"tax_rate_bps"})


@dataclass(frozen=True, slots=True)
class PlanChange:
    subscription: Subscription
    immediate: bool
    proration: list[InvoiceLine]


@dataclass(frozen=True, slots=True)
class ProjectedUsage:
    usage: Usage
    plan_id: str
    projected: dict[Unit, int]


def provider_error(error: Exception) -> DomainError:
    """What a payment provider's failure answers the caller."""
    if isinstance(error, ProviderFeatureMissing):
        return FailedPrecondition("BILLING_PROVIDER_NOT_CONFIGURED",
                                  f"the payment provider does not offer {error.endpoint}",
                                  metadata={"endpoint": error.endpoint})
    return Unavailable("BILLING_PROVIDER_UNAVAILABLE",
                       "the payment provider did not answer: try again",
                       retry_after=timedelta(seconds=30))


class BillingActions:
    def __init__(self, store: BillingStore, catalogue: Catalogue, subscriptions: Subscriptions,
                 meter: Meter, collector: Collector, provider: PaymentProvider | None,
                 apps: AppStore, organizations: OrganizationStore, accounts: AccountStore,
                 members: MemberAccess, clock: Clock, bus: EventBus, issuer: Issuer,
                 rate_plans: frozenset[str]) -> None:
        """`rate_plans`: the server's rate-limit plans, which a plan's `rate_limits`
        names."""
        self._store = store
        self._catalogue = catalogue
        self._subscriptions = subscriptions
        self._meter = meter
        self._collector = collector
        self._provider = provider
        self._apps = apps
        self._organizations = organizations
        self._accounts = accounts
        self._members = members
        self._clock = clock
        self._bus = bus
        self._issuer = issuer
        self._rate_plans = rate_plans
        bus.subscribe(self._on_event)

    # Who may.
    async def _payer(self, principal: Principal, organization_id: str) -> None:
        """The operator, or an owner, admin or billing member of the organization."""
        if isinstance(principal, Operator):
            if await self._organizations.get_organization(organization_id) is None:
                raise not_found("caas.dev/Organization", f"organizations/{organization_id}")
            return
        if not isinstance(principal, Developer):
            raise PermissionDenied("PRINCIPAL_NOT_ALLOWED", "billing is the organization's")
        member, _ = await self._members.membership(principal, organization_id)
        if member.role not in PAYERS:
            raise role_required("owner, admin or billing", member)

    async def recipients(self, organization_id: str) -> list[str]:
        """Whom billing emails go to: the billing account's address, and the owners,
        admins and billing members (each address once)."""
        found: list[str] = []
        account = await self._store.get_account(organization_id)
        if account is not None and account.email:
            found.append(account.email.lower())
        after = None
        while True:
            members = await self._organizations.list_members(organization_id, 200, after)
            for member in members:
                if member.role in PAYERS:
                    developer = await self._accounts.get_account(member.account_id)
                    if developer is not None and developer.email not in found:
                        found.append(developer.email)
            if len(members) < 200:
                return found
            after = (int(members[-1].create_time.timestamp() * 1000), members[-1].account_id)

    # Plans.
    async def list_plans(self, principal: Principal, organization_id: str,
                         show_archived: bool) -> list[Plan]:
        plans = sorted((await self._catalogue.all()).values(),
                       key=lambda p: (p.base_price_micros, p.rank, p.plan_id))
        if isinstance(principal, Operator):
            if organization_id:
                plans = [p for p in plans if p.offered_to(organization_id)
                         or (show_archived and (not p.organizations
                                                or organization_id in p.organizations))]
            return [p for p in plans if show_archived or not p.archived]
        assert isinstance(principal, Developer)
        if not organization_id:
            return [p for p in plans if p.offered_to("") and not p.organizations]
        await self._members.membership(principal, organization_id)
        return [p for p in plans if p.offered_to(organization_id)]

    async def get_plan(self, principal: Principal, plan_id: str) -> Plan:
        plan = await self._catalogue.get(plan_id)
        if plan is None:
            raise not_found("caas.dev/Plan", f"plans/{plan_id}")
        if isinstance(principal, Developer) and plan.organizations:
            mine = {m.organization_id for m in await self._organizations.memberships(
                principal.account_id)}
            if not mine & set(plan.organizations):
                raise not_found("caas.dev/Plan", f"plans/{plan_id}")
        return plan

    def _check_rate_limits(self, plan: Plan) -> None:
        if plan.rate_limits not in self._rate_plans:
            raise InvalidArgument(
                "PLAN_UNKNOWN", f"rate_limits {plan.rate_limits!r} is not one of the server's "
                f"plans ({', '.join(sorted(self._rate_plans))})",
                field_violations=(FieldViolation("plan.rate_limits", "unknown plan"),))

    async def create_plan(self, plan: Plan) -> Plan:
        self._check_rate_limits(plan)
        now = self._clock.now()
        plan = replace(plan, create_time=now, update_time=now, version=1)
        if not await self._store.create_plan(plan):
            raise already_exists("caas.dev/Plan", f"plans/{plan.plan_id}")
        await self._bus.publish(DomainEvent(PLAN_CHANGED, "", now))
        return plan

    async def update_plan(self, plan_id: str, changes: dict[str, object]) -> Plan:
        for _ in range(5):
            current = await self._store.get_plan(plan_id)
            if current is None:
                raise not_found("caas.dev/Plan", f"plans/{plan_id}")
            now = self._clock.now()
            changed = replace(current, **changes, update_time=now,  # type: ignore[arg-type]
                              version=current.version + 1)
            self._check_rate_limits(changed)
            if await self._store.update_plan(changed, current.version):
                await self._bus.publish(DomainEvent(PLAN_CHANGED, "", now))
                return changed
        raise Unavailable("UNAVAILABLE", "the plan kept changing: try again")

    # Billing accounts and payment methods.
    async def get_account(self, principal: Principal, organization_id: str) -> BillingAccount:
        await self._payer(principal, organization_id)
        return (await self._store.get_account(organization_id)
                or BillingAccount(organization_id))

    async def update_account(self, principal: Principal, organization_id: str,
                             changes: dict[str, object]) -> BillingAccount:
        await self._payer(principal, organization_id)
        if not isinstance(principal, Operator) and OPERATOR_FIELDS & changes.keys():
            raise PermissionDenied("PRINCIPAL_NOT_ALLOWED",
                                   "the tax rate is set by the operator",
                                   metadata={"field": "tax_rate_bps"})
        current = await self.get_account(principal, organization_id)
        account = replace(current, **changes, update_time=self._clock.now())  # type: ignore[arg-type]
        if self._provider is not None and account.customer_id and (
                account.email, account.legal_name) != (current.email, current.legal_name):
            try:
                await self._provider.update_customer(account.customer_id, account.email,
                                                     account.legal_name)
            except ProviderUnavailable as error:
                raise provider_error(error) from error
        await self._store.put_account(account)
        return account

    def _provider_or_refuse(self) -> PaymentProvider:
        if self._provider is None:
            raise FailedPrecondition("BILLING_PROVIDER_NOT_CONFIGURED",
                                     "this deployment takes no card payments: invoices are "
                                     "paid by transfer")
        return self._provider

    async def setup_payment_method(self, principal: Principal, organization_id: str
                                   ) -> tuple[str, str, str]:
        """(setup id, client secret, publishable key): the browser confirms the card
        with the provider's script."""
        provider = self._provider_or_refuse()
        account = await self.get_account(principal, organization_id)
        try:
            if not account.customer_id:
                organization = await self._organizations.get_organization(organization_id)
                customer = await provider.create_customer(
                    organization_id, account.email, account.legal_name or (
                        organization.display_name if organization else organization_id),
                    f"customer/{organization_id}")
                account = replace(account, customer_id=customer, update_time=self._clock.now())
                await self._store.put_account(account)
            setup, secret = await provider.start_setup(account.customer_id)
        except (ProviderUnavailable, ProviderFeatureMissing) as error:
            raise provider_error(error) from error
        return setup, secret, provider.publishable_key

    async def complete_payment_method_setup(self, principal: Principal, organization_id: str,
                                            setup_intent: str) -> BillingAccount:
        provider = self._provider_or_refuse()
        account = await self.get_account(principal, organization_id)
        if not account.customer_id:
            raise FailedPrecondition("PAYMENT_METHOD_REQUIRED",
                                     "start with SetupPaymentMethod")
        try:
            method, card = await provider.complete_setup(account.customer_id, setup_intent)
        except CardDeclined as declined:
            raise FailedPrecondition("PAYMENT_DECLINED", "the card was declined",
                                     metadata={"decline_code": declined.code}) from declined
        except ValueError as error:
            raise not_found("caas.dev/SetupIntent", setup_intent) from error
        except (ProviderUnavailable, ProviderFeatureMissing) as error:
            raise provider_error(error) from error
        account = replace(account, payment_method_id=method, card=card,
                          update_time=self._clock.now())
        await self._store.put_account(account)
        await self._retry_open_invoices(organization_id)
        return account

    async def _retry_open_invoices(self, organization_id: str) -> None:
        """A new card: the invoices waiting for a retry are tried at once."""
        now = self._clock.now()
        for invoice in await self._store.list_invoices(organization_id, None, 50):
            if invoice.state is InvoiceState.OPEN and invoice.attempts:
                await self._store.update_invoice(replace(
                    invoice, next_attempt_time=now, version=invoice.version + 1),
                    invoice.version)

    # Subscriptions.
    async def _app(self, principal: Principal, app_id: str) -> None:
        require_backend(principal, app_id, "subscriptions")

    async def get_subscription(self, principal: Principal, app_id: str) -> Subscription:
        await self._app(principal, app_id)
        return await self._subscriptions.get(app_id)

    async def change_plan(self, principal: Principal, app_id: str, plan_id: str, *,
                          validate_only: bool, override: bool) -> PlanChange:
        await self._app(principal, app_id)
        if override and not isinstance(principal, Operator):
            raise PermissionDenied("PRINCIPAL_NOT_ALLOWED", "override is the operator's")
        current = await self._subscriptions.get(app_id)
        target = await self._catalogue.get(plan_id)
        if target is None:
            raise not_found("caas.dev/Plan", f"plans/{plan_id}")
        if not override and not target.offered_to(current.organization_id):
            raise FailedPrecondition("PLAN_NOT_AVAILABLE", f"plans/{plan_id} is not offered "
                                     "to this app's organization",
                                     metadata={"plan": f"plans/{plan_id}"})
        present = await self._catalogue.get(current.plan_id) or target
        now = self._clock.now()
        immediate = target.plan_id != current.plan_id and (override or target.above(present))
        trial = immediate and bool(target.trial_days) and not current.trialed and not override
        if immediate and not trial and not override and target.base_price_micros:
            await self._require_card(current.organization_id)

        def change(latest: Subscription) -> Subscription | None:
            if immediate:
                return upgraded(latest, target, now, trial=trial)
            return downgraded(latest, target, now)

        if validate_only:
            preview = change(current) or current
        else:
            preview = await self._subscriptions.change(app_id, change)
            if immediate:
                await self._subscriptions.rate_limits(app_id, target)
        plans = {**(await self._catalogue.all()), target.plan_id: target}
        return PlanChange(preview, immediate, base_lines(preview, plans))

    async def _require_card(self, organization_id: str) -> None:
        account = (await self._store.get_account(organization_id)
                   if organization_id else None)
        if account is None or not account.payment_method_id:
            raise FailedPrecondition(
                "PAYMENT_METHOD_REQUIRED",
                "a paid plan needs a card on file: add one (SetupPaymentMethod)" if
                organization_id else "this app belongs to no organization: only the "
                "operator can put it on a paid plan (override)")

    # Usage.
    async def get_usage(self, principal: Principal, app_id: str, period: str
                        ) -> ProjectedUsage:
        await self._app(principal, app_id)
        subscription = await self._subscriptions.get(app_id)
        if period != "current":
            start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
            if start != subscription.period_start:
                frozen = await self._store.get_usage(app_id, start)
                if frozen is None:
                    raise not_found("caas.dev/Usage", f"apps/{app_id}/usage/{period}")
                return ProjectedUsage(frozen, frozen.plan_id,
                                      {u.unit: u.used for u in frozen.units})
        now = self._clock.now()
        plans = await self._catalogue.including([subscription.plan_id])
        used = await self._meter.used(app_id, subscription.period_start,
                                      subscription.period_end)
        units = unit_usage(subscription, plans, used)
        usage = Usage(app_id, subscription.period_start, subscription.period_end, units,
                      as_of=now)
        return ProjectedUsage(usage, subscription.plan_id,
                              {u.unit: _projected(u, subscription, now) for u in units})

    # Invoices.
    async def list_invoices(self, principal: Principal, organization_id: str,
                            page_size: int, page_token: str) -> Page[Invoice]:
        await self._payer(principal, organization_id)
        return await time_id_page(
            page_size, page_token, ("invoices", organization_id),
            lambda limit, after: self._store.list_invoices(organization_id, after, limit),
            lambda i: (int((i.issue_time or i.create_time).timestamp() * 1000), i.invoice_id))

    async def get_invoice(self, principal: Principal, organization_id: str, invoice_id: str
                          ) -> Invoice:
        await self._payer(principal, organization_id)
        invoice = await self._store.get_invoice(invoice_id)
        if (invoice is None or invoice.organization_id != organization_id
                or invoice.state is InvoiceState.DRAFT):
            raise not_found("caas.dev/Invoice",
                            f"organizations/{organization_id}/invoices/{invoice_id}")
        return invoice

    async def pay_invoice(self, principal: Principal, organization_id: str, invoice_id: str
                          ) -> Invoice:
        invoice = await self.get_invoice(principal, organization_id, invoice_id)
        self._provider_or_refuse()
        if invoice.state is not InvoiceState.OPEN:
            raise FailedPrecondition("INVOICE_NOT_PAYABLE", f"the invoice is {invoice.state}",
                                     metadata={"state": invoice.state.value})
        await self._require_card(organization_id)
        try:
            paid = await self._collector.collect(invoice)
        except ProviderUnavailable as error:
            raise provider_error(error) from error
        if paid.state is InvoiceState.PAID:
            return paid
        if paid.last_error == AUTHENTICATION_REQUIRED:
            raise FailedPrecondition(
                "PAYMENT_ACTION_REQUIRED", "the bank asks the cardholder to confirm this "
                "payment: stripe.confirmCardPayment(client_secret) in their browser",
                metadata={"payment_intent": paid.payment_intent,
                          "client_secret": paid.action_secret})
        if paid.attempts == invoice.attempts:  # an attempt is under way elsewhere
            raise Unavailable("BILLING_PROVIDER_UNAVAILABLE",
                              "a payment of this invoice is under way: look again shortly")
        raise FailedPrecondition("PAYMENT_DECLINED", "the card was declined",
                                 metadata={"decline_code": paid.last_error})

    async def mark_paid(self, organization_id: str, invoice_id: str) -> Invoice:
        invoice = await self.get_invoice(Operator(), organization_id, invoice_id)
        if invoice.state is not InvoiceState.OPEN:
            raise FailedPrecondition("INVOICE_NOT_PAYABLE", f"the invoice is {invoice.state}",
                                     metadata={"state": invoice.state.value})
        return await self._collector.paid(invoice)

    # Credit notes.
    async def create_credit_note(self, organization_id: str, invoice_id: str,
                                 amount_minor: int, reason: str, request_id: str
                                 ) -> CreditNote:
        invoice = await self.get_invoice(Operator(), organization_id, invoice_id)
        if invoice.state not in (InvoiceState.OPEN, InvoiceState.PAID):
            raise FailedPrecondition("INVOICE_NOT_PAYABLE", f"the invoice is {invoice.state}",
                                     metadata={"state": invoice.state.value})
        note = CreditNote(new_id(), organization_id, invoice_id, amount_minor, reason,
                          issue_time=self._clock.now())
        made = await self._store.create_credit_note(
            note, self._issuer.key, self._issuer.credit_note_prefix, request_id)
        if made is None:
            raise FailedPrecondition(
                "CREDIT_EXCEEDS_INVOICE", "the credit notes would credit more than the "
                "invoice's total", metadata={
                    "creditable_minor": str(invoice.total_minor - invoice.credited_minor)})
        numbered, credited = made
        if (credited.state is InvoiceState.PAID and credited.payment_intent
                and not numbered.refund_id and self._provider is not None):
            try:
                refund = await self._provider.refund(credited.payment_intent,
                                                     numbered.amount_minor,
                                                     f"refund/{numbered.credit_note_id}")
            except ProviderUnavailable as error:
                raise provider_error(error) from error
            await self._store.credit_note_refunded(numbered.credit_note_id, refund)
            numbered = replace(numbered, refund_id=refund)
        return numbered

    async def list_credit_notes(self, principal: Principal, organization_id: str,
                                page_size: int, page_token: str) -> Page[CreditNote]:
        await self._payer(principal, organization_id)
        return await time_id_page(
            page_size, page_token, ("credit_notes", organization_id),
            lambda limit, after: self._store.list_credit_notes(organization_id, after, limit),
            lambda n: (int(n.issue_time.timestamp() * 1000), n.credit_note_id))

    async def _on_event(self, event: DomainEvent) -> None:
        if event.type == PLAN_CHANGED:
            self._catalogue.forget()


def _projected(usage: UnitUsage, subscription: Subscription, now: datetime) -> int:
    """Where a unit heads by the period's end at the rate so far (peaks: as they are)."""
    if usage.unit in PEAKS:
        return usage.used
    elapsed = (now - subscription.period_start).total_seconds()
    whole = (subscription.period_end - subscription.period_start).total_seconds()
    if elapsed <= 0:
        return usage.used
    return int(usage.used * whole / min(elapsed, whole))


__all__ = ["FREE_PLAN", "BillingActions", "PlanChange", "ProjectedUsage", "Sequence",
           "month_after", "period_id"]
