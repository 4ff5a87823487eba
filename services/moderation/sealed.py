"""The send hook store with each app's hook secret sealed at rest
(services/keys/keyring.py)."""

from __future__ import annotations

from dataclasses import replace

from services.keys.keyring import Keyring
from services.moderation.models import SendHook
from services.moderation.store import SendHookStore

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
