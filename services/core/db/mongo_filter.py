"""Filters and orderings of List calls (services/core/filtering.py) as MongoDB queries.

Values go into the query as values, never into field names; the only field names
built from a filter are map keys, which the parser restricts to letters, digits, `_`,
`.` and `-` (a key with a dot is matched through `$objectToArray`, since a dotted
path would mean a nested field). Each comparison holds or not for every document, as
in SQL (services/core/db/sqlite_filter.py): a comparison on an absent map key is
false, and its NOT is true.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.core.db.mongo import Document
from services.core.filtering import And, Comparison, Expr, Not, Op, Or, prefix_bounds

MongoTerm = Callable[[Comparison], Document]

_OPERATORS = {Op.EQ: "$eq", Op.NE: "$ne", Op.LT: "$lt", Op.LE: "$lte", Op.GT: "$gt",
              Op.GE: "$gte"}


def field(path: str, convert: Callable[[Any], Any] = lambda value: value) -> MongoTerm:
    """Compares a field that every document has; `convert` gives a value as stored."""

    def term(c: Comparison) -> Document:
        if c.prefix:
            assert isinstance(c.value, str)
            low, high = prefix_bounds(c.value)
            bounds: Document = {"$gte": low} if high is None else {"$gte": low, "$lt": high}
            return {path: bounds} if c.op is Op.EQ else {"$nor": [{path: bounds}]}
        return {path: {_OPERATORS[c.op]: convert(c.value)}}

    return term


def flag(holds: Document, fails: Document) -> MongoTerm:
    """A boolean field that stands for a condition (`holds`) and its negation."""

    def term(c: Comparison) -> Document:
        return holds if (c.value is True) == (c.op is Op.EQ) else fails

    return term


def _pairs(path: str) -> Document:
    return {"$objectToArray": f"${path}"}


def string_map(path: str) -> MongoTerm:
    """A map of strings: `path.key = v`, `!=`, `path:key`."""

    def has(key: str) -> Document:
        if "." in key:
            return {"$expr": {"$in": [key, {"$map": {"input": _pairs(path), "as": "entry",
                                                     "in": "$$entry.k"}}]}}
        return {f"{path}.{key}": {"$exists": True}}

    def equal(key: str, value: object) -> Document:
        if "." in key:
            return {"$expr": {"$in": [{"k": key, "v": value}, _pairs(path)]}}
        return {f"{path}.{key}": value}

    def term(c: Comparison) -> Document:
        if c.op is Op.HAS:
            return has(str(c.value))
        if c.op is Op.EQ:
            return equal(c.key, c.value)
        return {"$and": [has(c.key), {"$nor": [equal(c.key, c.value)]}]}

    return term


def query(expr: Expr | None, terms: Mapping[str, MongoTerm]) -> Document:
    """The filter as a query document; {} for None."""
    if expr is None:
        return {}
    if isinstance(expr, Comparison):
        return terms[expr.field](expr)
    if isinstance(expr, Not):
        return {"$nor": [query(expr.term, terms)]}
    operator = "$and" if isinstance(expr, And) else "$or"
    assert isinstance(expr, And | Or)
    return {operator: [query(term, terms) for term in expr.terms]}


def keyset(fields: Sequence[str], descending: bool, after: Sequence[object] | None
           ) -> tuple[Document, list[tuple[str, int]]]:
    """(the query resuming strictly after `after`, the sort) of a listing ordered by
    `fields`, all ascending or all descending; `after` holds values as stored."""
    direction = -1 if descending else 1
    sort = [(name, direction) for name in fields]
    if after is None:
        return {}, sort
    beyond = "$lt" if descending else "$gt"
    branches = []
    for index, name in enumerate(fields):
        branch: Document = {fields[i]: after[i] for i in range(index)}
        branch[name] = {beyond: after[index]}
        branches.append(branch)
    return {"$or": branches}, sort


def combine(*parts: Document) -> Document:
    """The documents that match every part (empty parts left out)."""
    kept = [part for part in parts if part]
    if not kept:
        return {}
    return kept[0] if len(kept) == 1 else {"$and": kept}
