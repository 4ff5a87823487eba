"""What the send path asks of content filters: may this text go, and as what?

Each process compiles an app's filters once and keeps them for `ttl` seconds; after
that it reads the app's filters again and recompiles only those that changed. The
process that saves a filter forgets the app's at once (`forget`), the others within
`ttl`, as for restrictions."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core.cache import TtlCache
from services.core.clock import Clock
from services.core.errors import PermissionDenied
from services.core.ids import new_id
from services.core.names import filter_name
from services.moderation.matching import (
    Folding,
    PatternError,
    Span,
    Token,
    WordList,
    compile_pattern,
    links,
    mask,
    tokens,
    under,
)
from services.moderation.models import (
    ContentFilter,
    FilterAction,
    Flag,
    FlagState,
    Report,
    ReportReason,
)
from services.moderation.store import FilterStore, FlagStore

READ_AT_ONCE = 100  # an app has at most MAX_FILTERS (20)


def combined(patterns: Sequence[str]) -> list[Any]:
    """The patterns as one RE2 alternation (one pass over the text), or each alone when
    together they are too large."""
    if len(patterns) > 1:
        try:
            return [compile_pattern("|".join(f"(?:{p})" for p in patterns))]
        except PatternError:
            pass
    return [compile_pattern(p) for p in patterns]


class CompiledFilter:
    def __init__(self, content_filter: ContentFilter, folding: Folding) -> None:
        self.filter = content_filter
        self._words = WordList(content_filter.words, folding)
        self._patterns = combined(content_filter.patterns)

    def applies(self, kind: str) -> bool:
        return not self.filter.kinds or kind in self.filter.kinds

    def spans(self, text: str, words: tuple[list[Token], list[Token]]) -> list[Span]:
        """Where it matches in `text` (`words`: the text's tokens)."""
        found = list(self._words.find(text, *words)) if self._words else []
        for pattern in self._patterns:
            found += [Span(*m.span()) for m in pattern.finditer(text)]
        blocked, allowed = self.filter.blocked_domains, self.filter.allowed_domains
        if blocked or allowed:
            found += [span for host, span in links(text)
                      if under(host, blocked) or (allowed and not under(host, allowed))]
        return found


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the filters decided about a text."""

    text: str  # with the masked matches replaced
    blocked_by: str = ""  # the filter that refuses it
    flagged_by: tuple[str, ...] = ()  # the filters that flag it


class Screen:
    """One app's compiled filters."""

    def __init__(self, compiled: dict[str, CompiledFilter], folding: Folding) -> None:
        self.compiled = compiled
        self._folding = folding

    def check(self, kind: str, text: str) -> Verdict:
        applying = [c for c in self.compiled.values() if c.applies(kind)]
        if not applying or not text:
            return Verdict(text)
        words = tokens(text, self._folding)
        masked: list[Span] = []
        flagged: list[str] = []
        for compiled in sorted(applying, key=lambda c: -c.filter.action):
            spans = compiled.spans(text, words)
            if not spans:
                continue
            if compiled.filter.action is FilterAction.BLOCK:
                return Verdict(text, blocked_by=compiled.filter.filter_id)
            if compiled.filter.action is FilterAction.FLAG:
                flagged.append(compiled.filter.filter_id)
            else:
                masked += spans
        return Verdict(mask(text, masked) if masked else text, flagged_by=tuple(flagged))


class Screening:
    def __init__(self, store: FilterStore, flags: FlagStore, folding: Folding, clock: Clock,
                 ttl: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._flags = flags
        self._folding = folding
        self._clock = clock
        self._fresh: TtlCache[str, Screen] = TtlCache(ttl, monotonic=monotonic)
        # The last compiled, to compile again only what changed.
        self._known: TtlCache[str, Screen] = TtlCache(max(ttl, 1) * 60, monotonic=monotonic)

    async def screen(self, app_id: str) -> Screen:
        found = self._fresh.get(app_id)
        if found is None:
            filters = await self._store.list_filters(app_id, READ_AT_ONCE)
            before = self._known.get(app_id)
            old = before.compiled if before is not None else {}
            compiled = {}
            for f in filters:
                kept = old.get(f.filter_id)
                compiled[f.filter_id] = (kept if kept is not None and kept.filter == f
                                         else CompiledFilter(f, self._folding))
            found = Screen(compiled, self._folding)
            self._fresh.put(app_id, found)
            self._known.put(app_id, found)
        return found

    async def check(self, app_id: str, kind: str, text: str) -> Verdict:
        """The verdict on `text` in a conversation of `kind`; PERMISSION_DENIED,
        MESSAGE_BLOCKED when a filter refuses it."""
        verdict = (await self.screen(app_id)).check(kind, text)
        if verdict.blocked_by:
            name = filter_name(app_id, verdict.blocked_by)
            raise PermissionDenied("MESSAGE_BLOCKED",
                                   "the message was refused by a content filter of the app",
                                   metadata={"filter": name})
        return verdict

    async def flag(self, app_id: str, conversation_id: str, sequence: int, sender_id: str,
                   text: str, verdict: Verdict) -> None:
        """Report the message for review, once per filter that flags it."""
        now: datetime = self._clock.now()
        for filter_id in verdict.flagged_by:
            await self._flags.report(
                Flag(app_id, new_id(), conversation_id, sequence, sender_id, text,
                     FlagState.OPEN, now, now),
                Report(filter_name(app_id, filter_id), ReportReason.OTHER,
                       "matched the content filter", now))

    def forget(self, app_id: str) -> None:
        self._fresh.discard(app_id)
