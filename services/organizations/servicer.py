"""caas.organizations.v1.OrganizationsService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from caas.organizations.v1 import organizations_service_pb2 as pb
from caas.organizations.v1 import resources_pb2 as res

from services.accounts.models import Account
from services.core.clock import to_ms
from services.core.pagination import time_id_page
from services.core.protoconv import timestamp
from services.gateway.gateway import Call
from services.organizations.actions import Organizations, organization_name
from services.organizations.models import Invitation, Member, Organization, Role

_Role = res.OrganizationMember.Role
ROLES = {Role.OWNER: _Role.ROLE_OWNER, Role.ADMIN: _Role.ROLE_ADMIN,
         Role.DEVELOPER: _Role.ROLE_DEVELOPER, Role.VIEWER: _Role.ROLE_VIEWER,
         Role.BILLING: _Role.ROLE_BILLING}
_ROLE_OF = {number: role for role, number in ROLES.items()}


def organization_proto(o: Organization) -> res.Organization:
    return res.Organization(name=organization_name(o.organization_id),
                            display_name=o.display_name, require_mfa=o.require_mfa,
                            create_time=timestamp(o.create_time))


def member_proto(m: Member, account: Account | None) -> res.OrganizationMember:
    member = res.OrganizationMember(
        name=f"{organization_name(m.organization_id)}/members/{m.account_id}",
        role=ROLES[m.role], account=f"accounts/{m.account_id}",
        create_time=timestamp(m.create_time))
    if account is not None:
        member.email = account.email
        member.display_name = account.display_name
        member.mfa_enabled = account.mfa_enabled
    return member


def invitation_proto(i: Invitation) -> res.Invitation:
    return res.Invitation(
        name=f"{organization_name(i.organization_id)}/invitations/{i.invitation_id}",
        email=i.email, role=ROLES[i.role],
        inviter=f"accounts/{i.inviter}" if i.inviter else "",
        create_time=timestamp(i.create_time), expire_time=timestamp(i.expire_time))


def _id(name: str, index: int = 1) -> str:
    return name.split("/")[index]


class OrganizationsServicer:
    def __init__(self, actions: Organizations) -> None:
        self._actions = actions

    async def CreateOrganization(self, request: pb.CreateOrganizationRequest, call: Call
                                 ) -> pb.CreateOrganizationResponse:
        organization = await self._actions.create(
            call.principal, request.organization_id, request.organization.display_name,
            request.organization.require_mfa)
        return pb.CreateOrganizationResponse(organization=organization_proto(organization))

    async def GetOrganization(self, request: pb.GetOrganizationRequest, call: Call
                              ) -> pb.GetOrganizationResponse:
        organization = await self._actions.get(call.principal, _id(request.name))
        return pb.GetOrganizationResponse(organization=organization_proto(organization))

    async def ListOrganizations(self, request: pb.ListOrganizationsRequest, call: Call
                                ) -> pb.ListOrganizationsResponse:
        page = await time_id_page(
            request.page_size, request.page_token, ["organizations"],
            lambda limit, after: self._actions.listed(call.principal, limit, after),
            lambda o: (to_ms(o.create_time), o.organization_id))
        return pb.ListOrganizationsResponse(
            organizations=[organization_proto(o) for o in page.items],
            next_page_token=page.next_page_token)

    async def UpdateOrganization(self, request: pb.UpdateOrganizationRequest, call: Call
                                 ) -> pb.UpdateOrganizationResponse:
        paths = set(request.update_mask.paths)
        given = request.organization
        organization = await self._actions.update(
            call.principal, _id(given.name),
            given.display_name if "display_name" in paths else None,
            given.require_mfa if "require_mfa" in paths else None)
        return pb.UpdateOrganizationResponse(organization=organization_proto(organization))

    async def ListOrganizationMembers(self, request: pb.ListOrganizationMembersRequest,
                                      call: Call) -> pb.ListOrganizationMembersResponse:
        organization_id = _id(request.parent)
        page = await time_id_page(
            request.page_size, request.page_token, [request.parent, "members"],
            lambda limit, after: self._actions.members(call.principal, organization_id,
                                                       limit, after),
            lambda m: (to_ms(m[0].create_time), m[0].account_id))
        return pb.ListOrganizationMembersResponse(
            organization_members=[member_proto(*m) for m in page.items],
            next_page_token=page.next_page_token)

    async def UpdateOrganizationMember(self, request: pb.UpdateOrganizationMemberRequest,
                                       call: Call) -> pb.UpdateOrganizationMemberResponse:
        given = request.organization_member
        member, account = await self._actions.update_member(
            call.principal, _id(given.name), _id(given.name, 3), _ROLE_OF[given.role])
        return pb.UpdateOrganizationMemberResponse(
            organization_member=member_proto(member, account))

    async def DeleteOrganizationMember(self, request: pb.DeleteOrganizationMemberRequest,
                                       call: Call) -> pb.DeleteOrganizationMemberResponse:
        await self._actions.remove_member(call.principal, _id(request.name),
                                          _id(request.name, 3))
        return pb.DeleteOrganizationMemberResponse()

    async def CreateInvitation(self, request: pb.CreateInvitationRequest, call: Call
                               ) -> pb.CreateInvitationResponse:
        invitation = await self._actions.invite(
            call.principal, _id(request.parent), request.invitation.email,
            _ROLE_OF[request.invitation.role])
        return pb.CreateInvitationResponse(invitation=invitation_proto(invitation))

    async def ListInvitations(self, request: pb.ListInvitationsRequest, call: Call
                              ) -> pb.ListInvitationsResponse:
        organization_id = _id(request.parent)
        page = await time_id_page(
            request.page_size, request.page_token, [request.parent, "invitations"],
            lambda limit, after: self._actions.invitations(call.principal, organization_id,
                                                           limit, after),
            lambda i: (to_ms(i.create_time), i.invitation_id))
        return pb.ListInvitationsResponse(
            invitations=[invitation_proto(i) for i in page.items],
            next_page_token=page.next_page_token)

    async def DeleteInvitation(self, request: pb.DeleteInvitationRequest, call: Call
                               ) -> pb.DeleteInvitationResponse:
        await self._actions.withdraw(call.principal, _id(request.name), _id(request.name, 3))
        return pb.DeleteInvitationResponse()

    async def AcceptInvitation(self, request: pb.AcceptInvitationRequest, call: Call
                               ) -> pb.AcceptInvitationResponse:
        member, account = await self._actions.accept(call.principal, request.token)
        return pb.AcceptInvitationResponse(organization_member=member_proto(member, account))
