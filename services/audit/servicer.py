"""caas.audit.v1.AuditService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from caas.audit.v1 import audit_service_pb2 as pb
from caas.audit.v1 import resources_pb2 as res

from services.audit.actions import AuditActions
from services.audit.models import ActorKind, AuditRecord, Verification
from services.audit.store import AuditQuery
from services.core.names import app_name, parse_app
from services.core.protoconv import timestamp, timestamp_or_none
from services.gateway.gateway import Call

KINDS = {ActorKind.OPERATOR: res.AuditRecord.Actor.KIND_OPERATOR,
         ActorKind.API_KEY: res.AuditRecord.Actor.KIND_API_KEY,
         ActorKind.USER: res.AuditRecord.Actor.KIND_USER,
         ActorKind.DEVELOPER: res.AuditRecord.Actor.KIND_DEVELOPER}
_KIND_OF = {number: kind for kind, number in KINDS.items()}


def record_proto(record: AuditRecord) -> res.AuditRecord:
    entry = record.entry
    return res.AuditRecord(
        name=f"{app_name(entry.app_id)}/auditRecords/{record.sequence}",
        sequence=record.sequence, time=timestamp(entry.time),
        actor=res.AuditRecord.Actor(kind=KINDS[entry.actor_kind], id=entry.actor_id),
        action=entry.action, target=entry.target, request_id=entry.request_id,
        code=entry.code, reason=entry.reason, details=dict(entry.details),
        previous_hash=record.previous_hash, hash=record.hash)


def verification_proto(found: Verification) -> pb.VerifyAuditLogResponse:
    return pb.VerifyAuditLogResponse(
        intact=found.intact, records=found.records, head_sequence=found.head_sequence,
        head_hash=found.head_hash, broken_sequence=found.broken_sequence,
        problem=found.problem)


class AuditServicer:
    def __init__(self, actions: AuditActions) -> None:
        self._actions = actions

    async def ListAuditRecords(self, request: pb.ListAuditRecordsRequest, call: Call
                               ) -> pb.ListAuditRecordsResponse:
        query = AuditQuery(
            action=request.action, target=request.target,
            actor_kind=_KIND_OF.get(request.actor_kind), actor_id=request.actor_id,
            code=request.code, start_time=timestamp_or_none(request, "start_time"),
            end_time=timestamp_or_none(request, "end_time"))
        page = await self._actions.list_records(
            call.principal, parse_app(request.parent, "parent"), query, request.page_size,
            request.page_token)
        return pb.ListAuditRecordsResponse(
            audit_records=[record_proto(r) for r in page.items],
            next_page_token=page.next_page_token)

    async def VerifyAuditLog(self, request: pb.VerifyAuditLogRequest, call: Call
                             ) -> pb.VerifyAuditLogResponse:
        found = await self._actions.verify(call.principal, parse_app(request.parent, "parent"))
        return verification_proto(found)
