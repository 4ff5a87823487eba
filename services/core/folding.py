"""Folding text for matching, the way SQLite's unicode61 tokenizer with
`remove_diacritics 2` sees it: compatibility decomposition, combining marks dropped, case
folded (`Élodie` → `elodie`, full-width letters → ASCII); words are runs of letters and
digits. Shared by user search (services/users/words.py) and message ranking
(services/search/ranking.py)."""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"[^\W_]+")  # a word: letters and digits, `_` separates


def fold(text: str) -> str:
    if text.isascii():  # the common case, without decomposing
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
