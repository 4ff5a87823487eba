"""Organizations, members, invitations and apps owned by organizations, against a
running server on both stores: a developer creates an organization and an app, works
on it through the portal session with the rights of their role, invites a viewer by
email who can read but not create keys; every rule is tried by someone it refuses."""

from __future__ import annotations

import grpc
import httpx
from caas.accounts.v1 import accounts_service_pb2 as acc_pb
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.audit.v1 import audit_service_pb2 as audit_pb
from caas.audit.v1 import resources_pb2 as audit_res
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.organizations.v1 import organizations_service_pb2 as org_pb
from caas.organizations.v1 import resources_pb2 as org_res
from caas.users.v1 import users_service_pb2 as users_pb
from google.protobuf import field_mask_pb2

from tests.conftest import AppHandle, expect_error, unique_id
from tests.support.chat import person
from tests.support.client import Client, bearer
from tests.support.mail import SmtpServer
from tests.support.portal import Developer, code, sign_up
from tests.support.servers import CaasServer

Role = org_res.OrganizationMember.Role


def email() -> str:
    return f"{unique_id('dev')}@example.com"


async def organization(client: Client, owner: Developer, **fields: object) -> str:
    organization_id = unique_id("org-")
    made = await client.organizations.CreateOrganization(org_pb.CreateOrganizationRequest(
        organization_id=organization_id,
        organization=org_res.Organization(display_name="Acme", **fields)),  # type: ignore[arg-type]
        metadata=owner.auth)
    return made.organization.name


async def app_of(client: Client, developer: Developer, org: str) -> AppHandle:
    app_id = unique_id("app-")
    made = await client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=app_id, app=apps_res.App(display_name="Portal app", organization=org)),
        metadata=developer.auth)
    assert made.app.organization == org
    return AppHandle(app_id, made.api_key_secret)


async def join(client: Client, smtp: SmtpServer, inviter: Developer, org: str,
               role: Role.ValueType) -> Developer:
    """A new developer who accepted an invitation to `org` with `role`."""
    invitee = await sign_up(client, smtp.inbox, email())
    await client.organizations.CreateInvitation(org_pb.CreateInvitationRequest(
        parent=org, invitation=org_res.Invitation(email=invitee.email, role=role)),
        metadata=inviter.auth)
    mail = await smtp.inbox.wait_for(invitee.email, "Join Acme on CAAS")
    joined = await client.organizations.AcceptInvitation(
        org_pb.AcceptInvitationRequest(token=mail.link_token()), metadata=invitee.auth)
    assert joined.organization_member.role == role
    return invitee


async def test_a_developer_builds_an_app_and_uses_its_key(client: Client,
                                                          smtp: SmtpServer) -> None:
    owner = await sign_up(client, smtp.inbox, email())
    org = await organization(client, owner)
    app = await app_of(client, owner, org)
    # The portal session works on the app as its backend: keys, users, conversations.
    key = await client.apps.CreateApiKey(apps_pb.CreateApiKeyRequest(
        parent=app.name, api_key=apps_res.ApiKey(display_name="from the portal")),
        metadata=owner.auth)
    ada = await person(client, app.app_id, key.secret, "ada", "Ada")
    assert ada.token
    listed = await client.apps.ListApps(apps_pb.ListAppsRequest(organization=org),
                                        metadata=owner.auth)
    assert [a.name for a in listed.apps] == [app.name]
    mine = await client.organizations.ListOrganizations(org_pb.ListOrganizationsRequest(),
                                                        metadata=owner.auth)
    assert [o.name for o in mine.organizations] == [org]
    members = await client.organizations.ListOrganizationMembers(
        org_pb.ListOrganizationMembersRequest(parent=org), metadata=owner.auth)
    [me] = members.organization_members
    assert (me.role, me.email, me.account) == (Role.ROLE_OWNER, owner.email, owner.account)
    # The app's audit log says which developer made the key.
    records = await client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
        parent=app.name, action="caas.apps.v1.AppsService/CreateApiKey"), metadata=app.auth)
    [made] = records.audit_records
    assert (made.actor.kind, made.actor.id) == (audit_res.AuditRecord.Actor.KIND_DEVELOPER,
                                                owner.account)


async def test_an_unverified_developer_cannot_create_an_organization(
        client: Client, smtp: SmtpServer) -> None:
    unverified = await sign_up(client, smtp.inbox, email(), verify=False)
    await expect_error(client.organizations.CreateOrganization(
        org_pb.CreateOrganizationRequest(organization_id=unique_id("org-"),
                                         organization=org_res.Organization(display_name="X")),
        metadata=unverified.auth), grpc.StatusCode.FAILED_PRECONDITION, "EMAIL_NOT_VERIFIED")
    owner = await sign_up(client, smtp.inbox, email())
    taken = await organization(client, owner)
    await expect_error(client.organizations.CreateOrganization(
        org_pb.CreateOrganizationRequest(organization_id=taken.split("/")[1],
                                         organization=org_res.Organization(display_name="X")),
        metadata=owner.auth), grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")


async def test_an_invited_viewer_reads_but_cannot_create_keys(client: Client,
                                                              smtp: SmtpServer) -> None:
    owner = await sign_up(client, smtp.inbox, email())
    org = await organization(client, owner)
    app = await app_of(client, owner, org)
    viewer = await join(client, smtp, owner, org, Role.ROLE_VIEWER)
    got = await client.apps.GetApp(apps_pb.GetAppRequest(name=app.name), metadata=viewer.auth)
    assert got.app.organization == org
    await person(client, app.app_id, app.api_key, "ada", "Ada")
    users = await client.users.ListUsers(users_pb.ListUsersRequest(parent=app.name),
                                         metadata=viewer.auth)
    assert [u.name for u in users.users] == [f"{app.name}/users/ada"]
    refused = await expect_error(client.apps.CreateApiKey(
        apps_pb.CreateApiKeyRequest(parent=app.name), metadata=viewer.auth),
        grpc.StatusCode.PERMISSION_DENIED, "API_KEY_SCOPE_MISSING")
    assert refused.metadata["role"] == "viewer"
    await expect_error(client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=unique_id("app-"), app=apps_res.App(display_name="X", organization=org)),
        metadata=viewer.auth), grpc.StatusCode.PERMISSION_DENIED, "ORGANIZATION_ROLE_REQUIRED")
    await expect_error(client.organizations.CreateInvitation(org_pb.CreateInvitationRequest(
        parent=org, invitation=org_res.Invitation(email=email(), role=Role.ROLE_ADMIN)),
        metadata=viewer.auth), grpc.StatusCode.PERMISSION_DENIED, "ORGANIZATION_ROLE_REQUIRED")
    # The owner sees both members; the viewer may leave.
    members = await client.organizations.ListOrganizationMembers(
        org_pb.ListOrganizationMembersRequest(parent=org), metadata=viewer.auth)
    assert {m.role for m in members.organization_members} == {Role.ROLE_OWNER,
                                                              Role.ROLE_VIEWER}
    await client.organizations.DeleteOrganizationMember(
        org_pb.DeleteOrganizationMemberRequest(name=f"{org}/members/{viewer.account[9:]}"),
        metadata=viewer.auth)
    await expect_error(client.apps.GetApp(apps_pb.GetAppRequest(name=app.name),
                                          metadata=viewer.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")


async def test_strangers_reach_no_organization_and_no_app(client: Client, smtp: SmtpServer,
                                                          app: AppHandle) -> None:
    owner = await sign_up(client, smtp.inbox, email())
    org = await organization(client, owner)
    theirs = await app_of(client, owner, org)
    stranger = await sign_up(client, smtp.inbox, email())
    await organization(client, stranger)  # a member elsewhere
    for call in (
        client.organizations.GetOrganization(org_pb.GetOrganizationRequest(name=org),
                                             metadata=stranger.auth),
        client.organizations.ListOrganizationMembers(
            org_pb.ListOrganizationMembersRequest(parent=org), metadata=stranger.auth),
        client.organizations.ListInvitations(org_pb.ListInvitationsRequest(parent=org),
                                             metadata=stranger.auth),
        client.apps.ListApps(apps_pb.ListAppsRequest(organization=org), metadata=stranger.auth),
        client.apps.CreateApp(apps_pb.CreateAppRequest(
            app_id=unique_id("app-"), app=apps_res.App(display_name="X", organization=org)),
            metadata=stranger.auth),
        # Nor one that does not exist: the same answer.
        client.organizations.GetOrganization(
            org_pb.GetOrganizationRequest(name="organizations/nobody-here"),
            metadata=stranger.auth),
    ):
        await expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "NOT_AN_ORGANIZATION_MEMBER")
    # The organization's app, and an app of no organization, are another app's for them.
    for name in (theirs.name, app.name):
        await expect_error(client.apps.GetApp(apps_pb.GetAppRequest(name=name),
                                              metadata=stranger.auth),
                           grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
        await expect_error(client.conversations.ListConversations(
            conv_pb.ListConversationsRequest(parent=f"{name}/users/ada"),
            metadata=stranger.auth), grpc.StatusCode.PERMISSION_DENIED, "APP_MISMATCH")
    # Operator-only calls stay the operator's; a developer must name an organization.
    for call in (client.apps.UpdateApp(apps_pb.UpdateAppRequest(
            app=apps_res.App(name=theirs.name, plan="standard"),
            update_mask=field_mask_pb2.FieldMask(paths=["plan"])), metadata=owner.auth),
                 client.apps.DeleteApp(apps_pb.DeleteAppRequest(name=theirs.name),
                                       metadata=owner.auth)):
        await expect_error(call, grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    await expect_error(client.apps.ListApps(apps_pb.ListAppsRequest(), metadata=owner.auth),
                       grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    await expect_error(client.apps.CreateApp(apps_pb.CreateAppRequest(
        app_id=unique_id("app-"), app=apps_res.App(display_name="X", organization=org,
                                                   plan="enterprise")),
        metadata=owner.auth), grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")
    # An app's key is no developer.
    await expect_error(client.organizations.GetOrganization(
        org_pb.GetOrganizationRequest(name=org), metadata=theirs.auth),
        grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED")


async def test_a_developer_makes_keys_with_the_scopes_of_their_role(
        client: Client, smtp: SmtpServer) -> None:
    owner = await sign_up(client, smtp.inbox, email())
    org = await organization(client, owner)
    app = await app_of(client, owner, org)
    developer = await join(client, smtp, owner, org, Role.ROLE_DEVELOPER)
    made = await client.apps.CreateApiKey(apps_pb.CreateApiKeyRequest(parent=app.name),
                                          metadata=developer.auth)
    scopes = set(made.api_key.scopes)
    assert {"messages:write", "api_keys:admin", "analytics:read"} <= scopes
    assert not scopes & {"*", "compliance", "signing_keys:admin"}
    await person(client, app.app_id, made.secret, "ada", "Ada")  # the key works
    # Nor can the developer name a scope their role lacks.
    await expect_error(client.apps.CreateApiKey(apps_pb.CreateApiKeyRequest(
        parent=app.name, api_key=apps_res.ApiKey(scopes=["compliance"])),
        metadata=developer.auth), grpc.StatusCode.PERMISSION_DENIED, "API_KEY_SCOPE_ESCALATION")
    # The owner's key without scopes has them all.
    mine = await client.apps.CreateApiKey(apps_pb.CreateApiKeyRequest(parent=app.name),
                                          metadata=owner.auth)
    assert list(mine.api_key.scopes) == ["*"]


async def test_roles_owners_and_invitations(client: Client, smtp: SmtpServer) -> None:
    owner = await sign_up(client, smtp.inbox, email())
    org = await organization(client, owner)
    admin = await join(client, smtp, owner, org, Role.ROLE_ADMIN)
    developer = await join(client, smtp, admin, org, Role.ROLE_DEVELOPER)

    def member(who: Developer) -> str:
        return f"{org}/members/{who.account.split('/')[1]}"

    def update(who: Developer, role: Role.ValueType) -> org_pb.UpdateOrganizationMemberRequest:
        return org_pb.UpdateOrganizationMemberRequest(
            organization_member=org_res.OrganizationMember(name=member(who), role=role),
            update_mask=field_mask_pb2.FieldMask(paths=["role"]))

    # Admins manage non-owners, never make or touch owners.
    changed = await client.organizations.UpdateOrganizationMember(
        update(developer, Role.ROLE_VIEWER), metadata=admin.auth)
    assert changed.organization_member.role == Role.ROLE_VIEWER
    for call in (client.organizations.UpdateOrganizationMember(
            update(developer, Role.ROLE_OWNER), metadata=admin.auth),
                 client.organizations.UpdateOrganizationMember(
            update(owner, Role.ROLE_ADMIN), metadata=admin.auth),
                 client.organizations.DeleteOrganizationMember(
            org_pb.DeleteOrganizationMemberRequest(name=member(owner)), metadata=admin.auth),
                 client.organizations.CreateInvitation(org_pb.CreateInvitationRequest(
            parent=org, invitation=org_res.Invitation(email=email(), role=Role.ROLE_OWNER)),
            metadata=admin.auth)):
        await expect_error(call, grpc.StatusCode.PERMISSION_DENIED,
                           "ORGANIZATION_ROLE_REQUIRED")
    # The last owner stays.
    await expect_error(client.organizations.UpdateOrganizationMember(
        update(owner, Role.ROLE_ADMIN), metadata=owner.auth),
        grpc.StatusCode.FAILED_PRECONDITION, "LAST_OWNER")
    await expect_error(client.organizations.DeleteOrganizationMember(
        org_pb.DeleteOrganizationMemberRequest(name=member(owner)), metadata=owner.auth),
        grpc.StatusCode.FAILED_PRECONDITION, "LAST_OWNER")
    await client.organizations.UpdateOrganizationMember(update(admin, Role.ROLE_OWNER),
                                                        metadata=owner.auth)
    await client.organizations.DeleteOrganizationMember(
        org_pb.DeleteOrganizationMemberRequest(name=member(owner)), metadata=owner.auth)
    await expect_error(client.organizations.GetOrganization(
        org_pb.GetOrganizationRequest(name=org), metadata=owner.auth),
        grpc.StatusCode.PERMISSION_DENIED, "NOT_AN_ORGANIZATION_MEMBER")

    # Invitations: to one address only, withdrawn, replaced.
    wrong = await sign_up(client, smtp.inbox, email())
    target = email()
    sent = await client.organizations.CreateInvitation(org_pb.CreateInvitationRequest(
        parent=org, invitation=org_res.Invitation(email=target, role=Role.ROLE_DEVELOPER)),
        metadata=admin.auth)
    mail = await smtp.inbox.wait_for(target, "Join Acme on CAAS")
    await expect_error(client.organizations.AcceptInvitation(
        org_pb.AcceptInvitationRequest(token=mail.link_token()), metadata=wrong.auth),
        grpc.StatusCode.FAILED_PRECONDITION, "INVITATION_EMAIL_MISMATCH")
    pending = await client.organizations.ListInvitations(
        org_pb.ListInvitationsRequest(parent=org), metadata=admin.auth)
    assert [i.name for i in pending.invitations] == [sent.invitation.name]
    await client.organizations.DeleteInvitation(
        org_pb.DeleteInvitationRequest(name=sent.invitation.name), metadata=admin.auth)
    invitee = await sign_up(client, smtp.inbox, target)
    await expect_error(client.organizations.AcceptInvitation(
        org_pb.AcceptInvitationRequest(token=mail.link_token()), metadata=invitee.auth),
        grpc.StatusCode.INVALID_ARGUMENT, "ACCOUNT_TOKEN_INVALID")
    # Inviting a member again is refused.
    await expect_error(client.organizations.CreateInvitation(org_pb.CreateInvitationRequest(
        parent=org, invitation=org_res.Invitation(email=developer.email,
                                                  role=Role.ROLE_ADMIN)),
        metadata=admin.auth), grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")


async def test_an_organization_that_requires_mfa(client: Client, smtp: SmtpServer,
                                                 http: httpx.AsyncClient) -> None:
    owner = await sign_up(client, smtp.inbox, email())
    org = await organization(client, owner)
    app = await app_of(client, owner, org)
    member = await join(client, smtp, owner, org, Role.ROLE_DEVELOPER)
    require = org_pb.UpdateOrganizationRequest(
        organization=org_res.Organization(name=org, require_mfa=True),
        update_mask=field_mask_pb2.FieldMask(paths=["require_mfa"]))
    # Not without MFA of one's own (it would shut its owner out).
    await expect_error(client.organizations.UpdateOrganization(require, metadata=owner.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "MFA_REQUIRED_BY_ORGANIZATION")
    started = await client.accounts.StartTotpEnrollment(
        acc_pb.StartTotpEnrollmentRequest(name=owner.account), metadata=owner.auth)
    await client.accounts.ConfirmTotpEnrollment(acc_pb.ConfirmTotpEnrollmentRequest(
        name=owner.account, code=code(started.secret)), metadata=owner.auth)
    await expect_error(client.organizations.UpdateOrganization(require, metadata=member.auth),
                       grpc.StatusCode.PERMISSION_DENIED, "ORGANIZATION_ROLE_REQUIRED")
    done = await client.organizations.UpdateOrganization(require, metadata=owner.auth)
    assert done.organization.require_mfa
    # The member without a second factor is stopped everywhere in the organization.
    for call in (client.apps.GetApp(apps_pb.GetAppRequest(name=app.name),
                                    metadata=member.auth),
                 client.organizations.GetOrganization(org_pb.GetOrganizationRequest(name=org),
                                                      metadata=member.auth)):
        refused = await expect_error(call, grpc.StatusCode.PERMISSION_DENIED,
                                     "MFA_REQUIRED_BY_ORGANIZATION")
        assert refused.metadata["organization"] == org
    over_json = await http.get(f"/v1/{app.name}", headers=dict(member.auth))
    assert over_json.status_code == 403
    assert over_json.json()["details"][0]["reason"] == "MFA_REQUIRED_BY_ORGANIZATION"
    # The owner, whose session passed TOTP, goes on; and cannot turn MFA off now.
    await client.apps.GetApp(apps_pb.GetAppRequest(name=app.name), metadata=owner.auth)
    await expect_error(client.accounts.DisableTotp(acc_pb.DisableTotpRequest(
        name=owner.account, code=code(started.secret, 1)), metadata=owner.auth),
        grpc.StatusCode.PERMISSION_DENIED, "MFA_REQUIRED_BY_ORGANIZATION")


async def test_invitations_per_organization_are_limited(client: Client,
                                                       smtp: SmtpServer) -> None:
    owner = await sign_up(client, smtp.inbox, email())
    org = await organization(client, owner)

    def invite() -> object:
        return client.organizations.CreateInvitation(org_pb.CreateInvitationRequest(
            parent=org, invitation=org_res.Invitation(email=email(), role=Role.ROLE_VIEWER)),
            metadata=owner.auth)

    for _ in range(20):  # CAAS_INVITATIONS_PER_WINDOW's default
        await invite()
    limited = await expect_error(invite(), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert limited.quota_subjects == [f"organization:{org.split('/')[1]}"]
    assert limited.retry_seconds is not None
    # Another organization has its own budget.
    await client.organizations.CreateInvitation(org_pb.CreateInvitationRequest(
        parent=await organization(client, owner),
        invitation=org_res.Invitation(email=email(), role=Role.ROLE_VIEWER)),
        metadata=owner.auth)


async def test_the_operator_sees_every_organization(client: Client, smtp: SmtpServer,
                                                    server: CaasServer) -> None:
    owner = await sign_up(client, smtp.inbox, email())
    org = await organization(client, owner)
    app = await app_of(client, owner, org)
    operator = bearer(server.operator_token)
    got = await client.organizations.GetOrganization(org_pb.GetOrganizationRequest(name=org),
                                                     metadata=operator)
    assert got.organization.display_name == "Acme"
    listed = await client.apps.ListApps(apps_pb.ListAppsRequest(organization=org),
                                        metadata=operator)
    assert [a.name for a in listed.apps] == [app.name]
