"""caas.moderation.v1.ModerationService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from caas.conversations.v1 import resources_pb2 as conv_res
from caas.moderation.v1 import moderation_service_pb2 as pb
from caas.moderation.v1 import resources_pb2 as res

from services.conversations.access import conversation_name
from services.conversations.models import Kind
from services.conversations.servicer import KINDS, KINDS_FROM_PROTO, parse_conversation
from services.core.errors import invalid_field
from services.core.names import (
    filter_name,
    flag_name,
    parse_app,
    parse_filter,
    parse_flag,
    parse_restriction,
    restriction_name,
)
from services.core.protoconv import timestamp, timestamp_or_none
from services.gateway.gateway import Call
from services.messages.actions import message_name
from services.messages.servicer import parse_message
from services.moderation.actions import ModerationActions
from services.moderation.content_filters import FilterActions
from services.moderation.flags import FlagActions, Sanction
from services.moderation.models import (
    APP_WIDE,
    DEFAULT_HOOK_TIMEOUT,
    ContentFilter,
    FailurePolicy,
    FilterAction,
    Flag,
    FlagState,
    Report,
    ReportReason,
    Restriction,
    RestrictionType,
    SendHook,
)
from services.moderation.permissions import (
    Condition,
    Permission,
    PermissionPolicy,
    Permissions,
)
from services.moderation.send_hooks import SendHooks, send_hook_name
from services.webhooks.models import SECRET_HINT_LENGTH

TYPES = {RestrictionType.MUTE: res.Restriction.TYPE_MUTE,
         RestrictionType.BAN: res.Restriction.TYPE_BAN,
         RestrictionType.SHADOW_BAN: res.Restriction.TYPE_SHADOW_BAN}
TYPES_FROM_PROTO = {value: kind for kind, value in TYPES.items()}
STATES = {FlagState.OPEN: res.Flag.STATE_OPEN, FlagState.RESOLVED: res.Flag.STATE_RESOLVED}
STATES_FROM_PROTO = {value: state for state, value in STATES.items()}
REASONS = {reason: res.Report.Reason.Value(f"REASON_{reason.name}") for reason in ReportReason}
REASONS_FROM_PROTO = {value: reason for reason, value in REASONS.items()}


def restriction_proto(r: Restriction) -> res.Restriction:
    return res.Restriction(
        name=restriction_name(r.app_id, r.restriction_id), user_id=r.user_id,
        conversation="" if r.conversation_id == APP_WIDE else conversation_name(
            r.app_id, r.conversation_id),
        type=TYPES[r.type], reason=r.reason, expire_time=timestamp(r.expire_time),
        creator=r.creator, create_time=timestamp(r.create_time))


def report_proto(r: Report) -> res.Report:
    proto = res.Report(reporter=r.reporter, details=r.details,
                       create_time=timestamp(r.create_time))
    proto.reason = REASONS[r.reason]  # set apart: a `reason=` reads as an error's to scans
    return proto


def flag_proto(f: Flag) -> res.Flag:
    proto = res.Flag(
        name=flag_name(f.app_id, f.flag_id),
        message=message_name(f.app_id, f.conversation_id, f.sequence) if f.sequence else "",
        conversation=conversation_name(f.app_id, f.conversation_id)
        if f.conversation_id else "",
        user_id=f.user_id, message_text=f.message_text, state=STATES[f.state],
        report_count=f.report_count, reports=[report_proto(r) for r in f.reports],
        claimer=f.claimer, claim_expire_time=timestamp(f.claim_expire_time),
        create_time=timestamp(f.create_time), update_time=timestamp(f.update_time))
    if f.resolution is not None:
        r = f.resolution
        proto.resolution.CopyFrom(res.Resolution(
            resolver=r.resolver, note=r.note, message_deleted=r.message_deleted,
            restriction=restriction_name(f.app_id, r.restriction_id)
            if r.restriction_id else "", resolve_time=timestamp(r.resolve_time)))
    return proto


def kinds_proto(kinds: frozenset[str]) -> list[conv_res.Conversation.Kind.ValueType]:
    """Conversation kinds ("group"…) as the contract's enum values, in a stable order."""
    return [KINDS[Kind(k)] for k in sorted(kinds)]


def kinds_from_proto(kinds: Iterable[conv_res.Conversation.Kind.ValueType]
                     ) -> frozenset[str]:
    return frozenset(KINDS_FROM_PROTO[k].value for k in kinds)


ACTIONS = {FilterAction.BLOCK: res.Filter.ACTION_BLOCK, FilterAction.FLAG: res.Filter.ACTION_FLAG,
           FilterAction.MASK: res.Filter.ACTION_MASK}
ACTIONS_FROM_PROTO = {value: action for action, value in ACTIONS.items()}
# UpdateFilter's mask paths → ContentFilter fields.
FILTER_FIELDS = {"display_name": "display_name", "words": "words", "patterns": "patterns",
                 "blocked_domains": "blocked_domains", "allowed_domains": "allowed_domains",
                 "action": "action", "conversation_kinds": "kinds"}


def filter_proto(f: ContentFilter) -> res.Filter:
    return res.Filter(
        name=filter_name(f.app_id, f.filter_id), display_name=f.display_name,
        words=f.words, patterns=f.patterns, blocked_domains=f.blocked_domains,
        allowed_domains=f.allowed_domains, action=ACTIONS[f.action],
        conversation_kinds=kinds_proto(f.kinds),
        create_time=timestamp(f.create_time), update_time=timestamp(f.update_time))


def content_filter(app_id: str, filter_id: str, proto: res.Filter) -> ContentFilter:
    """The filter as given (its times are set by the actions)."""
    return ContentFilter(
        app_id, filter_id, proto.display_name, tuple(proto.words), tuple(proto.patterns),
        tuple(proto.blocked_domains), tuple(proto.allowed_domains),
        # Unset only where it is not used: the servicer refuses it elsewhere.
        ACTIONS_FROM_PROTO.get(proto.action, FilterAction.BLOCK),
        kinds_from_proto(proto.conversation_kinds),
        datetime.min.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC))


POLICIES = {FailurePolicy.OPEN: res.SendHook.FAILURE_POLICY_OPEN,
            FailurePolicy.CLOSED: res.SendHook.FAILURE_POLICY_CLOSED}
POLICIES_FROM_PROTO = {value: policy for policy, value in POLICIES.items()}
# UpdateSendHook's mask paths → SendHook fields.
HOOK_FIELDS = {"url": "url", "timeout": "timeout", "failure_policy": "failure_policy",
               "conversation_kinds": "kinds"}


def send_hook_proto(h: SendHook) -> res.SendHook:
    proto = res.SendHook(
        name=send_hook_name(h.app_id), url=h.url, failure_policy=POLICIES[h.failure_policy],
        conversation_kinds=kinds_proto(h.kinds),
        secret_hint=h.secret[:SECRET_HINT_LENGTH], create_time=timestamp(h.create_time),
        update_time=timestamp(h.update_time))
    proto.timeout.FromTimedelta(h.timeout)
    return proto


def _singleton_app(name: str, singleton: str, field: str) -> str:
    """The app of `apps/{app}/{singleton}`."""
    app_id, sep, rest = name.removeprefix("apps/").partition("/")
    if not sep or rest != singleton:
        raise invalid_field(field, f"must be apps/{{app}}/{singleton}")
    return parse_app(f"apps/{app_id}", field)


PERMISSIONS = {p: res.Permission.Value(f"PERMISSION_{p.name}") for p in Permission}
PERMISSIONS_FROM_PROTO = {value: p for p, value in PERMISSIONS.items()}


def policy_proto(policy: PermissionPolicy) -> res.PermissionPolicy:
    return res.PermissionPolicy(
        name=f"apps/{policy.app_id}/permissionPolicy", custom_roles=policy.custom_roles,
        grants=[grant_proto(scope, role, granted)
                for (scope, role), granted in sorted(policy.grants.items())],
        conversation_types=[res.ConversationType(id=t, kind=KINDS[Kind(kind)])
                            for t, kind in sorted(policy.types.items())],
        conditions=[res.Condition(id=c.condition_id, permission=PERMISSIONS[c.permission],
                                  conversation_kinds=kinds_proto(c.kinds),
                                  expression=c.expression, description=c.description)
                    for c in policy.conditions],
        update_time=timestamp(policy.update_time))


def grant_proto(scope: str, role: str, granted: frozenset[Permission]) -> res.Grant:
    kind, _, conversation_type = scope.partition("/")
    return res.Grant(conversation_kind=KINDS[Kind(kind)], conversation_type=conversation_type,
                     role=role, permissions=sorted(PERMISSIONS[p] for p in granted))


def policy_of(app_id: str, proto: res.PermissionPolicy) -> PermissionPolicy:
    types: dict[str, str] = {}
    for index, given_type in enumerate(proto.conversation_types):
        if given_type.id in types:
            raise invalid_field(f"policy.conversation_types[{index}].id",
                                "is taken by another")
        types[given_type.id] = KINDS_FROM_PROTO[given_type.kind].value
    grants: dict[tuple[str, str], frozenset[Permission]] = {}
    for index, grant in enumerate(proto.grants):
        kind = KINDS_FROM_PROTO[grant.conversation_kind].value
        scope = f"{kind}/{grant.conversation_type}" if grant.conversation_type else kind
        key = (scope, grant.role)
        if key in grants:
            raise invalid_field(f"policy.grants[{index}]",
                                "grants this kind and role again: one grant per pair")
        grants[key] = frozenset(PERMISSIONS_FROM_PROTO[p] for p in grant.permissions)
    conditions: list[Condition] = []
    for index, given in enumerate(proto.conditions):
        if any(c.condition_id == given.id for c in conditions):
            raise invalid_field(f"policy.conditions[{index}].id", "is taken by another")
        conditions.append(Condition(given.id, PERMISSIONS_FROM_PROTO[given.permission],
                                    kinds_from_proto(given.conversation_kinds),
                                    given.expression, given.description))
    return PermissionPolicy(app_id, tuple(proto.custom_roles), grants,
                            conditions=tuple(conditions), types=types)


def _conversation_in(app_id: str, name: str, field: str) -> str:
    """The conversation id of `name`, which must lie in `app_id` ("" for none)."""
    if not name:
        return APP_WIDE
    conversation_app, conversation_id = parse_conversation(name, field)
    if conversation_app != app_id:
        raise invalid_field(field, f"must be a conversation of apps/{app_id}")
    return conversation_id


def _in_app(app_id: str, other_app: str, field: str) -> None:
    if other_app != app_id:
        raise invalid_field(field, f"must be of apps/{app_id}")


class ModerationServicer:
    def __init__(self, actions: ModerationActions, flags: FlagActions,
                 filters: FilterActions, send_hooks: SendHooks,
                 permissions: Permissions) -> None:
        self._actions = actions
        self._flags = flags
        self._filters = filters
        self._send_hooks = send_hooks
        self._permissions = permissions

    async def CreateRestriction(self, request: pb.CreateRestrictionRequest, call: Call
                                ) -> pb.CreateRestrictionResponse:
        app_id = parse_app(request.parent, "parent")
        given = request.restriction
        restriction = await self._actions.do_restrict(
            call.principal, app_id, given.user_id,
            _conversation_in(app_id, given.conversation, "restriction.conversation"),
            TYPES_FROM_PROTO[given.type], given.reason,
            timestamp_or_none(given, "expire_time"))
        return pb.CreateRestrictionResponse(restriction=restriction_proto(restriction))

    async def GetRestriction(self, request: pb.GetRestrictionRequest, call: Call
                             ) -> pb.GetRestrictionResponse:
        restriction = await self._actions.get(call.principal, *parse_restriction(request.name))
        return pb.GetRestrictionResponse(restriction=restriction_proto(restriction))

    async def ListRestrictions(self, request: pb.ListRestrictionsRequest, call: Call
                               ) -> pb.ListRestrictionsResponse:
        app_id = parse_app(request.parent, "parent")
        conversation_id = (_conversation_in(app_id, request.conversation, "conversation")
                           if request.conversation else None)
        page = await self._actions.list_restrictions(
            call.principal, app_id, request.user_id, conversation_id, request.page_size,
            request.page_token)
        return pb.ListRestrictionsResponse(
            restrictions=[restriction_proto(r) for r in page.items],
            next_page_token=page.next_page_token)

    async def DeleteRestriction(self, request: pb.DeleteRestrictionRequest, call: Call
                                ) -> pb.DeleteRestrictionResponse:
        lifted = await self._actions.do_lift(call.principal, *parse_restriction(request.name))
        return pb.DeleteRestrictionResponse(restriction=restriction_proto(lifted))

    async def CreateFlag(self, request: pb.CreateFlagRequest, call: Call
                         ) -> pb.CreateFlagResponse:
        app_id = parse_app(request.parent, "parent")
        reason = REASONS_FROM_PROTO[request.reason]
        if request.WhichOneof("target") == "message":
            message_app, conversation_id, sequence = parse_message(request.message, "message")
            _in_app(app_id, message_app, "message")
            flag = await self._flags.do_flag_message(call.principal, app_id, conversation_id,
                                                     sequence, reason, request.details)
        else:
            flag = await self._flags.do_flag_user(call.principal, app_id, request.user_id,
                                                  reason, request.details)
        return pb.CreateFlagResponse(flag=flag_proto(flag))

    async def GetFlag(self, request: pb.GetFlagRequest, call: Call) -> pb.GetFlagResponse:
        flag = await self._flags.get(call.principal, *parse_flag(request.name))
        return pb.GetFlagResponse(flag=flag_proto(flag))

    async def ListFlags(self, request: pb.ListFlagsRequest, call: Call
                        ) -> pb.ListFlagsResponse:
        app_id = parse_app(request.parent, "parent")
        conversation_id = (_conversation_in(app_id, request.conversation, "conversation")
                           if request.conversation else None)
        page = await self._flags.list_flags(
            call.principal, app_id, STATES_FROM_PROTO.get(request.state), conversation_id,
            request.user_id, request.page_size, request.page_token)
        return pb.ListFlagsResponse(flags=[flag_proto(f) for f in page.items],
                                    next_page_token=page.next_page_token)

    async def ClaimFlag(self, request: pb.ClaimFlagRequest, call: Call
                        ) -> pb.ClaimFlagResponse:
        flag = await self._flags.do_claim(call.principal, *parse_flag(request.name),
                                          request.release)
        return pb.ClaimFlagResponse(flag=flag_proto(flag))

    async def ResolveFlag(self, request: pb.ResolveFlagRequest, call: Call
                          ) -> pb.ResolveFlagResponse:
        sanction = None
        if request.HasField("restrict"):
            given = request.restrict
            sanction = Sanction(
                TYPES_FROM_PROTO[given.type], given.app_wide, given.reason,
                timestamp_or_none(given, "expire_time"))
        flag = await self._flags.do_resolve(call.principal, *parse_flag(request.name),
                                            request.note, request.delete_message, sanction)
        return pb.ResolveFlagResponse(flag=flag_proto(flag))

    async def CreateFilter(self, request: pb.CreateFilterRequest, call: Call
                           ) -> pb.CreateFilterResponse:
        app_id = parse_app(request.parent, "parent")
        if not request.filter.action:
            raise invalid_field("filter.action", "is required")
        created = await self._filters.do_create(
            call.principal, content_filter(app_id, request.filter_id, request.filter))
        return pb.CreateFilterResponse(filter=filter_proto(created))

    async def GetFilter(self, request: pb.GetFilterRequest, call: Call
                        ) -> pb.GetFilterResponse:
        found = await self._filters.get(call.principal, *parse_filter(request.name))
        return pb.GetFilterResponse(filter=filter_proto(found))

    async def ListFilters(self, request: pb.ListFiltersRequest, call: Call
                          ) -> pb.ListFiltersResponse:
        page = await self._filters.list_filters(call.principal,
                                                parse_app(request.parent, "parent"),
                                                request.page_size, request.page_token)
        return pb.ListFiltersResponse(filters=[filter_proto(f) for f in page.items],
                                      next_page_token=page.next_page_token)

    async def UpdateFilter(self, request: pb.UpdateFilterRequest, call: Call
                           ) -> pb.UpdateFilterResponse:
        app_id, filter_id = parse_filter(request.filter.name, "filter.name")
        if "action" in request.update_mask.paths and not request.filter.action:
            raise invalid_field("filter.action", "is required when in update_mask")
        updated = await self._filters.do_update(
            call.principal, content_filter(app_id, filter_id, request.filter),
            {FILTER_FIELDS[path] for path in request.update_mask.paths})
        return pb.UpdateFilterResponse(filter=filter_proto(updated))

    async def DeleteFilter(self, request: pb.DeleteFilterRequest, call: Call
                           ) -> pb.DeleteFilterResponse:
        await self._filters.do_delete(call.principal, *parse_filter(request.name))
        return pb.DeleteFilterResponse()

    async def GetSendHook(self, request: pb.GetSendHookRequest, call: Call
                          ) -> pb.GetSendHookResponse:
        app_id = _singleton_app(request.name, "sendHook", "name")
        hook = await self._send_hooks.get(call.principal, app_id)
        return pb.GetSendHookResponse(send_hook=send_hook_proto(hook))

    async def UpdateSendHook(self, request: pb.UpdateSendHookRequest, call: Call
                             ) -> pb.UpdateSendHookResponse:
        given = request.send_hook
        app_id = _singleton_app(given.name, "sendHook", "send_hook.name")
        at = datetime.min.replace(tzinfo=UTC)  # set by the actions
        hook = SendHook(
            app_id, given.url, "", given.timeout.ToTimedelta()
            if given.HasField("timeout") else DEFAULT_HOOK_TIMEOUT,
            POLICIES_FROM_PROTO.get(given.failure_policy, FailurePolicy.OPEN),
            kinds_from_proto(given.conversation_kinds), at, at)
        stored, secret = await self._send_hooks.do_update(
            call.principal, hook, {HOOK_FIELDS[p] for p in request.update_mask.paths},
            request.allow_missing)
        return pb.UpdateSendHookResponse(send_hook=send_hook_proto(stored), secret=secret)

    async def DeleteSendHook(self, request: pb.DeleteSendHookRequest, call: Call
                             ) -> pb.DeleteSendHookResponse:
        app_id = _singleton_app(request.name, "sendHook", "name")
        await self._send_hooks.do_delete(call.principal, app_id)
        return pb.DeleteSendHookResponse()

    async def GetPermissionPolicy(self, request: pb.GetPermissionPolicyRequest, call: Call
                                  ) -> pb.GetPermissionPolicyResponse:
        app_id = _singleton_app(request.name, "permissionPolicy", "name")
        policy = await self._permissions.get(call.principal, app_id)
        return pb.GetPermissionPolicyResponse(policy=policy_proto(policy))

    async def UpdatePermissionPolicy(self, request: pb.UpdatePermissionPolicyRequest,
                                     call: Call) -> pb.UpdatePermissionPolicyResponse:
        app_id = _singleton_app(request.policy.name, "permissionPolicy", "policy.name")
        policy = await self._permissions.do_update(call.principal,
                                                   policy_of(app_id, request.policy))
        return pb.UpdatePermissionPolicyResponse(policy=policy_proto(policy))
