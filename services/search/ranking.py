"""Ranking and snippets for the embedded index, in Python.

FTS5's own bm25() first counts, for every query word, the rows of the whole index that
hold it: a scan of the word's postings that grows with the index (tens of
milliseconds for a common word in a million messages) before a single row is ranked.
The embedded index instead takes the 250 most recent matches (RELEVANCE_CANDIDATES,
the newest first, which FTS5 walks without sorting), and ranks them here by BM25 (k1 1.2,
b 0.75), with each word's document count looked up once and kept for a while
(`DocumentCounts`). Relevance on the embedded index is thus "the best of the latest
matches", which in chat, where recent messages matter most, is what users look for;
Elasticsearch ranks every match.

Words here are what SQLite's unicode61 tokenizer makes of text: runs of letters and
digits, case and accents folded; CJK text arrives segmented (services/search/text.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.core.folding import WORD, fold
from services.search.text import MATCH_END, MATCH_START, SNIPPET_TOKENS, Term, segment

RELEVANCE_CANDIDATES = 250
K1, B = 1.2, 0.75
COUNT_TTL = 600.0  # seconds a word's document count is kept
MAX_COUNTS = 50_000


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # folded
    start: int
    end: int


def tokens(text: str) -> list[Token]:
    """The words of `text` with where they are in it (for snippets)."""
    return [Token(fold(m.group()), m.start(), m.end()) for m in WORD.finditer(text)]


def words(text: str) -> list[str]:
    """The words of `text`, folded (for ranking: no positions, so folded at once)."""
    return WORD.findall(fold(text))


def term_words(term: Term) -> list[str]:
    return words(segment(term.text))


def matched(doc: Sequence[str], terms: Sequence[Term], positions: bool = True
            ) -> tuple[dict[int, int], set[int]]:
    """(how often each term occurs in the words `doc`, by term index; with `positions`,
    the indexes of the words that match)."""
    counts: dict[int, int] = {}
    hits: set[int] = set()
    for number, term in enumerate(terms):
        wanted = term_words(term)
        if not wanted:
            continue
        if not positions and len(wanted) == 1 and not term.prefix:
            if found := doc.count(wanted[0]):  # a plain word: counted in C
                counts[number] = found
            continue
        width = len(wanted)
        for at in range(len(doc) - width + 1):
            if width > 1 and doc[at:at + width - 1] != wanted[:-1]:
                continue
            last = doc[at + width - 1]
            if last == wanted[-1] or (term.prefix and last.startswith(wanted[-1])):
                counts[number] = counts.get(number, 0) + 1
                hits.update(range(at, at + width))
    return counts, hits


class DocumentCounts:
    """How many documents hold a word, each looked up once per COUNT_TTL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._known: dict[str, tuple[int, float]] = {}

    def get(self, word: str, lookup: Callable[[str], int]) -> int:
        now = self._clock()
        known = self._known.get(word)
        if known is not None and now - known[1] < COUNT_TTL:
            return known[0]
        if len(self._known) >= MAX_COUNTS:
            self._known.clear()
        count = lookup(word)
        self._known[word] = (count, now)
        return count


def bm25(length: int, counts: dict[int, int], terms: Sequence[Term], documents: int,
         average_length: float, holding: Callable[[str], int]) -> float:
    """BM25 of a document whose term frequencies are `counts`."""
    score = 0.0
    length = max(length, 1)
    for number, frequency in counts.items():
        wanted = term_words(terms[number])
        # A phrase is as rare as its rarest word; a prefix counts as its stem.
        df = min(holding(word) for word in wanted) if wanted else documents
        idf = math.log(1 + (documents - df + 0.5) / (df + 0.5))
        score += idf * frequency * (K1 + 1) / (
            frequency + K1 * (1 - B + B * length / max(average_length, 1.0)))
    return score


def highlight(text: str, doc: Sequence[Token], hits: set[int]) -> tuple[str, bool, bool]:
    """The part of `text` around its first match (SNIPPET_TOKENS words), with the
    matched words between MATCH_START and MATCH_END; whether it was cut at the start,
    at the end."""
    if not doc:
        return text, False, False
    first = min(hits) if hits else 0
    start = max(0, min(first - SNIPPET_TOKENS // 4, len(doc) - SNIPPET_TOKENS))
    end = min(len(doc), start + SNIPPET_TOKENS)
    begin_at = 0 if start == 0 else doc[start].start
    end_at = len(text) if end == len(doc) else doc[end - 1].end
    out, at = [], begin_at
    for index in range(start, end):
        if index in hits:
            token = doc[index]
            out += [text[at:token.start], MATCH_START, text[token.start:token.end], MATCH_END]
            at = token.end
    out.append(text[at:end_at])
    return "".join(out), start > 0, end < len(doc)
