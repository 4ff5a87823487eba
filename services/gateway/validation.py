"""Request validation against the contract's protovalidate rules — the one place it happens."""

from __future__ import annotations

import protovalidate
from google.protobuf.message import Message

from services.core.errors import FieldViolation, InvalidArgument


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


class RequestValidator:
    """Checks requests against the `buf.validate` rules declared in proto/."""

    def __init__(self) -> None:
        self._validator = protovalidate.Validator()

    def check(self, request: Message) -> None:
        """Raise InvalidArgument(REQUEST_INVALID) listing every broken rule."""
        violations = self._validator.collect_violations(request)
        if not violations:
            return
        fields = tuple(FieldViolation(_path(v), v.proto.message, v.proto.rule_id)
                       for v in violations)
        summary = "; ".join(f"{f.field}: {f.description}" for f in fields)
        raise InvalidArgument("REQUEST_INVALID", f"invalid request: {summary}",
                              field_violations=fields)
