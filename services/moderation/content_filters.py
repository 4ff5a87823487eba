"""Managing an app's content filters: the app's backend (API key with the `moderation`
scope) and the operator. Patterns are compiled when saved: one RE2 refuses is an
INVALID_ARGUMENT naming it, never a failure at message time."""

from __future__ import annotations

from dataclasses import replace

from services.core.clock import Clock, truncate_ms
from services.core.errors import (
    CapacityExceeded,
    StoreConflict,
    already_exists,
    invalid_field,
    limit_exceeded,
    not_found,
)
from services.core.names import filter_name
from services.core.pagination import Page, make_page, ordered_position, page_request
from services.core.principal import Principal, require_app
from services.moderation.matching import PatternError, compile_pattern
from services.moderation.models import MAX_FILTERS, ContentFilter
from services.moderation.screening import Screening
from services.moderation.store import FilterStore


def check_patterns(patterns: tuple[str, ...], field: str) -> None:
    for index, pattern in enumerate(patterns):
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            raise invalid_field(f"{field}[{index}]", f"RE2 cannot use this pattern: {exc}"
                                ) from None


def _not_found(app_id: str, filter_id: str) -> Exception:
    return not_found("caas.dev/Filter", filter_name(app_id, filter_id))


class FilterActions:
    def __init__(self, store: FilterStore, screening: Screening, clock: Clock) -> None:
        self._store = store
        self._screening = screening
        self._clock = clock

    async def do_create(self, principal: Principal, new: ContentFilter) -> ContentFilter:
        require_app(principal, new.app_id)
        check_patterns(new.patterns, "filter.patterns")
        now = truncate_ms(self._clock.now())
        stored = replace(new, create_time=now, update_time=now)
        try:
            await self._store.create_filter(stored, MAX_FILTERS)
        except StoreConflict:
            raise already_exists("caas.dev/Filter",
                                 filter_name(new.app_id, new.filter_id)) from None
        except CapacityExceeded as exc:
            raise limit_exceeded(exc.limit, exc.maximum) from None
        self._screening.forget(new.app_id)
        return stored

    async def get(self, principal: Principal, app_id: str, filter_id: str) -> ContentFilter:
        require_app(principal, app_id)
        found = await self._store.get_filter(app_id, filter_id)
        if found is None:
            raise _not_found(app_id, filter_id)
        return found

    async def list_filters(self, principal: Principal, app_id: str, page_size: int,
                           page_token: str) -> Page[ContentFilter]:
        require_app(principal, app_id)
        request = page_request(page_size, page_token, [app_id])
        position = ordered_position(request, ["id"])
        after = str(position[0]) if position is not None else ""
        rows = await self._store.list_filters(app_id, request.size + 1, after)
        return make_page(rows, request, [app_id], lambda f: (f.filter_id,))

    async def do_update(self, principal: Principal, changed: ContentFilter,
                        fields: set[str]) -> ContentFilter:
        """Replace `fields` (ContentFilter field names) of the stored filter."""
        current = await self.get(principal, changed.app_id, changed.filter_id)
        if "patterns" in fields:
            check_patterns(changed.patterns, "filter.patterns")
        updated = replace(current, **{f: getattr(changed, f) for f in fields},
                          update_time=truncate_ms(self._clock.now()))
        if not await self._store.update_filter(updated):
            raise _not_found(changed.app_id, changed.filter_id)  # deleted meanwhile
        self._screening.forget(changed.app_id)
        return updated

    async def do_delete(self, principal: Principal, app_id: str, filter_id: str) -> None:
        require_app(principal, app_id)
        if not await self._store.delete_filter(app_id, filter_id):
            raise _not_found(app_id, filter_id)
        self._screening.forget(app_id)
