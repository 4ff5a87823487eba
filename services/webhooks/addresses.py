"""Where deliveries may go: public addresses only (not loopback, private, link-local —
cloud metadata lives there —, multicast, reserved or unspecified), unless the server
allows insecure endpoints.

The check sits in the HTTP client's resolver, so the addresses checked are the very
ones connected to: a host name that resolves to a public address when checked and to a
private one a moment later (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class BlockedAddress(OSError):
    """A delivery's host is, or resolves to, an address that is not public."""


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def blocked_literal(url: str) -> str | None:
    """Why `url` may not be called if its host is an IP address that is not public (the
    client connects to such hosts without resolving them), or None."""
    host = urlsplit(url).hostname or ""
    try:
        public = is_public_address(host)
    except ValueError:
        return None  # a name: the resolver checks it
    return None if public else f"blocked: {host} is not a public address"


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, refusing a host with any address that is not public."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for result in found:
            if not is_public_address(result["host"]):
                raise BlockedAddress(
                    f"blocked: {host} resolves to {result['host']}, not a public address")
        return found

    async def close(self) -> None:
        await self._inner.close()
