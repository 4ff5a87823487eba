"""What the delivery service reads of MLS messages (RFC 9420), without any key.

CAAS parses the framing of what clients send: a KeyPackage whole (to check its
credential, key and signatures), a PublicMessage commit's sender and proposals (to
keep the group's membership equal to the conversation's), the outer header of a
PrivateMessage (group, epoch, content type) and the KeyPackage references a Welcome
is for. Everything else stays opaque bytes. Structures follow RFC 9420's TLS
presentation language: big-endian integers, vectors with a variable-length size
prefix (§2.1.2), `optional<T>` as a presence byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MLS10 = 1

# Wire formats (§6).
PUBLIC_MESSAGE = 1
PRIVATE_MESSAGE = 2
WELCOME = 3
GROUP_INFO = 4
KEY_PACKAGE = 5

# Content types (§6).
APPLICATION = 1
PROPOSAL = 2
COMMIT = 3

# Sender types (§6).
MEMBER = 1
EXTERNAL = 2
NEW_MEMBER_PROPOSAL = 3
NEW_MEMBER_COMMIT = 4

# Proposal types (§12.1).
ADD = 1
UPDATE = 2
REMOVE = 3
PSK = 4
REINIT = 5
EXTERNAL_INIT = 6
GROUP_CONTEXT_EXTENSIONS = 7

BASIC_CREDENTIAL = 1
X509_CREDENTIAL = 2

# Leaf node sources (§7.2).
FROM_KEY_PACKAGE = 1
FROM_UPDATE = 2
FROM_COMMIT = 3


class MlsError(ValueError):
    """The bytes are not the MLS structure they should be (said in words)."""


@dataclass(frozen=True, slots=True)
class Suite:
    """What the delivery service needs of a cipher suite: its hash and signature."""

    hash_name: str  # hashlib's
    verify: Callable[[bytes, bytes, bytes], bool]  # (public key, message, signature)


def _eddsa(curve: type[Ed25519PublicKey] | type[Ed448PublicKey]
           ) -> Callable[[bytes, bytes, bytes], bool]:
    def verify(key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            curve.from_public_bytes(key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True
    return verify


def _ecdsa(curve: ec.EllipticCurve, digest: hashes.HashAlgorithm
           ) -> Callable[[bytes, bytes, bytes], bool]:
    def verify(key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(curve, key)
            public.verify(signature, message, ec.ECDSA(digest))
        except (InvalidSignature, ValueError):
            return False
        return True
    return verify


# The cipher suites of RFC 9420 §17.1, by number.
SUITES: dict[int, Suite] = {
    1: Suite("sha256", _eddsa(Ed25519PublicKey)),
    2: Suite("sha256", _ecdsa(ec.SECP256R1(), hashes.SHA256())),
    3: Suite("sha256", _eddsa(Ed25519PublicKey)),
    4: Suite("sha512", _eddsa(Ed448PublicKey)),
    5: Suite("sha512", _ecdsa(ec.SECP521R1(), hashes.SHA512())),
    6: Suite("sha512", _eddsa(Ed448PublicKey)),
    7: Suite("sha384", _ecdsa(ec.SECP384R1(), hashes.SHA384())),
}


class Reader:
    """Reads TLS-encoded values from bytes, refusing anything short or malformed."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        if size > len(self.data) - self.at:
            raise MlsError("truncated")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def varint(self) -> int:
        first = self.uint(1)
        prefix = first >> 6
        if prefix == 3:
            raise MlsError("invalid variable-length integer")
        length = 1 << prefix
        value = first & 0x3F
        for byte in self.take(length - 1):
            value = (value << 8) | byte
        if prefix and value < (1 << (8 * (length >> 1) - 2)):
            raise MlsError("variable-length integer not in its shortest form")
        return value

    def vector(self) -> bytes:
        return self.take(self.varint())

    def vectors(self, item: Callable[[Reader], object]) -> None:
        """Reads a vector of items, each read by `item` (which must use it all)."""
        inner = Reader(self.vector())
        while not inner.done():
            item(inner)

    def optional(self) -> bool:
        present = self.uint(1)
        if present > 1:
            raise MlsError("invalid optional")
        return present == 1

    def done(self) -> bool:
        return self.at == len(self.data)

    def end(self) -> None:
        if not self.done():
            raise MlsError("trailing bytes")


def encode_varint(value: int) -> bytes:
    if value < 1 << 6:
        return value.to_bytes(1, "big")
    if value < 1 << 14:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 1 << 30:
        return (value | 0x8000_0000).to_bytes(4, "big")
    raise ValueError("too long for an MLS vector")


def encode_vector(data: bytes) -> bytes:
    return encode_varint(len(data)) + data


@dataclass(frozen=True, slots=True)
class LeafNode:
    encryption_key: bytes
    signature_key: bytes
    identity: bytes  # the BasicCredential's
    source: int
    signed: bytes  # LeafNodeTBS as far as the leaf node itself goes
    signature: bytes


@dataclass(frozen=True, slots=True)
class KeyPackage:
    cipher_suite: int
    init_key: bytes
    leaf: LeafNode
    signed: bytes  # KeyPackageTBS
    signature: bytes
    raw: bytes  # the KeyPackage as serialized (its reference hashes this)

    def reference(self) -> bytes:
        """Its KeyPackageRef (§5.2): what a Welcome names the new member by."""
        return ref_hash(self.cipher_suite, b"MLS 1.0 KeyPackage Reference", self.raw)

    def verify(self) -> bool:
        """Both signatures hold with the leaf's signature key (§10.1, §7.2)."""
        suite = SUITES[self.cipher_suite]
        key = self.leaf.signature_key
        return (suite.verify(key, sign_content(b"LeafNodeTBS", self.leaf.signed),
                             self.leaf.signature)
                and suite.verify(key, sign_content(b"KeyPackageTBS", self.signed),
                                 self.signature))


def sign_content(label: bytes, content: bytes) -> bytes:
    """SignContent (§5.1.2): what SignWithLabel signs."""
    return encode_vector(b"MLS 1.0 " + label) + encode_vector(content)


def ref_hash(cipher_suite: int, label: bytes, value: bytes) -> bytes:
    """RefHash (§5.2)."""
    data = encode_vector(label) + encode_vector(value)
    return hashlib.new(SUITES[cipher_suite].hash_name, data).digest()


def _credential_identity(reader: Reader) -> bytes:
    kind = reader.uint(2)
    if kind != BASIC_CREDENTIAL:
        raise MlsError("the credential must be a BasicCredential")
    return reader.vector()


def _extension(reader: Reader) -> None:
    reader.uint(2)
    reader.vector()


def read_leaf_node(reader: Reader) -> LeafNode:
    start = reader.at
    encryption_key = reader.vector()
    signature_key = reader.vector()
    identity = _credential_identity(reader)
    for _ in range(5):  # capabilities: versions, suites, extensions, proposals, credentials
        reader.vector()
    source = reader.uint(1)
    if source == FROM_KEY_PACKAGE:
        reader.take(16)  # lifetime: not_before, not_after
    elif source == FROM_COMMIT:
        reader.vector()  # parent_hash
    elif source != FROM_UPDATE:
        raise MlsError("unknown leaf node source")
    reader.vectors(_extension)
    signed = reader.data[start:reader.at]
    return LeafNode(encryption_key, signature_key, identity, source, signed, reader.vector())


def read_key_package(reader: Reader) -> KeyPackage:
    start = reader.at
    if reader.uint(2) != MLS10:
        raise MlsError("the protocol version must be mls10")
    suite = reader.uint(2)
    if suite not in SUITES:
        raise MlsError(f"cipher suite {suite} is not supported")
    init_key = reader.vector()
    leaf = read_leaf_node(reader)
    if leaf.source != FROM_KEY_PACKAGE:
        raise MlsError("a KeyPackage's leaf node must come from a key package")
    reader.vectors(_extension)
    signed = reader.data[start:reader.at]
    signature = reader.vector()
    return KeyPackage(suite, init_key, leaf, signed, signature, reader.data[start:reader.at])


def _mls_header(reader: Reader) -> int:
    if reader.uint(2) != MLS10:
        raise MlsError("the protocol version must be mls10")
    return reader.uint(2)


def parse_key_package(data: bytes) -> KeyPackage:
    """A KeyPackage sent as an MLSMessage (wire format mls_key_package)."""
    reader = Reader(data)
    if _mls_header(reader) != KEY_PACKAGE:
        raise MlsError("not a KeyPackage")
    package = read_key_package(reader)
    reader.end()
    return package


@dataclass(frozen=True, slots=True)
class Proposal:
    kind: int
    key_package: KeyPackage | None = None  # an Add's
    removed: int = -1  # a Remove's leaf index


@dataclass(frozen=True, slots=True)
class Framed:
    """What the delivery service reads of a PublicMessage or PrivateMessage."""

    wire_format: int
    group_id: bytes
    epoch: int
    content_type: int
    sender_type: int = 0  # a PublicMessage's
    sender_leaf: int = -1  # a member sender's leaf index (PublicMessage)
    proposals: tuple[Proposal, ...] = ()  # a PublicMessage commit's, all by value
    path_leaf: LeafNode | None = None  # a commit's UpdatePath leaf node


def _psk_id(reader: Reader) -> None:
    kind = reader.uint(1)
    if kind == 1:  # external
        reader.vector()
    elif kind == 2:  # resumption
        reader.uint(1)
        reader.vector()
        reader.uint(8)
    else:
        raise MlsError("unknown pre-shared key type")
    reader.vector()  # nonce


def _proposal(reader: Reader) -> Proposal:
    kind = reader.uint(2)
    if kind == ADD:
        return Proposal(kind, key_package=read_key_package(reader))
    if kind == UPDATE:
        read_leaf_node(reader)
    elif kind == REMOVE:
        return Proposal(kind, removed=reader.uint(4))
    elif kind == PSK:
        _psk_id(reader)
    elif kind == REINIT:
        reader.vector()
        reader.uint(4)  # version, cipher suite
        reader.vectors(_extension)
    elif kind == EXTERNAL_INIT:
        reader.vector()
    elif kind == GROUP_CONTEXT_EXTENSIONS:
        reader.vectors(_extension)
    else:
        raise MlsError(f"proposal type {kind} is not supported")
    return Proposal(kind)


def _commit(reader: Reader) -> tuple[tuple[Proposal, ...], LeafNode | None]:
    proposals: list[Proposal] = []

    def proposal_or_ref(inner: Reader) -> None:
        if inner.uint(1) != 1:
            raise MlsError("a commit must carry its proposals by value")
        proposals.append(_proposal(inner))

    reader.vectors(proposal_or_ref)
    path_leaf = None
    if reader.optional():  # UpdatePath: the committer's new leaf, then the path's nodes
        path_leaf = read_leaf_node(reader)
        reader.vector()
    return tuple(proposals), path_leaf


def parse_framed(data: bytes) -> Framed:
    """A PublicMessage or PrivateMessage (as an MLSMessage): its header, and for a
    PublicMessage commit its sender and proposals."""
    reader = Reader(data)
    wire_format = _mls_header(reader)
    if wire_format == PRIVATE_MESSAGE:
        group_id = reader.vector()
        epoch = reader.uint(8)
        content_type = reader.uint(1)
        if content_type not in (APPLICATION, PROPOSAL, COMMIT):
            raise MlsError("unknown content type")
        for _ in range(3):  # authenticated_data, encrypted_sender_data, ciphertext
            reader.vector()
        reader.end()
        return Framed(wire_format, group_id, epoch, content_type)
    if wire_format != PUBLIC_MESSAGE:
        raise MlsError("not a PublicMessage or PrivateMessage")
    group_id = reader.vector()
    epoch = reader.uint(8)
    sender_type = reader.uint(1)
    leaf = -1
    if sender_type in (MEMBER, EXTERNAL):
        leaf = reader.uint(4)
    elif sender_type not in (NEW_MEMBER_PROPOSAL, NEW_MEMBER_COMMIT):
        raise MlsError("unknown sender type")
    reader.vector()  # authenticated_data
    content_type = reader.uint(1)
    proposals: tuple[Proposal, ...] = ()
    path_leaf = None
    if content_type == APPLICATION:
        raise MlsError("application messages must be PrivateMessages")
    if content_type == PROPOSAL:
        proposals = (_proposal(reader),)
    elif content_type == COMMIT:
        proposals, path_leaf = _commit(reader)
    else:
        raise MlsError("unknown content type")
    reader.vector()  # signature
    if content_type == COMMIT:
        reader.vector()  # confirmation_tag
    if sender_type == MEMBER:
        reader.vector()  # membership_tag
    reader.end()
    return Framed(wire_format, group_id, epoch, content_type, sender_type,
                  leaf if sender_type == MEMBER else -1, proposals, path_leaf)


def _welcome_ref(refs: list[bytes]) -> Callable[[Reader], None]:
    def secret(inner: Reader) -> None:
        refs.append(inner.vector())  # new_member
        inner.vector()  # kem_output
        inner.vector()  # ciphertext
    return secret


def parse_welcome(data: bytes) -> tuple[int, tuple[bytes, ...]]:
    """A Welcome (as an MLSMessage): its cipher suite and the KeyPackageRefs of the
    members it adds."""
    reader = Reader(data)
    if _mls_header(reader) != WELCOME:
        raise MlsError("not a Welcome")
    suite = reader.uint(2)
    refs: list[bytes] = []
    reader.vectors(_welcome_ref(refs))
    reader.vector()  # encrypted_group_info
    reader.end()
    return suite, tuple(refs)
