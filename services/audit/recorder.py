"""What the gateway records for an audited RPC (`caas.type.v1.AccessPolicy.audited`):
one entry at the end of each call whose caller was authenticated, allowed or refused.

The entry goes to the caller's own app (an API key or user of app A that names app B
is recorded in A's log: no call writes into another app's log); the operator's, to
the app its request names. The target is the request's `name` (or the `name` of the
resource it carries, for updates), else its `parent`, else `apps/{app_id}` for
CreateApp. Details hold what was changed (`update_mask`) and the fields of the carried
resource that say what the action did (DETAIL_FIELDS: whom a ban is for, the role
given), never a secret or content.

The entry is written before the call's answer leaves: a client that got its answer
can find the record. A record that cannot be written (the store is down) is logged as
an error with everything it held, and counted; the action itself stands.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from google.protobuf.message import Message

from services.audit.models import ActorKind, AuditEntry
from services.audit.store import AuditStore
from services.core.clock import Clock
from services.core.principal import AppBackend, Developer, Operator, Principal, User

log = logging.getLogger("caas.audit")

_APP = re.compile(r"^apps/([a-z][a-z0-9-]{1,38}[a-z0-9])(?:/|$)")


def _target(request: Any) -> str:
    if not isinstance(request, Message):
        return ""  # it did not parse
    given = {field.name: value for field, value in request.ListFields()}
    if isinstance(given.get("name"), str):
        return str(given["name"])
    for value in given.values():  # an update carries its resource
        if isinstance(value, Message) and isinstance(name := getattr(value, "name", None),
                                                     str) and name:
            return name
    if isinstance(given.get("parent"), str):
        return str(given["parent"])
    if isinstance(given.get("app_id"), str):
        return f"apps/{given['app_id']}"
    return ""


# Fields of the resource a request carries that say what the action did (whom a ban
# is for, the role given): never secrets or content.
DETAIL_FIELDS = ("user_id", "conversation", "type", "role", "state", "plan")


def _details(request: Any) -> dict[str, str]:
    if not isinstance(request, Message):
        return {}
    details: dict[str, str] = {}
    for field, value in request.ListFields():
        if field.name == "update_mask":
            details["update_mask"] = ",".join(value.paths)
        elif isinstance(value, Message):
            for inner, shown in value.ListFields():
                if inner.name in DETAIL_FIELDS and inner.enum_type is not None:
                    known = inner.enum_type.values_by_number.get(shown)
                    details[inner.name] = known.name if known is not None else str(shown)
                elif inner.name in DETAIL_FIELDS and isinstance(shown, str):
                    details[inner.name] = shown[:200]
    return details


def entry_of(method: str, principal: Principal, request: Any, request_id: str, code: str,
             reason: str, clock: Clock) -> AuditEntry | None:
    """The entry for a call, or None when it goes in no app's log (an unauthenticated
    caller, or an operator call that names no app)."""
    target = _target(request)
    if isinstance(principal, AppBackend):
        app_id, actor = principal.app_id, principal.key_id
        kind = ActorKind.DEVELOPER if principal.member_role else ActorKind.API_KEY
    elif isinstance(principal, Developer) and (found := _APP.match(target)):
        # CreateApp by a developer: the app's log starts with who created it.
        app_id, kind, actor = found.group(1), ActorKind.DEVELOPER, \
            f"accounts/{principal.account_id}"
    elif isinstance(principal, User):
        app_id, kind, actor = principal.app_id, ActorKind.USER, principal.user_id
    elif isinstance(principal, Operator) and (found := _APP.match(target)):
        app_id, kind, actor = found.group(1), ActorKind.OPERATOR, ""
    else:
        return None
    return AuditEntry(app_id, clock.now(), kind, actor, method, target[:400], request_id,
                      code, reason, _details(request))


class AuditRecorder:
    def __init__(self, store: AuditStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.lost = 0  # records that could not be written

    async def record(self, method: str, principal: Principal, request: Any,
                     request_id: str, code: str, reason: str) -> None:
        """Never raises: a record that cannot be made is logged, and the call goes on."""
        try:
            entry = entry_of(method, principal, request, request_id, code, reason,
                             self._clock)
        except Exception:
            self.lost += 1
            log.exception("audit record not made", extra={"action": method,
                                                          "request_id": request_id})
            return
        if entry is None:
            return
        try:
            await self._store.append(entry)
        except Exception:
            self.lost += 1
            log.exception("audit record not written", extra={
                "app": entry.app_id, "action": entry.action, "target": entry.target,
                "actor_kind": entry.actor_kind.value, "actor_id": entry.actor_id,
                "request_id": entry.request_id, "code": entry.code, "reason": entry.reason})
