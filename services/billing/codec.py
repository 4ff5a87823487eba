"""Billing records as plain documents (JSON on SQLite, BSON on MongoDB), the same shape
on both stores: dataclass fields by name, times as epoch milliseconds, enums as their
values, tuples as lists."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from services.core.clock import from_ms, to_ms

T = TypeVar("T")


def to_doc(value: Any) -> Any:
    """A dataclass (or anything in one) as a document."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_doc(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return to_ms(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_doc(item) for item in value]
    if isinstance(value, dict):
        return {key: to_doc(item) for key, item in value.items()}
    return value


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_doc(cls: type[T], doc: Any) -> T:
    """The dataclass `cls` from its document (fields it lacks take their defaults)."""
    hints = _hints(cls)  # type: ignore[arg-type]
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{name: _value(hints[name], item) for name, item in doc.items()
                  if name in fields})


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _value(options[0], value)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_value(item, v) for v in value)
    if origin is dict:
        return dict(value)
    if hint is datetime:
        return from_ms(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if dataclasses.is_dataclass(hint):
        return from_doc(hint, value)  # type: ignore[arg-type]
    return value
