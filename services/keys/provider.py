"""Key-encryption keys: the port, and the local provider (master key files).

A provider wraps data keys with a key-encryption key (KEK) and unwraps them again.
The local provider keeps its master keys in a directory (`CAAS_KEY_DIR`, default
`<data_dir>/keys`): `master-<id>.key` files (32 random bytes, base64, owner-only),
and `active`, naming the one that wraps new data keys. It makes the first master key
on first start. Wrapping is AES-256-GCM with the data key's owner as associated data.

A cloud KMS plugs in behind the same port: `wrap` is AWS KMS `Encrypt` (or Vault
transit `encrypt/<key>`, Google Cloud KMS `encrypt`) of the 32 bytes under the CMK,
`unwrap` is `Decrypt`, `active_kek` the CMK's id or version; the master key never
leaves the KMS, and data keys are cached in memory after one unwrap (docs/operations.md,
"Encryption at rest").
"""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.keys.models import WrappedKey

NONCE = 12


class KeyUnavailable(Exception):
    """A wrapped data key whose key-encryption key this provider does not have."""


class KeyProvider(Protocol):
    def active_kek(self) -> str:
        """The id of the key-encryption key that wraps new data keys."""

    async def wrap(self, key: bytes, context: str) -> WrappedKey: ...

    async def unwrap(self, wrapped: WrappedKey, context: str) -> bytes:
        """Raises KeyUnavailable when its KEK is not there, InvalidTag when the wrapped
        key or its context was changed."""


def _write_private(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


class LocalKeyProvider:
    """Master keys in files of `directory` (see the module)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._keys: dict[str, AESGCM] = {}
        self._active = ""
        self._active_stat: tuple[int, int] | None = None

    @classmethod
    def open(cls, directory: Path) -> LocalKeyProvider:
        """The provider of `directory`, with a first master key made if it has none."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        provider = cls(directory)
        # Processes starting together on a new directory make one first key, not several.
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not (directory / "active").exists():
                provider.add_master_key()
        finally:
            os.close(fd)  # and with it the lock
        provider._read_active()
        return provider

    def add_master_key(self) -> str:
        """Make a new master key and make it the active one; its id."""
        kek_id = secrets.token_hex(8)
        _write_private(self._dir / f"master-{kek_id}.key",
                       base64.b64encode(secrets.token_bytes(32)))
        _write_private(self._dir / "active", kek_id.encode())
        self._read_active()
        return kek_id

    def master_keys(self) -> list[str]:
        return sorted(p.name[len("master-"):-len(".key")]
                      for p in self._dir.glob("master-*.key"))

    def retire(self, kek_id: str) -> Path:
        """Move a master key that wraps nothing any more to `retired/` (delete it there
        once no backup holds data keys it wrapped)."""
        if kek_id == self.active_kek():
            raise ValueError("the active master key cannot be retired")
        retired = self._dir / "retired"
        retired.mkdir(exist_ok=True, mode=0o700)
        target = retired / f"master-{kek_id}.key"
        os.replace(self._dir / f"master-{kek_id}.key", target)
        self._keys.pop(kek_id, None)
        return target

    def _read_active(self) -> None:
        stat = (self._dir / "active").stat()
        self._active_stat = (stat.st_ino, stat.st_mtime_ns)
        self._active = (self._dir / "active").read_text().strip()

    def active_kek(self) -> str:
        # Another process (`caas admin rotate-master-key`) may have rotated: look again.
        stat = (self._dir / "active").stat()
        if (stat.st_ino, stat.st_mtime_ns) != self._active_stat:
            self._read_active()
        return self._active

    def _cipher(self, kek_id: str) -> AESGCM:
        cipher = self._keys.get(kek_id)
        if cipher is None:
            path = self._dir / f"master-{kek_id}.key"
            try:
                key = base64.b64decode(path.read_bytes(), validate=True)
            except (OSError, ValueError) as error:
                raise KeyUnavailable(
                    f"master key {kek_id} is not in {self._dir}: every server of a deployment "
                    "needs the same master keys (CAAS_KEY_DIR, a mounted secret, say)"
                ) from error
            cipher = self._keys[kek_id] = AESGCM(key)
        return cipher

    async def wrap(self, key: bytes, context: str) -> WrappedKey:
        kek_id = self.active_kek()
        nonce = secrets.token_bytes(NONCE)
        blob = nonce + self._cipher(kek_id).encrypt(nonce, key, context.encode())
        return WrappedKey(kek_id, blob)

    async def unwrap(self, wrapped: WrappedKey, context: str) -> bytes:
        nonce, sealed = wrapped.blob[:NONCE], wrapped.blob[NONCE:]
        return self._cipher(wrapped.kek_id).decrypt(nonce, sealed, context.encode())
