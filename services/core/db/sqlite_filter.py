"""Filters and orderings of List calls (services/core/filtering.py) as SQLite SQL.

Every value is a bound parameter; only column names and operators, which come from
the store's own tables and the parser's closed set, are written into the SQL. Each
comparison is two-valued (never NULL), so that NOT means what it says: a comparison
on a metadata key that is absent is false, and its NOT is true.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from services.core.clock import to_ms
from services.core.filtering import And, Comparison, Expr, Not, Op, Or, prefix_bounds

Sql = tuple[str, list[Any]]
SqlTerm = Callable[[Comparison], Sql]


def stored(value: object) -> object:
    """A filter value as this engine keeps it: booleans 0/1, times in ms."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return to_ms(value)
    return value


def column(name: str) -> SqlTerm:
    """Compares a column (`name` is a column or an expression of the store's)."""

    def term(c: Comparison) -> Sql:
        if c.prefix:
            assert isinstance(c.value, str)
            low, high = prefix_bounds(c.value)
            sql, params = (f"{name} >= ?", [low]) if high is None else (
                f"({name} >= ? AND {name} < ?)", [low, high])
            return (sql if c.op is Op.EQ else f"NOT {sql}"), params
        return f"{name} {c.op} ?", [stored(c.value)]

    return term


def flag(condition: str) -> SqlTerm:
    """A boolean field that stands for `condition` (`unread` for `unread_count > 0`)."""

    def term(c: Comparison) -> Sql:
        holds = (c.value is True) == (c.op is Op.EQ)
        return (f"({condition})" if holds else f"NOT ({condition})"), []

    return term


def json_map(name: str) -> SqlTerm:
    """A map kept as a JSON object of strings: `name.key = v`, `!=`, `name:key`."""

    def term(c: Comparison) -> Sql:
        if c.op is Op.HAS:
            return f"json_type({name}, ?) IS NOT NULL", [_path(str(c.value))]
        return (f"coalesce(json_extract({name}, ?) {c.op} ?, 0)",
                [_path(c.key), stored(c.value)])

    return term


def json_list_has(name: str, member: str) -> SqlTerm:
    """A list kept as a JSON array of objects: `name:"v"` holds when one object's
    `member` is v."""

    def term(c: Comparison) -> Sql:
        return (f"EXISTS (SELECT 1 FROM json_each({name})"  # noqa: S608 - names are the store's
                f" WHERE json_extract(value, '$.{member}') = ?)", [c.value])

    return term


def _path(key: str) -> str:
    # Keys are [A-Za-z0-9_.-] (checked by the parser): quoting them is enough.
    return f'$."{key}"'


def where(expr: Expr | None, terms: Mapping[str, SqlTerm]) -> Sql:
    """" AND (…)" to append to a WHERE clause, with its parameters; ("", []) for None."""
    if expr is None:
        return "", []
    params: list[Any] = []

    def walk(node: Expr) -> str:
        if isinstance(node, Comparison):
            sql, values = terms[node.field](node)
            params.extend(values)
            return sql
        if isinstance(node, Not):
            return f"NOT ({walk(node.term)})"
        joiner = " AND " if isinstance(node, And) else " OR "
        assert isinstance(node, And | Or)
        return "(" + joiner.join(walk(term) for term in node.terms) + ")"

    return f" AND ({walk(expr)})", params


def keyset(columns: Sequence[str], descending: bool, after: Sequence[object] | None
           ) -> tuple[str, list[Any], str]:
    """(" AND (…) > (…)" resuming strictly after `after`, its parameters, the ORDER BY
    list) of a listing ordered by `columns`, all ascending or all descending."""
    direction = "DESC" if descending else "ASC"
    order = ", ".join(f"{name} {direction}" for name in columns)
    if after is None:
        return "", [], order
    marks = ", ".join("?" * len(columns))
    beyond = "<" if descending else ">"
    return f" AND ({', '.join(columns)}) {beyond} ({marks})", list(after), order
