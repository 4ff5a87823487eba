"""The words a user is found by (SearchUsers): the beginnings of their display name's
words, and of their id and its parts, folded for matching.

Folding: services/core/folding.py (`Élodie` → `elodie`). A display name's words are its
runs of letters and digits; an id is a word of its own, and so are its parts between `.`,
`_`, `-` and `@` (`alice.martin@x` is found by `alice`, `martin` and `x`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from services.core.folding import WORD, fold

_ID_PARTS = re.compile(r"[._@-]+")
MAX_WORDS = 32  # of one user: the first ones of a long display name
WORD_END = "\U0010ffff"  # above every folded character: the end of a prefix range


def user_words(user_id: str, display_name: str) -> list[str]:
    """The folded words a user is found by, without repeats, at most MAX_WORDS."""
    words = WORD.findall(fold(display_name))
    folded_id = fold(user_id)
    words += [folded_id, *(p for p in _ID_PARTS.split(folded_id) if p)]
    unique = list(dict.fromkeys(w for w in words if w))
    return unique[:MAX_WORDS]


def query_words(prefix: str) -> list[str]:
    """The folded words of a SearchUsers prefix (each must begin a word of the user)."""
    return [w for w in fold(prefix).split() if w]


def matches(words: Iterable[str], wanted: Iterable[str]) -> bool:
    """Whether every wanted prefix begins one of `words`."""
    have = list(words)
    return all(any(word.startswith(prefix) for word in have) for prefix in wanted)
