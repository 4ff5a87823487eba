"""An app's Web Push key as the push domain keeps it: the private half is sealed with
the app's data key (never stored in clear) and opens to the scalar of the public key,
the previous one too after a rotation (in process, SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.core.principal import Operator
from services.core.settings import load_settings
from services.runtime import Runtime, build_runtime


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    built = await build_runtime(load_settings(
        data_dir=tmp_path, operator_token="caaso_" + "t" * 40))
    await built.apps.do_create_app(Operator(), "alpha", "Alpha", "")
    yield built
    await built.close()


def public_of(scalar: bytes) -> bytes:
    private = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
    return private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


async def test_the_private_half_is_sealed_and_matches(runtime: Runtime) -> None:
    key = await runtime.push.web_push_key(Operator(), "alpha")
    stored = await runtime.stores.push.get_key("alpha")
    assert stored == key
    scalar = await runtime.push.private_key(key, key.public_key)
    assert len(scalar) == 32 and scalar not in stored.sealed_private_key
    assert public_of(scalar) == key.public_key
    rotated = await runtime.push.rotate_web_push_key(Operator(), "alpha")
    assert rotated.previous_public_key == key.public_key
    assert public_of(await runtime.push.private_key(rotated, key.public_key)) == key.public_key
    assert public_of(await runtime.push.private_key(rotated, rotated.public_key)) == \
        rotated.public_key
