"""Permission conditions in CEL (see caas.moderation.v1.Condition): compiled and
type-checked once, when the policy is saved and when a process loads it; evaluated on
the hot path against the caller, the conversation and the request.

CEL is Google's cel-cpp (cel-expr-python): declared variables only, no loops beyond
the bounded macros, evaluation cost linear in the expression and its data; so a
condition cannot stall a call, and a broken one is refused when saved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cel_expr_python import cel

log = logging.getLogger("caas.permissions")


class ConditionError(ValueError):
    """The expression cannot be a condition; the message says why."""


@dataclass(frozen=True, slots=True)
class Subject:
    """The caller as conditions see them."""

    role: str  # "" for `user`
    metadata: Mapping[str, str] = field(default_factory=dict)
    create_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """What a condition may look at besides the caller."""

    conversation_id: str = ""
    kind: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    member_count: int = 0
    member_role: str = ""  # the caller's role there; "" when not a member
    request: Mapping[str, Any] = field(default_factory=dict)
    conversation_type: str = ""  # its app-defined type, if any


class Conditions:
    """The CEL environment conditions compile in (built once per process)."""

    def __init__(self) -> None:
        dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
        self._env = cel.NewEnv(variables={
            "user": dyn_map, "conversation": dyn_map, "member": dyn_map, "request": dyn_map,
            "now": cel.Type.TIMESTAMP})

    def compile(self, expression: str) -> Any:
        """The compiled condition; ConditionError if it does not parse, names what is not
        declared, calls an unknown function, or is not a bool."""
        try:
            compiled = self._env.compile(expression)
        except RuntimeError as exc:  # "…ERROR: <input>:1:4: what\n | source\n | ...^"
            first = str(exc).split("\n")[0]
            raise ConditionError(first.split("<input>:", 1)[-1].strip()) from None
        returns = compiled.return_type()
        if returns not in (cel.Type.BOOL, cel.Type.DYN):  # dyn: checked when run
            raise ConditionError(f"is of type {returns.name().lower()}, not a bool")
        return compiled

    @staticmethod
    def holds(compiled: Any, data: Mapping[str, Any]) -> bool:
        """Whether the condition is true; an error (a missing key…) is false."""
        value = compiled.eval(data=data)
        if value.type() == cel.Type.BOOL:
            return bool(value.plain_value())
        log.info("a permission condition did not evaluate: %s", value.plain_value())
        return False

    @staticmethod
    def data(user_id: str, subject: Subject, facts: Facts, now: datetime) -> dict[str, Any]:
        age = 0 if subject.create_time is None else int(
            (now - subject.create_time).total_seconds())
        return {
            "user": {"id": user_id, "role": subject.role or "user",
                     "metadata": dict(subject.metadata), "age_seconds": age},
            "conversation": {"id": facts.conversation_id, "kind": facts.kind,
                             "type": facts.conversation_type,
                             "metadata": dict(facts.metadata),
                             "member_count": facts.member_count},
            "member": {"role": facts.member_role},
            "request": dict(facts.request),
            "now": now,
        }
