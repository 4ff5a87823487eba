"""Apps (tenants) and their API keys."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.core.principal import FULL_SCOPE

API_KEY_PREFIX = "caask_"


class Keep(enum.Enum):
    """For a field where None is a value (unset): leave the field as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


# A guest session's lifetime when the app sets none, and its bounds (the contract's).
DEFAULT_GUEST_SESSION_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class GuestAccess:
    """Whether the app admits guests (AuthService.CreateGuestSession), and how long a
    guest's session lasts; None: DEFAULT_GUEST_SESSION_LIFETIME."""

    enabled: bool = False
    session_lifetime: timedelta | None = None

    @property
    def lifetime(self) -> timedelta:
        return (DEFAULT_GUEST_SESSION_LIFETIME if self.session_lifetime is None
                else self.session_lifetime)


NO_GUESTS = GuestAccess()


@dataclass(frozen=True, slots=True)
class App:
    app_id: str
    display_name: str
    plan: str
    create_time: datetime
    update_time: datetime
    # How long the media of deleted messages and users are kept; None: the server's
    # default (`Settings.media_retention`).
    media_retention: timedelta | None = None
    delete_time: datetime | None = None  # deleted (DeleteApp): its credentials are refused
    purge_time: datetime | None = None  # when a deleted app's data is erased
    organization_id: str = ""  # the organization that owns it; "": the operator's alone
    guest_access: GuestAccess = NO_GUESTS


@dataclass(frozen=True, slots=True)
class ApiKey:
    app_id: str
    key_id: str
    display_name: str
    secret_hash: str
    create_time: datetime
    revoke_time: datetime | None = None
    scopes: frozenset[str] = FULL_SCOPE  # keys from before scopes existed: every scope
    expire_time: datetime | None = None  # None: never

    @property
    def active(self) -> bool:
        """Not revoked (whether it expired depends on the time: `expired`)."""
        return self.revoke_time is None

    def expired(self, now: datetime) -> bool:
        return self.expire_time is not None and self.expire_time <= now

    @property
    def secret_hint(self) -> str:
        return f"{API_KEY_PREFIX}{self.app_id}_{self.key_id}"


def api_key_secret(app_id: str, key_id: str, random_part: str) -> str:
    """The full secret handed to the app: `caask_<app>_<key id>_<random>`."""
    return f"{API_KEY_PREFIX}{app_id}_{key_id}_{random_part}"


def split_api_key_secret(secret: str) -> tuple[str, str] | None:
    """(app id, key id) named by a secret, or None if it is not shaped like one.

    App ids and key ids never contain `_`; the random part may.
    """
    if not secret.startswith(API_KEY_PREFIX):
        return None
    parts = secret[len(API_KEY_PREFIX):].split("_", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1]
