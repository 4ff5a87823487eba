"""What the delivery service reads of MLS messages (services/e2ee/mls.py) and the rules it
applies to them (services/e2ee/delivery.py), without a server.

The reader: variable-length integers in their 1, 2 and 4-byte forms only, shortest
form, and every structure whole (anything short or trailing refused); KeyPackages
parsed and verified for the signature schemes of RFC 9420's cipher suites (Ed25519,
ECDSA with DER signatures, Ed448), their references, Welcomes' references, commits'
proposals and path; what it does not support refused. The rules: the first commit is
leaf 0's, leaves are assigned as RFC 9420 §12.3 says (removals first, then additions
into the leftmost blank leaf, trailing blanks trimmed), only pending leaves are
removed and nothing is sent while one stays, only registered devices of members are
added (their own key, the group's suite, validly signed, once), the Welcome is for
exactly those added, and a message of another epoch is told to catch up.

And against a real client: tests/e2ee/vectors.mjs has ts-mls (the SDK's MLS library,
called as web_bridge/sdk/src/e2ee/device.ts calls it) make a KeyPackage, a group's
commits, a Welcome and an application message, which the reader must read as ts-mls
meant them and the rules must take."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.conversations.models import MlsGroup
from services.core.errors import Aborted, DomainError, FailedPrecondition, InvalidArgument
from services.e2ee import delivery, mls
from services.e2ee.mls import MlsError, Reader, encode_varint, sign_content
from services.e2ee.models import Device
from tests.support.mls import (
    Signer,
    application,
    body_of,
    commit,
    key_package,
    leaf_node,
    reference,
    u8,
    u16,
    u32,
    u64,
    v,
    welcome,
)
from tests.web_bridge.nodejs import WEB, node

APP = "app"
GID = b"apps/app/conversations/c1"
T0 = datetime(2026, 12, 5, tzinfo=UTC)
VECTORS = Path(__file__).with_name("vectors.mjs")


def varint(data: bytes) -> int:
    reader = Reader(data)
    value = reader.varint()
    reader.end()
    return value


def refused(parse: Callable[[bytes], object], data: bytes, words: str = "") -> None:
    with pytest.raises(MlsError) as caught:
        parse(data)
    assert words in str(caught.value)


def every_cut_refused(parse: Callable[[bytes], object], data: bytes) -> None:
    """Every proper prefix of `data` is refused as truncated, and `data` plus a byte as
    having trailing bytes."""
    for end in range(len(data)):
        refused(parse, data[:end])
    refused(parse, data + b"\x00", "trailing bytes")


# Variable-length integers (RFC 9420 §2.1.2)


def test_varints_take_their_three_forms() -> None:
    # RFC 9000 §A.1's examples (the same encoding, without its 8-byte form).
    assert varint(b"\x25") == 37
    assert varint(b"\x7b\xbd") == 15293
    assert varint(b"\x9d\x7f\x3e\x7d") == 494878333
    for value, encoded in [(0, b"\x00"), (63, b"\x3f"), (64, b"\x40\x40"),
                           (16383, b"\x7f\xff"), (16384, b"\x80\x00\x40\x00"),
                           ((1 << 30) - 1, b"\xbf\xff\xff\xff")]:
        assert encode_varint(value) == encoded
        assert varint(encoded) == value
    with pytest.raises(ValueError, match="too long"):
        encode_varint(1 << 30)


def test_varints_must_be_in_their_shortest_form() -> None:
    for longer in (b"\x40\x25", b"\x40\x3f", b"\x80\x00\x00\x25", b"\x80\x00\x3f\xff"):
        refused(varint, longer, "shortest form")
    assert varint(b"\x40\x40") == 64 and varint(b"\x80\x00\x40\x00") == 16384


def test_the_8_byte_prefix_and_short_varints_are_refused() -> None:
    refused(varint, b"\xc0\x00\x00\x00\x00\x00\x00\x01", "invalid variable-length integer")
    refused(varint, b"\xff", "invalid variable-length integer")
    for short in (b"", b"\x40", b"\x80\x00\x40"):
        refused(varint, short, "truncated")


def test_vectors_optionals_and_ends_are_checked() -> None:
    reader = Reader(v(b"abc") + v(b"") + b"\x01")
    assert (reader.vector(), reader.vector(), reader.optional()) == (b"abc", b"", True)
    reader.end()
    refused(lambda data: Reader(data).vector(), b"\x05abcd", "truncated")
    refused(lambda data: Reader(data).optional(), b"\x02", "invalid optional")
    trailing = Reader(b"\x00\x00")
    trailing.uint(1)
    with pytest.raises(MlsError, match="trailing bytes"):
        trailing.end()


# KeyPackages


def test_a_key_package_parses_and_verifies() -> None:
    signer = Signer()
    identity = b"apps/app/users/alice/devices/phone"
    message = key_package(identity, signer)
    package = mls.parse_key_package(message)
    assert package.cipher_suite == 1
    assert package.leaf.identity == identity
    assert package.leaf.signature_key == signer.public
    assert package.leaf.source == mls.FROM_KEY_PACKAGE
    assert len(package.init_key) == len(package.leaf.encryption_key) == 32
    assert package.raw == body_of(message)
    assert package.verify()
    # Its reference (§5.2): RefHash("MLS 1.0 KeyPackage Reference", the KeyPackage).
    expected = hashlib.sha256(v(b"MLS 1.0 KeyPackage Reference") + v(body_of(message)))
    assert package.reference() == expected.digest() == reference(message)
    assert mls.parse_key_package(key_package(identity, signer)).reference() != expected.digest()


def test_a_key_package_with_a_bad_signature_does_not_verify() -> None:
    signer = Signer()
    identity = b"apps/app/users/alice/devices/phone"
    assert not mls.parse_key_package(key_package(identity, signer, tamper=True)).verify()
    # The leaf node's own signature broken, the KeyPackage's signed over it.
    leaf = bytearray(leaf_node(identity, signer))
    leaf[-1] ^= 1
    tbs = u16(1) + u16(1) + v(os.urandom(32)) + bytes(leaf) + v(b"")
    broken_leaf = u16(1) + u16(5) + tbs + v(signer.sign(b"KeyPackageTBS", tbs))
    assert not mls.parse_key_package(broken_leaf).verify()
    # Signed by another key than its leaf's.
    other = Signer()
    tbs = u16(1) + u16(1) + v(os.urandom(32)) + leaf_node(identity, signer) + v(b"")
    forged = u16(1) + u16(5) + tbs + v(other.sign(b"KeyPackageTBS", tbs))
    assert not mls.parse_key_package(forged).verify()
    # Anything but the signed bytes changed: a signature over the rest.
    good = bytearray(key_package(identity, signer))
    good[9] ^= 1  # the init key's first byte
    assert not mls.parse_key_package(bytes(good)).verify()


@dataclass
class SuiteSigner:
    """A signature key pair of one of RFC 9420's cipher suites, as MLS serializes it."""

    suite: int
    public: bytes
    sign_bytes: Callable[[bytes], bytes]

    def sign(self, label: bytes, content: bytes) -> bytes:
        return self.sign_bytes(sign_content(label, content))


def suite_signer(suite: int) -> SuiteSigner:
    if suite in (1, 3):
        ed = Ed25519PrivateKey.generate()
        return SuiteSigner(suite, ed.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
                           ed.sign)
    if suite in (4, 6):
        big = Ed448PrivateKey.generate()
        return SuiteSigner(suite, big.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
                           big.sign)
    curve, digest = {2: (ec.SECP256R1(), hashes.SHA256()), 5: (ec.SECP521R1(), hashes.SHA512()),
                     7: (ec.SECP384R1(), hashes.SHA384())}[suite]
    private = ec.generate_private_key(curve)
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    # ECDSA signatures are DER-encoded (RFC 9420 §5.1.2, as TLS 1.3 does).
    return SuiteSigner(suite, public, lambda data: private.sign(data, ec.ECDSA(digest)))


def suite_key_package(identity: bytes, signer: SuiteSigner) -> bytes:
    """A KeyPackage of the signer's cipher suite, as an MLSMessage."""
    capabilities = v(u16(1)) + v(u16(signer.suite)) + v(b"") + v(b"") + v(u16(1))
    leaf = (v(os.urandom(32)) + v(signer.public) + u16(1) + v(identity) + capabilities
            + u8(1) + u64(0) + u64(2**63) + v(b""))
    leaf += v(signer.sign(b"LeafNodeTBS", leaf))
    tbs = u16(1) + u16(signer.suite) + v(os.urandom(32)) + leaf + v(b"")
    return u16(1) + u16(5) + tbs + v(signer.sign(b"KeyPackageTBS", tbs))


@pytest.mark.parametrize(("suite", "key_size", "hash_name"), [
    (1, 32, "sha256"), (2, 65, "sha256"), (4, 57, "sha512"), (7, 97, "sha384")])
def test_key_packages_of_each_signature_scheme_verify(suite: int, key_size: int,
                                                      hash_name: str) -> None:
    signer = suite_signer(suite)
    identity = b"apps/app/users/alice/devices/p256"
    message = suite_key_package(identity, signer)
    package = mls.parse_key_package(message)
    assert (package.cipher_suite, len(package.leaf.signature_key)) == (suite, key_size)
    assert package.verify()
    assert package.reference() == hashlib.new(
        hash_name, v(b"MLS 1.0 KeyPackage Reference") + v(body_of(message))).digest()
    tampered = bytearray(message)
    tampered[-1] ^= 1
    assert not mls.parse_key_package(bytes(tampered)).verify()
    # Signed by another key of the same scheme: not valid either.
    other = suite_signer(suite)
    impostor = suite_key_package(identity, SuiteSigner(suite, signer.public, other.sign_bytes))
    assert not mls.parse_key_package(impostor).verify()


def test_an_ecdsa_signature_must_be_der() -> None:
    """A P-256 KeyPackage whose signatures are r || s (what WebCrypto makes) is refused."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def raw_signature(data: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric.utils import (  # noqa: PLC0415
            decode_dss_signature,
        )
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    raw = suite_key_package(b"apps/app/users/alice/devices/web", SuiteSigner(2, public,
                                                                            raw_signature))
    assert not mls.parse_key_package(raw).verify()


def test_malformed_key_packages_are_refused() -> None:
    signer = Signer()
    identity = b"apps/app/users/alice/devices/phone"
    message = key_package(identity, signer)
    every_cut_refused(mls.parse_key_package, message)
    refused(mls.parse_key_package, u16(2) + message[2:], "mls10")
    refused(mls.parse_key_package, message[:2] + u16(1) + message[4:], "not a KeyPackage")
    refused(mls.parse_key_package, message[:4] + u16(2) + message[6:], "mls10")  # inner
    refused(mls.parse_key_package, message[:6] + u16(0x0A0A) + message[8:],
            "cipher suite 2570 is not supported")
    # An X.509 credential: the credential type after the two keys.
    body = bytearray(message)
    at = 8 + 1 + 32 + 1 + 32 + 1 + 32  # header, suite; init, encryption, signature keys
    assert body[at:at + 2] == u16(1)
    body[at:at + 2] = u16(2)
    refused(mls.parse_key_package, bytes(body), "BasicCredential")
    # A leaf node of another source than a key package (an update's: no lifetime).
    leaf = leaf_node(identity, signer, source=2)
    tbs = u16(1) + u16(1) + v(os.urandom(32)) + leaf + v(b"")
    refused(mls.parse_key_package, u16(1) + u16(5) + tbs + v(signer.sign(b"KeyPackageTBS", tbs)),
            "must come from a key package")
    unknown = bytearray(leaf_node(identity, signer))
    source_at = 1 + 32 + 1 + 32 + 2 + 1 + len(identity) + 3 + 3 + 1 + 1 + 3
    assert unknown[source_at] == mls.FROM_KEY_PACKAGE
    unknown[source_at] = 9
    tbs = u16(1) + u16(1) + v(os.urandom(32)) + bytes(unknown) + v(b"")
    refused(mls.parse_key_package, u16(1) + u16(5) + tbs + v(b"sig"), "unknown leaf node source")


# Welcomes


def test_a_welcome_names_the_key_packages_it_is_for() -> None:
    refs = [os.urandom(32), os.urandom(32)]
    assert mls.parse_welcome(welcome(refs)) == (1, tuple(refs))
    assert mls.parse_welcome(welcome([], suite=2)) == (2, ())
    every_cut_refused(mls.parse_welcome, welcome(refs[:1]))
    refused(mls.parse_welcome, application(GID, 1), "not a Welcome")
    refused(mls.parse_welcome, u16(2) + welcome(refs)[2:], "mls10")


# PublicMessages and PrivateMessages


def public_message(content_type: int, body: bytes, *, epoch: int = 1, sender_type: int = 1,
                   leaf: int = 0, group_id: bytes = GID) -> bytes:
    """A PublicMessage: its tags as the sender type and content type call for."""
    sender = u8(sender_type) + (u32(leaf) if sender_type in (mls.MEMBER, mls.EXTERNAL) else b"")
    content = v(group_id) + u64(epoch) + sender + v(b"") + u8(content_type) + body
    auth = v(os.urandom(64)) + (v(os.urandom(32)) if content_type == mls.COMMIT else b"")
    tag = v(os.urandom(32)) if sender_type == mls.MEMBER else b""
    return u16(1) + u16(1) + content + auth + tag


def commit_of(*proposals: bytes, epoch: int = 1, sender_type: int = 1, leaf: int = 0
              ) -> bytes:
    """A commit PublicMessage of these ProposalOrRefs, without a path."""
    return public_message(mls.COMMIT, v(b"".join(proposals)) + u8(0), epoch=epoch,
                          sender_type=sender_type, leaf=leaf)


def by_value(kind: int, payload: bytes) -> bytes:
    return u8(1) + u16(kind) + payload


def test_a_commit_is_read_with_its_adds_removes_and_path() -> None:
    alice, bob, carol = Signer(), Signer(), Signer()
    bobs = key_package(b"apps/app/users/bob/devices/b1", bob)
    carols = key_package(b"apps/app/users/carol/devices/c1", carol)
    path = leaf_node(b"apps/app/users/alice/devices/a1", alice, source=mls.FROM_COMMIT)
    data = commit(GID, 7, 2, adds=[bobs, carols], removes=[3, 5], path=path)
    framed = mls.parse_framed(data)
    assert (framed.wire_format, framed.group_id, framed.epoch, framed.content_type) == (
        mls.PUBLIC_MESSAGE, GID, 7, mls.COMMIT)
    assert (framed.sender_type, framed.sender_leaf) == (mls.MEMBER, 2)
    assert [(p.kind, p.removed) for p in framed.proposals] == [
        (mls.ADD, -1), (mls.ADD, -1), (mls.REMOVE, 3), (mls.REMOVE, 5)]
    added = [p.key_package for p in framed.proposals if p.key_package is not None]
    assert [p.raw for p in added] == [body_of(bobs), body_of(carols)]
    assert all(p.verify() for p in added)
    assert framed.path_leaf is not None
    assert (framed.path_leaf.identity, framed.path_leaf.signature_key,
            framed.path_leaf.source) == (b"apps/app/users/alice/devices/a1", alice.public,
                                         mls.FROM_COMMIT)
    empty = mls.parse_framed(commit(GID, 0, 0))
    assert (empty.proposals, empty.path_leaf, empty.epoch) == ((), None, 0)
    every_cut_refused(mls.parse_framed, data)


def test_the_other_proposals_commits_may_carry_are_read() -> None:
    signer = Signer()
    update = by_value(mls.UPDATE, leaf_node(b"apps/app/users/a/devices/d", signer, source=2))
    psk_external = by_value(mls.PSK, u8(1) + v(b"psk id") + v(os.urandom(32)))
    psk_resumption = by_value(mls.PSK, u8(2) + u8(1) + v(GID) + u64(3) + v(os.urandom(32)))
    reinit = by_value(mls.REINIT, v(b"new group") + u16(1) + u16(1) + v(b""))
    external_init = by_value(mls.EXTERNAL_INIT, v(os.urandom(32)))
    extensions = by_value(mls.GROUP_CONTEXT_EXTENSIONS, v(u16(0xF000) + v(b"app data")))
    framed = mls.parse_framed(commit_of(update, psk_external, psk_resumption, reinit,
                                        external_init, extensions))
    assert [p.kind for p in framed.proposals] == [
        mls.UPDATE, mls.PSK, mls.PSK, mls.REINIT, mls.EXTERNAL_INIT,
        mls.GROUP_CONTEXT_EXTENSIONS]
    refused(mls.parse_framed, commit_of(by_value(mls.PSK, u8(3) + v(b"x") + v(b"n"))),
            "unknown pre-shared key type")


def test_what_the_reader_does_not_support_is_refused() -> None:
    # A proposal by reference: the delivery service cannot see what it does.
    refused(mls.parse_framed, commit_of(u8(2) + v(os.urandom(32))), "by value")
    # A proposal type it does not know (a GREASE value, an app's own).
    refused(mls.parse_framed, commit_of(by_value(0x0A0A, v(b""))), "proposal type 2570")
    refused(mls.parse_framed, commit_of(by_value(0xF001, v(b""))), "proposal type 61441")
    # An application message in the clear.
    refused(mls.parse_framed, public_message(mls.APPLICATION, v(b"hello")), "PrivateMessages")
    refused(mls.parse_framed, public_message(9, b""), "unknown content type")
    refused(mls.parse_framed, commit_of(sender_type=5), "unknown sender type")
    refused(mls.parse_framed, welcome([os.urandom(32)]), "not a PublicMessage or Private")
    refused(mls.parse_framed, key_package(b"x", Signer()), "not a PublicMessage or Private")
    refused(mls.parse_framed, u16(2) + application(GID, 1)[2:], "mls10")


def test_senders_and_their_tags() -> None:
    proposal = public_message(mls.PROPOSAL, u16(mls.REMOVE) + u32(4), sender_type=mls.EXTERNAL,
                              leaf=1)
    framed = mls.parse_framed(proposal)
    assert (framed.content_type, framed.sender_type, framed.sender_leaf) == (
        mls.PROPOSAL, mls.EXTERNAL, -1)  # an external sender's index is no leaf
    assert [(p.kind, p.removed) for p in framed.proposals] == [(mls.REMOVE, 4)]
    joiner = commit_of(sender_type=mls.NEW_MEMBER_COMMIT)  # no membership tag
    framed = mls.parse_framed(joiner)
    assert (framed.sender_type, framed.sender_leaf) == (mls.NEW_MEMBER_COMMIT, -1)
    refused(mls.parse_framed, joiner + v(os.urandom(32)), "trailing bytes")
    refused(mls.parse_framed, commit_of(leaf=3)[:-33], "truncated")  # a member's tag missing


def test_a_private_message_is_read_as_far_as_its_header() -> None:
    data = application(GID, 9, size=100)
    framed = mls.parse_framed(data)
    assert (framed.wire_format, framed.group_id, framed.epoch, framed.content_type) == (
        mls.PRIVATE_MESSAGE, GID, 9, mls.APPLICATION)
    assert (framed.sender_type, framed.sender_leaf, framed.proposals) == (0, -1, ())
    every_cut_refused(mls.parse_framed, data)
    content_type_at = 4 + 1 + len(GID) + 8
    for content_type in (mls.PROPOSAL, mls.COMMIT):
        other = bytearray(data)
        other[content_type_at] = content_type
        assert mls.parse_framed(bytes(other)).content_type == content_type
    other = bytearray(data)
    other[content_type_at] = 4
    refused(mls.parse_framed, bytes(other), "unknown content type")


# The delivery service's rules


@dataclass
class Phone:
    """A registered device and its signature key pair."""

    device: Device
    signer: Signer

    @property
    def key(self) -> str:
        return self.device.key

    def key_package(self, **options: object) -> bytes:
        return key_package(self.device.identity, self.signer, **options)

    def path(self) -> bytes:
        return leaf_node(self.device.identity, self.signer, source=mls.FROM_COMMIT)


def phone(user_id: str, device_id: str, suite: int = 1) -> Phone:
    signer = Signer()
    return Phone(Device(APP, user_id, device_id, suite, signer.public, "s", T0), signer)


def members(*phones: Phone) -> dict[bytes, Device]:
    return {p.device.identity: p.device for p in phones}


def group(epoch: int, *leaves: Phone | None, commit_sequence: int = 10) -> MlsGroup:
    return MlsGroup(epoch, 1, commit_sequence,
                    tuple(None if p is None else p.key for p in leaves))


def check(state: MlsGroup, data: bytes, sender: Phone, registered: dict[bytes, Device],
          welcome_bytes: bytes = b"", pending: tuple[int, ...] = ()) -> delivery.Checked:
    return delivery.check_commit(GID, state, delivery.parse(data), welcome_bytes,
                                 sender.device, registered, pending)


def refusal(rule: str, state: MlsGroup, data: bytes, sender: Phone,
            registered: dict[bytes, Device], welcome_bytes: bytes = b"",
            pending: tuple[int, ...] = ()) -> FailedPrecondition:
    with pytest.raises(FailedPrecondition) as caught:
        check(state, data, sender, registered, welcome_bytes, pending)
    assert (caught.value.reason, caught.value.metadata) == ("MLS_COMMIT_REFUSED",
                                                            {"rule": rule})
    return caught.value


def invalid(field: str, call: Callable[[], object]) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        call()
    assert caught.value.reason == "MLS_MESSAGE_INVALID"
    assert [f.field for f in caught.value.field_violations] == [field]
    return caught.value


def welcoming(*packages: bytes) -> bytes:
    return welcome([reference(p) for p in packages])


def test_the_first_commit_is_leaf_0s_and_makes_the_group() -> None:
    a1, b1, b2 = phone("alice", "a1"), phone("bob", "b1"), phone("bob", "b2")
    everyone = members(a1, b1, b2)
    packages = [b1.key_package(), b2.key_package()]
    checked = check(MlsGroup(), commit(GID, 0, 0, adds=packages), a1, everyone,
                    welcoming(*packages))
    assert checked == delivery.Checked(mls.COMMIT, 0, MlsGroup(1, 1, 0, (a1.key, b1.key,
                                                                         b2.key)),
                                       (b1.key, b2.key))
    alone = check(MlsGroup(), commit(GID, 0, 0), a1, everyone)
    assert alone.state == MlsGroup(1, 1, 0, (a1.key,)) and alone.welcomed == ()
    refusal("sender", MlsGroup(), commit(GID, 0, 1, adds=packages[:1]), a1, everyone,
            welcoming(packages[0]))
    # The group takes the creator's suite: a KeyPackage of another is refused.
    other_suite = key_package(b1.device.identity, b1.signer, suite=3)
    refusal("cipher_suite", MlsGroup(), commit(GID, 0, 0, adds=[other_suite]), a1, everyone,
            welcome([reference(other_suite)]))
    p256 = phone("carol", "c1", suite=2)
    assert check(MlsGroup(), commit(GID, 0, 0), p256, everyone).state == MlsGroup(
        1, 2, 0, (p256.key,))


def test_a_commit_comes_from_the_callers_own_leaf() -> None:
    a1, b1 = phone("alice", "a1"), phone("bob", "b1")
    state = group(1, a1, b1)
    everyone = members(a1, b1)
    assert check(state, commit(GID, 1, 1), b1, everyone).state == group(2, a1, b1,
                                                                        commit_sequence=10)
    refusal("sender", state, commit(GID, 1, 0), b1, everyone)
    refusal("sender", state, commit(GID, 1, 2), b1, everyone)
    refusal("sender", state, commit_of(epoch=1, sender_type=mls.NEW_MEMBER_COMMIT), b1,
            everyone)
    refusal("sender", state, commit_of(epoch=1, sender_type=mls.EXTERNAL, leaf=1), b1,
            everyone)
    # Its path keeps its credential and key; a fresh encryption key is what it is for.
    assert check(state, commit(GID, 1, 1, path=b1.path()), b1, everyone).state is not None
    refusal("credential", state, commit(GID, 1, 1, path=leaf_node(
        a1.device.identity, b1.signer, source=mls.FROM_COMMIT)), b1, everyone)
    refusal("credential", state, commit(GID, 1, 1, path=leaf_node(
        b1.device.identity, Signer(), source=mls.FROM_COMMIT)), b1, everyone)


def test_removals_come_first_then_adds_fill_the_leftmost_blank_leaves() -> None:
    a1, b1, c1, d1 = (phone(u, f"{u[0]}1") for u in ("alice", "bob", "carol", "dave"))
    e1, f1, g1 = (phone(u, f"{u[0]}1") for u in ("erin", "frank", "grace"))
    state = group(4, a1, b1, c1, d1)
    # b1 and d1 are gone: only their leaves may be removed, the adds go into them.
    now = members(a1, c1, e1, f1, g1)
    packages = [e1.key_package(), f1.key_package(), g1.key_package()]
    checked = check(state, commit(GID, 4, 0, adds=packages, removes=[3, 1]), a1, now,
                    welcoming(*packages), pending=(1, 3))
    assert checked.state == group(5, a1, e1, c1, f1, g1)
    assert checked.welcomed == (e1.key, f1.key, g1.key)
    # Removed at the end: the tree shrinks; removed in the middle: a blank stays.
    assert check(state, commit(GID, 4, 2, removes=[3]), c1, now,
                 pending=(1, 3)).state == group(5, a1, b1, c1)
    assert check(state, commit(GID, 4, 2, removes=[1, 3]), c1, now,
                 pending=(1, 3)).state == group(5, a1, None, c1)
    blank = group(5, a1, None, c1)
    assert check(blank, commit(GID, 5, 0, adds=packages[:2]), a1, now,
                 welcoming(*packages[:2])).state == group(6, a1, e1, c1, f1)
    trailing = group(5, a1, None, None, c1)  # as a client's tree may hold them
    assert check(trailing, commit(GID, 5, 3, removes=[]), c1, now).state == group(
        6, a1, None, None, c1)


def test_only_pending_leaves_are_removed_and_they_block_application_messages() -> None:
    a1, b1, c1 = phone("alice", "a1"), phone("bob", "b1"), phone("carol", "c1")
    state = group(2, a1, b1, None, c1)
    now = members(a1, c1)  # bob left
    refusal("remove", state, commit(GID, 2, 0, removes=[3]), a1, now, pending=(1,))
    refusal("remove", state, commit(GID, 2, 0, removes=[2]), a1, now, pending=(1,))  # blank
    refusal("remove", state, commit(GID, 2, 0, removes=[7]), a1, now, pending=(1,))
    refusal("remove", state, commit(GID, 2, 0, removes=[1, 1]), a1, now, pending=(1,))
    refusal("remove", state, commit(GID, 2, 0, removes=[0]), a1, now, pending=(0, 1))
    with pytest.raises(FailedPrecondition) as caught:
        delivery.check_application(GID, state, delivery.parse(application(GID, 2)), [3, 1])
    assert (caught.value.reason, caught.value.metadata) == ("MLS_REMOVAL_PENDING",
                                                            {"leaves": "1,3"})
    assert delivery.check_application(GID, state, delivery.parse(application(GID, 2)), []
                                      ) == delivery.Checked(mls.APPLICATION, 2)
    # A commit need not remove them all at once; it may remove and add in one.
    assert check(state, commit(GID, 2, 3), c1, now, pending=(1,)).state == group(
        3, a1, b1, None, c1)


def test_only_registered_devices_of_members_are_added_once_validly() -> None:
    a1, b1, c1 = phone("alice", "a1"), phone("bob", "b1"), phone("carol", "c1")
    state = group(1, a1)
    now = members(a1, b1)  # carol is no member

    def refused_add(rule: str, package: bytes, state: MlsGroup = state) -> None:
        refusal(rule, state, commit(GID, state.epoch, 0, adds=[package]), a1, now,
                welcoming(package))

    refused_add("add_not_member", c1.key_package())
    refused_add("add_not_member", key_package(b"apps/app/users/bob/devices/b9", b1.signer))
    refused_add("signature_key", key_package(b1.device.identity, Signer()))
    refused_add("cipher_suite", b1.key_package(suite=3))
    refused_add("signature", b1.key_package(tamper=True))
    refused_add("add_twice", a1.key_package())
    refused_add("add_twice", b1.key_package(), group(1, a1, b1))
    twice = [b1.key_package(), b1.key_package()]
    refusal("add_twice", state, commit(GID, 1, 0, adds=twice), a1, now, welcoming(*twice))
    added = b1.key_package()
    assert check(state, commit(GID, 1, 0, adds=[added]), a1, now,
                 welcoming(added)).welcomed == (b1.key,)


def test_the_welcome_is_for_exactly_the_devices_added() -> None:
    a1, b1, b2 = phone("alice", "a1"), phone("bob", "b1"), phone("bob", "b2")
    state = group(1, a1)
    now = members(a1, b1, b2)
    first, second = b1.key_package(), b2.key_package()
    adding = commit(GID, 1, 0, adds=[first, second])
    field = delivery.WELCOME_FIELD
    invalid(field, lambda: check(state, adding, a1, now))
    invalid(field, lambda: check(state, adding, a1, now, welcoming(first)))
    invalid(field, lambda: check(state, adding, a1, now, welcoming(first, second,
                                                                   b1.key_package())))
    invalid(field, lambda: check(state, adding, a1, now, welcome(
        [reference(first), reference(second)], suite=3)))
    invalid(field, lambda: check(state, adding, a1, now, b"\x00\x01\x00\x03garbage"))
    invalid(field, lambda: check(state, commit(GID, 1, 0), a1, now, welcoming(first)))
    assert check(state, adding, a1, now, welcoming(second, first)).welcomed == (b1.key,
                                                                                b2.key)


def test_proposals_the_group_does_not_take_are_refused() -> None:
    a1, b1 = phone("alice", "a1"), phone("bob", "b1")
    state = group(1, a1, b1)
    now = members(a1, b1)
    update = by_value(mls.UPDATE, leaf_node(a1.device.identity, a1.signer, source=2))
    reinit = by_value(mls.REINIT, v(b"other") + u16(1) + u16(1) + v(b""))
    external_init = by_value(mls.EXTERNAL_INIT, v(os.urandom(32)))
    for proposal in (update, reinit, external_init):
        refusal("proposal", state, commit_of(proposal, epoch=1), a1, now)
    psk = by_value(mls.PSK, u8(1) + v(b"psk id") + v(os.urandom(32)))
    extensions = by_value(mls.GROUP_CONTEXT_EXTENSIONS, v(b""))
    assert check(state, commit_of(psk, extensions, epoch=1), a1, now).state == group(
        2, a1, b1)


def test_a_message_of_another_epoch_or_group_is_refused() -> None:
    a1, b1 = phone("alice", "a1"), phone("bob", "b1")
    state = group(5, a1, b1, commit_sequence=42)
    now = members(a1, b1)
    for epoch in (4, 6, 0):
        with pytest.raises(Aborted) as caught:
            check(state, commit(GID, epoch, 0), a1, now)
        assert (caught.value.reason, caught.value.metadata) == (
            "MLS_EPOCH_STALE", {"epoch": "5", "commit_sequence": "42"})
        with pytest.raises(Aborted) as caught:
            delivery.check_application(GID, state, delivery.parse(application(GID, epoch)), [])
        assert caught.value.metadata == {"epoch": "5", "commit_sequence": "42"}
    field = delivery.MLS_FIELD
    invalid(field, lambda: check(state, commit(b"apps/app/conversations/c2", 5, 0), a1, now))
    invalid(field, lambda: delivery.check_application(
        b"apps/app/conversations/c2", state, delivery.parse(application(b"x", 5)), []))
    # Commits as PublicMessages, application messages as PrivateMessages only.
    private_commit = bytearray(application(GID, 5))
    private_commit[4 + 1 + len(GID) + 8] = mls.COMMIT
    invalid(field, lambda: check(state, bytes(private_commit), a1, now))
    invalid(field, lambda: delivery.check_application(GID, state, delivery.parse(
        commit(GID, 5, 0)), []))
    proposal = public_message(mls.PROPOSAL, u16(mls.REMOVE) + u32(1), epoch=5)
    invalid(field, lambda: check(state, proposal, a1, now))
    invalid(field, lambda: delivery.check_application(GID, state, delivery.parse(proposal), []))
    invalid(field, lambda: delivery.parse(application(GID, 5)[:-1]))
    assert isinstance(invalid(field, lambda: delivery.parse(b"")), DomainError)


# A real client's messages (ts-mls)


@pytest.fixture(scope="module")
def vectors() -> dict[str, bytes]:
    assert (WEB / "node_modules" / "ts-mls").exists(), (
        "ts-mls is not installed: run `npm ci` in web_bridge (scripts/test.sh does)")
    done = subprocess.run([node(), str(VECTORS)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return {key: bytes.fromhex(value) if isinstance(value, str) else value
            for key, value in json.loads(done.stdout).items()}


def test_ts_mls_key_packages_and_welcomes_are_read(vectors: dict[str, bytes]) -> None:
    package = mls.parse_key_package(vectors["key_package"])
    assert package.cipher_suite == 1
    assert package.leaf.identity == vectors["joiner_identity"]
    assert package.leaf.signature_key == vectors["joiner_signature_key"]
    assert package.verify()
    assert package.reference() == vectors["key_package_ref"]  # ts-mls's makeKeyPackageRef
    assert mls.parse_welcome(vectors["welcome"]) == (1, (package.reference(),))
    for name in ("key_package", "welcome"):
        parse = mls.parse_key_package if name == "key_package" else mls.parse_welcome
        every_cut_refused(parse, vectors[name])


def test_ts_mls_commits_and_application_messages_are_read(vectors: dict[str, bytes]) -> None:
    gid = vectors["group_id"]
    creator = (vectors["creator_identity"], vectors["creator_signature_key"])
    added = mls.parse_framed(vectors["add_commit"])
    assert (added.wire_format, added.group_id, added.epoch, added.content_type) == (
        mls.PUBLIC_MESSAGE, gid, 0, mls.COMMIT)
    assert (added.sender_type, added.sender_leaf) == (mls.MEMBER, 0)
    (add,) = added.proposals
    assert add.kind == mls.ADD and add.key_package is not None
    assert add.key_package.raw == mls.parse_key_package(vectors["key_package"]).raw
    assert add.key_package.verify()
    if added.path_leaf is not None:  # ts-mls 1.6.4 sends none when it only adds
        assert (added.path_leaf.identity, added.path_leaf.signature_key) == creator

    message = mls.parse_framed(vectors["application"])
    assert (message.wire_format, message.group_id, message.epoch, message.content_type) == (
        mls.PRIVATE_MESSAGE, gid, 1, mls.APPLICATION)

    removed = mls.parse_framed(vectors["remove_commit"])
    assert (removed.epoch, removed.sender_leaf) == (1, 0)
    assert [(p.kind, p.removed) for p in removed.proposals] == [(mls.REMOVE, 1)]
    assert removed.path_leaf is not None  # a removal needs a path
    assert (removed.path_leaf.identity, removed.path_leaf.signature_key) == creator
    assert removed.path_leaf.source == mls.FROM_COMMIT

    empty = mls.parse_framed(vectors["empty_commit"])
    assert (empty.epoch, empty.sender_leaf, empty.proposals) == (2, 0, ())
    assert empty.path_leaf is not None and empty.path_leaf.identity == creator[0]
    assert vectors["empty_welcome"]  # no Welcome for a commit that adds nobody
    for name in ("add_commit", "application", "remove_commit", "empty_commit"):
        every_cut_refused(mls.parse_framed, vectors[name])


def test_ts_mls_group_passes_the_delivery_rules(vectors: dict[str, bytes]) -> None:
    """The group ts-mls made, as the server would see it: created by alice's a1, bob's
    b1 added with the Welcome, a message, b1 removed once bob left, a commit with a
    path only."""
    gid = vectors["group_id"]

    def device(identity: bytes, key: bytes) -> Device:
        _, app_id, _, user_id, _, device_id = identity.decode().split("/")
        return Device(app_id, user_id, device_id, 1, key, "s", T0)

    a1 = device(vectors["creator_identity"], vectors["creator_signature_key"])
    b1 = device(vectors["joiner_identity"], vectors["joiner_signature_key"])
    both = {a1.identity: a1, b1.identity: b1}
    first = delivery.check_commit(gid, MlsGroup(), delivery.parse(vectors["add_commit"]),
                                  vectors["welcome"], a1, both, ())
    assert first.state == MlsGroup(1, 1, 0, (a1.key, b1.key))
    assert first.welcomed == (b1.key,)
    state = first.state
    assert delivery.check_application(gid, state, delivery.parse(vectors["application"]),
                                      []).epoch == 1
    second = delivery.check_commit(gid, state, delivery.parse(vectors["remove_commit"]), b"",
                                   a1, {a1.identity: a1}, (1,))
    assert second.state == MlsGroup(2, 1, 0, (a1.key,))
    third = delivery.check_commit(gid, second.state, delivery.parse(vectors["empty_commit"]),
                                  b"", a1, {a1.identity: a1}, ())
    assert third.state == MlsGroup(3, 1, 0, (a1.key,))
    # Replayed on the epoch it ended: stale.
    with pytest.raises(Aborted):
        delivery.check_commit(gid, third.state, delivery.parse(vectors["empty_commit"]), b"",
                              a1, {a1.identity: a1}, ())
