"""One case per contract rule of the audit service (run by tests/e2e/test_validation.py,
whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.audit.v1 import audit_service_pb2 as pb
from google.protobuf.message import Message

APP = "apps/some-app"

CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("ListAuditRecords parent pattern", "ListAuditRecords",
     pb.ListAuditRecordsRequest(parent="apps/X"), {"parent": "string.pattern"}),
    ("ListAuditRecords action too long", "ListAuditRecords",
     pb.ListAuditRecordsRequest(parent=APP, action="x" * 201), {"action": "string.max_len"}),
    ("ListAuditRecords target too long", "ListAuditRecords",
     pb.ListAuditRecordsRequest(parent=APP, target="x" * 401), {"target": "string.max_len"}),
    ("ListAuditRecords actor kind undefined", "ListAuditRecords",
     pb.ListAuditRecordsRequest(parent=APP, actor_kind=9),  # type: ignore[arg-type]
     {"actor_kind": "enum.defined_only"}),
    ("ListAuditRecords actor id pattern", "ListAuditRecords",
     pb.ListAuditRecordsRequest(parent=APP, actor_id="no spaces"),
     {"actor_id": "string.pattern"}),
    ("ListAuditRecords code pattern", "ListAuditRecords",
     pb.ListAuditRecordsRequest(parent=APP, code="ok"), {"code": "string.pattern"}),
    ("ListAuditRecords page size", "ListAuditRecords",
     pb.ListAuditRecordsRequest(parent=APP, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListAuditRecords page token too long", "ListAuditRecords",
     pb.ListAuditRecordsRequest(parent=APP, page_token="x" * 513),
     {"page_token": "string.max_len"}),
    ("VerifyAuditLog parent pattern", "VerifyAuditLog",
     pb.VerifyAuditLogRequest(parent="apps/X"), {"parent": "string.pattern"}),
]
