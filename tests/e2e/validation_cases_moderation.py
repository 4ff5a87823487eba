"""One case per contract rule of the moderation service (run by
tests/e2e/test_validation.py, whose guard fails when a rule has no case)."""

from __future__ import annotations

import time

from caas.moderation.v1 import moderation_service_pb2 as pb
from caas.moderation.v1 import resources_pb2 as res
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

APP = "apps/some-app"
RESTRICTION = f"{APP}/restrictions/aaaaaaaaaaaaaaaa"
FLAG = f"{APP}/flags/aaaaaaaaaaaaaaaa"
FILTER = f"{APP}/filters/words"
BLOCK = res.Filter.ACTION_BLOCK
LONG_DOMAIN = ".".join(["a" * 60] * 5) + ".io"  # labels within 63, the whole beyond 253
SPAM = res.Report.REASON_SPAM
MUTE = res.Restriction.TYPE_MUTE


def create(**fields: object) -> pb.CreateRestrictionRequest:
    base: dict[str, object] = {"user_id": "bob", "type": MUTE}
    base.update(fields)
    return pb.CreateRestrictionRequest(parent=APP, restriction=res.Restriction(**base))  # type: ignore[arg-type]


def flag(**fields: object) -> pb.CreateFlagRequest:
    base: dict[str, object] = {"parent": APP, "user_id": "bob", "reason": SPAM}
    base.update(fields)
    return pb.CreateFlagRequest(**base)  # type: ignore[arg-type]


def resolve(**fields: object) -> pb.ResolveFlagRequest:
    base: dict[str, object] = {"name": FLAG, "note": "ok"}
    base.update(fields)
    return pb.ResolveFlagRequest(**base)  # type: ignore[arg-type]


def sanction(**fields: object) -> pb.ResolveFlagRequest:
    base: dict[str, object] = {"type": MUTE}
    base.update(fields)
    return resolve(restrict=pb.FlagRestriction(**base))  # type: ignore[arg-type]


def new_filter(**fields: object) -> pb.CreateFilterRequest:
    base: dict[str, object] = {"action": BLOCK}
    base.update(fields)
    return pb.CreateFilterRequest(parent=APP, filter_id="words",
                                  filter=res.Filter(**base))  # type: ignore[arg-type]


def change_filter(paths: tuple[str, ...] = ("words",), **fields: object
                  ) -> pb.UpdateFilterRequest:
    base: dict[str, object] = {"name": FILTER}
    base.update(fields)
    return pb.UpdateFilterRequest(filter=res.Filter(**base),  # type: ignore[arg-type]
                                  update_mask=field_mask_pb2.FieldMask(paths=list(paths)))


HOOK = f"{APP}/sendHook"


def change_hook(paths: tuple[str, ...] = ("url",), **fields: object
                ) -> pb.UpdateSendHookRequest:
    base: dict[str, object] = {"name": HOOK}
    base.update(fields)
    return pb.UpdateSendHookRequest(send_hook=res.SendHook(**base),  # type: ignore[arg-type]
                                    update_mask=field_mask_pb2.FieldMask(paths=list(paths)))


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
    ("CreateFlag parent pattern", "CreateFlag", flag(parent="apps/"),
     {"parent": "string.pattern"}),
    ("CreateFlag target required", "CreateFlag", pb.CreateFlagRequest(parent=APP, reason=SPAM),
     {"target": "required"}),
    ("CreateFlag message pattern", "CreateFlag",
     flag(message=f"{APP}/conversations/c1/messages/0"), {"message": "string.pattern"}),
    ("CreateFlag user_id pattern", "CreateFlag", flag(user_id="b b"),
     {"user_id": "string.pattern"}),
    ("CreateFlag reason required", "CreateFlag", flag(reason=0), {"reason": "required"}),
    ("CreateFlag reason defined", "CreateFlag", flag(reason=99),
     {"reason": "enum.defined_only"}),
    ("CreateFlag details at most 1000", "CreateFlag", flag(details="d" * 1001),
     {"details": "string.max_len"}),
    ("GetFlag name pattern", "GetFlag", pb.GetFlagRequest(name=f"{APP}/flags/A"),
     {"name": "string.pattern"}),
    ("ListFlags parent pattern", "ListFlags", pb.ListFlagsRequest(parent="apps/A"),
     {"parent": "string.pattern"}),
    ("ListFlags state defined", "ListFlags", pb.ListFlagsRequest(parent=APP, state=7),
     {"state": "enum.defined_only"}),
    ("ListFlags conversation pattern", "ListFlags",
     pb.ListFlagsRequest(parent=APP, conversation="c1"), {"conversation": "string.pattern"}),
    ("ListFlags user_id pattern", "ListFlags", pb.ListFlagsRequest(parent=APP, user_id="."),
     {"user_id": "string.pattern"}),
    ("ListFlags page_size", "ListFlags", pb.ListFlagsRequest(parent=APP, page_size=-1),
     {"page_size": "int32.gte_lte"}),
    ("ListFlags page_token", "ListFlags", pb.ListFlagsRequest(parent=APP, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("ClaimFlag name pattern", "ClaimFlag", pb.ClaimFlagRequest(name=RESTRICTION),
     {"name": "string.pattern"}),
    ("ResolveFlag name pattern", "ResolveFlag", resolve(name=APP), {"name": "string.pattern"}),
    ("ResolveFlag note required", "ResolveFlag", resolve(note=""), {"note": "required"}),
    ("ResolveFlag note at most 1000", "ResolveFlag", resolve(note="n" * 1001),
     {"note": "string.max_len"}),
    ("ResolveFlag restrict.type required", "ResolveFlag", sanction(type=0),
     {"restrict.type": "required"}),
    ("ResolveFlag restrict.type defined", "ResolveFlag", sanction(type=5),
     {"restrict.type": "enum.defined_only"}),
    ("ResolveFlag restrict.reason at most 500", "ResolveFlag", sanction(reason="r" * 501),
     {"restrict.reason": "string.max_len"}),
    ("ResolveFlag restrict.expire_time in the future", "ResolveFlag",
     sanction(expire_time=at(-60)), {"restrict.expire_time": "timestamp.gt_now"}),
    ("ResolveFlag restrict.expire_time within 10 years", "ResolveFlag",
     sanction(expire_time=at(3700 * 86400)), {"restrict.expire_time": "timestamp.within"}),
    ("CreateFilter parent pattern", "CreateFilter", pb.CreateFilterRequest(
        parent="apps/A", filter_id="w", filter=res.Filter(action=BLOCK)),
     {"parent": "string.pattern"}),
    ("CreateFilter filter_id pattern", "CreateFilter", pb.CreateFilterRequest(
        parent=APP, filter_id="Words", filter=res.Filter(action=BLOCK)),
     {"filter_id": "string.pattern"}),
    ("CreateFilter filter required", "CreateFilter",
     pb.CreateFilterRequest(parent=APP, filter_id="w"), {"filter": "required"}),
    ("GetFilter name pattern", "GetFilter", pb.GetFilterRequest(name=f"{APP}/filters/A"),
     {"name": "string.pattern"}),
    ("ListFilters parent pattern", "ListFilters", pb.ListFiltersRequest(parent="x"),
     {"parent": "string.pattern"}),
    ("ListFilters page_size", "ListFilters", pb.ListFiltersRequest(parent=APP, page_size=201),
     {"page_size": "int32.gte_lte"}),
    ("ListFilters page_token", "ListFilters",
     pb.ListFiltersRequest(parent=APP, page_token="t" * 513), {"page_token": "string.max_len"}),
    ("UpdateFilter filter required", "UpdateFilter",
     pb.UpdateFilterRequest(update_mask=field_mask_pb2.FieldMask(paths=["words"])),
     {"filter": "required"}),
    ("UpdateFilter name format", "UpdateFilter", change_filter(name=FLAG),
     {"filter": "filter.name_format"}),
    ("UpdateFilter update_mask required", "UpdateFilter",
     pb.UpdateFilterRequest(filter=res.Filter(name=FILTER)), {"update_mask": "required"}),
    ("UpdateFilter update_mask paths", "UpdateFilter", change_filter(("name",)),
     {"update_mask": "field_mask.in"}),
    ("DeleteFilter name pattern", "DeleteFilter", pb.DeleteFilterRequest(name=APP),
     {"name": "string.pattern"}),
]

# Each rule of a Filter's fields, checked on CreateFilter and on UpdateFilter.
FILTER_RULES: list[tuple[str, dict[str, object], str, str]] = [
    ("display_name at most 200", {"display_name": "d" * 201}, "display_name",
     "string.max_len"),
    ("words at most 5000", {"words": ["w"] * 5001}, "words", "repeated.max_items"),
    ("a word at most 100", {"words": ["w" * 101]}, "words[0]", "string.max_len"),
    ("a word not empty", {"words": [""]}, "words[0]", "string.min_len"),
    ("patterns at most 50", {"patterns": ["p"] * 51}, "patterns", "repeated.max_items"),
    ("a pattern at most 500", {"patterns": ["p" * 501]}, "patterns[0]", "string.max_len"),
    ("a pattern not empty", {"patterns": [""]}, "patterns[0]", "string.min_len"),
    ("blocked_domains at most 1000", {"blocked_domains": ["a.io"] * 1001},
     "blocked_domains", "repeated.max_items"),
    ("a blocked domain shape", {"blocked_domains": ["https://a.io"]}, "blocked_domains[0]",
     "string.pattern"),
    ("a blocked domain at most 253", {"blocked_domains": [LONG_DOMAIN]},
     "blocked_domains[0]", "string.max_len"),
    ("allowed_domains at most 1000", {"allowed_domains": ["a.io"] * 1001},
     "allowed_domains", "repeated.max_items"),
    ("an allowed domain shape", {"allowed_domains": ["A.IO"]}, "allowed_domains[0]",
     "string.pattern"),
    ("an allowed domain at most 253", {"allowed_domains": [LONG_DOMAIN]},
     "allowed_domains[0]", "string.max_len"),
    ("action defined", {"action": 9}, "action", "enum.defined_only"),
    ("conversation_kinds unique", {"conversation_kinds": [1, 1]}, "conversation_kinds",
     "repeated.unique"),
    ("a conversation kind defined", {"conversation_kinds": [7]}, "conversation_kinds[0]",
     "enum.defined_only"),
    ("a conversation kind set", {"conversation_kinds": [0]}, "conversation_kinds[0]",
     "enum.not_in"),
]
CASES += [(f"CreateFilter {label}", "CreateFilter", new_filter(**fields),
           {f"filter.{path}": rule}) for label, fields, path, rule in FILTER_RULES]
CASES += [(f"UpdateFilter {label}", "UpdateFilter", change_filter(**fields),
           {f"filter.{path}": rule}) for label, fields, path, rule in FILTER_RULES]
CASES += [
    ("GetSendHook name pattern", "GetSendHook", pb.GetSendHookRequest(name=f"{APP}/hook"),
     {"name": "string.pattern"}),
    ("DeleteSendHook name pattern", "DeleteSendHook",
     pb.DeleteSendHookRequest(name=f"{APP}/sendHooks"), {"name": "string.pattern"}),
    ("UpdateSendHook send_hook required", "UpdateSendHook",
     pb.UpdateSendHookRequest(update_mask=field_mask_pb2.FieldMask(paths=["url"])),
     {"send_hook": "required"}),
    ("UpdateSendHook name format", "UpdateSendHook",
     change_hook(name=FILTER, url="https://a.example"),
     {"send_hook": "send_hook.name_format"}),
    ("UpdateSendHook url is a URI", "UpdateSendHook", change_hook(url="::"),
     {"send_hook.url": "string.uri"}),
    ("UpdateSendHook url at most 2048", "UpdateSendHook",
     change_hook(url="https://a.example/" + "x" * 2040), {"send_hook.url": "string.max_len"}),
    ("UpdateSendHook timeout at least 10 ms", "UpdateSendHook",
     change_hook(("timeout",), timeout=duration_pb2.Duration(nanos=9_000_000)),
     {"send_hook.timeout": "duration.gte_lte"}),
    ("UpdateSendHook timeout at most 5 s", "UpdateSendHook",
     change_hook(("timeout",), timeout=duration_pb2.Duration(seconds=6)),
     {"send_hook.timeout": "duration.gte_lte"}),
    ("UpdateSendHook failure_policy defined", "UpdateSendHook",
     change_hook(("failure_policy",), failure_policy=5),
     {"send_hook.failure_policy": "enum.defined_only"}),
    ("UpdateSendHook conversation_kinds unique", "UpdateSendHook",
     change_hook(("conversation_kinds",), conversation_kinds=[2, 2]),
     {"send_hook.conversation_kinds": "repeated.unique"}),
    ("UpdateSendHook a conversation kind defined", "UpdateSendHook",
     change_hook(("conversation_kinds",), conversation_kinds=[9]),
     {"send_hook.conversation_kinds[0]": "enum.defined_only"}),
    ("UpdateSendHook a conversation kind set", "UpdateSendHook",
     change_hook(("conversation_kinds",), conversation_kinds=[0]),
     {"send_hook.conversation_kinds[0]": "enum.not_in"}),
    ("UpdateSendHook update_mask required", "UpdateSendHook",
     pb.UpdateSendHookRequest(send_hook=res.SendHook(name=HOOK)), {"update_mask": "required"}),
    ("UpdateSendHook update_mask paths", "UpdateSendHook", change_hook(("secret_hint",)),
     {"update_mask": "field_mask.in"}),
]

POLICY = f"{APP}/permissionPolicy"
GROUP_KIND = 2


def policy(**fields: object) -> pb.UpdatePermissionPolicyRequest:
    base: dict[str, object] = {"name": POLICY}
    base.update(fields)
    return pb.UpdatePermissionPolicyRequest(policy=res.PermissionPolicy(**base))  # type: ignore[arg-type]


def one_grant(**fields: object) -> pb.UpdatePermissionPolicyRequest:
    base: dict[str, object] = {"conversation_kind": GROUP_KIND, "role": "user"}
    base.update(fields)
    return policy(grants=[res.Grant(**base)])  # type: ignore[arg-type]


CASES += [
    ("GetPermissionPolicy name pattern", "GetPermissionPolicy",
     pb.GetPermissionPolicyRequest(name=f"{APP}/policy"), {"name": "string.pattern"}),
    ("UpdatePermissionPolicy policy required", "UpdatePermissionPolicy",
     pb.UpdatePermissionPolicyRequest(), {"policy": "required"}),
    ("UpdatePermissionPolicy name format", "UpdatePermissionPolicy", policy(name=HOOK),
     {"policy": "policy.name_format"}),
    ("UpdatePermissionPolicy custom_roles at most 20", "UpdatePermissionPolicy",
     policy(custom_roles=[f"r{n}" for n in range(21)]),
     {"policy.custom_roles": "repeated.max_items"}),
    ("UpdatePermissionPolicy custom_roles unique", "UpdatePermissionPolicy",
     policy(custom_roles=["vip", "vip"]), {"policy.custom_roles": "repeated.unique"}),
    ("UpdatePermissionPolicy a custom role shape", "UpdatePermissionPolicy",
     policy(custom_roles=["VIP"]), {"policy.custom_roles[0]": "string.pattern"}),
    ("UpdatePermissionPolicy a custom role not built in", "UpdatePermissionPolicy",
     policy(custom_roles=["admin"]), {"policy.custom_roles[0]": "string.not_in"}),
    ("UpdatePermissionPolicy grants at most 100", "UpdatePermissionPolicy",
     policy(grants=[res.Grant(conversation_kind=GROUP_KIND, role="user")] * 101),
     {"policy.grants": "repeated.max_items"}),
    ("UpdatePermissionPolicy a grant's kind set", "UpdatePermissionPolicy",
     one_grant(conversation_kind=0), {"policy.grants[0].conversation_kind": "required"}),
    ("UpdatePermissionPolicy a grant's kind defined", "UpdatePermissionPolicy",
     one_grant(conversation_kind=9),
     {"policy.grants[0].conversation_kind": "enum.defined_only"}),
    ("UpdatePermissionPolicy a grant's role shape", "UpdatePermissionPolicy",
     one_grant(role="conversation:guest"), {"policy.grants[0].role": "string.pattern"}),
    ("UpdatePermissionPolicy a grant's permissions unique", "UpdatePermissionPolicy",
     one_grant(permissions=[1, 1]), {"policy.grants[0].permissions": "repeated.unique"}),
    ("UpdatePermissionPolicy a permission defined", "UpdatePermissionPolicy",
     one_grant(permissions=[99]), {"policy.grants[0].permissions[0]": "enum.defined_only"}),
    ("UpdatePermissionPolicy a permission set", "UpdatePermissionPolicy",
     one_grant(permissions=[0]), {"policy.grants[0].permissions[0]": "enum.not_in"}),
]


def one_condition(**fields: object) -> pb.UpdatePermissionPolicyRequest:
    base: dict[str, object] = {"id": "c", "permission": 1, "expression": "true"}
    base.update(fields)
    return policy(conditions=[res.Condition(**base)])  # type: ignore[arg-type]


CASES += [
    ("UpdatePermissionPolicy conditions at most 20", "UpdatePermissionPolicy",
     policy(conditions=[res.Condition(id=f"c{n}", permission=1, expression="true")
                        for n in range(21)]), {"policy.conditions": "repeated.max_items"}),
    ("UpdatePermissionPolicy a condition's id", "UpdatePermissionPolicy",
     one_condition(id="C"), {"policy.conditions[0].id": "string.pattern"}),
    ("UpdatePermissionPolicy a condition's permission set", "UpdatePermissionPolicy",
     one_condition(permission=0), {"policy.conditions[0].permission": "required"}),
    ("UpdatePermissionPolicy a condition's permission defined", "UpdatePermissionPolicy",
     one_condition(permission=77), {"policy.conditions[0].permission": "enum.defined_only"}),
    ("UpdatePermissionPolicy a condition's kinds unique", "UpdatePermissionPolicy",
     one_condition(conversation_kinds=[2, 2]),
     {"policy.conditions[0].conversation_kinds": "repeated.unique"}),
    ("UpdatePermissionPolicy a condition's kind defined", "UpdatePermissionPolicy",
     one_condition(conversation_kinds=[8]),
     {"policy.conditions[0].conversation_kinds[0]": "enum.defined_only"}),
    ("UpdatePermissionPolicy a condition's kind set", "UpdatePermissionPolicy",
     one_condition(conversation_kinds=[0]),
     {"policy.conditions[0].conversation_kinds[0]": "enum.not_in"}),
    ("UpdatePermissionPolicy a condition's expression required", "UpdatePermissionPolicy",
     one_condition(expression=""), {"policy.conditions[0].expression": "required"}),
    ("UpdatePermissionPolicy a condition's expression at most 2000", "UpdatePermissionPolicy",
     one_condition(expression="t" * 2001),
     {"policy.conditions[0].expression": "string.max_len"}),
    ("UpdatePermissionPolicy a condition's description at most 200", "UpdatePermissionPolicy",
     one_condition(description="d" * 201),
     {"policy.conditions[0].description": "string.max_len"}),
]

CASES += [
    ("UpdatePermissionPolicy conversation_types at most 20", "UpdatePermissionPolicy",
     policy(conversation_types=[res.ConversationType(id=f"t{n}", kind=GROUP_KIND)
                                for n in range(21)]),
     {"policy.conversation_types": "repeated.max_items"}),
    ("UpdatePermissionPolicy a type's id", "UpdatePermissionPolicy",
     policy(conversation_types=[res.ConversationType(id="9", kind=GROUP_KIND)]),
     {"policy.conversation_types[0].id": "string.pattern"}),
    ("UpdatePermissionPolicy a type's kind set", "UpdatePermissionPolicy",
     policy(conversation_types=[res.ConversationType(id="t", kind=0)]),
     {"policy.conversation_types[0].kind": "required"}),
    ("UpdatePermissionPolicy a type's kind defined", "UpdatePermissionPolicy",
     policy(conversation_types=[res.ConversationType(id="t", kind=6)]),
     {"policy.conversation_types[0].kind": "enum.defined_only"}),
    ("UpdatePermissionPolicy a grant's type", "UpdatePermissionPolicy",
     one_grant(conversation_type="T"), {"policy.grants[0].conversation_type": "string.pattern"}),
]
