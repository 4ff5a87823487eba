"""caas.compliance.v1.ComplianceService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.compliance.v1 import compliance_service_pb2 as pb
from caas.compliance.v1 import resources_pb2 as res
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2

from services.compliance.erasure import UserDataActions
from services.compliance.exports import EXPIRED
from services.compliance.models import LegalHold, RetentionPolicy
from services.compliance.operations import DELETE_APP, EXPORT_USER_DATA, Operation
from services.compliance.retention import RetentionActions
from services.core.errors import invalid_field
from services.core.names import app_name, parse_app, parse_user, user_name
from services.core.protoconv import duration, duration_or_none, timestamp
from services.gateway.gateway import Call
from services.media.delivery import MediaUrls


def policy_proto(policy: RetentionPolicy) -> res.RetentionPolicy:
    return res.RetentionPolicy(
        name=f"{app_name(policy.app_id)}/retentionPolicy",
        message_retention=duration(policy.messages),
        conversation_types={k: duration_pb2.Duration(seconds=int(v.total_seconds()))
                            for k, v in policy.types.items()},
        update_time=timestamp(policy.update_time))


def hold_proto(hold: LegalHold) -> res.LegalHold:
    target = ({"conversation": f"{app_name(hold.app_id)}/conversations/{hold.conversation_id}"}
              if hold.conversation_id else
              {"user": f"{app_name(hold.app_id)}/users/{hold.user_id}"})
    return res.LegalHold(name=f"{app_name(hold.app_id)}/legalHolds/{hold.hold_id}",
                         reason=hold.reason, create_time=timestamp(hold.create_time), **target)


def _parent_of(name: str, suffix: str, field: str) -> tuple[str, str]:
    """`apps/{app}/{suffix}/{id}` (validated by the contract): (app, id)."""
    app, _, rest = name.partition("/" + suffix)
    return parse_app(app, field), rest.lstrip("/")


def _in_app(app_id: str, name: str, collection: str, field: str) -> str:
    """The id of `name`, a resource of `collection` that must belong to `app_id`."""
    owner, child = _parent_of(name, collection, field)
    if owner != app_id:
        raise invalid_field(field, f"must be a resource of {app_name(app_id)}")
    return child


def operation_proto(op: Operation, urls: MediaUrls) -> operations_pb2.Operation:
    """An operation as google.longrunning.Operation: its metadata, and once done its
    response (an export's with a fresh download link)."""
    metadata = any_pb2.Any()
    target = app_name(op.app_id) if op.type == DELETE_APP else user_name(op.app_id, op.target)
    metadata.Pack(pb.OperationMetadata(
        type=op.type, target=target, stage=op.stage,
        progress_percent=op.progress, create_time=timestamp(op.create_time),
        update_time=timestamp(op.update_time)))
    proto = operations_pb2.Operation(
        name=f"{app_name(op.app_id)}/operations/{op.operation_id}", metadata=metadata,
        done=op.done)
    if op.done and op.type == EXPORT_USER_DATA:
        counts = op.counts
        response = pb.ExportUserDataResponse(
            user=target, archive_bytes=counts.get("archive_bytes", 0),
            messages=counts.get("messages", 0), conversations=counts.get("conversations", 0))
        if not counts.get(EXPIRED):  # its archive is still there
            uri, expires = urls.export_link(op.app_id, op.target, op.operation_id)
            response.archive_uri = uri
            response.archive_expire_time.FromDatetime(expires)
        proto.response.Pack(response)
    elif op.done and op.error:
        proto.error.code = code_pb2.CANCELLED
        proto.error.message = f"the operation was {op.error}"
    elif op.done and op.type == DELETE_APP:
        proto.response.Pack(apps_pb.DeleteAppResponse(app=target, **op.counts))
    elif op.done:
        proto.response.Pack(pb.EraseUserResponse(user=target, **op.counts))
    return proto


class ComplianceServicer:
    def __init__(self, retention: RetentionActions, user_data: UserDataActions,
                 urls: MediaUrls) -> None:
        self._retention = retention
        self._user_data = user_data
        self._urls = urls

    async def EraseUser(self, request: pb.EraseUserRequest, call: Call
                        ) -> operations_pb2.Operation:
        app_id, user_id = parse_user(request.name, "name")
        return operation_proto(
            await self._user_data.erase_user(call.principal, app_id, user_id), self._urls)

    async def ExportUserData(self, request: pb.ExportUserDataRequest, call: Call
                             ) -> operations_pb2.Operation:
        app_id, user_id = parse_user(request.name, "name")
        return operation_proto(
            await self._user_data.export_user(call.principal, app_id, user_id), self._urls)

    async def GetOperation(self, request: pb.GetOperationRequest, call: Call
                           ) -> operations_pb2.Operation:
        app_id, operation_id = _parent_of(request.name, "operations", "name")
        return operation_proto(
            await self._user_data.get(call.principal, app_id, operation_id), self._urls)

    async def ListOperations(self, request: pb.ListOperationsRequest, call: Call
                             ) -> pb.ListOperationsResponse:
        app_id = parse_app(request.parent, "parent")
        page = await self._user_data.list(call.principal, app_id, request.page_size,
                                          request.page_token)
        return pb.ListOperationsResponse(operations=[operation_proto(op, self._urls)
                                                     for op in page.items],
                                         next_page_token=page.next_page_token)

    async def GetRetentionPolicy(self, request: pb.GetRetentionPolicyRequest, call: Call
                                 ) -> pb.GetRetentionPolicyResponse:
        app_id, _ = _parent_of(request.name, "retentionPolicy", "name")
        policy = await self._retention.get_policy(call.principal, app_id)
        return pb.GetRetentionPolicyResponse(retention_policy=policy_proto(policy))

    async def UpdateRetentionPolicy(self, request: pb.UpdateRetentionPolicyRequest, call: Call
                                    ) -> pb.UpdateRetentionPolicyResponse:
        given = request.retention_policy
        app_id, _ = _parent_of(given.name, "retentionPolicy", "retention_policy.name")
        policy = await self._retention.put_policy(
            call.principal, app_id, duration_or_none(given, "message_retention"),
            {k: v.ToTimedelta() for k, v in given.conversation_types.items()})
        return pb.UpdateRetentionPolicyResponse(retention_policy=policy_proto(policy))

    async def CreateLegalHold(self, request: pb.CreateLegalHoldRequest, call: Call
                              ) -> pb.CreateLegalHoldResponse:
        app_id = parse_app(request.parent, "parent")
        given = request.legal_hold
        conversation_id = user_id = ""
        if given.WhichOneof("target") == "conversation":
            conversation_id = _in_app(app_id, given.conversation, "conversations",
                                      "legal_hold.conversation")
        else:
            user_id = _in_app(app_id, given.user, "users", "legal_hold.user")
        hold = await self._retention.create_hold(call.principal, app_id, conversation_id,
                                                 user_id, given.reason)
        return pb.CreateLegalHoldResponse(legal_hold=hold_proto(hold))

    async def ListLegalHolds(self, request: pb.ListLegalHoldsRequest, call: Call
                             ) -> pb.ListLegalHoldsResponse:
        page = await self._retention.list_holds(call.principal,
                                                parse_app(request.parent, "parent"),
                                                request.page_size, request.page_token)
        return pb.ListLegalHoldsResponse(legal_holds=[hold_proto(h) for h in page.items],
                                         next_page_token=page.next_page_token)

    async def DeleteLegalHold(self, request: pb.DeleteLegalHoldRequest, call: Call
                              ) -> pb.DeleteLegalHoldResponse:
        app_id, hold_id = _parent_of(request.name, "legalHolds", "name")
        await self._retention.delete_hold(call.principal, app_id, hold_id)
        return pb.DeleteLegalHoldResponse()
