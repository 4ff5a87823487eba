"""A push's words (services/push/render.py): the built-in English wording of each kind
(a collapsed burst of messages titled with its count; a call urgent and short-lived);
the app's template chosen by the device's exact language, then its base language, then
the app's default language, then the one for every language, else the built-in one;
placeholders filled once (unknown braces and values that look like placeholders kept as
written); the message's text (handed over at sending, never in the push) on one short
line; an end-to-end encrypted message told of without its text; a clear silent and
empty; the ids the device needs in the data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.push.models import (
    CALL,
    CLEAR,
    MENTION,
    MESSAGE,
    REACTION,
    THREAD_REPLY,
    Push,
    PushConfig,
    Template,
)
from services.push.providers import Notification
from services.push.render import (
    ENCRYPTED_TEXT,
    QUOTED_CHARACTERS,
    TEXT_CHARACTERS,
    render,
    shortened,
    template_for,
)

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
MESSAGE_NAME = "apps/alpha/conversations/g1/messages/42"
CONVERSATION_NAME = "apps/alpha/conversations/g1"
TEXT = "See you at 5"


def push(kind: str = MESSAGE, count: int = 1, **content: str) -> Push:
    """A push of `kind`; a content value "-" leaves that key out."""
    values = {"sender": "Alice", "conversation": "Team", "message": MESSAGE_NAME,
              "sequence": "42", **content}
    group = "call.g1" if kind == CALL else "g1"
    return Push("p1", "alpha", "bob", "d1", "apns", kind, "g1", group, 7,
                {k: v for k, v in values.items() if v != "-"}, T0, T0, count=count,
                sequence=42)


def config(*templates: Template, default_locale: str = "") -> PushConfig:
    return PushConfig("alpha", templates=templates, default_locale=default_locale)


@pytest.mark.parametrize(("kind", "emoji", "title", "body"), [
    (MESSAGE, "-", "Team", f"Alice: {TEXT}"),
    (MENTION, "-", "Alice mentioned you in Team", TEXT),
    (THREAD_REPLY, "-", "Alice replied in Team", TEXT),
    (REACTION, "👍", "Alice reacted 👍", TEXT),
], ids=["message", "mention", "thread-reply", "reaction"])
def test_built_in_english_wording(kind: str, emoji: str, title: str, body: str) -> None:
    told = render(push(kind, emoji=emoji), None, "en", TEXT)
    assert (told.title, told.body) == (title, body)
    assert not told.silent and not told.urgent and told.ttl_seconds == 86_400
    assert told.badge is None
    assert (told.collapse_key, told.thread_id) == ("g1", "g1")
    assert told.data == {"type": "message", "kind": kind, "conversation": CONVERSATION_NAME,
                         "message": MESSAGE_NAME, "sequence": "42"}


def test_a_call_rings_urgently_and_briefly() -> None:
    call_name = "apps/alpha/conversations/g1/calls/k1"
    told = render(push(CALL, message="-", sequence="-", call=call_name, media="video"),
                  None, "en")
    assert told == Notification(
        "Alice", "Incoming video call",
        {"type": "call", "kind": CALL, "conversation": CONVERSATION_NAME, "call": call_name},
        collapse_key="call.g1", thread_id="call.g1", urgent=True, ttl_seconds=60)
    assert render(push(CALL, call=call_name), None, "en").body == "Incoming voice call"


def test_a_collapsed_burst_of_messages_says_how_many() -> None:
    told = render(push(MESSAGE, count=3), None, "en", "the latest")
    assert (told.title, told.body) == ("Team (3 new messages)", "Alice: the latest")
    # Only messages are retitled: other kinds keep their wording.
    assert render(push(MENTION, count=2), None, "en").title == "Alice mentioned you in Team"
    # An app's template says it its own way.
    mine = config(Template(MESSAGE, "", "{count} x {conversation}", "{text}"))
    assert render(push(MESSAGE, count=3), mine, "en").title == "3 x Team"
    assert render(push(MESSAGE), mine, "en").title == "1 x Team"


LOCALIZED = (Template(MESSAGE, "pt-BR", "pt-BR {conversation}", "{text}"),
             Template(MESSAGE, "pt", "pt {conversation}", "{text}"),
             Template(MESSAGE, "de", "de {conversation}", "{text}"),
             Template(MESSAGE, "", "any {conversation}", "{text}"),
             Template(MENTION, "fr", "fr mention", "{text}"))


@pytest.mark.parametrize(("locale", "default_locale", "expected"), [
    ("pt-BR", "de", "pt-BR"),  # the exact language
    ("PT-br", "de", "pt-BR"),  # in any case
    ("pt-PT", "de", "pt"),  # then its base
    ("pt", "de", "pt"),
    ("fr-CA", "de", "de"),  # then the app's default
    ("fr-CA", "de-AT", "de"),  # the default's base
    ("fr-CA", "it", ""),  # then the one for every language
    ("", "", ""),
], ids=["exact", "case", "base", "bare", "default", "default-base", "every", "none"])
def test_the_template_of_the_nearest_language(locale: str, default_locale: str,
                                              expected: str) -> None:
    found = template_for(LOCALIZED, MESSAGE, locale, default_locale)
    assert found is not None and found.locale == expected
    told = render(push(), config(*LOCALIZED, default_locale=default_locale), locale, TEXT)
    assert (told.title, told.body) == (f"{expected or 'any'} Team", TEXT)


def test_without_a_template_of_the_kind_the_built_in_wording() -> None:
    assert template_for(LOCALIZED, MENTION, "de", "de") is None  # only the fr mention
    assert template_for(LOCALIZED, REACTION, "pt-BR", "") is None
    assert template_for((), MESSAGE, "en", "en") is None
    mention = template_for(LOCALIZED, MENTION, "fr-FR", "")
    assert mention is not None and mention.title == "fr mention"
    told = render(push(MENTION), config(*LOCALIZED, default_locale="de"), "de")
    assert told.title == "Alice mentioned you in Team"
    assert render(push(REACTION, emoji="🎉"), config(*LOCALIZED), "pt").title == (
        "Alice reacted 🎉")


def test_placeholders_are_filled_once_and_unknown_braces_kept() -> None:
    template = Template(MESSAGE, "", "{sender} in {conversation} {unknown} {} {{text}}",
                        "{text} ({count}) {emoji}{call} {Sender} {text")
    told = render(push(), config(template), "en", TEXT)
    assert told.title == f"Alice in Team {{unknown}} {{}} {{{TEXT}}}"
    assert told.body == f"{TEXT} (1) voice {{Sender}} {{text"
    # Values are not read as placeholders in turn.
    sneaky = render(push(sender="{text}"), config(template), "en", "{sender} {count}")
    assert sneaky.title.startswith("{text} in Team")
    assert sneaky.body.startswith("{sender} {count} (1)")
    # A push without the text (none handed over) says nothing of it.
    assert render(push(), None, "en").body == "Alice: "


def test_the_text_is_one_short_line() -> None:
    long = "Lorem  ipsum\n\ndolor sit amet, " * 20
    told = render(push(), None, "en", long)
    body = told.body.removeprefix("Alice: ")
    assert len(body) == TEXT_CHARACTERS and body.endswith("…")
    assert body.startswith("Lorem ipsum dolor sit amet, Lorem") and "\n" not in body
    # A reaction quotes less of the message.
    quoted = render(push(REACTION, emoji="👍"), None, "en", long).body
    assert len(quoted) <= QUOTED_CHARACTERS and quoted.endswith("…")
    assert render(push(MENTION), None, "en", "  short\ttext \n").body == "short text"


def test_an_encrypted_message_is_told_without_its_text() -> None:
    secret = "the vault code is 1234"
    built_in = render(push(encrypted="1"), None, "en", secret)
    assert (built_in.title, built_in.body) == ("Team", f"Alice: {ENCRYPTED_TEXT}")
    assert ENCRYPTED_TEXT == "New message"
    mine = config(Template(MESSAGE, "", "{text}", "{sender}: {text}"))
    templated = render(push(encrypted="1"), mine, "en", secret)
    assert (templated.title, templated.body) == ("New message", "Alice: New message")
    for told in (built_in, templated):
        shown = [told.title, told.body, *told.data.values(), *told.data.keys()]
        assert not any("vault" in part for part in shown)
        assert told.data["message"] == MESSAGE_NAME  # to fetch and decrypt it
    assert render(push(MENTION, encrypted="1"), None, "en").body == ENCRYPTED_TEXT


def test_a_clear_is_silent_and_empty() -> None:
    words = config(Template(CLEAR, "", "cleared", "cleared"))
    for told in (render(push(CLEAR, message="-", sequence="17"), None, "en", TEXT),
                 render(push(CLEAR, message="-", sequence="17"), words, "en", TEXT)):
        assert told == Notification(
            "", "", {"type": "clear", "kind": CLEAR, "conversation": CONVERSATION_NAME,
                     "sequence": "17"},
            collapse_key="g1", thread_id="g1", silent=True, ttl_seconds=3600)


def test_the_data_carries_only_the_ids_there_are() -> None:
    told = render(push(message="", sequence="", call=""), None, "en")
    assert told.data == {"type": "message", "kind": MESSAGE,
                         "conversation": CONVERSATION_NAME}
    assert all(isinstance(v, str) for v in render(push(), None, "en").data.values())


def test_shortened_text_is_one_line_within_the_limit() -> None:
    assert shortened("  Hello\n\n  there\tyou \r\n ") == "Hello there you"
    assert shortened("") == ""
    exact = "x" * TEXT_CHARACTERS
    assert shortened(exact) == exact
    cut = shortened("y" * (TEXT_CHARACTERS + 1))
    assert cut == "y" * (TEXT_CHARACTERS - 1) + "…" and len(cut) == TEXT_CHARACTERS
    assert shortened("abcdef", 5) == "abcd…"
    assert shortened("abc defgh", 5) == "abc…"  # no space before the ellipsis
    assert shortened("a  b  c", 5) == "a b c"  # flattened first: fits
    long = shortened("word " * 100, 60)
    assert len(long) <= 60 and long.endswith("…") and "\n" not in long
