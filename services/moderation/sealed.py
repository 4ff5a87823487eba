"""The send hook store with each app's hook secret sealed at rest
(services/keys/keyring.py), and the flag store with its copies of message texts sealed
(services/messages/sealing.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.keys.keyring import Keyring
from services.messages.sealing import ContentSeal
from services.moderation.models import Flag, FlagState, Report, Resolution, SendHook
from services.moderation.store import FlagStore, Position, SendHookStore

CONTEXT = "send_hook.secret"


class SealedSendHookStore:
    def __init__(self, inner: SendHookStore, keyring: Keyring) -> None:
        self._inner = inner
        self._keyring = keyring

    async def _sealed(self, hook: SendHook) -> SendHook:
        return replace(hook, secret=await self._keyring.seal_text(hook.app_id, CONTEXT,
                                                                  hook.secret))

    async def get_send_hook(self, app_id: str) -> SendHook | None:
        hook = await self._inner.get_send_hook(app_id)
        if hook is None:
            return None
        return replace(hook, secret=await self._keyring.open_text(app_id, CONTEXT, hook.secret))

    async def create_send_hook(self, hook: SendHook) -> bool:
        return await self._inner.create_send_hook(await self._sealed(hook))

    async def update_send_hook(self, hook: SendHook) -> bool:
        return await self._inner.update_send_hook(await self._sealed(hook))

    async def delete_send_hook(self, app_id: str) -> bool:
        return await self._inner.delete_send_hook(app_id)


class SealedFlagStore:
    """The flag store with the copy of a flagged message's text sealed like the message
    (under its sender's key: erasing them makes the copy unreadable too)."""

    def __init__(self, inner: FlagStore, seal: ContentSeal) -> None:
        self._inner = inner
        self._seal = seal

    async def _open(self, flag: Flag | None) -> Flag | None:
        if flag is None or not flag.message_text:
            return flag
        return replace(flag, message_text=await self._seal.open_text(
            flag.app_id, flag.user_id, flag.message_text))

    async def migrate(self) -> None:
        await self._inner.migrate()

    async def report(self, flag: Flag, report: Report) -> Flag:
        sealed = replace(flag, message_text=await self._seal.seal_text(
            flag.app_id, flag.user_id, flag.message_text))
        stored = await self._open(await self._inner.report(sealed, report))
        assert stored is not None
        return stored

    async def get_flag(self, app_id: str, flag_id: str) -> Flag | None:
        return await self._open(await self._inner.get_flag(app_id, flag_id))

    async def forget_texts(self, app_id: str, user_id: str) -> int:
        return await self._inner.forget_texts(app_id, user_id)

    async def get_report(self, app_id: str, flag_id: str, reporter: str) -> Report | None:
        return await self._inner.get_report(app_id, flag_id, reporter)

    async def list_flags(self, app_id: str, limit: int, after: Position | None, *,
                         state: FlagState | None = None, conversation_id: str | None = None,
                         user_id: str = "", not_user_id: str = "") -> list[Flag]:
        flags = await self._inner.list_flags(app_id, limit, after, state=state,
                                             conversation_id=conversation_id,
                                             user_id=user_id, not_user_id=not_user_id)
        return [f for f in [await self._open(f) for f in flags] if f is not None]

    async def claim(self, app_id: str, flag_id: str, claimer: str,
                    until: datetime | None, now: datetime) -> Flag | None:
        return await self._open(await self._inner.claim(app_id, flag_id, claimer, until, now))

    async def resolve(self, app_id: str, flag_id: str, resolution: Resolution) -> Flag | None:
        return await self._open(await self._inner.resolve(app_id, flag_id, resolution))
