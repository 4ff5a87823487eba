"""Envelope encryption of what CAAS keeps: data keys per app (and per user, for
crypto-shredding), wrapped by the key provider's key-encryption key.

A sealed value is `MAGIC`, the data key's id (16 bytes), a 12-byte nonce and the
AES-256-GCM ciphertext with its tag; the associated data binds it to its app, its
key's owner and its place (`context`, as "webhook.secret"), so a sealed value moved
elsewhere does not open. Text is sealed to `TEXT_PREFIX` + base64url of that. Values
stored before encryption at rest (no MAGIC, no prefix) read as they are: a store fills
with sealed values as things are written.

Each process unwraps a data key once and keeps it for `cache_ttl` seconds: a key
erased by another process (a user erased) stops opening everywhere within that time.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.core.cache import TtlCache
from services.core.clock import Clock
from services.core.ids import new_id
from services.keys.models import APP_OWNER, DataKey
from services.keys.provider import KeyProvider
from services.keys.store import DataKeyStore

MAGIC = b"\xc4\xa5\x01"  # sealed, format 1
TEXT_PREFIX = "caas:v1:"
TOKEN_PREFIX = "caas:t1:"  # noqa: S105 - a format's mark, not a secret
TOKEN = 16  # bytes of a blind token
KEY_ID = 16  # bytes of a data key's id
NONCE = 12
REWRAP_BATCH = 100


class KeyErased(Exception):
    """A sealed value whose data key is gone (its owner was erased): it cannot open."""


def _aad(app_id: str, owner: str, context: str) -> bytes:
    return f"{app_id}\x1f{owner}\x1f{context}".encode()


def _wrap_context(app_id: str, owner: str, key_id: str) -> str:
    return f"{app_id}/{owner}/{key_id}"


class Keyring:
    def __init__(self, store: DataKeyStore, provider: KeyProvider, clock: Clock,
                 cache_ttl: float = 300.0) -> None:
        self._store = store
        self.provider = provider
        self._clock = clock
        self._ciphers: TtlCache[tuple[str, str], tuple[bytes, AESGCM, bytes]] = TtlCache(
            cache_ttl, 100_000)

    async def _cipher(self, app_id: str, owner: str, create: bool
                      ) -> tuple[bytes, AESGCM, bytes] | None:
        """The owner's data key: (its id, its cipher, the key of its tokens)."""
        cached = self._ciphers.get((app_id, owner))
        if cached is not None:
            return cached
        key = await self._store.get_key(app_id, owner)
        if key is None:
            if not create:
                return None
            key_id = new_id()
            raw = secrets.token_bytes(32)
            wrapped = await self.provider.wrap(raw, _wrap_context(app_id, owner, key_id))
            key = await self._store.add_key(
                DataKey(app_id, owner, key_id, wrapped, self._clock.now()))
        raw = await self.provider.unwrap(key.wrapped,
                                         _wrap_context(app_id, owner, key.key_id))
        found = (key.key_id.encode(), AESGCM(raw),
                 hmac.digest(raw, b"caas token key", "sha256"))
        self._ciphers.put((app_id, owner), found)
        return found

    async def seal(self, app_id: str, context: str, data: bytes, owner: str = APP_OWNER
                   ) -> bytes:
        cipher = await self._cipher(app_id, owner, create=True)
        assert cipher is not None
        key_id, aes, _ = cipher
        nonce = secrets.token_bytes(NONCE)
        return MAGIC + key_id + nonce + aes.encrypt(nonce, data, _aad(app_id, owner, context))

    async def open(self, app_id: str, context: str, sealed: bytes, owner: str = APP_OWNER
                   ) -> bytes:
        """The plaintext of `sealed`. Raises KeyErased when its key is gone, and
        cryptography's InvalidTag when it was changed or moved."""
        if not sealed.startswith(MAGIC):
            return sealed  # written before encryption at rest
        cipher = await self._cipher(app_id, owner, create=False)
        start = len(MAGIC)
        if cipher is None or cipher[0] != sealed[start:start + KEY_ID]:
            raise KeyErased(f"the data key of {app_id}/{owner} is gone")
        nonce = sealed[start + KEY_ID:start + KEY_ID + NONCE]
        return cipher[1].decrypt(nonce, sealed[start + KEY_ID + NONCE:],
                                 _aad(app_id, owner, context))

    async def seal_text(self, app_id: str, context: str, text: str, owner: str = APP_OWNER
                        ) -> str:
        sealed = await self.seal(app_id, context, text.encode(), owner)
        return TEXT_PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    async def open_text(self, app_id: str, context: str, sealed: str, owner: str = APP_OWNER
                        ) -> str:
        if not sealed.startswith(TEXT_PREFIX):
            return sealed  # written before encryption at rest
        body = sealed[len(TEXT_PREFIX):]
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return (await self.open(app_id, context, raw, owner)).decode()

    async def token(self, app_id: str, context: str, text: str, owner: str = APP_OWNER,
                    create: bool = True) -> str | None:
        """A blind token of `text`: equal texts (in one app, owner and context) have
        equal tokens, which tell nothing else of them; what lets a store compare
        sealed values. Without `create`, None when the owner has no data key (then
        no token of theirs exists)."""
        cipher = await self._cipher(app_id, owner, create)
        if cipher is None:
            return None
        mac = hmac.digest(cipher[2], f"{context}\x1f{text}".encode(), "sha256")
        return TOKEN_PREFIX + base64.urlsafe_b64encode(mac[:TOKEN]).decode().rstrip("=")

    async def erase(self, app_id: str, owner: str) -> bool:
        """Destroy the owner's data key: what it sealed no longer opens, anywhere."""
        self._ciphers.discard((app_id, owner))
        return await self._store.delete_key(app_id, owner)

    async def rewrap_all(self, progress: Callable[[int], None] = lambda _: None) -> int:
        """Wrap every data key with the active key-encryption key (after a rotation);
        the number rewrapped. Online: keys in use stay cached where they are unwrapped,
        and a key another process rewraps first is left alone."""
        done = 0
        active = self.provider.active_kek()
        while batch := await self._store.wrapped_by_other(active, REWRAP_BATCH):
            for key in batch:
                context = _wrap_context(key.app_id, key.owner, key.key_id)
                raw = await self.provider.unwrap(key.wrapped, context)
                if await self._store.rewrap(key, await self.provider.wrap(raw, context)):
                    done += 1
            progress(done)
            active = self.provider.active_kek()
        return done
