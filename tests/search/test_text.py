"""Queries, CJK segmentation and snippets (services/search/text.py), and the words users
are found by (services/users/words.py)."""

from __future__ import annotations

import pytest

from services.core.errors import InvalidArgument
from services.core.folding import fold
from services.search.text import (
    MATCH_END,
    MATCH_START,
    SEPARATOR,
    Term,
    clean,
    parse_query,
    segment,
    snippet_parts,
)
from services.users.words import matches, query_words, user_words


def test_queries_have_words_phrases_and_prefixes() -> None:
    assert parse_query('café "two  words" pre* !!') == (
        Term("café"), Term("two words"), Term("pre", prefix=True))
    assert parse_query('"unclosed phrase') == (Term("unclosed phrase"),)
    assert parse_query("🎉 ...") == ()


@pytest.mark.parametrize("query", ["a*", " ".join(f"w{n}" for n in range(17))])
def test_bad_queries_name_the_field(query: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_query(query)
    assert caught.value.field_violations[0].field == "query"


def test_cjk_runs_are_cut_into_characters_and_markers_never_come_from_text() -> None:
    assert segment("東京タワー ok") == SEPARATOR.join("東京タワー") + " ok"
    assert segment("한국어 text") == "한국어 text"  # Hangul has spaces between words
    assert clean(f"a{MATCH_START}b{MATCH_END}c{SEPARATOR}") == "abc"


def test_snippet_parts_merge_runs_and_show_cuts() -> None:
    highlighted = f"go {MATCH_START}東{MATCH_END}{SEPARATOR}{MATCH_START}京{MATCH_END} now"
    assert snippet_parts(highlighted, cut_start=True) == [
        ("…go ", False), ("東京", True), (" now", False)]
    assert snippet_parts("plain") == [("plain", False)]


def test_user_words_fold_and_split() -> None:
    assert fold("Élodie ÇA") == "elodie ca"
    assert user_words("zoe.durand@example", "Zoé Durand-Lévy") == [
        "zoe", "durand", "levy", "zoe.durand@example", "example"]
    assert query_words("  ELO  mar ") == ["elo", "mar"]
    assert matches(["elodie", "martin"], ["elo", "mar"])
    assert not matches(["elodie", "martin"], ["elo", "dup"])
