"""MLS messages built by hand for the delivery service's tests (RFC 9420 framing).

The server reads framing, credentials and signatures, never content: these builders
make real KeyPackages (signed with Ed25519, cipher suite 1) and PublicMessage commits
and PrivateMessage headers whose secret parts are random bytes. The end-to-end tests
use a real MLS client (ts-mls, in the SDK) instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from caas.e2ee.v1 import e2ee_service_pb2 as e2ee_pb
from caas.e2ee.v1 import resources_pb2 as e2ee_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.e2ee.mls import encode_vector, ref_hash, sign_content
from tests.support.chat import Person

SUITE = 1  # MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519


def u8(value: int) -> bytes:
    return value.to_bytes(1, "big")


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def v(data: bytes) -> bytes:
    return encode_vector(data)


@dataclass
class Signer:
    """A device's signature key pair."""

    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, label: bytes, content: bytes) -> bytes:
        return self.private.sign(sign_content(label, content))


def leaf_node(identity: bytes, signer: Signer, source: int = 1) -> bytes:
    capabilities = v(u16(1)) + v(u16(SUITE)) + v(b"") + v(b"") + v(u16(1))
    tail = u64(0) + u64(2**63) if source == 1 else (v(os.urandom(32)) if source == 3 else b"")
    tbs = (v(os.urandom(32)) + v(signer.public) + u16(1) + v(identity) + capabilities
           + u8(source) + tail + v(b""))
    return tbs + v(signer.sign(b"LeafNodeTBS", tbs))


def key_package_body(identity: bytes, signer: Signer, *, suite: int = SUITE,
                     tamper: bool = False) -> bytes:
    """A KeyPackage (without the MLSMessage header); `tamper` breaks its signature."""
    tbs = u16(1) + u16(suite) + v(os.urandom(32)) + leaf_node(identity, signer) + v(b"")
    signature = signer.sign(b"KeyPackageTBS", tbs)
    if tamper:
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    return tbs + v(signature)


def key_package(identity: bytes, signer: Signer, **options: object) -> bytes:
    """A KeyPackage as an MLSMessage (what devices upload)."""
    return u16(1) + u16(5) + key_package_body(identity, signer, **options)  # type: ignore[arg-type]


def body_of(message: bytes) -> bytes:
    """The KeyPackage inside an MLSMessage."""
    return message[4:]


def reference(message: bytes) -> bytes:
    return ref_hash(SUITE, b"MLS 1.0 KeyPackage Reference", body_of(message))


def commit(group_id: bytes, epoch: int, sender_leaf: int, *, adds: Sequence[bytes] = (),
           removes: Sequence[int] = (), path: bytes | None = None) -> bytes:
    """A PublicMessage commit from a member; `adds`: KeyPackages as MLSMessages."""
    proposals = b"".join(u8(1) + u16(1) + body_of(kp) for kp in adds)
    proposals += b"".join(u8(1) + u16(3) + u32(leaf) for leaf in removes)
    body = v(proposals) + (u8(1) + path + v(b"") if path is not None else u8(0))
    content = (v(group_id) + u64(epoch) + u8(1) + u32(sender_leaf) + v(b"") + u8(3) + body)
    auth = v(os.urandom(64)) + v(os.urandom(32))  # signature, confirmation tag
    return u16(1) + u16(1) + content + auth + v(os.urandom(32))  # + membership tag


def application(group_id: bytes, epoch: int, size: int = 64) -> bytes:
    """A PrivateMessage application message (its ciphertext random)."""
    return (u16(1) + u16(2) + v(group_id) + u64(epoch) + u8(1) + v(b"") + v(os.urandom(16))
            + v(os.urandom(size)))


def welcome(refs: Sequence[bytes], suite: int = SUITE) -> bytes:
    secrets = b"".join(v(ref) + v(os.urandom(32)) + v(os.urandom(48)) for ref in refs)
    return u16(1) + u16(3) + u16(suite) + v(secrets) + v(os.urandom(200))


@dataclass
class Phone:
    """One MLS device of a signed-in user, talking to the server like a client would
    (its MLS messages built by the builders above)."""

    person: Person
    device_id: str
    signer: Signer = field(default_factory=Signer)

    @property
    def name(self) -> str:
        return f"apps/{self.person.app_id}/users/{self.person.user_id}/devices/{self.device_id}"

    @property
    def identity(self) -> bytes:
        return self.name.encode()

    async def register(self, packages: int = 3, last_resort: bool = False) -> e2ee_res.Device:
        e2ee = self.person.client.e2ee
        await e2ee.CreateDevice(e2ee_pb.CreateDeviceRequest(
            parent=f"apps/{self.person.app_id}/users/{self.person.user_id}",
            device_id=self.device_id,
            device=e2ee_res.Device(cipher_suite=SUITE, signature_key=self.signer.public)),
            metadata=self.person.auth)
        return await self.upload([self.key_package() for _ in range(packages)],
                                 self.key_package() if last_resort else b"")

    def key_package(self, **options: object) -> bytes:
        return key_package(self.identity, self.signer, **options)

    async def upload(self, packages: Sequence[bytes], last_resort: bytes = b""
                     ) -> e2ee_res.Device:
        response = await self.person.client.e2ee.UploadKeyPackages(
            e2ee_pb.UploadKeyPackagesRequest(device=self.name, key_packages=list(packages),
                                             last_resort=last_resort),
            metadata=self.person.auth)
        return response.device

    async def send(self, conversation: str, data: bytes, welcome: bytes = b"",
                   request_id: str = "") -> msg_res.Message:
        response = await self.person.client.messages.CreateMessage(
            msg_pb.CreateMessageRequest(
                parent=conversation, request_id=request_id or uuid.uuid4().hex,
                message=msg_res.Message(mls=msg_res.MlsContent(
                    message=data, device_id=self.device_id, welcome=welcome))),
            metadata=self.person.auth)
        return response.message

    async def claim(self, conversation: str, *user_ids: str
                    ) -> e2ee_pb.ClaimKeyPackagesResponse:
        response: e2ee_pb.ClaimKeyPackagesResponse = \
            await self.person.client.e2ee.ClaimKeyPackages(
                e2ee_pb.ClaimKeyPackagesRequest(conversation=conversation,
                                                user_ids=list(user_ids),
                                                device_id=self.device_id),
                metadata=self.person.auth)
        return response

    async def group(self, conversation: str) -> e2ee_res.Group:
        response = await self.person.client.e2ee.GetGroup(
            e2ee_pb.GetGroupRequest(name=f"{conversation}/group"), metadata=self.person.auth)
        return response.group

    async def welcomes(self) -> list[e2ee_res.Welcome]:
        response = await self.person.client.e2ee.ListWelcomes(
            e2ee_pb.ListWelcomesRequest(parent=self.name), metadata=self.person.auth)
        return list(response.welcomes)


async def form_group(conversation: str, creator: Phone, *others: Phone) -> msg_res.Message:
    """The creator's device commits the group's first epoch, adding the others (their
    KeyPackages claimed)."""
    claimed = await creator.claim(conversation, *sorted({p.person.user_id for p in others}))
    wanted = {p.name for p in others}
    packages = [c.key_package for c in claimed.key_packages if c.device in wanted]
    return await creator.send(
        conversation, commit(conversation.encode(), 0, 0, adds=packages),
        welcome([reference(kp) for kp in packages]))
