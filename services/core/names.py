"""Resource names (AIP-122): formatting and parsing.

Requests are validated against the contract's patterns before they reach a
servicer, so parsing failures here mean a caller bypassed validation or a bug:
they still raise a clean INVALID_ARGUMENT rather than an exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from services.core.errors import invalid_field

APP_ID = r"[a-z][a-z0-9-]{1,38}[a-z0-9]"
USER_ID = r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}"
SERVER_ID = r"[a-z2-7]{16}"

_APP = re.compile(rf"apps/({APP_ID})")
_API_KEY = re.compile(rf"apps/({APP_ID})/apiKeys/({SERVER_ID})")
_USER = re.compile(rf"apps/({APP_ID})/users/({USER_ID})")
_SESSION = re.compile(rf"apps/({APP_ID})/users/({USER_ID})/sessions/({SERVER_ID})")
_DEVICE = re.compile(rf"apps/({APP_ID})/users/({USER_ID})/devices/([A-Za-z0-9_.-]{{1,64}})")
_PUSH_DEVICE = re.compile(rf"apps/({APP_ID})/users/({USER_ID})/pushDevices/({SERVER_ID})")
_WEB_PUSH_KEY = re.compile(rf"apps/({APP_ID})/webPushKey")
_PUSH_CONFIG = re.compile(rf"apps/({APP_ID})/pushConfig")
_NOTIFICATION_SETTINGS = re.compile(rf"apps/({APP_ID})/users/({USER_ID})/notificationSettings")
_WEBHOOK = re.compile(rf"apps/({APP_ID})/webhooks/({SERVER_ID})")
_RESTRICTION = re.compile(rf"apps/({APP_ID})/restrictions/({SERVER_ID})")
_FLAG = re.compile(rf"apps/({APP_ID})/flags/({SERVER_ID})")
_FILTER = re.compile(rf"apps/({APP_ID})/filters/([a-z][a-z0-9-]{{0,62}})")
_DEAD_LETTER = re.compile(rf"apps/({APP_ID})/webhooks/({SERVER_ID})/deadLetters/({SERVER_ID})")
_APP_ID = re.compile(APP_ID)
_USER_ID = re.compile(USER_ID)
_SERVER_ID = re.compile(SERVER_ID)


def is_app_id(value: str) -> bool:
    return _APP_ID.fullmatch(value) is not None


def is_server_id(value: str) -> bool:
    return _SERVER_ID.fullmatch(value) is not None


def is_user_id(value: str) -> bool:
    return _USER_ID.fullmatch(value) is not None


def app_name(app_id: str) -> str:
    return f"apps/{app_id}"


def api_key_name(app_id: str, key_id: str) -> str:
    return f"apps/{app_id}/apiKeys/{key_id}"


def user_name(app_id: str, user_id: str) -> str:
    return f"apps/{app_id}/users/{user_id}"


def session_name(app_id: str, user_id: str, session_id: str) -> str:
    return f"apps/{app_id}/users/{user_id}/sessions/{session_id}"


def restriction_name(app_id: str, restriction_id: str) -> str:
    return f"apps/{app_id}/restrictions/{restriction_id}"


def flag_name(app_id: str, flag_id: str) -> str:
    return f"apps/{app_id}/flags/{flag_id}"


def filter_name(app_id: str, filter_id: str) -> str:
    return f"apps/{app_id}/filters/{filter_id}"


def signing_key_name(app_id: str, key_id: str) -> str:
    return f"apps/{app_id}/signingKeys/{key_id}"


def _match(pattern: re.Pattern[str], value: str, field: str, shape: str) -> tuple[str, ...]:
    found = pattern.fullmatch(value)
    if found is None:
        raise invalid_field(field, f"must be {shape}")
    return found.groups()


def parse_children(names: Sequence[str], parse: Callable[[str, str], tuple[str, ...]],
                   parent: tuple[str, ...], child: str) -> list[str]:
    """The last id of each of `names` (fields `names[i]`), parsed with `parse`; each must
    lie under `parent` (the ids before its last), or INVALID_ARGUMENT says it must be
    `child`."""
    ids = []
    for index, name in enumerate(names):
        field = f"names[{index}]"
        *under, last = parse(name, field)
        if tuple(under) != parent:
            raise invalid_field(field, f"must be {child}")
        ids.append(last)
    return ids


def parse_app(name: str, field: str = "name") -> str:
    """`apps/{app}` → app id."""
    return _match(_APP, name, field, "apps/{app}")[0]


def parse_api_key(name: str, field: str = "name") -> tuple[str, str]:
    """`apps/{app}/apiKeys/{key}` → (app id, key id)."""
    app_id, key_id = _match(_API_KEY, name, field, "apps/{app}/apiKeys/{api_key}")
    return app_id, key_id


def parse_user(name: str, field: str = "parent") -> tuple[str, str]:
    """`apps/{app}/users/{user}` → (app id, user id)."""
    app_id, user_id = _match(_USER, name, field, "apps/{app}/users/{user}")
    return app_id, user_id


def parse_session(name: str, field: str = "name") -> tuple[str, str, str]:
    """`apps/{app}/users/{user}/sessions/{session}` → (app id, user id, session id)."""
    app_id, user_id, session_id = _match(
        _SESSION, name, field, "apps/{app}/users/{user}/sessions/{session}")
    return app_id, user_id, session_id


def parse_device(name: str, field: str = "name") -> tuple[str, str, str]:
    """`apps/{app}/users/{user}/devices/{device}` → (app id, user id, device id)."""
    app_id, user_id, device_id = _match(
        _DEVICE, name, field, "apps/{app}/users/{user}/devices/{device}")
    return app_id, user_id, device_id


def parse_push_device(name: str, field: str = "name") -> tuple[str, str, str]:
    """`apps/{app}/users/{user}/pushDevices/{push_device}` → (app id, user id, its id)."""
    app_id, user_id, push_device_id = _match(
        _PUSH_DEVICE, name, field, "apps/{app}/users/{user}/pushDevices/{push_device}")
    return app_id, user_id, push_device_id


def parse_web_push_key(name: str, field: str = "name") -> str:
    """`apps/{app}/webPushKey` → app id."""
    return _match(_WEB_PUSH_KEY, name, field, "apps/{app}/webPushKey")[0]


def parse_push_config(name: str, field: str = "name") -> str:
    """`apps/{app}/pushConfig` → app id."""
    return _match(_PUSH_CONFIG, name, field, "apps/{app}/pushConfig")[0]


def parse_notification_settings(name: str, field: str = "name") -> tuple[str, str]:
    """`apps/{app}/users/{user}/notificationSettings` → (app id, user id)."""
    app_id, user_id = _match(_NOTIFICATION_SETTINGS, name, field,
                             "apps/{app}/users/{user}/notificationSettings")
    return app_id, user_id


def parse_webhook(name: str, field: str = "name") -> tuple[str, str]:
    """`apps/{app}/webhooks/{webhook}` → (app id, webhook id)."""
    app_id, webhook_id = _match(_WEBHOOK, name, field, "apps/{app}/webhooks/{webhook}")
    return app_id, webhook_id


def parse_dead_letter(name: str, field: str = "name") -> tuple[str, str, str]:
    """`apps/{app}/webhooks/{webhook}/deadLetters/{dead_letter}` → the three ids."""
    app_id, webhook_id, dead_letter_id = _match(
        _DEAD_LETTER, name, field, "apps/{app}/webhooks/{webhook}/deadLetters/{dead_letter}")
    return app_id, webhook_id, dead_letter_id


def parse_restriction(name: str, field: str = "name") -> tuple[str, str]:
    """`apps/{app}/restrictions/{restriction}` → (app id, restriction id)."""
    app_id, restriction_id = _match(_RESTRICTION, name, field,
                                    "apps/{app}/restrictions/{restriction}")
    return app_id, restriction_id


def parse_flag(name: str, field: str = "name") -> tuple[str, str]:
    """`apps/{app}/flags/{flag}` → (app id, flag id)."""
    app_id, flag_id = _match(_FLAG, name, field, "apps/{app}/flags/{flag}")
    return app_id, flag_id


def parse_filter(name: str, field: str = "name") -> tuple[str, str]:
    """`apps/{app}/filters/{filter}` → (app id, filter id)."""
    app_id, filter_id = _match(_FILTER, name, field, "apps/{app}/filters/{filter}")
    return app_id, filter_id
