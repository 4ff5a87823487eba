"""One case per contract rule of the moderation service (run by
tests/e2e/test_validation.py, whose guard fails when a rule has no case)."""

from __future__ import annotations

import time

from caas.moderation.v1 import moderation_service_pb2 as pb
from caas.moderation.v1 import resources_pb2 as res
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

APP = "apps/some-app"
RESTRICTION = f"{APP}/restrictions/aaaaaaaaaaaaaaaa"
MUTE = res.Restriction.TYPE_MUTE


def create(**fields: object) -> pb.CreateRestrictionRequest:
    base: dict[str, object] = {"user_id": "bob", "type": MUTE}
    base.update(fields)
    return pb.CreateRestrictionRequest(parent=APP, restriction=res.Restriction(**base))  # type: ignore[arg-type]


def at(offset_seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(time.time()) + offset_seconds)


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("CreateRestriction parent pattern", "CreateRestriction",
     pb.CreateRestrictionRequest(parent="apps/X", restriction=res.Restriction(
         user_id="bob", type=MUTE)), {"parent": "string.pattern"}),
    ("CreateRestriction restriction required", "CreateRestriction",
     pb.CreateRestrictionRequest(parent=APP), {"restriction": "required"}),
    ("CreateRestriction user_id pattern", "CreateRestriction", create(user_id="bad id"),
     {"restriction.user_id": "string.pattern"}),
    ("CreateRestriction conversation pattern", "CreateRestriction",
     create(conversation="apps/some-app/chats/c1"),
     {"restriction.conversation": "string.pattern"}),
    ("CreateRestriction type required", "CreateRestriction",
     create(type=res.Restriction.TYPE_UNSPECIFIED), {"restriction.type": "required"}),
    ("CreateRestriction type defined", "CreateRestriction", create(type=9),
     {"restriction.type": "enum.defined_only"}),
    ("CreateRestriction reason at most 500", "CreateRestriction", create(reason="r" * 501),
     {"restriction.reason": "string.max_len"}),
    ("CreateRestriction expire_time in the future", "CreateRestriction",
     create(expire_time=at(-60)), {"restriction.expire_time": "timestamp.gt_now"}),
    ("CreateRestriction expire_time within 10 years", "CreateRestriction",
     create(expire_time=at(3700 * 86400)), {"restriction.expire_time": "timestamp.within"}),
    ("GetRestriction name pattern", "GetRestriction",
     pb.GetRestrictionRequest(name=f"{APP}/restrictions/x"), {"name": "string.pattern"}),
    ("ListRestrictions parent pattern", "ListRestrictions",
     pb.ListRestrictionsRequest(parent="apps"), {"parent": "string.pattern"}),
    ("ListRestrictions user_id pattern", "ListRestrictions",
     pb.ListRestrictionsRequest(parent=APP, user_id="-bob"), {"user_id": "string.pattern"}),
    ("ListRestrictions conversation pattern", "ListRestrictions",
     pb.ListRestrictionsRequest(parent=APP, conversation=f"{APP}/conversations/"),
     {"conversation": "string.pattern"}),
    ("ListRestrictions page_size", "ListRestrictions",
     pb.ListRestrictionsRequest(parent=APP, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListRestrictions page_token", "ListRestrictions",
     pb.ListRestrictionsRequest(parent=APP, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("DeleteRestriction name pattern", "DeleteRestriction",
     pb.DeleteRestrictionRequest(name="apps/some-app/bans/aaaaaaaaaaaaaaaa"),
     {"name": "string.pattern"}),
]
