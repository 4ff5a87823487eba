"""A reader of Grafana Alloy's configuration syntax, enough to check deploy/loki/config.alloy
where no Alloy binary installs (none is on PyPI, npm or Debian).

It follows the syntax reference: a body of attributes (`name = expression`) and blocks
(`a.b "label" { body }`); expressions of strings, numbers, booleans, null, lists,
objects, references (`loki.write.default.receiver`) and calls (`sys.env("X")`); `//`
and `/* */` comments; and the rule that a list or object spread over lines ends each
line's element with a comma. Operators are not read (the config uses none): meeting one
is a SyntaxError, as anything else unexpected is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+)
  | (?P<newline>\n)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:\\.|[^"\\\n])*")
  | (?P<raw>`[^`]*`)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\](),=.])
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    line: int


@dataclass(frozen=True)
class Ref:
    """A reference to another component's export, or to a stdlib value."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class Call:
    function: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass
class Block:
    name: str  # dotted: "loki.process", "stage.json"
    label: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def children(self, name: str) -> list[Block]:
        return [block for block in self.blocks if block.name == name]


def tokens(text: str) -> list[Token]:
    found: list[Token] = []
    line, position = 1, 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise SyntaxError(f"line {line}: unexpected {text[position:position + 10]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind not in {"space", "newline", "comment"}:
            found.append(Token(kind, match.group(), line))
        line += match.group().count("\n")
        position = match.end()
    found.append(Token("end", "", line))
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self._tokens = tokens(text)
        self._at = 0

    def _peek(self, ahead: int = 0) -> Token:
        return self._tokens[min(self._at + ahead, len(self._tokens) - 1)]

    def _take(self, kind: str, text: str | None = None) -> Token:
        token = self._peek()
        if token.kind != kind or (text is not None and token.text != text):
            wanted = text or kind
            raise SyntaxError(f"line {token.line}: expected {wanted}, found {token.text!r}")
        self._at += 1
        return token

    def _is(self, text: str) -> bool:
        token = self._peek()
        return token.kind == "punct" and token.text == text

    def body(self, closing: str | None) -> Block:
        block = Block("", None)
        while not (self._peek().kind == "end" if closing is None else self._is(closing)):
            first = self._take("ident")
            if self._is("="):
                self._at += 1
                if first.text in block.attributes:
                    raise SyntaxError(f"line {first.line}: {first.text} set twice")
                block.attributes[first.text] = self.expression()
                self._end_of_statement(first.line)
                continue
            name = [first.text]
            while self._is("."):
                self._at += 1
                name.append(self._take("ident").text)
            label = None
            if self._peek().kind == "string":
                label = json.loads(self._take("string").text)
            start = self._take("punct", "{")
            inner = self.body("}")
            self._take("punct", "}")
            inner.name, inner.label = ".".join(name), label
            block.blocks.append(inner)
            self._end_of_statement(start.line)
        return block

    def _end_of_statement(self, line: int) -> None:
        """Statements end at a line's end (or at the closing brace of their block)."""
        following = self._peek()
        previous = self._tokens[self._at - 1]
        if following.kind != "end" and not self._is("}") and following.line == previous.line:
            raise SyntaxError(f"line {line}: two statements on one line")

    def expression(self) -> Any:
        token = self._peek()
        if token.kind == "string":
            self._at += 1
            return json.loads(token.text)
        if token.kind == "raw":
            self._at += 1
            return token.text[1:-1]
        if token.kind == "number":
            self._at += 1
            return float(token.text) if "." in token.text or "e" in token.text.lower() \
                else int(token.text)
        if self._is("["):
            return self._sequence("[", "]", self.expression)
        if self._is("{"):
            pairs = self._sequence("{", "}", self._pair)
            return dict(pairs)
        if token.kind == "ident":
            self._at += 1
            if token.text in {"true", "false"}:
                return token.text == "true"
            if token.text == "null":
                return None
            path = [token.text]
            while self._is("."):
                self._at += 1
                path.append(self._take("ident").text)
            if self._is("("):
                return Call(tuple(path), tuple(self._sequence("(", ")", self.expression)))
            return Ref(tuple(path))
        raise SyntaxError(f"line {token.line}: unexpected {token.text!r} in an expression")

    def _pair(self) -> tuple[str, Any]:
        key = self._peek()
        if key.kind == "string":
            self._at += 1
            name = json.loads(key.text)
        else:
            name = self._take("ident").text
        self._take("punct", "=")
        return name, self.expression()

    def _sequence(self, opening: str, closing: str, element: Callable[[], Any]) -> list[Any]:
        self._take("punct", opening)
        items: list[Any] = []
        while not self._is(closing):
            items.append(element())
            last = self._tokens[self._at - 1]
            if self._is(","):
                self._at += 1
                continue
            end = self._peek()
            if not self._is(closing):
                raise SyntaxError(f"line {end.line}: expected , or {closing}")
            if end.line != last.line:
                raise SyntaxError(f"line {last.line}: missing comma after the last element "
                                  "of a list or object spread over lines")
        self._take("punct", closing)
        return items


def parse(text: str) -> Block:
    """The file's body (a Block without name). Raises SyntaxError."""
    return _Parser(text).body(None)


def walk(block: Block) -> Iterator[Block]:
    for child in block.blocks:
        yield child
        yield from walk(child)


def references(value: Any) -> Iterator[Ref]:
    """Every reference in an expression (in calls, lists and objects too)."""
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, Call):
        for arg in value.args:
            yield from references(arg)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)


def evaluate(value: Any, env: Mapping[str, str]) -> Any:
    """A constant expression's value, with `sys.env` reading `env` (the stdlib functions
    the config uses: sys.env and coalesce)."""
    if isinstance(value, Call):
        args = [evaluate(arg, env) for arg in value.args]
        if value.function == ("sys", "env"):
            return env.get(args[0], "")
        if value.function == ("coalesce",):
            return next((arg for arg in args if arg not in ("", None, [], {})), args[-1])
        raise ValueError(f"unknown function {'.'.join(value.function)}")
    if isinstance(value, list):
        return [evaluate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: evaluate(item, env) for key, item in value.items()}
    if isinstance(value, Ref):
        raise ValueError(f"{'.'.join(value.path)} is no constant")
    return value
