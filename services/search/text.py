"""Text for the search indexes: what a query means, how CJK text is cut into words,
and how an engine's highlighted text becomes snippet parts.

Queries (SearchService's contract): words must all occur, `"quoted words"` must occur
together in order, `word*` matches the words it begins. At most MAX_QUERY_TERMS items.

Chinese and Japanese are written without spaces, so a tokenizer that splits on spaces
(SQLite's unicode61) would see a whole sentence as one word. Before indexing, and in
queries, the embedded index puts a zero-width space (a separator to unicode61, and
invisible if it ever showed) between the characters of Han, Hiragana and Katakana
runs: each character is a word, and a query's CJK word becomes a phrase of its
characters, which finds it anywhere in a sentence. (Elasticsearch's standard tokenizer
does the same for Han and Hiragana by Unicode's word-boundary rules, UAX #29.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.core.errors import invalid_field

MAX_QUERY_TERMS = 16
MIN_PREFIX = 2  # characters before a `*`
SNIPPET_TOKENS = 24  # words around the matches in a snippet
ELLIPSIS = "…"

# Highlight markers: private-use characters that no engine treats as a word character
# and that are removed from indexed text, so they can only come from the highlighter.
MATCH_START = "\ue000"
MATCH_END = "\ue001"
SEPARATOR = "\u200b"  # zero-width space, between CJK characters (embedded index only)

_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f])"
                  r"(?=[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f])")
_MARKERS = re.compile(f"[{MATCH_START}{MATCH_END}{SEPARATOR}]")
_ITEM = re.compile(r'"([^"]*)"?|(\S+)')
_WORD_CHARACTERS = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Term:
    """One item of a query: a word, a quoted phrase, or a prefix (`text` without `*`)."""

    text: str
    prefix: bool = False


def clean(text: str) -> str:
    """Indexed text: without the characters the highlighter uses as markers."""
    return _MARKERS.sub("", text)


def segment(text: str) -> str:
    """`text` with a SEPARATOR between adjacent CJK characters (embedded index)."""
    return _CJK.sub(r"\1" + SEPARATOR, text)


def parse_query(query: str, field: str = "query") -> tuple[Term, ...]:
    """The items of a query; INVALID_ARGUMENT naming `field` for too many items or a
    too short prefix. Items without any word character (`!!`, an emoji) are left
    out: nothing indexes them."""
    terms: list[Term] = []
    for match in _ITEM.finditer(clean(query)):
        phrase, word = match.group(1), match.group(2)
        if phrase is not None:
            text, prefix = " ".join(phrase.split()), False
        else:
            prefix = word.endswith("*")
            text = word.rstrip("*")
            if prefix and len(text) < MIN_PREFIX:
                raise invalid_field(field, f"{word!r}: a prefix needs at least {MIN_PREFIX} "
                                           "characters before the *")
        if not _WORD_CHARACTERS.search(text):
            continue
        terms.append(Term(text, prefix))
    if len(terms) > MAX_QUERY_TERMS:
        raise invalid_field(field, f"{len(terms)} words or phrases; at most "
                                   f"{MAX_QUERY_TERMS}")
    return tuple(terms)


def snippet_parts(highlighted: str, cut_start: bool = False, cut_end: bool = False
                  ) -> list[tuple[str, bool]]:
    """(text, matched) runs of an engine's highlighted text (MATCH_START … MATCH_END
    around matches; SEPARATORs removed), with ELLIPSIS where it was cut."""
    parts: list[tuple[str, bool]] = []

    def add(text: str, matched: bool) -> None:
        if not text:
            return
        if parts and parts[-1][1] == matched:
            parts[-1] = (parts[-1][0] + text, matched)
        else:
            parts.append((text, matched))

    if cut_start:
        add(ELLIPSIS, False)
    for index, chunk in enumerate(highlighted.replace(SEPARATOR, "").split(MATCH_START)):
        if index == 0:
            add(chunk, False)
            continue
        matched, _, rest = chunk.partition(MATCH_END)
        add(matched, True)
        add(rest, False)
    if cut_end:
        add(ELLIPSIS, False)
    return parts
