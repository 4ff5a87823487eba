"""Who may do what in billing, against the running server on both stores, each rule
tried by someone it must refuse: plans are the operator's, and custom plans are seen
by their organization only; an organization's billing is its owners', admins' and
billing members'; an app's subscription is its own (keys need `billing:read` or
`billing:write`, a developer member may read it but not change it); the tax rate and
overrides are the operator's. Without a payment provider, cards are refused plainly
and paid plans need a card, but a trial does not."""

from __future__ import annotations

import grpc
from caas.billing.v1 import billing_service_pb2 as pb
from caas.billing.v1 import resources_pb2 as res
from caas.organizations.v1.resources_pb2 import OrganizationMember
from google.protobuf import field_mask_pb2

from tests.conftest import AppHandle, expect_error, sign_in, unique_id
from tests.e2e.test_api_key_scopes import new_key
from tests.e2e.test_audit import records
from tests.e2e.test_organizations import app_of, email, join, organization
from tests.support.client import Client, bearer
from tests.support.mail import SmtpServer
from tests.support.portal import Developer, sign_up
from tests.support.servers import CaasServer

DENIED = grpc.StatusCode.PERMISSION_DENIED
FAILED = grpc.StatusCode.FAILED_PRECONDITION
Role = OrganizationMember.Role


async def owner_org_app(client: Client, smtp: SmtpServer
                        ) -> tuple[Developer, str, AppHandle]:
    owner = await sign_up(client, smtp.inbox, email())
    org = await organization(client, owner)
    return owner, org, await app_of(client, owner, org)


async def custom_plan(client: Client, operator: str, org: str, **fields: object) -> str:
    plan_id = unique_id("p-")[:30]
    plan = res.Plan(display_name="Custom", currency_code="EUR", base_price_micros=0,
                    rate_limits="free", organizations=[org],
                    units=[res.PlanUnit(unit=res.UNIT_MESSAGES, included=5, hard_cap=5)])
    plan.MergeFrom(res.Plan(**fields))  # type: ignore[arg-type]
    made = await client.billing.CreatePlan(pb.CreatePlanRequest(plan_id=plan_id, plan=plan),
                                           metadata=bearer(operator))
    return made.plan.name


async def test_plans_are_the_operators_and_custom_plans_their_organizations(
        client: Client, server: CaasServer, smtp: SmtpServer) -> None:
    operator = bearer(server.operator_token)
    owner, org, _ = await owner_org_app(client, smtp)
    stranger, other_org, _ = await owner_org_app(client, smtp)
    await expect_error(client.billing.CreatePlan(pb.CreatePlanRequest(
        plan_id="mine", plan=res.Plan(display_name="Mine", currency_code="EUR",
                                      rate_limits="free")), metadata=owner.auth),
        DENIED, "PRINCIPAL_NOT_ALLOWED")
    plan = await custom_plan(client, server.operator_token, org)

    mine = await client.billing.ListPlans(pb.ListPlansRequest(organization=org),
                                          metadata=owner.auth)
    assert plan in [p.name for p in mine.plans]
    assert {"plans/free", "plans/standard", "plans/enterprise"} <= {p.name for p in mine.plans}
    theirs = await client.billing.ListPlans(pb.ListPlansRequest(organization=other_org),
                                            metadata=stranger.auth)
    assert plan not in [p.name for p in theirs.plans]
    await expect_error(client.billing.GetPlan(pb.GetPlanRequest(name=plan),
                                              metadata=stranger.auth),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    await expect_error(client.billing.ListPlans(pb.ListPlansRequest(organization=org),
                                                metadata=stranger.auth),
                       DENIED, "NOT_AN_ORGANIZATION_MEMBER")
    assert (await client.billing.GetPlan(pb.GetPlanRequest(name=plan),
                                         metadata=owner.auth)).plan.name == plan

    # A partial update: archived only; then it is offered to nobody.
    archived = await client.billing.UpdatePlan(pb.UpdatePlanRequest(
        plan=res.Plan(name=plan, archived=True),
        update_mask=field_mask_pb2.FieldMask(paths=["archived"])), metadata=operator)
    assert archived.plan.archived and archived.plan.display_name == "Custom"
    mine = await client.billing.ListPlans(pb.ListPlansRequest(organization=org),
                                          metadata=owner.auth)
    assert plan not in [p.name for p in mine.plans]
    await expect_error(client.billing.UpdatePlan(pb.UpdatePlanRequest(
        plan=res.Plan(name=plan, rate_limits="nope"),
        update_mask=field_mask_pb2.FieldMask(paths=["rate_limits"])), metadata=operator),
        grpc.StatusCode.INVALID_ARGUMENT, "PLAN_UNKNOWN")


async def test_an_organizations_billing_is_its_owners_admins_and_billing_members(
        client: Client, server: CaasServer, smtp: SmtpServer) -> None:
    owner, org, app = await owner_org_app(client, smtp)
    stranger = await sign_up(client, smtp.inbox, email())
    account = pb.GetBillingAccountRequest(name=f"{org}/billingAccount")
    for role in (Role.ROLE_VIEWER, Role.ROLE_DEVELOPER):
        member = await join(client, smtp, owner, org, role)
        refused = await expect_error(client.billing.GetBillingAccount(
            account, metadata=member.auth), DENIED, "ORGANIZATION_ROLE_REQUIRED")
        assert refused.metadata["required_role"] == "owner, admin or billing"
        await expect_error(client.billing.ListInvoices(pb.ListInvoicesRequest(parent=org),
                                                       metadata=member.auth),
                           DENIED, "ORGANIZATION_ROLE_REQUIRED")
        # They may read the app's subscription, not change it.
        seen = await client.billing.GetSubscription(pb.GetSubscriptionRequest(
            name=f"{app.name}/subscription"), metadata=member.auth)
        assert seen.subscription.plan == "plans/free"
        await expect_error(client.billing.ChangePlan(pb.ChangePlanRequest(
            name=f"{app.name}/subscription", plan="plans/standard"), metadata=member.auth),
            DENIED, "API_KEY_SCOPE_MISSING")
    await expect_error(client.billing.GetBillingAccount(account, metadata=stranger.auth),
                       DENIED, "NOT_AN_ORGANIZATION_MEMBER")
    await expect_error(client.billing.GetSubscription(pb.GetSubscriptionRequest(
        name=f"{app.name}/subscription"), metadata=stranger.auth), DENIED, "APP_MISMATCH")

    payer = await join(client, smtp, owner, org, Role.ROLE_BILLING)
    changed = await client.billing.UpdateBillingAccount(pb.UpdateBillingAccountRequest(
        billing_account=res.BillingAccount(name=f"{org}/billingAccount",
                                           email="books@acme.example"),
        update_mask=field_mask_pb2.FieldMask(paths=["email"])), metadata=payer.auth)
    assert changed.billing_account.email == "books@acme.example"
    # The tax rate is the operator's.
    await expect_error(client.billing.UpdateBillingAccount(pb.UpdateBillingAccountRequest(
        billing_account=res.BillingAccount(name=f"{org}/billingAccount", tax_rate_bps=0),
        update_mask=field_mask_pb2.FieldMask(paths=["tax_rate_bps"])), metadata=owner.auth),
        DENIED, "PRINCIPAL_NOT_ALLOWED")
    taxed = await client.billing.UpdateBillingAccount(pb.UpdateBillingAccountRequest(
        billing_account=res.BillingAccount(name=f"{org}/billingAccount", tax_rate_bps=2000),
        update_mask=field_mask_pb2.FieldMask(paths=["tax_rate_bps"])),
        metadata=bearer(server.operator_token))
    assert (taxed.billing_account.tax_rate_bps, taxed.billing_account.email) == (
        2000, "books@acme.example")
    await expect_error(client.billing.MarkInvoicePaid(pb.MarkInvoicePaidRequest(
        name=f"{org}/invoices/abc"), metadata=owner.auth), DENIED, "PRINCIPAL_NOT_ALLOWED")


async def test_an_apps_subscription_is_its_own(client: Client, server: CaasServer,
                                               smtp: SmtpServer, app: AppHandle,
                                               other_app: AppHandle) -> None:
    name = f"{app.name}/subscription"
    reader = await new_key(client, app, "billing:read")
    sender = await new_key(client, app, "messages:write")
    got = await client.billing.GetSubscription(pb.GetSubscriptionRequest(name=name),
                                               metadata=bearer(reader.secret))
    assert (got.subscription.name, got.subscription.plan) == (name, "plans/internal")
    await expect_error(client.billing.GetSubscription(
        pb.GetSubscriptionRequest(name=name), metadata=bearer(sender.secret)),
        DENIED, "API_KEY_SCOPE_MISSING")
    await expect_error(client.billing.ChangePlan(pb.ChangePlanRequest(
        name=name, plan="plans/standard"), metadata=bearer(reader.secret)),
        DENIED, "API_KEY_SCOPE_MISSING")
    await expect_error(client.billing.GetUsage(pb.GetUsageRequest(
        name=f"{app.name}/usage/current"), metadata=other_app.auth), DENIED, "APP_MISMATCH")
    user = await sign_in(client, app, "alice")
    await expect_error(client.billing.GetSubscription(pb.GetSubscriptionRequest(name=name),
                       metadata=bearer(user.credentials.access_token)),
                       DENIED, "PRINCIPAL_NOT_ALLOWED")
    await expect_error(client.billing.GetUsage(pb.GetUsageRequest(
        name=f"{app.name}/usage/2020-01"), metadata=app.auth),
        grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    # Overrides are the operator's; an app outside organizations needs one for a paid plan.
    await expect_error(client.billing.ChangePlan(pb.ChangePlanRequest(
        name=name, plan="plans/enterprise", override=True), metadata=app.auth),
        DENIED, "PRINCIPAL_NOT_ALLOWED")
    refused = await expect_error(client.billing.ChangePlan(pb.ChangePlanRequest(
        name=name, plan="plans/enterprise"), metadata=app.auth),
        FAILED, "PAYMENT_METHOD_REQUIRED")
    assert "no organization" in refused.message
    forced = await client.billing.ChangePlan(pb.ChangePlanRequest(
        name=name, plan="plans/enterprise", override=True),
        metadata=bearer(server.operator_token))
    assert forced.immediate and forced.subscription.plan == "plans/enterprise"
    # Plan changes are in the app's audit log, the refused ones too.
    changes = await records(client, app, action="caas.billing.v1.BillingService/ChangePlan")
    assert [(r.code, r.target) for r in changes][:3] == [
        ("OK", name), ("FAILED_PRECONDITION", name), ("PERMISSION_DENIED", name)]


async def test_without_a_provider_a_trial_needs_no_card_but_a_paid_plan_does(
        client: Client, smtp: SmtpServer) -> None:
    owner, org, app = await owner_org_app(client, smtp)
    name = f"{app.name}/subscription"
    await expect_error(client.billing.SetupPaymentMethod(pb.SetupPaymentMethodRequest(
        name=f"{org}/billingAccount"), metadata=owner.auth),
        FAILED, "BILLING_PROVIDER_NOT_CONFIGURED")
    trial = await client.billing.ChangePlan(pb.ChangePlanRequest(
        name=name, plan="plans/standard"), metadata=owner.auth)
    assert trial.immediate
    assert trial.subscription.state == res.Subscription.STATE_TRIALING
    days = (trial.subscription.trial_end_time.ToDatetime()
            - trial.subscription.update_time.ToDatetime()).days
    assert days == 14
    assert [line.amount_minor for line in trial.proration_lines][-1] == 0  # waived
    await expect_error(client.billing.ChangePlan(pb.ChangePlanRequest(
        name=name, plan="plans/enterprise"), metadata=owner.auth),
        FAILED, "PAYMENT_METHOD_REQUIRED")
    # A downgrade waits for the period's end; choosing the plan again keeps it.
    down = await client.billing.ChangePlan(pb.ChangePlanRequest(
        name=name, plan="plans/free"), metadata=owner.auth)
    assert not down.immediate
    assert (down.subscription.plan, down.subscription.pending_plan,
            down.subscription.cancel_at_period_end) == ("plans/standard", "plans/free", True)
    kept = await client.billing.ChangePlan(pb.ChangePlanRequest(
        name=name, plan="plans/standard"), metadata=owner.auth)
    assert (kept.subscription.pending_plan, kept.subscription.cancel_at_period_end) == (
        "", False)
    assert kept.subscription.state == res.Subscription.STATE_TRIALING
    usage = await client.billing.GetUsage(pb.GetUsageRequest(
        name=f"{app.name}/usage/current"), metadata=owner.auth)
    messages = next(u for u in usage.usage.units if u.unit == res.UNIT_MESSAGES)
    assert (messages.included, messages.hard_cap) == (1_000_000, 1_000_000)  # a trial's cap
    assert usage.usage.plan == "plans/standard" and not usage.usage.final


__all__ = ["unique_id"]
