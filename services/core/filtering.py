"""Filters (a subset of AIP-160) and orderings (AIP-132) of List calls: what they are.

A List call that takes a `filter` declares its fields (a `Schema`: each field's type
and the operators it takes); services/core/filter_syntax.py's `parse_filter` turns the
caller's text into a small tree (`Comparison`, `And`, `Or`, `Not`) checked against that
schema, with values already converted to what the stores compare (enum spellings to
stored values, timestamps to UTC at millisecond precision). Store adapters translate
the tree into their own query language (services/core/db/sqlite_filter.py,
mongo_filter.py), with bound values. A call that takes an `order_by` declares the
`Ordering`s it offers; `parse_order_by` picks one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.core.errors import invalid_field

# Stated in the contract comments of every `filter` field and in docs/filtering.md;
# enforced by services/core/filter_syntax.py.
MAX_FILTER_LENGTH = 1024
MAX_COMPARISONS = 20
MAX_DEPTH = 8  # parentheses and NOT, nested
MAX_ORDER_BY_LENGTH = 128


class Op(enum.StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    HAS = ":"


EQUALITY = frozenset({Op.EQ, Op.NE})
ORDERED = frozenset({Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE})


class Type(enum.Enum):
    STRING = enum.auto()
    INTEGER = enum.auto()
    BOOLEAN = enum.auto()
    TIMESTAMP = enum.auto()  # compared at millisecond precision, in UTC
    ENUM = enum.auto()
    MAP = enum.auto()  # of strings
    LIST = enum.auto()  # of strings


Value = str | int | bool | datetime


@dataclass(frozen=True, slots=True)
class Field:
    """A field a filter may name, with the operators it takes."""

    name: str
    type: Type
    ops: frozenset[Op]
    prefix: bool = False  # STRING: a value ending in `*` matches by prefix
    choices: Mapping[str, str | int] = field(default_factory=dict)  # ENUM: spelling → value


def string(name: str, *, prefix: bool = False) -> Field:
    return Field(name, Type.STRING, EQUALITY, prefix=prefix)


def integer(name: str) -> Field:
    return Field(name, Type.INTEGER, ORDERED)


def boolean(name: str) -> Field:
    return Field(name, Type.BOOLEAN, EQUALITY)


def timestamp(name: str) -> Field:
    return Field(name, Type.TIMESTAMP, ORDERED)


def choice(name: str, choices: Mapping[str, str | int], *, ordered: bool = False) -> Field:
    """An enum: `choices` maps each accepted spelling (matched case-insensitively; the
    first spelling of each value is the one error messages show) to the stored value."""
    return Field(name, Type.ENUM, ORDERED if ordered else EQUALITY,
                 choices={k.lower(): v for k, v in choices.items()})


def mapping(name: str) -> Field:
    """A map of strings: `name.<key> = "v"`, `name.<key> != "v"`, `name:<key>` (has)."""
    return Field(name, Type.MAP, frozenset({Op.EQ, Op.NE, Op.HAS}))


def repeated(name: str) -> Field:
    """A list of strings: `name:"v"` holds when the list contains "v"."""
    return Field(name, Type.LIST, frozenset({Op.HAS}))


@dataclass(frozen=True, slots=True)
class Schema:
    """The fields one List call filters on, in the order errors list them."""

    fields: tuple[Field, ...]

    def get(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


# --- the tree ---------------------------------------------------------------------


def quote(text: str, prefix: bool = False) -> str:
    """A string as a filter spells it: double-quoted, escaped, `*` for a prefix."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*")
    return f'"{escaped}{"*" if prefix else ""}"'


@dataclass(frozen=True, slots=True)
class Comparison:
    """`field op value`. For a MAP field, `key` is the key compared (`metadata.<key>`),
    or, with HAS, `value` is the key that must be present. `prefix`: a STRING value
    that matches every value starting with it."""

    field: str
    op: Op
    value: Value
    key: str = ""
    prefix: bool = False

    def __str__(self) -> str:
        name = f"{self.field}.{self.key}" if self.key else self.field
        value = self.value
        if isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, int):
            shown = str(value)
        elif isinstance(value, datetime):
            shown = quote(value.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        else:
            shown = quote(value, self.prefix)
        return f"{name}:{shown}" if self.op is Op.HAS else f"{name} {self.op} {shown}"


@dataclass(frozen=True, slots=True)
class And:
    terms: tuple[Expr, ...]

    def __str__(self) -> str:
        return "(" + " AND ".join(map(str, self.terms)) + ")"


@dataclass(frozen=True, slots=True)
class Or:
    terms: tuple[Expr, ...]

    def __str__(self) -> str:
        return "(" + " OR ".join(map(str, self.terms)) + ")"


@dataclass(frozen=True, slots=True)
class Not:
    term: Expr

    def __str__(self) -> str:
        return f"NOT {self.term}"


Expr = Comparison | And | Or | Not


def comparisons(expr: Expr | None) -> Iterable[Comparison]:
    """Every comparison of the tree."""
    if expr is None:
        return
    if isinstance(expr, Comparison):
        yield expr
    elif isinstance(expr, Not):
        yield from comparisons(expr.term)
    else:
        for term in expr.terms:
            yield from comparisons(term)


def names_field(expr: Expr | None, name: str) -> bool:
    """Whether the filter compares `name` anywhere."""
    return any(c.field == name for c in comparisons(expr))


def canonical(expr: Expr | None) -> str:
    """The filter in one spelling (what page tokens are bound to); "" for none."""
    return "" if expr is None else str(expr)


def token_scope(where: Expr | None, ordering: Ordering, default: Ordering) -> list[str]:
    """What a page token is bound to besides the request's other fields (AIP-158: a
    token used with another filter or order is refused). Nothing for no filter and the
    default order, so that tokens made before a call took filters stay good."""
    scope = []
    if where is not None:
        scope.append(f"filter={where}")
    if ordering != default:
        scope.append(f"order_by={ordering.text}")
    return scope


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """[low, high): the strings that start with `prefix`, in code point order (which is
    UTF-8 byte order, the order SQLite and MongoDB compare strings in). high is None
    when no string is above them all."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are no characters
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return prefix, "".join(chars)
        chars.pop()
    return prefix, None


# --- orderings --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ordering:
    """One order a List call can return its items in (an `order_by` it accepts).

    `keys` are the sort keys, all in the same direction, the last one unique (so that
    a page token's position is exact); `kinds` says what each key's position part is:
    "flag" (0/1), "time" (ms), "id" or "text" (strings).
    """

    text: str  # the canonical order_by, e.g. "create_time desc"
    keys: tuple[str, ...]
    kinds: tuple[str, ...]
    descending: bool = False


def parse_order_by(text: str, orderings: Sequence[Ordering]) -> Ordering:
    """The ordering `text` names; the first of `orderings` (the default) when empty.

    `text` is AIP-132's comma-separated `field [asc|desc]` list; spacing and the case
    of asc/desc do not matter. Raises InvalidArgument (a field violation on `order_by`)
    for any ordering not among `orderings`.
    """
    if len(text) > MAX_ORDER_BY_LENGTH:
        raise invalid_field("order_by", f"at most {MAX_ORDER_BY_LENGTH} characters")
    if not text.strip():
        return orderings[0]
    parts = []
    for part in text.split(","):
        words = part.split()
        direction = words[1].lower() if len(words) == 2 else "asc"
        if not words or len(words) > 2 or direction not in ("asc", "desc"):
            raise invalid_field("order_by", f'"{part.strip()}" is not "field", "field asc" '
                                'or "field desc"')
        parts.append(words[0] + (" desc" if direction == "desc" else ""))
    wanted = ", ".join(parts)
    for ordering in orderings:
        if ordering.text == wanted:
            return ordering
    accepted = "; ".join(f'"{o.text}"' for o in orderings)
    raise invalid_field("order_by", f'"{wanted}" is not an order of this list; it takes '
                        f"{accepted} (the first is the default)")
