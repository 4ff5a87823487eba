"""Matching text against content filters: words (Unicode-folded), RE2 patterns, links.

Words are matched whole, after folding both the list and the text the same way:
NFKC, case folding, accents dropped, look-alike letters of other scripts mapped to the
Latin letter they imitate (Unicode's confusables data), common stand-ins (`0` for `o`,
`@` for `a`…) replaced, invisible characters removed. Runs of one letter match the
listed word's run when as long, or when 3 or more long (`baaad` is `bad`; `good` is not
`god`). Letters spaced out one by one (`b a d`, `b.a.d`) are read as one word.

Patterns run on RE2, whose matching time is linear in the text whatever the pattern;
a pattern it cannot compile (backreferences, lookaround, too large) is refused when
saved (`compile_pattern`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import resources
from itertools import groupby
from operator import eq
from typing import Any, NamedTuple

import re2

MAX_PHRASE_WORDS = 4
PATTERN_MEMORY = 1 << 20  # bytes RE2 may use for one compiled pattern
MASK = "***"

# Stand-ins for letters, applied after case folding and confusables.
_STAND_INS = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
              "$": "s", "!": "i", "|": "l"}
# Invisible characters people slip into words.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
# A word: letters, digits, combining marks, stand-ins (`!` and `|` only inside a word)
# and invisible characters.
_PART = "(?:[^\\W_]|[@$\u0300-\u036f\u00ad\u200b-\u200d\u2060\ufeff])+"
_TOKEN = re.compile(f"{_PART}(?:[!|]+{_PART})*")
# Gaps between the letters of a spaced-out word: one or two separators.
_SPACER = re.compile(r"[\s._*\-/\\,+~]{1,2}")
_LINK = re.compile(
    r"(?i)(?:\bhttps?://|\bwww\.|(?<![\w@.-])(?=[\w.-]+\.(?:com|net|org|io|co|me|app|dev|"
    r"info|biz|xyz|ru|cn|tk|ly|gg|to|us|uk|de|fr|link|click|site|online|shop|top)\b))"
    r"((?:[\w-]+\.)+[\w-]+)")


class Span(NamedTuple):  # a tuple: made for every word of every message
    start: int
    end: int


class Folding:
    """How words are folded before they are compared. Built once per process."""

    def __init__(self, letters: Mapping[str, str]) -> None:
        self._letters = {ord(k): v for k, v in letters.items()} | _INVISIBLE

    @classmethod
    def load(cls) -> Folding:
        """From Unicode's confusables data: each character confused with an ASCII letter
        or digit maps to it (the digits then go through the stand-ins)."""
        raw = resources.files("confusable_homoglyphs").joinpath("confusables.json")
        table: dict[str, list[dict[str, str]]] = json.loads(raw.read_text("utf-8"))
        letters: dict[str, str] = {}
        for target, glyphs in table.items():
            if len(target) == 1 and target.isascii() and target.isalnum():
                for glyph in glyphs:
                    if len(glyph["c"]) == 1 and not glyph["c"].isascii():
                        letters.setdefault(glyph["c"], target.lower())
        letters.update(_STAND_INS)
        return cls(letters)

    def fold(self, word: str) -> str:
        if word.isascii():  # NFKC, NFD and case folding come down to lower()
            return word.lower().translate(self._letters)
        text = unicodedata.normalize("NFKC", word).casefold()
        text = "".join(c for c in unicodedata.normalize("NFD", text)
                       if not unicodedata.combining(c))
        return text.translate(self._letters)


def _runs(word: str) -> tuple[tuple[str, int], ...]:
    return tuple((letter, len(list(run))) for letter, run in groupby(word))


def _skeleton(word: str) -> str:
    """The word with each run of one letter made one letter (`baaad`, `bad`: `bad`)."""
    if not any(map(eq, word, word[1:])):  # most words: no run to shorten
        return word
    return "".join(letter for letter, _ in groupby(word))


def _runs_match(listed: tuple[tuple[str, int], ...], seen: tuple[tuple[str, int], ...]
                ) -> bool:
    return len(listed) == len(seen) and all(
        a == b and (m == n or n >= 3) for (a, m), (b, n) in zip(listed, seen, strict=True))


class Token(NamedTuple):
    folded: str
    span: Span
    skeleton: str  # of `folded`


class WordList:
    """Whole words and phrases to find in text."""

    def __init__(self, words: Iterable[str], folding: Folding) -> None:
        self._folding = folding
        # skeleton of each word of the phrase → the listed runs of each word
        self._phrases: dict[tuple[str, ...], list[tuple[tuple[tuple[str, int], ...], ...]]] = {}
        self._first: set[str] = set()  # the skeletons phrases start with: the fast "no"
        self._longest = 1
        for entry in words:
            folded = [folding.fold(w) for w in _TOKEN.findall(entry)][:MAX_PHRASE_WORDS]
            if not folded:
                continue
            key = tuple(_skeleton(w) for w in folded)
            self._phrases.setdefault(key, []).append(tuple(_runs(w) for w in folded))
            self._first.add(key[0])
            self._longest = max(self._longest, len(folded))

    def __bool__(self) -> bool:
        return bool(self._phrases)

    def find(self, text: str, tokens: Sequence[Token], joined: Sequence[Token]
             ) -> Iterator[Span]:
        first = self._first
        for start, token in enumerate(tokens):
            if token.skeleton not in first:
                continue
            for count in range(1, min(self._longest, len(tokens) - start) + 1):
                if self._matches(tokens[start:start + count]):
                    yield Span(token.span.start, tokens[start + count - 1].span.end)
        for token in joined:
            if token.skeleton in first and self._matches((token,)):
                yield token.span

    def _matches(self, tokens: Sequence[Token]) -> bool:
        listed = self._phrases.get(tuple(t.skeleton for t in tokens))
        if listed is None:
            return False
        seen = tuple(_runs(t.folded) for t in tokens)
        return any(all(_runs_match(a, b) for a, b in zip(phrase, seen, strict=True))
                   for phrase in listed)


def tokens(text: str, folding: Folding) -> tuple[list[Token], list[Token]]:
    """The words of `text`, folded, and the words spelled out one letter at a time."""
    found = []
    for match in _TOKEN.finditer(text):
        folded = folding.fold(match.group())
        found.append(Token(folded, Span(match.start(), match.end()), _skeleton(folded)))
    joined: list[Token] = []
    if sum(len(t.folded) == 1 for t in found) < 2:
        return found, joined  # no word spelled out
    run: list[Token] = []
    for token in [*found, None]:
        if (token is not None and len(token.folded) == 1 and (
                not run or _SPACER.fullmatch(text, run[-1].span.end, token.span.start))):
            run.append(token)
            continue
        if len(run) >= 2:
            folded = "".join(t.folded for t in run)
            joined.append(Token(folded, Span(run[0].span.start, run[-1].span.end),
                                _skeleton(folded)))
        run = [token] if token is not None and len(token.folded) == 1 else []
    return found, joined


class PatternError(ValueError):
    """RE2 cannot compile the pattern; the message says why."""


def compile_pattern(pattern: str) -> Any:  # re2._Regexp (the bindings have no types)
    options = re2.Options()
    options.max_mem = PATTERN_MEMORY
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "cannot be compiled"
        raise PatternError(reason.decode() if isinstance(reason, bytes) else str(reason)
                           ) from None


def host_of(link: str) -> str:
    host = link.lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def under(host: str, domains: Iterable[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def links(text: str) -> Iterator[tuple[str, Span]]:
    """The host of each link in `text`, with the span of the host."""
    for match in _LINK.finditer(text):
        yield host_of(match.group(1)), Span(match.start(1), match.end(1))


def has_link(text: str) -> bool:
    return _LINK.search(text) is not None


def mask(text: str, spans: Iterable[Span]) -> str:
    """`text` with each span (merged where they overlap) replaced by MASK."""
    merged: list[list[int]] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if merged and span.start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span.end)
        else:
            merged.append([span.start, span.end])
    out, at = [], 0
    for start, end in merged:
        out += [text[at:start], MASK]
        at = end
    return "".join([*out, text[at:]])
