from __future__ import annotations

import base64
import json

import pytest

from services.core.errors import InvalidArgument
from services.core.pagination import (
    _fingerprint,
    make_page,
    ordered_position,
    page_request,
    time_id_position,
)


def test_default_and_maximum_sizes() -> None:
    assert page_request(0, "", ["a"]).size == 50
    assert page_request(500, "", ["a"]).size == 200


def test_page_tokens_resume_and_stay_bound_to_their_request() -> None:
    items = list(range(7))
    request = page_request(3, "", ["scope"])
    page = make_page(items[:4], request, ["scope"], lambda i: (i, str(i)))
    assert page.items == [0, 1, 2] and page.next_page_token
    resumed = page_request(3, page.next_page_token, ["scope"])
    assert resumed.after == (2, "2")
    with pytest.raises(InvalidArgument) as caught:
        page_request(3, page.next_page_token, ["other"])
    assert caught.value.reason == "PAGE_TOKEN_INVALID"


def test_last_page_has_no_token() -> None:
    request = page_request(3, "", ["s"])
    assert make_page([1, 2, 3], request, ["s"], lambda i: (i,)).next_page_token == ""


@pytest.mark.parametrize("token", ["!!!", "e30", "eyJwIjoxfQ"])
def test_damaged_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidArgument):
        page_request(3, token, ["s"])


def _forged(position: object, scope: list[str]) -> str:
    payload = json.dumps({"p": position, "f": _fingerprint(scope)}).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize("position", [[10**30, "a"], [-1, "a"], [True, "a"], [5, "x" * 300],
                                      [5], [5, "a", "b"]])
def test_forged_positions_are_refused(position: object) -> None:
    request = page_request(3, _forged(position, ["s"]), ["s"])
    with pytest.raises(InvalidArgument) as caught:
        time_id_position(request)
    assert caught.value.reason == "PAGE_TOKEN_INVALID"


def test_ordered_positions_follow_their_kinds() -> None:
    request = page_request(3, _forged([1, 5, "x"], ["s"]), ["s"])
    assert ordered_position(request, ("flag", "time", "id")) == (1, 5, "x")
    request = page_request(3, _forged(["Zoë B.", "u1"], ["s"]), ["s"])
    assert ordered_position(request, ("text", "id")) == ("Zoë B.", "u1")
    assert ordered_position(page_request(3, "", ["s"]), ("time", "id")) is None


@pytest.mark.parametrize(("position", "kinds"), [
    ([2, 5, "x"], ("flag", "time", "id")), ([1, -1, "x"], ("flag", "time", "id")),
    ([1, 5, 7], ("flag", "time", "id")), ([1, 5], ("flag", "time", "id")),
    ([False, 5, "x"], ("flag", "time", "id")), ([5, "x"], ("text", "id")),
    (["x" * 1025, "x"], ("text", "id")), (["a", "x" * 300], ("text", "id")),
])
def test_forged_ordered_positions_are_refused(position: object, kinds: tuple[str, ...]
                                              ) -> None:
    request = page_request(3, _forged(position, ["s"]), ["s"])
    with pytest.raises(InvalidArgument) as caught:
        ordered_position(request, kinds)
    assert caught.value.reason == "PAGE_TOKEN_INVALID"
