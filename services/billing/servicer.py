"""caas.billing.v1.BillingService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from caas.billing.v1 import billing_service_pb2 as pb
from caas.billing.v1 import resources_pb2 as res

from services.billing.actions import BillingActions, ProjectedUsage
from services.billing.http import InvoiceLinks
from services.billing.models import (
    BillingAccount,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceState,
    LineKind,
    Plan,
    PlanUnit,
    State,
    Subscription,
    Unit,
)
from services.core.principal import Principal
from services.core.protoconv import timestamp
from services.gateway.gateway import Call

UNITS = {res.UNIT_MONTHLY_ACTIVE_USERS: Unit.MONTHLY_ACTIVE_USERS,
         res.UNIT_MESSAGES: Unit.MESSAGES, res.UNIT_PEAK_CONNECTIONS: Unit.PEAK_CONNECTIONS,
         res.UNIT_STORAGE_GIB: Unit.STORAGE_GIB,
         res.UNIT_WEBHOOK_DELIVERIES: Unit.WEBHOOK_DELIVERIES, res.UNIT_API_CALLS: Unit.API_CALLS}
UNIT_NUMBERS = {unit: number for number, unit in UNITS.items()}
STATES = {State.TRIALING: res.Subscription.STATE_TRIALING,
          State.ACTIVE: res.Subscription.STATE_ACTIVE,
          State.PAST_DUE: res.Subscription.STATE_PAST_DUE,
          State.UNPAID: res.Subscription.STATE_UNPAID}
INVOICE_STATES = {InvoiceState.DRAFT: res.Invoice.STATE_DRAFT,
                  InvoiceState.OPEN: res.Invoice.STATE_OPEN,
                  InvoiceState.PAID: res.Invoice.STATE_PAID,
                  InvoiceState.VOID: res.Invoice.STATE_VOID}
KINDS = {LineKind.BASE: res.InvoiceLine.KIND_BASE, LineKind.OVERAGE: res.InvoiceLine.KIND_OVERAGE}
PLAN_FIELDS = {"display_name", "description", "base_price_micros", "units", "rate_limits",
               "trial_days", "organizations", "archived"}


def _last(name: str, index: int = -1) -> str:
    return name.split("/")[index]


def plan_proto(plan: Plan) -> res.Plan:
    return res.Plan(
        name=f"plans/{plan.plan_id}", display_name=plan.display_name,
        description=plan.description, currency_code=plan.currency,
        base_price_micros=plan.base_price_micros,
        units=[res.PlanUnit(unit=UNIT_NUMBERS[u.unit], included=u.included,
                            overage_price_micros=u.overage_price_micros, hard_cap=u.hard_cap)
               for u in plan.units],
        rate_limits=plan.rate_limits, trial_days=plan.trial_days,
        organizations=[f"organizations/{o}" for o in plan.organizations],
        archived=plan.archived, create_time=timestamp(plan.create_time),
        update_time=timestamp(plan.update_time))


def _plan_fields(given: res.Plan, paths: set[str]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for path in paths:
        if path == "units":
            fields["units"] = tuple(PlanUnit(UNITS[u.unit], u.included, u.overage_price_micros,
                                             u.hard_cap) for u in given.units)
        elif path == "organizations":
            fields["organizations"] = tuple(_last(o) for o in given.organizations)
        else:
            fields[path] = getattr(given, path)
    return fields


def account_proto(account: BillingAccount) -> res.BillingAccount:
    card = account.card
    return res.BillingAccount(
        name=f"organizations/{account.organization_id}/billingAccount", email=account.email,
        legal_name=account.legal_name, address=account.address,
        country_code=account.country, tax_id=account.tax_id,
        tax_rate_bps=account.tax_rate_bps,
        payment_method=res.PaymentMethod(brand=card.brand, last4=card.last4,
                                         exp_month=card.exp_month, exp_year=card.exp_year)
        if card else None,
        update_time=timestamp(account.update_time) if account.update_time.year > 1970 else None)


def subscription_proto(subscription: Subscription) -> res.Subscription:
    return res.Subscription(
        name=f"apps/{subscription.app_id}/subscription", plan=f"plans/{subscription.plan_id}",
        state=STATES[subscription.state],
        current_period_start=timestamp(subscription.period_start),
        current_period_end=timestamp(subscription.period_end),
        trial_end_time=timestamp(subscription.trial_end),
        pending_plan=f"plans/{subscription.pending_plan_id}"
        if subscription.pending_plan_id else "",
        cancel_at_period_end=subscription.cancel_at_period_end,
        update_time=timestamp(subscription.update_time))


def line_proto(line: InvoiceLine) -> res.InvoiceLine:
    return res.InvoiceLine(kind=KINDS[line.kind], description=line.description,
                           unit=UNIT_NUMBERS[line.unit] if line.unit else res.UNIT_UNSPECIFIED,
                           quantity=line.quantity, unit_price_micros=line.unit_price_micros,
                           amount_minor=line.amount_minor,
                           plan=f"plans/{line.plan_id}" if line.plan_id else "")


def invoice_proto(invoice: Invoice, links: InvoiceLinks) -> res.Invoice:
    return res.Invoice(
        name=f"organizations/{invoice.organization_id}/invoices/{invoice.invoice_id}",
        number=invoice.display_number, app=f"apps/{invoice.app_id}",
        state=INVOICE_STATES[invoice.state], period_start=timestamp(invoice.period_start),
        period_end=timestamp(invoice.period_end), currency_code=invoice.currency,
        lines=[line_proto(line) for line in invoice.lines],
        subtotal_minor=invoice.subtotal_minor, tax_rate_bps=invoice.tax_rate_bps,
        tax_minor=invoice.tax_minor, total_minor=invoice.total_minor,
        credited_minor=invoice.credited_minor, amount_due_minor=invoice.amount_due_minor,
        issue_time=timestamp(invoice.issue_time), due_time=timestamp(invoice.due_time),
        paid_time=timestamp(invoice.paid_time),
        pdf_uri=links.link(invoice.invoice_id) if invoice.pdf_key else "",
        attempts=invoice.attempts, last_payment_error=invoice.last_error,
        next_attempt_time=timestamp(invoice.next_attempt_time))


def credit_note_proto(note: CreditNote) -> res.CreditNote:
    return res.CreditNote(
        name=f"organizations/{note.organization_id}/creditNotes/{note.credit_note_id}",
        number=note.display_number,
        invoice=f"organizations/{note.organization_id}/invoices/{note.invoice_id}",
        amount_minor=note.amount_minor, reason=note.reason,
        issue_time=timestamp(note.issue_time), refunded=bool(note.refund_id))


def usage_proto(app_id: str, period: str, found: ProjectedUsage) -> res.Usage:
    usage = found.usage
    return res.Usage(
        name=f"apps/{app_id}/usage/{period}", period_start=timestamp(usage.period_start),
        period_end=timestamp(usage.period_end), final=usage.final,
        as_of_time=timestamp(usage.as_of), plan=f"plans/{found.plan_id}",
        units=[res.UnitUsage(unit=UNIT_NUMBERS[u.unit], used=u.used, included=u.included,
                             hard_cap=u.hard_cap, percent=min(u.percent, 2**31 - 1),
                             projected=found.projected.get(u.unit, u.used),
                             billable=u.billable) for u in usage.units])


class BillingServicer:
    def __init__(self, actions: BillingActions, links: InvoiceLinks) -> None:
        self._actions = actions
        self._links = links

    def _invoice(self, invoice: Invoice) -> res.Invoice:
        return invoice_proto(invoice, self._links)

    async def ListPlans(self, request: pb.ListPlansRequest, call: Call) -> pb.ListPlansResponse:
        plans = await self._actions.list_plans(
            call.principal, _last(request.organization) if request.organization else "",
            request.show_archived)
        return pb.ListPlansResponse(plans=[plan_proto(p) for p in plans])

    async def GetPlan(self, request: pb.GetPlanRequest, call: Call) -> pb.GetPlanResponse:
        return pb.GetPlanResponse(plan=plan_proto(
            await self._actions.get_plan(call.principal, _last(request.name))))

    async def CreatePlan(self, request: pb.CreatePlanRequest, call: Call
                         ) -> pb.CreatePlanResponse:
        given = request.plan
        plan = Plan(request.plan_id, **_plan_fields(given, PLAN_FIELDS),  # type: ignore[arg-type]
                    currency=given.currency_code)
        return pb.CreatePlanResponse(plan=plan_proto(await self._actions.create_plan(plan)))

    async def UpdatePlan(self, request: pb.UpdatePlanRequest, call: Call
                         ) -> pb.UpdatePlanResponse:
        changes = _plan_fields(request.plan, set(request.update_mask.paths))
        return pb.UpdatePlanResponse(plan=plan_proto(
            await self._actions.update_plan(_last(request.plan.name), changes)))

    async def GetBillingAccount(self, request: pb.GetBillingAccountRequest, call: Call
                                ) -> pb.GetBillingAccountResponse:
        account = await self._actions.get_account(call.principal, _last(request.name, 1))
        return pb.GetBillingAccountResponse(billing_account=account_proto(account))

    async def UpdateBillingAccount(self, request: pb.UpdateBillingAccountRequest, call: Call
                                   ) -> pb.UpdateBillingAccountResponse:
        given = request.billing_account
        fields = {"country_code": "country"}
        changes = {fields.get(p, p): getattr(given, p) for p in request.update_mask.paths}
        account = await self._actions.update_account(call.principal, _last(given.name, 1),
                                                     changes)
        return pb.UpdateBillingAccountResponse(billing_account=account_proto(account))

    async def SetupPaymentMethod(self, request: pb.SetupPaymentMethodRequest, call: Call
                                 ) -> pb.SetupPaymentMethodResponse:
        setup, secret, key = await self._actions.setup_payment_method(
            call.principal, _last(request.name, 1))
        return pb.SetupPaymentMethodResponse(setup_intent=setup, client_secret=secret,
                                             publishable_key=key)

    async def CompletePaymentMethodSetup(self, request: pb.CompletePaymentMethodSetupRequest,
                                         call: Call) -> pb.CompletePaymentMethodSetupResponse:
        account = await self._actions.complete_payment_method_setup(
            call.principal, _last(request.name, 1), request.setup_intent)
        return pb.CompletePaymentMethodSetupResponse(billing_account=account_proto(account))

    async def GetSubscription(self, request: pb.GetSubscriptionRequest, call: Call
                              ) -> pb.GetSubscriptionResponse:
        found = await self._actions.get_subscription(call.principal, _last(request.name, 1))
        return pb.GetSubscriptionResponse(subscription=subscription_proto(found))

    async def ChangePlan(self, request: pb.ChangePlanRequest, call: Call
                         ) -> pb.ChangePlanResponse:
        change = await self._actions.change_plan(
            call.principal, _last(request.name, 1), _last(request.plan),
            validate_only=request.validate_only, override=request.override)
        return pb.ChangePlanResponse(subscription=subscription_proto(change.subscription),
                                     immediate=change.immediate,
                                     proration_lines=[line_proto(x) for x in change.proration])

    async def GetUsage(self, request: pb.GetUsageRequest, call: Call) -> pb.GetUsageResponse:
        app_id, period = _last(request.name, 1), _last(request.name)
        found = await self._actions.get_usage(call.principal, app_id, period)
        return pb.GetUsageResponse(usage=usage_proto(app_id, period, found))

    async def ListInvoices(self, request: pb.ListInvoicesRequest, call: Call
                           ) -> pb.ListInvoicesResponse:
        page = await self._actions.list_invoices(call.principal, _last(request.parent),
                                                 request.page_size, request.page_token)
        return pb.ListInvoicesResponse(invoices=[self._invoice(i) for i in page.items],
                                       next_page_token=page.next_page_token)

    async def GetInvoice(self, request: pb.GetInvoiceRequest, call: Call
                         ) -> pb.GetInvoiceResponse:
        invoice = await self._actions.get_invoice(call.principal, _last(request.name, 1),
                                                  _last(request.name))
        return pb.GetInvoiceResponse(invoice=self._invoice(invoice))

    async def PayInvoice(self, request: pb.PayInvoiceRequest, call: Call
                         ) -> pb.PayInvoiceResponse:
        invoice = await self._actions.pay_invoice(call.principal, _last(request.name, 1),
                                                  _last(request.name))
        return pb.PayInvoiceResponse(invoice=self._invoice(invoice))

    async def MarkInvoicePaid(self, request: pb.MarkInvoicePaidRequest, call: Call
                              ) -> pb.MarkInvoicePaidResponse:
        invoice = await self._actions.mark_paid(_last(request.name, 1), _last(request.name))
        return pb.MarkInvoicePaidResponse(invoice=self._invoice(invoice))

    async def CreateCreditNote(self, request: pb.CreateCreditNoteRequest, call: Call
                               ) -> pb.CreateCreditNoteResponse:
        given = request.credit_note
        note = await self._actions.create_credit_note(
            _last(request.parent), _last(given.invoice), given.amount_minor, given.reason,
            request.request_id)
        return pb.CreateCreditNoteResponse(credit_note=credit_note_proto(note))

    async def ListCreditNotes(self, request: pb.ListCreditNotesRequest, call: Call
                              ) -> pb.ListCreditNotesResponse:
        page = await self._actions.list_credit_notes(call.principal, _last(request.parent),
                                                     request.page_size, request.page_token)
        return pb.ListCreditNotesResponse(
            credit_notes=[credit_note_proto(n) for n in page.items],
            next_page_token=page.next_page_token)


__all__ = ["BillingServicer", "Principal"]
