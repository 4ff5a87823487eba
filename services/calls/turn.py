"""ICE servers for a call's devices: STUN, and TURN with short-lived credentials in the
TURN REST API form that coturn checks with `use-auth-secret` (draft-uberti-behave-
turn-rest): the user name is `<expiry in Unix seconds>:<who>`, the password the base64
of HMAC-SHA1(shared secret, user name). The server never stores them: coturn recomputes
the HMAC with the same secret and refuses a user name whose expiry has passed."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    username: str = ""
    credential: str = ""


def turn_credentials(secret: str, who: str, expire: datetime) -> tuple[str, str]:
    """(user name, password) valid until `expire` for a TURN server sharing `secret`."""
    username = f"{int(expire.timestamp())}:{who}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class IceConfig:
    """The deployment's STUN and TURN servers (`CAAS_STUN_URLS`, `CAAS_TURN_URLS`,
    `CAAS_TURN_SECRET`, `CAAS_TURN_CREDENTIAL_TTL`)."""

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    ttl: timedelta = timedelta(hours=1)

    def servers(self, who: str, now: datetime) -> tuple[list[IceServer], datetime | None]:
        """The servers for `who` (a device of a participant), and when the TURN
        credentials expire (None without TURN)."""
        servers = [IceServer(self.stun_urls)] if self.stun_urls else []
        if not self.turn_urls or not self.turn_secret:
            return servers, None
        expire = now + self.ttl
        username, password = turn_credentials(self.turn_secret, who, expire)
        servers.append(IceServer(self.turn_urls, username, password))
        return servers, expire
