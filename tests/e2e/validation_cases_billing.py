"""One case per contract rule of the billing service (run by
tests/e2e/test_validation.py, whose guard fails when a rule has no case)."""

from __future__ import annotations

from collections.abc import Callable

from caas.billing.v1 import billing_service_pb2 as pb
from caas.billing.v1 import resources_pb2 as res
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

ORG = "organizations/some-org"
ACCOUNT = f"{ORG}/billingAccount"
INVOICE = f"{ORG}/invoices/inv1"
SUBSCRIPTION = "apps/some-app/subscription"
PLAN = "plans/some-plan"
TRILLION = 1_000_000_000_000
LONG_EMAIL = "a" * 250 + "@x.io"
PLAN_MASK = ("display_name", "description", "base_price_micros", "units", "rate_limits",
             "trial_days", "organizations", "archived")


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def _plan(**fields: object) -> res.Plan:
    """A valid plan but for `fields`."""
    plan = {"display_name": "Pro", "currency_code": "EUR", "rate_limits": "standard",
            **fields}
    return res.Plan(**plan)  # type: ignore[arg-type]


def _unit(unit: int = res.UNIT_MESSAGES, **fields: int) -> res.PlanUnit:
    return res.PlanUnit(unit=unit, **fields)  # type: ignore[arg-type]


def create(**fields: object) -> pb.CreatePlanRequest:
    return pb.CreatePlanRequest(plan_id="pro", plan=_plan(**fields))


def update(**fields: object) -> pb.UpdatePlanRequest:
    """An update of the fields given (those the mask may name; else `display_name`)."""
    paths = [path for path in fields if path in PLAN_MASK] or ["display_name"]
    return pb.UpdatePlanRequest(plan=_plan(**{"name": PLAN, **fields}),
                                update_mask=_mask(*paths))


def account(**fields: object) -> pb.UpdateBillingAccountRequest:
    billing_account = res.BillingAccount(name=ACCOUNT, **fields)  # type: ignore[arg-type]
    return pb.UpdateBillingAccountRequest(billing_account=billing_account,
                                          update_mask=_mask("legal_name"))


def credit(request_id: str = "r1", **fields: object) -> pb.CreateCreditNoteRequest:
    note = {"invoice": INVOICE, "amount_minor": 100, "reason": "goodwill", **fields}
    return pb.CreateCreditNoteRequest(parent=ORG, request_id=request_id,
                                      credit_note=res.CreditNote(**note))  # type: ignore[arg-type]


def rpc_rule(rpc: str) -> str:
    """The prefix of an RPC's own message rules: CreatePlan → create_plan."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in rpc).lstrip("_")


def _plan_cases(rpc: str, build: Callable[..., Message]
                ) -> list[tuple[str, str, Message, dict[str, str]]]:
    """The rules of `Plan` and `PlanUnit`, which CreatePlan and UpdatePlan share."""
    return [
        (f"billing {rpc} plan name pattern", rpc, build(name="plans/X"),
         {"plan.name": "string.pattern"}),
        (f"billing {rpc} display_name empty", rpc, build(display_name=""),
         {"": f"{rpc_rule(rpc)}.display_name"}),
        (f"billing {rpc} display_name at most 80", rpc,
         build(display_name="x" * 81),
         {"plan.display_name": "string.max_len"}),
        (f"billing {rpc} description at most 500", rpc,
         build(description="x" * 501),
         {"plan.description": "string.max_len"}),
        (f"billing {rpc} currency_code upper case", rpc,
         build(currency_code="eur"),
         {"plan.currency_code": "string.pattern"}),
        (f"billing {rpc} base price not negative", rpc,
         build(base_price_micros=-1),
         {"plan.base_price_micros": "int64.gte_lte"}),
        (f"billing {rpc} base price at most 1e15", rpc,
         build(base_price_micros=1000 * TRILLION + 1),
         {"plan.base_price_micros": "int64.gte_lte"}),
        (f"billing {rpc} at most 6 units", rpc,
         build(units=[_unit(u) for u in range(1, 8)]),
         {"plan.units": "repeated.max_items", "plan.units[6].unit": "enum.defined_only"}),
        (f"billing {rpc} unit twice", rpc,
         build(units=[_unit(), _unit()]),
         {"plan.units": "units.unique"}),
        (f"billing {rpc} unit required", rpc,
         build(units=[_unit(), _unit(0)]),
         {"plan.units[1].unit": "required"}),
        (f"billing {rpc} unit undefined", rpc, build(units=[_unit(9)]),
         {"plan.units[0].unit": "enum.defined_only"}),
        (f"billing {rpc} included not negative", rpc,
         build(units=[_unit(included=-1)]),
         {"plan.units[0].included": "int64.gte_lte"}),
        (f"billing {rpc} included at most 1e12", rpc,
         build(units=[_unit(included=TRILLION + 1)]),
         {"plan.units[0].included": "int64.gte_lte"}),
        (f"billing {rpc} overage price not negative", rpc,
         build(units=[_unit(overage_price_micros=-1)]),
         {"plan.units[0].overage_price_micros": "int64.gte_lte"}),
        (f"billing {rpc} overage price at most 1e12", rpc,
         build(units=[_unit(overage_price_micros=TRILLION + 1)]),
         {"plan.units[0].overage_price_micros": "int64.gte_lte"}),
        (f"billing {rpc} hard_cap at most 1e12", rpc,
         build(units=[_unit(hard_cap=TRILLION + 1)]),
         {"plan.units[0].hard_cap": "int64.gte_lte"}),
        # A negative cap is also below the included units: both rules speak.
        (f"billing {rpc} hard_cap not negative", rpc,
         build(units=[_unit(hard_cap=-1)]),
         {"plan.units[0].hard_cap": "int64.gte_lte", "plan": "plan.caps_cover_included"}),
        (f"billing {rpc} hard_cap below included", rpc,
         build(units=[_unit(included=10, hard_cap=9)]),
         {"plan": "plan.caps_cover_included"}),
        (f"billing {rpc} API calls capped", rpc,
         build(units=[_unit(res.UNIT_API_CALLS, hard_cap=10)]),
         {"plan": "plan.capped_units"}),
        (f"billing {rpc} webhook deliveries capped", rpc,
         build(units=[_unit(res.UNIT_WEBHOOK_DELIVERIES, hard_cap=10)]),
         {"plan": "plan.capped_units"}),
        (f"billing {rpc} rate_limits pattern", rpc,
         build(rate_limits="Standard"),
         {"plan.rate_limits": "string.pattern"}),
        (f"billing {rpc} trial_days not negative", rpc,
         build(trial_days=-1),
         {"plan.trial_days": "int32.gte_lte"}),
        (f"billing {rpc} trial_days at most 365", rpc,
         build(trial_days=366),
         {"plan.trial_days": "int32.gte_lte"}),
        (f"billing {rpc} organizations at most 100", rpc,
         build(organizations=[f"organizations/org{n:03}" for n in range(101)]),
         {"plan.organizations": "repeated.max_items"}),
        (f"billing {rpc} organizations unique", rpc,
         build(organizations=[ORG, ORG]),
         {"plan.organizations": "repeated.unique"}),
        (f"billing {rpc} organization pattern", rpc,
         build(organizations=[ORG, "orgs/x"]),
         {"plan.organizations[1]": "string.pattern"}),
    ]


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("billing ListPlans organization pattern", "ListPlans",
     pb.ListPlansRequest(organization="organizations/X"), {"organization": "string.pattern"}),
    ("billing GetPlan name required", "GetPlan", pb.GetPlanRequest(), {"name": "required"}),
    ("billing GetPlan name pattern", "GetPlan", pb.GetPlanRequest(name="plans/X"),
     {"name": "string.pattern"}),

    ("billing CreatePlan currency_code required", "CreatePlan",
     pb.CreatePlanRequest(plan_id="pro", plan=_plan(currency_code="")),
     {"": "create_plan.currency_code"}),
    ("billing CreatePlan rate_limits required", "CreatePlan",
     pb.CreatePlanRequest(plan_id="pro", plan=_plan(rate_limits="")),
     {"": "create_plan.rate_limits"}),
    ("billing UpdatePlan rate_limits emptied", "UpdatePlan",
     pb.UpdatePlanRequest(plan=_plan(name=PLAN, rate_limits=""),
                          update_mask=_mask("rate_limits")),
     {"": "update_plan.rate_limits"}),
    ("billing CreatePlan plan required", "CreatePlan", pb.CreatePlanRequest(plan_id="pro"),
     {"plan": "required"}),
    ("billing CreatePlan plan_id required", "CreatePlan", pb.CreatePlanRequest(plan=_plan()),
     {"plan_id": "required"}),
    ("billing CreatePlan plan_id pattern", "CreatePlan",
     pb.CreatePlanRequest(plan_id="Pro_Plan", plan=_plan()), {"plan_id": "string.pattern"}),
    ("billing CreatePlan plan_id too long", "CreatePlan",
     pb.CreatePlanRequest(plan_id="p" * 41, plan=_plan()), {"plan_id": "string.pattern"}),
    *_plan_cases("CreatePlan", create),

    ("billing UpdatePlan plan required", "UpdatePlan",
     pb.UpdatePlanRequest(update_mask=_mask("display_name")), {"plan": "required"}),
    ("billing UpdatePlan plan name required", "UpdatePlan",
     pb.UpdatePlanRequest(plan=_plan(), update_mask=_mask("display_name")),
     {"plan": "plan.name_required"}),
    *_plan_cases("UpdatePlan", update),
    ("billing UpdatePlan mask required", "UpdatePlan",
     pb.UpdatePlanRequest(plan=_plan(name=PLAN)), {"update_mask": "required"}),
    ("billing UpdatePlan mask not empty", "UpdatePlan",
     pb.UpdatePlanRequest(plan=_plan(name=PLAN), update_mask=_mask()),
     {"update_mask": "update_mask.not_empty"}),
    ("billing UpdatePlan mask known paths", "UpdatePlan",
     pb.UpdatePlanRequest(plan=_plan(name=PLAN), update_mask=_mask("currency_code")),
     {"update_mask": "field_mask.in"}),

    ("billing GetBillingAccount name pattern", "GetBillingAccount",
     pb.GetBillingAccountRequest(name=ORG), {"name": "string.pattern"}),
    ("billing UpdateBillingAccount account required", "UpdateBillingAccount",
     pb.UpdateBillingAccountRequest(update_mask=_mask("email")),
     {"billing_account": "required"}),
    ("billing UpdateBillingAccount name format", "UpdateBillingAccount",
     pb.UpdateBillingAccountRequest(billing_account=res.BillingAccount(name=ORG),
                                    update_mask=_mask("email")),
     {"billing_account": "billing_account.name_format"}),
    ("billing UpdateBillingAccount email pattern", "UpdateBillingAccount",
     account(email="billing at example.com"), {"billing_account.email": "string.email"}),
    ("billing UpdateBillingAccount email at most 254", "UpdateBillingAccount",
     account(email=LONG_EMAIL), {"billing_account.email": "string.max_len"}),
    ("billing UpdateBillingAccount legal_name at most 200", "UpdateBillingAccount",
     account(legal_name="x" * 201), {"billing_account.legal_name": "string.max_len"}),
    ("billing UpdateBillingAccount address at most 500", "UpdateBillingAccount",
     account(address="x" * 501), {"billing_account.address": "string.max_len"}),
    ("billing UpdateBillingAccount country_code pattern", "UpdateBillingAccount",
     account(country_code="DEU"), {"billing_account.country_code": "string.pattern"}),
    ("billing UpdateBillingAccount tax_id at most 40", "UpdateBillingAccount",
     account(tax_id="x" * 41), {"billing_account.tax_id": "string.max_len"}),
    ("billing UpdateBillingAccount tax rate not negative", "UpdateBillingAccount",
     account(tax_rate_bps=-1), {"billing_account.tax_rate_bps": "int32.gte_lte"}),
    ("billing UpdateBillingAccount tax rate at most 100 %", "UpdateBillingAccount",
     account(tax_rate_bps=10_001), {"billing_account.tax_rate_bps": "int32.gte_lte"}),
    ("billing UpdateBillingAccount mask required", "UpdateBillingAccount",
     pb.UpdateBillingAccountRequest(billing_account=res.BillingAccount(name=ACCOUNT)),
     {"update_mask": "required"}),
    ("billing UpdateBillingAccount mask not empty", "UpdateBillingAccount",
     pb.UpdateBillingAccountRequest(billing_account=res.BillingAccount(name=ACCOUNT),
                                    update_mask=_mask()),
     {"update_mask": "update_mask.not_empty"}),
    ("billing UpdateBillingAccount mask known paths", "UpdateBillingAccount",
     pb.UpdateBillingAccountRequest(billing_account=res.BillingAccount(name=ACCOUNT),
                                    update_mask=_mask("payment_method")),
     {"update_mask": "field_mask.in"}),

    ("billing SetupPaymentMethod name pattern", "SetupPaymentMethod",
     pb.SetupPaymentMethodRequest(name=f"{ORG}/billingaccount"), {"name": "string.pattern"}),
    ("billing CompletePaymentMethodSetup name pattern", "CompletePaymentMethodSetup",
     pb.CompletePaymentMethodSetupRequest(name=ORG, setup_intent="seti_1"),
     {"name": "string.pattern"}),
    ("billing CompletePaymentMethodSetup setup_intent required", "CompletePaymentMethodSetup",
     pb.CompletePaymentMethodSetupRequest(name=ACCOUNT), {"setup_intent": "required"}),
    ("billing CompletePaymentMethodSetup setup_intent pattern", "CompletePaymentMethodSetup",
     pb.CompletePaymentMethodSetupRequest(name=ACCOUNT, setup_intent="pi_123"),
     {"setup_intent": "string.pattern"}),

    ("billing GetSubscription name pattern", "GetSubscription",
     pb.GetSubscriptionRequest(name="apps/some-app"), {"name": "string.pattern"}),
    ("billing ChangePlan name pattern", "ChangePlan",
     pb.ChangePlanRequest(name="apps/X/subscription", plan=PLAN), {"name": "string.pattern"}),
    ("billing ChangePlan plan required", "ChangePlan",
     pb.ChangePlanRequest(name=SUBSCRIPTION), {"plan": "required"}),
    ("billing ChangePlan plan pattern", "ChangePlan",
     pb.ChangePlanRequest(name=SUBSCRIPTION, plan="pro"), {"plan": "string.pattern"}),
    ("billing GetUsage period", "GetUsage",
     pb.GetUsageRequest(name="apps/some-app/usage/2026-13"), {"name": "string.pattern"}),
    ("billing GetUsage name pattern", "GetUsage",
     pb.GetUsageRequest(name="apps/some-app/usage/previous"), {"name": "string.pattern"}),

    ("billing ListInvoices parent pattern", "ListInvoices",
     pb.ListInvoicesRequest(parent=ACCOUNT), {"parent": "string.pattern"}),
    ("billing ListInvoices page_size at most 200", "ListInvoices",
     pb.ListInvoicesRequest(parent=ORG, page_size=201), {"page_size": "int32.gte_lte"}),
    ("billing ListInvoices page_size not negative", "ListInvoices",
     pb.ListInvoicesRequest(parent=ORG, page_size=-1), {"page_size": "int32.gte_lte"}),
    ("billing ListInvoices page_token at most 512", "ListInvoices",
     pb.ListInvoicesRequest(parent=ORG, page_token="t" * 513), {"page_token": "string.max_len"}),
    ("billing GetInvoice name pattern", "GetInvoice",
     pb.GetInvoiceRequest(name=f"{ORG}/invoices/INV-1"), {"name": "string.pattern"}),
    ("billing PayInvoice name pattern", "PayInvoice",
     pb.PayInvoiceRequest(name=f"{ORG}/invoices/"), {"name": "string.pattern"}),
    ("billing MarkInvoicePaid name pattern", "MarkInvoicePaid",
     pb.MarkInvoicePaidRequest(name=f"{ORG}/invoices/{'i' * 41}"), {"name": "string.pattern"}),
    ("billing MarkInvoicePaid note at most 200", "MarkInvoicePaid",
     pb.MarkInvoicePaidRequest(name=INVOICE, note="x" * 201), {"note": "string.max_len"}),

    ("billing CreateCreditNote parent pattern", "CreateCreditNote",
     pb.CreateCreditNoteRequest(parent="organizations/X", request_id="r1",
                                credit_note=credit().credit_note),
     {"parent": "string.pattern"}),
    ("billing CreateCreditNote credit_note required", "CreateCreditNote",
     pb.CreateCreditNoteRequest(parent=ORG, request_id="r1"), {"credit_note": "required"}),
    ("billing CreateCreditNote invoice format", "CreateCreditNote",
     credit(invoice="invoices/inv1"), {"credit_note.invoice": "string.pattern"}),
    ("billing CreateCreditNote amount zero", "CreateCreditNote", credit(amount_minor=0),
     {"credit_note.amount_minor": "int64.gt"}),
    ("billing CreateCreditNote amount negative", "CreateCreditNote", credit(amount_minor=-5),
     {"credit_note.amount_minor": "int64.gt"}),
    ("billing CreateCreditNote reason empty", "CreateCreditNote", credit(reason=""),
     {"credit_note.reason": "string.min_len"}),
    ("billing CreateCreditNote reason at most 500", "CreateCreditNote",
     credit(reason="x" * 501), {"credit_note.reason": "string.max_len"}),
    ("billing CreateCreditNote request_id required", "CreateCreditNote",
     credit(request_id=""), {"request_id": "required"}),
    ("billing CreateCreditNote request_id pattern", "CreateCreditNote",
     credit(request_id="r 1"), {"request_id": "string.pattern"}),

    ("billing ListCreditNotes parent pattern", "ListCreditNotes",
     pb.ListCreditNotesRequest(parent="organizations/"), {"parent": "string.pattern"}),
    ("billing ListCreditNotes page_size at most 200", "ListCreditNotes",
     pb.ListCreditNotesRequest(parent=ORG, page_size=201), {"page_size": "int32.gte_lte"}),
    ("billing ListCreditNotes page_size not negative", "ListCreditNotes",
     pb.ListCreditNotesRequest(parent=ORG, page_size=-1), {"page_size": "int32.gte_lte"}),
    ("billing ListCreditNotes page_token at most 512", "ListCreditNotes",
     pb.ListCreditNotesRequest(parent=ORG, page_token="t" * 513),
     {"page_token": "string.max_len"}),
]
