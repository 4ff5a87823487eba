"""One case per contract rule of the accounts and organizations services (run by
tests/e2e/test_validation.py, whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.accounts.v1 import accounts_service_pb2 as acc
from caas.organizations.v1 import organizations_service_pb2 as org
from caas.organizations.v1 import resources_pb2 as org_res
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

ACCOUNT = "accounts/aaaaaaaaaaaaaaaa"
ORG = "organizations/some-org"
GOOD = "plum-orchard-velvet-93"
ROLE = org_res.OrganizationMember.ROLE_VIEWER
LONG_EMAIL = "a" * 250 + "@x.io"


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def _member(name: str = f"{ORG}/members/aaaaaaaaaaaaaaaa", role: int = ROLE
            ) -> org_res.OrganizationMember:
    return org_res.OrganizationMember(name=name, role=role)  # type: ignore[arg-type]


def _update(member: org_res.OrganizationMember | None,
            mask: field_mask_pb2.FieldMask | None) -> org.UpdateOrganizationMemberRequest:
    return org.UpdateOrganizationMemberRequest(organization_member=member, update_mask=mask)


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("SignUp email", "SignUp", acc.SignUpRequest(email="nope", password=GOOD,
                                                 display_name="A"), {"email": "string.email"}),
    ("SignUp email too long", "SignUp", acc.SignUpRequest(
        email=LONG_EMAIL, password=GOOD, display_name="A"), {"email": "string.max_len"}),
    ("SignUp password short", "SignUp", acc.SignUpRequest(
        email="a@x.io", password="short", display_name="A"), {"password": "string.min_len"}),
    ("SignUp password long", "SignUp", acc.SignUpRequest(
        email="a@x.io", password="x" * 129, display_name="A"), {"password": "string.max_len"}),
    ("SignUp name empty", "SignUp", acc.SignUpRequest(
        email="a@x.io", password=GOOD), {"display_name": "required"}),
    ("SignUp name long", "SignUp", acc.SignUpRequest(
        email="a@x.io", password=GOOD, display_name="x" * 101),
     {"display_name": "string.max_len"}),
    ("VerifyEmail token empty", "VerifyEmail", acc.VerifyEmailRequest(),
     {"token": "required"}),
    ("VerifyEmail token long", "VerifyEmail", acc.VerifyEmailRequest(token="x" * 129),
     {"token": "string.max_len"}),
    ("SendVerificationEmail name", "SendVerificationEmail",
     acc.SendVerificationEmailRequest(name="accounts/x"), {"name": "string.pattern"}),
    ("Login email empty", "Login", acc.LoginRequest(password="x"),
     {"email": "required"}),
    ("Login email long", "Login", acc.LoginRequest(email=LONG_EMAIL, password="x"),
     {"email": "string.max_len"}),
    ("Login password empty", "Login", acc.LoginRequest(email="a@x.io"),
     {"password": "required"}),
    ("Login password long", "Login", acc.LoginRequest(email="a@x.io", password="x" * 129),
     {"password": "string.max_len"}),
    ("Login totp code", "Login", acc.LoginRequest(email="a@x.io", password="x",
                                                  totp_code="12345"),
     {"totp_code": "string.pattern"}),
    ("Login recovery code long", "Login", acc.LoginRequest(
        email="a@x.io", password="x", recovery_code="x" * 33),
     {"recovery_code": "string.max_len"}),
    ("RequestPasswordReset email", "RequestPasswordReset",
     acc.RequestPasswordResetRequest(email="nope"), {"email": "string.email"}),
    ("RequestPasswordReset email long", "RequestPasswordReset",
     acc.RequestPasswordResetRequest(email=LONG_EMAIL), {"email": "string.max_len"}),
    ("ResetPassword token empty", "ResetPassword",
     acc.ResetPasswordRequest(new_password=GOOD), {"token": "required"}),
    ("ResetPassword token long", "ResetPassword",
     acc.ResetPasswordRequest(token="x" * 129, new_password=GOOD),
     {"token": "string.max_len"}),
    ("ResetPassword password short", "ResetPassword",
     acc.ResetPasswordRequest(token="t", new_password="short"),
     {"new_password": "string.min_len"}),
    ("ResetPassword password long", "ResetPassword",
     acc.ResetPasswordRequest(token="t", new_password="x" * 129),
     {"new_password": "string.max_len"}),
    ("GetAccount name", "GetAccount", acc.GetAccountRequest(name="accounts/X"),
     {"name": "string.pattern"}),
    ("StartTotpEnrollment name", "StartTotpEnrollment",
     acc.StartTotpEnrollmentRequest(name="x"), {"name": "string.pattern"}),
    ("ConfirmTotpEnrollment name", "ConfirmTotpEnrollment",
     acc.ConfirmTotpEnrollmentRequest(name="x", code="123456"), {"name": "string.pattern"}),
    ("ConfirmTotpEnrollment code", "ConfirmTotpEnrollment",
     acc.ConfirmTotpEnrollmentRequest(name=ACCOUNT, code="12a456"),
     {"code": "string.pattern"}),
    ("DisableTotp name", "DisableTotp", acc.DisableTotpRequest(name="x", code="123456"),
     {"name": "string.pattern"}),
    ("DisableTotp code short", "DisableTotp", acc.DisableTotpRequest(name=ACCOUNT, code="1"),
     {"code": "string.min_len"}),
    ("DisableTotp code long", "DisableTotp",
     acc.DisableTotpRequest(name=ACCOUNT, code="1" * 33), {"code": "string.max_len"}),
    ("ListAccountSessions parent", "ListAccountSessions",
     acc.ListAccountSessionsRequest(parent="x"), {"parent": "string.pattern"}),
    ("ListAccountSessions page size", "ListAccountSessions",
     acc.ListAccountSessionsRequest(parent=ACCOUNT, page_size=101),
     {"page_size": "int32.gte_lte"}),
    ("ListAccountSessions page token", "ListAccountSessions",
     acc.ListAccountSessionsRequest(parent=ACCOUNT, page_token="x" * 513),
     {"page_token": "string.max_len"}),
    ("RevokeAccountSession name", "RevokeAccountSession",
     acc.RevokeAccountSessionRequest(name=f"{ACCOUNT}/sessions/X"), {"name": "string.pattern"}),
    ("ListLoginEvents parent", "ListLoginEvents", acc.ListLoginEventsRequest(parent="x"),
     {"parent": "string.pattern"}),
    ("ListLoginEvents page size", "ListLoginEvents",
     acc.ListLoginEventsRequest(parent=ACCOUNT, page_size=-1),
     {"page_size": "int32.gte_lte"}),
    ("ListLoginEvents page token", "ListLoginEvents",
     acc.ListLoginEventsRequest(parent=ACCOUNT, page_token="x" * 513),
     {"page_token": "string.max_len"}),

    ("CreateOrganization id", "CreateOrganization", org.CreateOrganizationRequest(
        organization_id="Bad_Id", organization=org_res.Organization(display_name="A")),
     {"organization_id": "string.pattern"}),
    ("CreateOrganization missing", "CreateOrganization",
     org.CreateOrganizationRequest(organization_id="acme"), {"organization": "required"}),
    ("CreateOrganization name empty", "CreateOrganization", org.CreateOrganizationRequest(
        organization_id="acme", organization=org_res.Organization()),
     {"organization.display_name": "required"}),
    ("CreateOrganization name long", "CreateOrganization", org.CreateOrganizationRequest(
        organization_id="acme", organization=org_res.Organization(display_name="x" * 101)),
     {"organization.display_name": "string.max_len"}),
    ("GetOrganization name", "GetOrganization", org.GetOrganizationRequest(name="x"),
     {"name": "string.pattern"}),
    ("ListOrganizations page size", "ListOrganizations",
     org.ListOrganizationsRequest(page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListOrganizations page token", "ListOrganizations",
     org.ListOrganizationsRequest(page_token="x" * 513), {"page_token": "string.max_len"}),
    ("UpdateOrganization missing", "UpdateOrganization",
     org.UpdateOrganizationRequest(update_mask=_mask("display_name")),
     {"organization": "required"}),
    ("UpdateOrganization name format", "UpdateOrganization", org.UpdateOrganizationRequest(
        organization=org_res.Organization(name="x", display_name="A"),
        update_mask=_mask("display_name")), {"organization": "organization.name_format"}),
    ("UpdateOrganization name long", "UpdateOrganization", org.UpdateOrganizationRequest(
        organization=org_res.Organization(name=ORG, display_name="x" * 101),
        update_mask=_mask("display_name")), {"organization.display_name": "string.max_len"}),
    ("UpdateOrganization mask missing", "UpdateOrganization", org.UpdateOrganizationRequest(
        organization=org_res.Organization(name=ORG, display_name="A")),
     {"update_mask": "required"}),
    ("UpdateOrganization mask field", "UpdateOrganization", org.UpdateOrganizationRequest(
        organization=org_res.Organization(name=ORG, display_name="A"),
        update_mask=_mask("create_time")), {"update_mask": "field_mask.in"}),
    ("UpdateOrganization mask empty", "UpdateOrganization", org.UpdateOrganizationRequest(
        organization=org_res.Organization(name=ORG, display_name="A"),
        update_mask=_mask()), {"update_mask": "update_mask.not_empty"}),
    ("ListOrganizationMembers parent", "ListOrganizationMembers",
     org.ListOrganizationMembersRequest(parent="x"), {"parent": "string.pattern"}),
    ("ListOrganizationMembers page size", "ListOrganizationMembers",
     org.ListOrganizationMembersRequest(parent=ORG, page_size=201),
     {"page_size": "int32.gte_lte"}),
    ("ListOrganizationMembers page token", "ListOrganizationMembers",
     org.ListOrganizationMembersRequest(parent=ORG, page_token="x" * 513),
     {"page_token": "string.max_len"}),
    ("UpdateOrganizationMember missing", "UpdateOrganizationMember",
     _update(None, _mask("role")), {"organization_member": "required"}),
    ("UpdateOrganizationMember name format", "UpdateOrganizationMember",
     _update(_member(name=f"{ORG}/members/X"), _mask("role")),
     {"organization_member": "organization_member.name_format"}),
    ("UpdateOrganizationMember role", "UpdateOrganizationMember",
     _update(_member(role=9), _mask("role")),
     {"organization_member.role": "enum.defined_only"}),
    ("UpdateOrganizationMember role unset", "UpdateOrganizationMember",
     _update(_member(role=0), _mask("role")), {"organization_member.role": "required"}),
    ("UpdateOrganizationMember mask missing", "UpdateOrganizationMember",
     _update(_member(), None), {"update_mask": "required"}),
    ("UpdateOrganizationMember mask field", "UpdateOrganizationMember",
     _update(_member(), _mask("email")), {"update_mask": "field_mask.in"}),
    ("UpdateOrganizationMember mask empty", "UpdateOrganizationMember",
     _update(_member(), _mask()), {"update_mask": "update_mask.not_empty"}),
    ("DeleteOrganizationMember name", "DeleteOrganizationMember",
     org.DeleteOrganizationMemberRequest(name=f"{ORG}/members/X"), {"name": "string.pattern"}),
    ("CreateInvitation parent", "CreateInvitation", org.CreateInvitationRequest(
        parent="x", invitation=org_res.Invitation(email="a@x.io", role=ROLE)),
     {"parent": "string.pattern"}),
    ("CreateInvitation missing", "CreateInvitation", org.CreateInvitationRequest(parent=ORG),
     {"invitation": "required"}),
    ("CreateInvitation email", "CreateInvitation", org.CreateInvitationRequest(
        parent=ORG, invitation=org_res.Invitation(email="nope", role=ROLE)),
     {"invitation.email": "string.email"}),
    ("CreateInvitation email long", "CreateInvitation", org.CreateInvitationRequest(
        parent=ORG, invitation=org_res.Invitation(email=LONG_EMAIL, role=ROLE)),
     {"invitation.email": "string.max_len"}),
    ("CreateInvitation role", "CreateInvitation", org.CreateInvitationRequest(
        parent=ORG, invitation=org_res.Invitation(email="a@x.io", role=9)),  # type: ignore[arg-type]
     {"invitation.role": "enum.defined_only"}),
    ("CreateInvitation role unset", "CreateInvitation", org.CreateInvitationRequest(
        parent=ORG, invitation=org_res.Invitation(email="a@x.io")),
     {"invitation.role": "required"}),
    ("ListInvitations parent", "ListInvitations", org.ListInvitationsRequest(parent="x"),
     {"parent": "string.pattern"}),
    ("ListInvitations page size", "ListInvitations",
     org.ListInvitationsRequest(parent=ORG, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListInvitations page token", "ListInvitations",
     org.ListInvitationsRequest(parent=ORG, page_token="x" * 513),
     {"page_token": "string.max_len"}),
    ("DeleteInvitation name", "DeleteInvitation",
     org.DeleteInvitationRequest(name=f"{ORG}/invitations/X"), {"name": "string.pattern"}),
    ("AcceptInvitation token empty", "AcceptInvitation", org.AcceptInvitationRequest(),
     {"token": "required"}),
    ("AcceptInvitation token long", "AcceptInvitation",
     org.AcceptInvitationRequest(token="x" * 129), {"token": "string.max_len"}),
]
