"""The browser's side of Web Push, for tests: a subscription's keys, and RFC 8291
decryption written for the tests (not the sender's library), with RFC 8292's VAPID
header checked."""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def unpadded(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hkdf(salt: bytes, secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(secret)


def decrypt(body: bytes, browser: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """RFC 8291 §3.4 and RFC 8188 §2, as a browser does it (one record)."""
    salt, record_size, id_length = body[:16], struct.unpack("!L", body[16:20])[0], body[20]
    server_public = body[21:21 + id_length]
    ciphertext = body[21 + id_length:]
    assert id_length == 65 and len(ciphertext) <= record_size
    ua_public = browser.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    shared = browser.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), server_public))
    ikm = _hkdf(auth, shared, b"WebPush: info\x00" + ua_public + server_public, 32)
    key = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    plain = AESGCM(key).decrypt(nonce, ciphertext, None)
    assert plain.rstrip(b"\x00").endswith(b"\x02")  # the last record's delimiter
    return plain.rstrip(b"\x00")[:-1]


def verify_vapid(header: str, public_key: bytes, origin: str) -> dict[str, object]:
    """The claims of a `vapid t=…, k=…` header, its signature checked with `public_key`."""
    scheme, _, params = header.partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert unpadded(fields["k"]) == public_key
    head, body, signature = fields["t"].split(".")
    raw = unpadded(signature)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                    int.from_bytes(raw[32:], "big")),
               f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(unpadded(head)) == {"typ": "JWT", "alg": "ES256"}
    claims: dict[str, object] = json.loads(unpadded(body))
    assert claims["aud"] == origin
    return claims



@dataclass
class Browser:
    """A browser's push subscription keys: its P-256 key pair and auth secret."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.X962,
                                                  PublicFormat.UncompressedPoint)

    def open(self, body: bytes) -> dict[str, object]:
        """The JSON a service worker's push event would get."""
        opened: dict[str, object] = json.loads(decrypt(body, self.key, self.auth))
        return opened
