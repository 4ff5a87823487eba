"""A push's words: the app's template for its kind and the device's language (else the
built-in English one), with the push's values put in.

A push carries the values, not the words (`Push.content`: sender, conversation, emoji,
call; its count), so a burst collapsed into one push is worded once, when it is sent,
with its count. The message's text is not in the push (it would lie in clear beside the
sealed message): the sender reads the message when it sends and hands its text here.
An end-to-end encrypted conversation's message has no text on the server: its push
says only that there is a new message, with the ids the device needs to fetch and
decrypt it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

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

TEXT_CHARACTERS = 150  # of a message's text in a notification
QUOTED_CHARACTERS = 60  # of the message a reaction is to
PLACEHOLDER = re.compile(r"\{(sender|conversation|text|count|emoji|call)\}")
ENCRYPTED_TEXT = "New message"

# kind → (title, body); a collapsed burst's message title says how many.
BUILT_IN: Mapping[str, tuple[str, str]] = {
    MESSAGE: ("{conversation}", "{sender}: {text}"),
    MENTION: ("{sender} mentioned you in {conversation}", "{text}"),
    THREAD_REPLY: ("{sender} replied in {conversation}", "{text}"),
    REACTION: ("{sender} reacted {emoji}", "{text}"),
    CALL: ("{sender}", "Incoming {call} call"),
}
MANY_MESSAGES_TITLE = "{conversation} ({count} new messages)"


def shortened(text: str, limit: int = TEXT_CHARACTERS) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis when cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


def template_for(templates: Sequence[Template], kind: str, locale: str, default_locale: str
                 ) -> Template | None:
    """The app's template of `kind` for `locale`: the exact language, then its base
    (`pt` for `pt-BR`), then the app's default language, then the one for every
    language; None if the app has none."""
    wanted = [locale, locale.partition("-")[0], default_locale,
              default_locale.partition("-")[0], ""]
    by_locale = {t.locale.lower(): t for t in templates if t.kind == kind}
    for candidate in wanted:
        found = by_locale.get(candidate.lower())
        if found is not None:
            return found
    return None


def fill(pattern: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), pattern)


def render(push: Push, config: PushConfig | None, locale: str, text: str = ""
           ) -> Notification:
    """The notification of `push` for a device in `locale`; `text` is the message's."""
    content = push.content
    data = {"type": push.kind if push.kind in (CALL, CLEAR) else "message", "kind": push.kind,
            "conversation": f"apps/{push.app_id}/conversations/{push.conversation_id}"}
    for key in ("message", "sequence", "call"):
        if content.get(key):
            data[key] = content[key]
    collapse = push.group
    if push.kind == CLEAR:
        return Notification("", "", data, collapse_key=collapse, thread_id=collapse,
                            silent=True, ttl_seconds=3600)
    quoted = QUOTED_CHARACTERS if push.kind == REACTION else TEXT_CHARACTERS
    values = {"sender": content.get("sender", ""),
              "conversation": content.get("conversation", ""),
              "text": shortened(text, quoted), "emoji": content.get("emoji", ""),
              "call": content.get("media", "voice"), "count": str(push.count)}
    if content.get("encrypted"):
        values["text"] = ENCRYPTED_TEXT
    template = None if config is None else template_for(config.templates, push.kind, locale,
                                                        config.default_locale)
    if template is not None:
        title, body = template.title, template.body
    else:
        title, body = BUILT_IN[push.kind]
        if push.kind == MESSAGE and push.count > 1:
            title = MANY_MESSAGES_TITLE
    urgent = push.kind == CALL
    return Notification(fill(title, values), fill(body, values), data, collapse_key=collapse,
                        thread_id=collapse, badge=None, urgent=urgent,
                        ttl_seconds=60 if urgent else 86_400)
