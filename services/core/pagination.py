"""Opaque page tokens (AIP-158).

A token records where the previous page stopped and a fingerprint of the request
it belongs to; presenting it with different request fields is INVALID_ARGUMENT
(PAGE_TOKEN_INVALID). Tokens grant nothing: the caller's app and rights come
from their credentials, never from the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.core.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

T = TypeVar("T")
Position = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A decoded page request: how many items, and after which position."""

    size: int
    after: Position | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


def _fingerprint(scope: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(scope).encode()).hexdigest()[:16]


def page_request(page_size: int, page_token: str, scope: Sequence[str]) -> PageRequest:
    """Decode the page fields of a List request.

    `scope` holds the request fields a token is bound to (parent, filters).
    Raises InvalidArgument(PAGE_TOKEN_INVALID) for a foreign or damaged token.
    """
    size = page_size or DEFAULT_PAGE_SIZE
    if not page_token:
        return PageRequest(min(size, MAX_PAGE_SIZE), None)
    try:
        padded = page_token + "=" * (-len(page_token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position = payload["p"]
        fingerprint = payload["f"]
        if (not isinstance(position, list) or fingerprint != _fingerprint(scope)
                or not all(isinstance(part, str | int) for part in position)):
            raise ValueError("foreign token")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(
            "PAGE_TOKEN_INVALID",
            "page_token is not a token of this request: start again without one",
        ) from exc
    return PageRequest(min(size, MAX_PAGE_SIZE), tuple(position))


_MAX_MS = 2**47  # year 6429: any stored time is below it
_MAX_ID = 256


def _damaged() -> InvalidArgument:
    return InvalidArgument("PAGE_TOKEN_INVALID", "page_token is damaged")


def _number(value: object, below: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < below:
        raise _damaged()
    return value


def _ident(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_ID:
        raise _damaged()
    return value


def time_id_position(request: PageRequest) -> tuple[int, str] | None:
    """The position of a listing ordered by (time in ms, id), as the store takes it.

    Tokens are not signed, so a forged one must still be a sane position.
    """
    if request.after is None:
        return None
    if len(request.after) != 2:
        raise _damaged()
    return _number(request.after[0], _MAX_MS), _ident(request.after[1])


_MAX_TEXT = 1024


def _part(kind: str, value: object) -> str | int:
    if kind == "flag":
        return _number(value, 2)
    if kind == "time":
        return _number(value, _MAX_MS)
    if kind == "id":
        return _ident(value)
    if not isinstance(value, str) or len(value) > _MAX_TEXT:  # "text"
        raise _damaged()
    return value


def ordered_position(request: PageRequest, kinds: Sequence[str]
                     ) -> tuple[str | int, ...] | None:
    """The position of a listing ordered by keys of these kinds ("flag" 0/1, "time" in
    ms, "id", "text"; see services.core.filtering.Ordering), as the store takes it."""
    if request.after is None:
        return None
    if len(request.after) != len(kinds):
        raise _damaged()
    return tuple(_part(kind, value) for kind, value in zip(kinds, request.after, strict=True))


def make_page(items: list[T], request: PageRequest, scope: Sequence[str],
              key: Callable[[T], Position]) -> Page[T]:
    """Cut a page from `items`, fetched with limit `request.size + 1`.

    `key` gives an item's position in the listing order, which the store resumes
    after (strictly) on the next page.
    """
    if len(items) <= request.size:
        return Page(items, "")
    kept = items[: request.size]
    payload = {"p": list(key(kept[-1])), "f": _fingerprint(scope)}
    token = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    return Page(kept, token.decode().rstrip("="))



async def time_id_page(page_size: int, page_token: str, scope: Sequence[str],
                       fetch: Callable[[int, tuple[int, str] | None], Awaitable[list[T]]],
                       key: Callable[[T], tuple[int, str]]) -> Page[T]:
    """A page of a listing ordered by (time in ms, id): `fetch(limit, after)` reads the
    store, `key` gives an item's position."""
    request = page_request(page_size, page_token, scope)
    items = await fetch(request.size + 1, time_id_position(request))
    return make_page(items, request, scope, key)


P = TypeVar("P")


async def read_all(page: Callable[[P | None], Awaitable[list[T]]],
                   position: Callable[[T], P], size: int) -> list[T]:
    """Every item of a store listing read `size` at a time: `page(after)` gives the
    items after a position (None: from the start), `position` where an item stands."""
    items: list[T] = []
    after: P | None = None
    while batch := await page(after):
        items += batch
        if len(batch) < size:
            break
        after = position(batch[-1])
    return items
