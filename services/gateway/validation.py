"""Request validation against the contract — the one place it happens: fields marked
`(google.api.field_behavior) = REQUIRED` must be set (AIP-203), then every
protovalidate (`buf.validate`) rule holds."""

from __future__ import annotations

from dataclasses import dataclass, field

import protovalidate
from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.core.errors import FieldViolation, InvalidArgument

REQUIRED = "is required"


def _path(violation: protovalidate.Violation) -> str:
    """`app.display_name`, `members[2].id`, `metadata["k"]`: the violated field's path;
    empty for a rule on the whole message."""
    parts: list[str] = []
    if violation.proto.field is None:
        return ""
    for element in violation.proto.field.elements:
        text = element.field_name
        subscript = element.subscript
        if subscript is not None:
            value = subscript.value
            text += f'["{value}"]' if isinstance(value, str) else f"[{value}]"
        parts.append(text)
    return ".".join(parts)


def _is_required(field_descriptor: FieldDescriptor) -> bool:
    behaviors = field_descriptor.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


@dataclass
class _Plan:
    """What to check in one message type: its REQUIRED fields, and the message fields
    (singular or repeated, not maps) whose own REQUIRED fields count."""

    required: list[FieldDescriptor] = field(default_factory=list)
    nested: list[tuple[FieldDescriptor, _Plan]] = field(default_factory=list)


class RequestValidator:
    """Checks requests against the contract's REQUIRED fields and `buf.validate` rules."""

    def __init__(self) -> None:
        self._validator = protovalidate.Validator()
        self._plans: dict[str, _Plan] = {}

    def check(self, request: Message) -> None:
        """Raise InvalidArgument(REQUEST_INVALID) listing every missing REQUIRED field
        ("is required", rule `required`) and every other broken rule, one violation per
        field."""
        missing: list[FieldViolation] = []
        plan = self._plan(request.DESCRIPTOR)  # type: ignore[arg-type]
        self._missing(request, plan, "", _mask(request), missing)
        violations = self._validator.collect_violations(request)
        if not violations and not missing:
            return
        absent = {f.field for f in missing}
        fields = tuple(missing) + tuple(
            FieldViolation(path, v.proto.message, v.proto.rule_id)
            for v in violations if not _under((path := _path(v)), absent))
        summary = "; ".join(f"{f.field}: {f.description}" for f in fields)
        raise InvalidArgument("REQUEST_INVALID", f"invalid request: {summary}",
                              field_violations=fields)

    def _plan(self, message: Descriptor) -> _Plan:
        plan = self._plans.get(message.full_name)
        if plan is not None:
            return plan
        plan = self._plans[message.full_name] = _Plan()
        for field_descriptor in message.fields:
            if _is_required(field_descriptor):
                plan.required.append(field_descriptor)
            child = field_descriptor.message_type
            if (child is not None and not child.GetOptions().map_entry
                    and child.full_name.startswith("caas.")):
                nested = self._plan(child)
                if nested.required or nested.nested:
                    plan.nested.append((field_descriptor, nested))
        return plan

    def _missing(self, message: Message, plan: _Plan, prefix: str, mask: set[str] | None,
                 out: list[FieldViolation]) -> None:
        for field_descriptor in plan.required:
            path = prefix + field_descriptor.name
            if _in_mask(path, mask) and _unset(message, field_descriptor):
                out.append(FieldViolation(path, REQUIRED, "required"))
        for field_descriptor, nested in plan.nested:
            path = prefix + field_descriptor.name
            if field_descriptor.is_repeated:
                for index, item in enumerate(getattr(message, field_descriptor.name)):
                    self._missing(item, nested, f"{path}[{index}].", mask, out)
            elif message.HasField(field_descriptor.name):
                self._missing(getattr(message, field_descriptor.name), nested, path + ".",
                              mask, out)


def _mask(request: Message) -> set[str] | None:
    """For an update (a request with an `update_mask` beside its resource): the paths
    it writes, prefixed by the resource's field (`app.display_name`); None otherwise.
    Fields of the resource outside the mask are not written, so not required."""
    mask_field = request.DESCRIPTOR.fields_by_name.get("update_mask")
    if mask_field is None:
        return None
    resource = next(f.name for f in request.DESCRIPTOR.fields
                    if f.message_type is not None and f is not mask_field)
    return {f"{resource}.{p}" for p in getattr(request, mask_field.name).paths}


def _in_mask(path: str, mask: set[str] | None) -> bool:
    if mask is None or "." not in path:
        return True  # a top-level field of the request
    return _under(path, mask)


def _unset(message: Message, field_descriptor: FieldDescriptor) -> bool:
    if field_descriptor.is_repeated:
        return len(getattr(message, field_descriptor.name)) == 0
    if field_descriptor.has_presence:
        return not message.HasField(field_descriptor.name)
    return not getattr(message, field_descriptor.name)


def _under(path: str, roots: set[str]) -> bool:
    """Whether `path` is one of `roots` or inside one (a missing field needs no more
    than "is required")."""
    return any(path == r or path.startswith((r + ".", r + "[")) for r in roots)
