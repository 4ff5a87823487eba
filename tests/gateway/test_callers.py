"""Where a call comes from, behind Envoy and trusted proxies (services/gateway/callers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from services.core.principal import Operator
from services.gateway.callers import client_of
from services.gateway.gateway import Call


class Context:
    def __init__(self, peer: str, forwarded: str) -> None:
        self._peer = peer
        self._metadata = (("x-forwarded-for", forwarded), ("user-agent", "test"))

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def call(peer: str, forwarded: str, hops: int) -> Call:
    context: Any = Context(peer, forwarded)
    return Call(Operator(), "r1", "caas.auth.v1.AuthService/CreateGuestSession", context,
                lambda *_: None, hops)  # type: ignore[arg-type]


@pytest.mark.parametrize(("forwarded", "hops", "address"), [
    ("203.0.113.9", 0, "203.0.113.9"),  # Envoy alone: the hop it appended
    ("198.51.100.1, 203.0.113.9", 0, "203.0.113.9"),  # a hop the client wrote: ignored
    ("203.0.113.9, 10.0.3.7", 1, "203.0.113.9"),  # behind a Gateway: what it saw
    ("6.6.6.6, 203.0.113.9, 10.0.3.7", 1, "203.0.113.9"),  # a forged hop before it
    ("203.0.113.9, 10.0.3.7", 3, "203.0.113.9"),  # fewer hops than said: the first
])
def test_the_address_is_the_outermost_trusted_hop(forwarded: str, hops: int,
                                                  address: str) -> None:
    assert client_of(call("ipv4:127.0.0.1:40000", forwarded, hops)).ip_address == address


def test_without_envoy_the_peer_is_the_caller() -> None:
    assert client_of(call("ipv4:192.0.2.5:5000", "6.6.6.6", 0)).ip_address == "192.0.2.5"
