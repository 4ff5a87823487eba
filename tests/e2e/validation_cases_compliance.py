"""One case per contract rule of the compliance service (run by
tests/e2e/test_validation.py, whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.compliance.v1 import compliance_service_pb2 as pb
from caas.compliance.v1 import resources_pb2 as res
from google.protobuf import duration_pb2
from google.protobuf.message import Message

APP = "apps/some-app"
POLICY = f"{APP}/retentionPolicy"
DAY = duration_pb2.Duration(seconds=86400)
HOUR = duration_pb2.Duration(seconds=3600)
TOO_LONG = duration_pb2.Duration(seconds=3155760001)


def policy(**fields: object) -> pb.UpdateRetentionPolicyRequest:
    return pb.UpdateRetentionPolicyRequest(
        retention_policy=res.RetentionPolicy(name=POLICY, **fields))  # type: ignore[arg-type]


def hold(**fields: object) -> pb.CreateLegalHoldRequest:
    return pb.CreateLegalHoldRequest(parent=APP,
                                     legal_hold=res.LegalHold(**fields))  # type: ignore[arg-type]


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("GetRetentionPolicy name pattern", "GetRetentionPolicy",
     pb.GetRetentionPolicyRequest(name=f"{APP}/policy"), {"name": "string.pattern"}),
    ("UpdateRetentionPolicy policy required", "UpdateRetentionPolicy",
     pb.UpdateRetentionPolicyRequest(), {"retention_policy": "required"}),
    ("UpdateRetentionPolicy name format", "UpdateRetentionPolicy",
     pb.UpdateRetentionPolicyRequest(retention_policy=res.RetentionPolicy(name=APP)),
     {"retention_policy": "retention_policy.name_format"}),
    ("UpdateRetentionPolicy retention too short", "UpdateRetentionPolicy",
     policy(message_retention=HOUR), {"retention_policy.message_retention": "duration.gte_lte"}),
    ("UpdateRetentionPolicy retention too long", "UpdateRetentionPolicy",
     policy(message_retention=TOO_LONG),
     {"retention_policy.message_retention": "duration.gte_lte"}),
    ("UpdateRetentionPolicy too many types", "UpdateRetentionPolicy",
     policy(conversation_types={f"t{n}": DAY for n in range(51)}),
     {"retention_policy.conversation_types": "map.max_pairs"}),
    ("UpdateRetentionPolicy type key pattern", "UpdateRetentionPolicy",
     policy(conversation_types={"Bad Type": DAY}),
     {"retention_policy.conversation_types[\"Bad Type\"]": "string.pattern"}),
    ("UpdateRetentionPolicy type retention too short", "UpdateRetentionPolicy",
     policy(conversation_types={"group": HOUR}),
     {"retention_policy.conversation_types[\"group\"]": "duration.gte_lte"}),
    ("CreateLegalHold parent pattern", "CreateLegalHold",
     pb.CreateLegalHoldRequest(parent="apps/X", legal_hold=res.LegalHold(
         user=f"{APP}/users/u1")), {"parent": "string.pattern"}),
    ("CreateLegalHold hold required", "CreateLegalHold", pb.CreateLegalHoldRequest(parent=APP),
     {"legal_hold": "required"}),
    ("CreateLegalHold target required", "CreateLegalHold", hold(reason="x"),
     {"legal_hold.target": "required"}),
    ("CreateLegalHold conversation pattern", "CreateLegalHold",
     hold(conversation="apps/some-app/chats/c1"), {"legal_hold.conversation": "string.pattern"}),
    ("CreateLegalHold user pattern", "CreateLegalHold", hold(user="users/u1"),
     {"legal_hold.user": "string.pattern"}),
    ("CreateLegalHold reason too long", "CreateLegalHold",
     hold(user=f"{APP}/users/u1", reason="x" * 501), {"legal_hold.reason": "string.max_len"}),
    ("ListLegalHolds parent pattern", "ListLegalHolds",
     pb.ListLegalHoldsRequest(parent="apps/X"), {"parent": "string.pattern"}),
    ("ListLegalHolds page size", "ListLegalHolds",
     pb.ListLegalHoldsRequest(parent=APP, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListLegalHolds page token too long", "ListLegalHolds",
     pb.ListLegalHoldsRequest(parent=APP, page_token="x" * 513),
     {"page_token": "string.max_len"}),
    ("DeleteLegalHold name pattern", "DeleteLegalHold",
     pb.DeleteLegalHoldRequest(name=f"{APP}/legalHolds/x"), {"name": "string.pattern"}),
]

CASES += [
    ("EraseUser name pattern", "EraseUser", pb.EraseUserRequest(name=f"{APP}/people/u1"),
     {"name": "string.pattern"}),
    ("GetOperation name pattern", "GetOperation",
     pb.GetOperationRequest(name=f"{APP}/operations/x"), {"name": "string.pattern"}),
    ("ListOperations parent pattern", "ListOperations",
     pb.ListOperationsRequest(parent="apps/X"), {"parent": "string.pattern"}),
    ("ListOperations page size", "ListOperations",
     pb.ListOperationsRequest(parent=APP, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListOperations page token too long", "ListOperations",
     pb.ListOperationsRequest(parent=APP, page_token="x" * 513),
     {"page_token": "string.max_len"}),
]

CASES += [
    ("ExportUserData name pattern", "ExportUserData",
     pb.ExportUserDataRequest(name=f"{APP}/people/u1"), {"name": "string.pattern"}),
]
