"""Push settings and pushes as plain dictionaries: what both store engines keep (JSON
on SQLite, documents on MongoDB)."""

from __future__ import annotations

import base64
from typing import Any

from services.core.clock import from_ms, to_ms
from services.push.models import (
    Attempt,
    DoNotDisturb,
    NotificationSettings,
    Push,
    PushConfig,
    Template,
)


def _ms(value: Any) -> Any:
    return None if value is None else to_ms(value)


def _time(value: Any) -> Any:
    return None if value is None else from_ms(value)


def config_dict(config: PushConfig) -> dict[str, Any]:
    return {"web_push_contact": config.web_push_contact, "apns": dict(config.apns),
            "apns_sealed_key": base64.b64encode(config.apns_sealed_key).decode(),
            "fcm": dict(config.fcm),
            "fcm_sealed_account": base64.b64encode(config.fcm_sealed_account).decode(),
            "templates": [[t.kind, t.locale, t.title, t.body] for t in config.templates],
            "default_locale": config.default_locale, "update_time": _ms(config.update_time)}


def config_of(app_id: str, data: dict[str, Any]) -> PushConfig:
    return PushConfig(app_id, data["web_push_contact"], data["apns"],
                      base64.b64decode(data["apns_sealed_key"]), data["fcm"],
                      base64.b64decode(data["fcm_sealed_account"]),
                      tuple(Template(*t) for t in data["templates"]), data["default_locale"],
                      _time(data["update_time"]))


def settings_dict(settings: NotificationSettings) -> dict[str, Any]:
    dnd = settings.do_not_disturb
    return {"level": settings.level, "conversations": dict(settings.conversations),
            "dnd": None if dnd is None else [dnd.start_minute, dnd.end_minute, dnd.time_zone],
            "update_time": _ms(settings.update_time)}


def settings_of(app_id: str, user_id: str, data: dict[str, Any]) -> NotificationSettings:
    dnd = data["dnd"]
    return NotificationSettings(app_id, user_id, data["level"],
                                None if dnd is None else DoNotDisturb(*dnd),
                                data["conversations"], _time(data["update_time"]))


def attempts_list(attempts: tuple[Attempt, ...]) -> list[list[Any]]:
    return [[to_ms(a.time), a.status, a.error, a.latency_ms] for a in attempts]


def attempts_of(data: list[list[Any]]) -> tuple[Attempt, ...]:
    return tuple(Attempt(from_ms(t), status, error, latency) for t, status, error, latency
                 in data)


def push_dict(push: Push) -> dict[str, Any]:
    """Every field of a push, times in epoch milliseconds."""
    return {"push_id": push.push_id, "app_id": push.app_id, "user_id": push.user_id,
            "push_device_id": push.push_device_id, "provider": push.provider,
            "kind": push.kind, "conversation_id": push.conversation_id, "group": push.group,
            "through": push.through, "content": dict(push.content),
            "create_time": to_ms(push.create_time), "due_time": to_ms(push.due_time),
            "count": push.count, "state": push.state,
            "attempts": attempts_list(push.attempts), "send_time": _ms(push.send_time),
            "sequence": push.sequence}


def push_of(data: dict[str, Any]) -> Push:
    return Push(data["push_id"], data["app_id"], data["user_id"], data["push_device_id"],
                data["provider"], data["kind"], data["conversation_id"], data["group"],
                data["through"], data["content"], from_ms(data["create_time"]),
                from_ms(data["due_time"]), data["count"], data["state"],
                attempts_of(data["attempts"]), _time(data["send_time"]), data["sequence"])
