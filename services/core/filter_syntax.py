"""The filter language (a subset of AIP-160): text to a checked tree
(services/core/filtering.py). docs/filtering.md is the user's version.

    filter     = expression
    expression = factor { "AND" factor }         AND binds looser than OR (AIP-160):
    factor     = term { "OR" term }              a AND b OR c  is  a AND (b OR c)
    term       = [ "NOT" | "-" ] simple
    simple     = "(" expression ")" | comparison
    comparison = field operator value            operator: = != < <= > >= :
    field      = name [ "." key ]                key: of a map field (metadata.<key>)
    value      = "double-quoted string" | bare word (number, true, false, enum name, text)

A string value ending in an unescaped `*` matches every value that starts with what
comes before it, on the fields that say so; `\\*` is a literal star. Timestamps are
RFC 3339 strings in double quotes. Keywords are upper case. A bad filter raises
InvalidArgument (REQUEST_INVALID) with one field violation on `filter` whose
description starts with the 1-based character position of the problem.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from services.core.clock import truncate_ms
from services.core.errors import InvalidArgument, invalid_field
from services.core.filtering import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    And,
    Comparison,
    Expr,
    Field,
    Not,
    Op,
    Or,
    Schema,
    Type,
    quote,
)

# --- the parser -------------------------------------------------------------------


def filter_error(position: int, problem: str, field_path: str = "filter") -> InvalidArgument:
    return invalid_field(field_path, f"at {position}: {problem}")


class _Kind(enum.Enum):
    TEXT = "word"
    STRING = "string"
    OP = "operator"
    OPEN = "("
    CLOSE = ")"
    MINUS = "-"
    END = "end"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str
    position: int  # 1-based
    wildcard: bool = False  # STRING: ended in an unescaped `*` (not part of `text`)

    def shown(self) -> str:
        if self.kind is _Kind.END:
            return "the end of the filter"
        if self.kind is _Kind.STRING:
            return quote(self.text, self.wildcard)
        return f'"{self.text}"'


_SPECIAL = frozenset('()"\'=!<>:')
_KEYWORDS = frozenset({"AND", "OR", "NOT"})
_MAP_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def _string(text: str, start: int) -> tuple[_Token, int]:
    """The double-quoted string opening at `start` (0-based), and the index after it."""
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 == len(text):
                break
            chars.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return _Token(_Kind.STRING, "".join(chars), start + 1), index + 1
        if char == "*":
            if text[index + 1:index + 2] == '"':
                return _Token(_Kind.STRING, "".join(chars), start + 1, wildcard=True), index + 2
            raise filter_error(index + 1, "a * matches by prefix only at the end of a value; "
                               "write \\* for a star")
        chars.append(char)
        index += 1
    raise filter_error(start + 1, "this string is never closed (a \" is missing)")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _tokens(text: str) -> list[_Token]:
    control = _CONTROL.search(text)
    if control is not None:
        raise filter_error(control.start() + 1, "control characters are not allowed")
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        position = index + 1
        if char.isspace():
            index += 1
        elif char in "()":
            tokens.append(_Token(_Kind.OPEN if char == "(" else _Kind.CLOSE, char, position))
            index += 1
        elif char == '"':
            token, index = _string(text, index)
            tokens.append(token)
        elif char == "'":
            raise filter_error(position, "strings are in double quotes")
        elif text.startswith(("<=", ">=", "!="), index):
            tokens.append(_Token(_Kind.OP, text[index:index + 2], position))
            index += 2
        elif char in "=<>:":
            tokens.append(_Token(_Kind.OP, char, position))
            index += 1
        elif char == "!":
            raise filter_error(position, 'unexpected "!": write != or NOT')
        elif char == "-" and not (tokens and tokens[-1].kind is _Kind.OP):
            following = text[index + 1:index + 2]
            if not following or following.isspace():
                raise filter_error(position, "a - negates the term right after it, with no "
                                   "space between")
            tokens.append(_Token(_Kind.MINUS, char, position))
            index += 1
        else:
            end = index
            while end < len(text) and not text[end].isspace() and text[end] not in _SPECIAL:
                end += 1
            tokens.append(_Token(_Kind.TEXT, text[index:end], position))
            index = end
    tokens.append(_Token(_Kind.END, "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str, schema: Schema) -> None:
        self._tokens = _tokens(text)
        self._index = 0
        self._schema = schema
        self._count = 0

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind is not _Kind.END:
            self._index += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token.kind is _Kind.TEXT and token.text == word:
            self._index += 1
            return True
        return False

    def parse(self) -> Expr:
        expr = self._expression(0)
        token = self._peek()
        if token.kind is _Kind.CLOSE:
            raise filter_error(token.position, 'this ")" closes no "("')
        if token.kind is not _Kind.END:
            hint = (" (AND, OR and NOT are upper case)"
                    if token.kind is _Kind.TEXT and token.text.upper() in _KEYWORDS else "")
            raise filter_error(token.position, f"expected AND, OR or the end of the filter, "
                               f"found {token.shown()}{hint}")
        return expr

    def _expression(self, depth: int) -> Expr:
        terms = [self._factor(depth)]
        while self._keyword("AND"):
            terms.append(self._factor(depth))
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def _factor(self, depth: int) -> Expr:
        terms = [self._term(depth)]
        while self._keyword("OR"):
            terms.append(self._term(depth))
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def _term(self, depth: int) -> Expr:
        token = self._peek()
        if token.kind is _Kind.MINUS or (token.kind is _Kind.TEXT and token.text == "NOT"):
            self._next()
            self._check_depth(token, depth + 1)
            return Not(self._simple(depth + 1))
        return self._simple(depth)

    def _check_depth(self, token: _Token, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise filter_error(token.position, f"parentheses and NOT nested deeper than "
                               f"{MAX_DEPTH}")

    def _simple(self, depth: int) -> Expr:
        token = self._next()
        if token.kind is _Kind.OPEN:
            self._check_depth(token, depth + 1)
            expr = self._expression(depth + 1)
            closing = self._next()
            if closing.kind is not _Kind.CLOSE:
                if closing.kind is _Kind.END:
                    raise filter_error(token.position, 'this "(" is never closed')
                raise filter_error(closing.position, f'expected AND, OR or ")", found '
                                   f"{closing.shown()}")
            return expr
        if token.kind is _Kind.TEXT and token.text not in _KEYWORDS:
            return self._comparison(token)
        if token.kind is _Kind.STRING:
            raise filter_error(token.position, f"expected a field name, found {token.shown()}"
                               f": free-text search is not supported; write field = value")
        raise filter_error(token.position, f"expected a comparison, found {token.shown()}")

    def _comparison(self, name: _Token) -> Comparison:
        self._count += 1
        if self._count > MAX_COMPARISONS:
            raise filter_error(name.position, f"more than {MAX_COMPARISONS} comparisons")
        field_name, dot, key = name.text.partition(".")
        spec = self._schema.get(field_name)
        if spec is None:
            raise filter_error(name.position, f'unknown field "{field_name}"; allowed: '
                               + ", ".join(self._schema.names))
        if dot and spec.type is not Type.MAP:
            raise filter_error(name.position, f"{field_name} has no fields of its own")
        operator = self._next()
        allowed = " ".join(op for op in Op if op in spec.ops)
        if operator.kind is not _Kind.OP:
            raise filter_error(operator.position, f"expected an operator after {name.text} "
                               f"({allowed}), found {operator.shown()}")
        op = Op(operator.text)
        if op not in spec.ops:
            raise filter_error(operator.position, f"{field_name} takes {allowed}, not {op}")
        value = self._next()
        if value.kind not in (_Kind.TEXT, _Kind.STRING) or (
                value.kind is _Kind.TEXT and value.text in _KEYWORDS):
            raise filter_error(value.position, f"expected a value after {op}, found "
                               f"{value.shown()}")
        return _convert(spec, key if dot else None, op, value)


def _text_value(token: _Token) -> tuple[str, bool]:
    """A string value and whether it ends in a wildcard."""
    if token.kind is _Kind.STRING:
        return token.text, token.wildcard
    star = token.text.find("*")
    if star == -1:
        return token.text, False
    if star != len(token.text) - 1:
        raise filter_error(token.position + star, "a * matches by prefix only at the end "
                           "of a value; write \\* in a double-quoted string for a star")
    return token.text[:-1], True


def _no_wildcard(spec: Field, token: _Token, wildcard: bool) -> None:
    if wildcard:
        raise filter_error(token.position, f"{spec.name} takes no wildcard (*); write \\* "
                           "in a double-quoted string for a star")


def _map_key(spec: Field, key: str, position: int) -> str:
    if not _MAP_KEY.fullmatch(key):
        raise filter_error(position, f"{spec.name} keys are 1 to 64 letters, digits, _, . "
                           "and -")
    return key


def _convert(spec: Field, key: str | None, op: Op, token: _Token) -> Comparison:
    name = spec.name
    if spec.type is Type.MAP:
        text, wildcard = _text_value(token)
        _no_wildcard(spec, token, wildcard)
        if key is None:
            if op is not Op.HAS:
                raise filter_error(token.position, f"name a key: {name}.<key> {op} value, or "
                                   f"{name}:<key> for a key that is present")
            return Comparison(name, op, _map_key(spec, text, token.position))
        if op is Op.HAS:
            raise filter_error(token.position, f"{name}:<key> tests for a key; compare a "
                               f"key's value with {name}.<key> = value")
        return Comparison(name, op, text, key=_map_key(spec, key, token.position))
    if spec.type is Type.LIST:
        text, wildcard = _text_value(token)
        _no_wildcard(spec, token, wildcard)
        return Comparison(name, op, text)
    if spec.type is Type.STRING:
        text, wildcard = _text_value(token)
        if wildcard and not spec.prefix:
            _no_wildcard(spec, token, wildcard)
        return Comparison(name, op, text, prefix=wildcard)
    if spec.type is Type.BOOLEAN:
        if token.kind is _Kind.TEXT and token.text in ("true", "false"):
            return Comparison(name, op, token.text == "true")
        raise filter_error(token.position, f"{name} takes true or false, not {token.shown()}")
    if spec.type is Type.INTEGER:
        if token.kind is _Kind.TEXT and _INTEGER.fullmatch(token.text):
            number = int(token.text)
            if -(2**63) <= number < 2**63:
                return Comparison(name, op, number)
        raise filter_error(token.position, f"{name} takes an integer, not {token.shown()}")
    if spec.type is Type.TIMESTAMP:
        return Comparison(name, op, _timestamp(spec, token))
    text, wildcard = _text_value(token)
    stored = spec.choices.get(text.lower())
    if stored is None or wildcard:
        shown = ", ".join(dict.fromkeys(  # each value's first spelling
            next(k for k, v in spec.choices.items() if v == value)
            for value in spec.choices.values()))
        raise filter_error(token.position, f"{name} takes one of {shown}, not "
                           f"{token.shown()}")
    return Comparison(name, op, stored)


def _timestamp(spec: Field, token: _Token) -> datetime:
    example = '"2026-01-02T15:04:05Z"'
    if token.kind is not _Kind.STRING or not _RFC3339.fullmatch(token.text):
        raise filter_error(token.position, f"{spec.name} takes an RFC 3339 timestamp in "
                           f"double quotes, such as {example}, not {token.shown()}")
    text = token.text.upper().replace("Z", "+00:00")
    whole, dot, rest = text.partition(".")
    if dot:  # Python takes at most 6 digits of a fraction: finer ones are dropped
        digits = re.match(r"[0-9]*", rest)
        assert digits is not None
        text = f"{whole}.{digits.group()[:6].ljust(6, '0')}{rest[digits.end():]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise filter_error(token.position, f"{token.shown()} is no valid time") from None
    if not datetime(1, 1, 2, tzinfo=UTC) <= moment <= datetime(9999, 12, 30, tzinfo=UTC):
        raise filter_error(token.position, f"{token.shown()} is out of range")
    return truncate_ms(moment.astimezone(UTC))


def parse_filter(text: str, schema: Schema) -> Expr | None:
    """The filter's tree, checked against `schema`; None for an empty filter.

    Raises InvalidArgument (REQUEST_INVALID, a field violation on `filter` naming the
    position and the problem) for a filter that does not parse, names a field or
    operator the schema does not have, has a value of the wrong type, or passes
    MAX_FILTER_LENGTH, MAX_COMPARISONS or MAX_DEPTH.
    """
    if len(text) > MAX_FILTER_LENGTH:
        raise filter_error(MAX_FILTER_LENGTH + 1, f"a filter has at most {MAX_FILTER_LENGTH} "
                           "characters")
    if not text.strip():
        return None
    return _Parser(text, schema).parse()
