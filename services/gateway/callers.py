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
    is the last `x-forwarded-for` hop, the one Envoy appended (`use_remote_address`) —
    or, with `CAAS_TRUSTED_PROXY_HOPS` = N proxies of the deployment's own in front of
    Envoy (a load balancer, a Kubernetes Gateway), the hop N places before it: the
    address the outermost trusted proxy saw. Hops a client wrote itself come before
    that one and are never taken."""
    metadata = {k: v for k, v in call.context.invocation_metadata() or ()
                if isinstance(v, str)}
    peer = call.context.peer() or ""
    address = peer.split(":", 1)[1].rsplit(":", 1)[0].strip("[]") if ":" in peer else peer
    forwarded = metadata.get("x-forwarded-for", "")
    if forwarded and _loopback(address):
        hops = [hop.strip() for hop in forwarded.split(",")]
        address = hops[max(0, len(hops) - 1 - call.proxy_hops)]
    return Client(address[:64], metadata.get("user-agent", "")[:256])


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
