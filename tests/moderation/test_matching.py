"""Content filter matching: Unicode tricks that must not get around a word list, words
that must not be caught, RE2 patterns (and the ones refused at save), links."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from services.moderation.matching import (
    Folding,
    PatternError,
    WordList,
    compile_pattern,
    links,
    mask,
    tokens,
)
from services.moderation.models import ContentFilter, FilterAction
from services.moderation.screening import CompiledFilter, Screen

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def folding() -> Folding:
    return Folding.load()


def found(folding: Folding, listed: list[str], text: str) -> list[str]:
    words = WordList(listed, folding)
    return [text[s.start:s.end] for s in words.find(text, *tokens(text, folding))]


@pytest.mark.parametrize("text", [
    "you are bad", "BAD!", "Bád", "b\u0301ad",  # case, accents, combining marks
    "b\u0430d",  # Cyrillic a
    "\uff42\uff41\uff44", "\U0001d41b\U0001d41a\U0001d41d",  # fullwidth, mathematical bold
    "b4d", "b@d", "$h!t",  # stand-ins
    "baaaad", "bbbaaaddd",  # stretched
    "b a d", "b.a.d", "b-a-d", "b_a_d", "b. a. d",  # spaced out
    "b\u200bad", "ba\u00add",  # invisible characters
])
def test_tricks_do_not_get_a_word_past_the_list(folding: Folding, text: str) -> None:
    assert found(folding, ["bad", "shit"], text), text


@pytest.mark.parametrize("text", [
    "badge", "abad", "bead", "bad1",  # other words
    "baad",  # a doubled letter is another word (good is not god)
    "b a",
])
def test_other_words_are_not_caught(folding: Folding, text: str) -> None:
    assert found(folding, ["bad"], text) == [], text


def test_doubled_letters_of_a_listed_word_are_kept(folding: Folding) -> None:
    assert found(folding, ["good"], "so gooood") == ["gooood"]
    assert found(folding, ["good"], "god") == []
    assert found(folding, ["god"], "good") == []


def test_phrases_match_as_consecutive_words(folding: Folding) -> None:
    assert found(folding, ["go away now"], "please GO   away, now!") == ["GO   away, now"]
    assert found(folding, ["go away now"], "go now away") == []


def test_masking_replaces_each_match(folding: Folding) -> None:
    text = "a bad, BAD b a d day"
    words = WordList(["bad"], folding)
    assert mask(text, words.find(text, *tokens(text, folding))) == "a ***, *** *** day"


def test_re2_refuses_what_could_stall_and_runs_the_rest_in_linear_time() -> None:
    for bomb in [r"(a*)*\1", r"(?=a)a", r"((a{100}){100}){100}", "(", "[z-a]"]:
        with pytest.raises(PatternError):
            compile_pattern(bomb)
    nested = compile_pattern(r"(a+)+$")  # exponential under a backtracking engine
    started = time.perf_counter()
    assert nested.search("a" * 50_000 + "!") is None
    assert time.perf_counter() - started < 1.0  # microseconds on RE2; ages elsewhere


def test_links_and_their_hosts() -> None:
    text = ("see https://Evil.example.COM/x?y, www.shop.io, mail bob@corp.com, "
            "a.b, spam.xyz and e.g. this")
    assert [host for host, _ in links(text)] == ["evil.example.com", "shop.io", "spam.xyz"]


def content_filter(filter_id: str, action: FilterAction, **rules: tuple[str, ...]
                   ) -> ContentFilter:
    return ContentFilter("alpha", filter_id, "", rules.get("words", ()),
                         rules.get("patterns", ()), rules.get("blocked", ()),
                         rules.get("allowed", ()), action, frozenset(rules.get("kinds", ())),
                         T0, T0)


def screen(folding: Folding, *filters: ContentFilter) -> Screen:
    return Screen({f.filter_id: CompiledFilter(f, folding) for f in filters}, folding)


def test_a_block_wins_over_a_flag_over_a_mask(folding: Folding) -> None:
    s = screen(folding,
               content_filter("mask", FilterAction.MASK, words=("darn", "heck")),
               content_filter("flag", FilterAction.FLAG, patterns=(r"(?i)\bfree money\b",)),
               content_filter("links", FilterAction.BLOCK, blocked=("evil.com",)),
               content_filter("only", FilterAction.BLOCK, allowed=("ok.io",),
                              kinds=("channel",)))
    assert s.check("group", "darn it, heck").text == "*** it, ***"
    flagged = s.check("group", "darn, FREE MONEY")
    assert (flagged.text, flagged.flagged_by, flagged.blocked_by) == ("***, FREE MONEY",
                                                                      ("flag",), "")
    assert s.check("group", "darn https://www.evil.com/x").blocked_by == "links"
    assert s.check("group", "see https://other.net").blocked_by == ""  # channels only
    assert s.check("channel", "see https://other.net").blocked_by == "only"
    assert s.check("channel", "see https://docs.ok.io/x").blocked_by == ""
    assert s.check("group", "").text == ""
