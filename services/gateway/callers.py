"""Where a call comes from: the client's address and user agent, for rate limits on
anonymous RPCs (sign-ups, logins, guest sessions) and the portal's login history."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from services.gateway.gateway import Call


@dataclass(frozen=True, slots=True)
class Client:
    """Where a call comes from."""

    ip_address: str
    user_agent: str


def client_of(call: Call) -> Client:
    """The caller's address and user agent. Behind Envoy (a loopback peer) the address
    is the last `x-forwarded-for` hop, the one Envoy appended (`use_remote_address`)."""
    metadata = {k: v for k, v in call.context.invocation_metadata() or ()
                if isinstance(v, str)}
    peer = call.context.peer() or ""
    address = peer.split(":", 1)[1].rsplit(":", 1)[0].strip("[]") if ":" in peer else peer
    forwarded = metadata.get("x-forwarded-for", "")
    if forwarded and _loopback(address):
        address = forwarded.split(",")[-1].strip()
    return Client(address[:64], metadata.get("user-agent", "")[:256])


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
