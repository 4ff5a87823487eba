"""Where deliveries may go: hosts that are valid DNS names or IP addresses, and public
addresses only (not loopback, private, link-local — cloud metadata lives there —,
multicast, reserved or unspecified), unless the server allows insecure endpoints.

The check sits in the HTTP client's resolver, so the addresses checked are the very
ones connected to: a host name that resolves to a public address when checked and to a
private one a moment later (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

import idna
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

MAX_NAME_LENGTH = 253  # octets of a DNS name, without the root's trailing dot
MAX_LABEL_LENGTH = 63
# An ASCII label: letters, digits and hyphens, not at either end (RFC 1123), plus the
# underscore, which DNS names carry and the client resolves.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")


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


def host_problem(url: str) -> str | None:
    """What makes the host of `url` unusable by the delivery's HTTP client, or None.

    The host must be an IP address, or a DNS name as the client encodes it (yarl: IDNA
    2008 with UTS-46 mapping for a non-ASCII name) and resolves it (Python's `idna`
    codec): labels of 1 to 63 octets, at most 253 in all, letters, digits, `-` (not at
    an end) and `_`, A-labels (`xn--…`) valid IDNA 2008, the last label not all digits
    (an address in disguise: `127.1`). Addresses are judged by `blocked_literal`."""
    try:
        host = URL(url).raw_host
    except UnicodeError:
        return "not valid IDNA"
    except ValueError:
        return "not a valid URL"
    if not host:
        return "none"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    given = urlsplit(url).hostname or ""
    if not given.isascii():
        try:
            idna.encode(given, uts46=True)  # yarl would fall back to IDNA 2003
        except idna.IDNAError:
            return "not valid IDNA 2008"
    name = host.removesuffix(".")  # a fully qualified name's trailing dot is fine
    if len(name) > MAX_NAME_LENGTH:
        return f"longer than {MAX_NAME_LENGTH} characters"
    labels = name.split(".")
    for label in labels:
        if not label:
            return "empty label"
        if len(label) > MAX_LABEL_LENGTH:
            return f"label longer than {MAX_LABEL_LENGTH} characters"
        if not _LABEL.fullmatch(label):
            return "label with characters other than letters, digits, '-' and '_', or '-' at an end"
        if label[2:4] == "--":
            try:
                idna.decode(label)
            except idna.IDNAError:
                return f"label {label!r} is not valid IDNA 2008"
    if labels[-1].isdigit():
        return "last label all digits, and not an IP address"
    try:
        host.encode("idna")  # what the resolver (getaddrinfo) does with it
    except UnicodeError:
        return "not encodable with the idna codec"
    return None


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
