"""One case per contract rule of the end-to-end encryption service, and of the MLS
content of messages (run by tests/e2e/test_validation.py, whose guard fails when a rule
has no case)."""

from __future__ import annotations

from caas.e2ee.v1 import e2ee_service_pb2 as pb
from caas.e2ee.v1 import resources_pb2 as res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

USER = "apps/some-app/users/u1"
DEVICE = f"{USER}/devices/phone"
CONVERSATION = "apps/some-app/conversations/c1"
KEY = b"k" * 32


def _device(**fields: object) -> pb.CreateDeviceRequest:
    device = {"cipher_suite": 1, "signature_key": KEY, **fields}
    return pb.CreateDeviceRequest(parent=USER, device_id="phone",
                                  device=res.Device(**device))  # type: ignore[arg-type]


def _mls(**fields: object) -> msg_res.Message:
    content = {"message": b"m", **fields}
    return msg_res.Message(mls=msg_res.MlsContent(**content))  # type: ignore[arg-type]


def _send(**fields: object) -> msg_pb.CreateMessageRequest:
    return msg_pb.CreateMessageRequest(parent=CONVERSATION, request_id="r1",
                                       message=_mls(**fields))


def _edit(**fields: object) -> msg_pb.UpdateMessageRequest:
    message = _mls(**fields)
    message.name = f"{CONVERSATION}/messages/1"
    message.text = "t"
    return msg_pb.UpdateMessageRequest(message=message,
                                       update_mask=field_mask_pb2.FieldMask(paths=["text"]))


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("e2ee device parent", "CreateDevice",
     pb.CreateDeviceRequest(parent="apps/some-app", device_id="p",
                            device=res.Device(cipher_suite=1, signature_key=KEY)),
     {"parent": "string.pattern"}),
    ("e2ee device required", "CreateDevice",
     pb.CreateDeviceRequest(parent=USER, device_id="p"), {"device": "required"}),
    ("e2ee device id", "CreateDevice",
     pb.CreateDeviceRequest(parent=USER, device_id="a b",
                            device=res.Device(cipher_suite=1, signature_key=KEY)),
     {"device_id": "string.pattern"}),
    ("e2ee device suite 0", "CreateDevice", _device(cipher_suite=0),
     {"device.cipher_suite": "required"}),
    ("e2ee device suite 8", "CreateDevice", _device(cipher_suite=8),
     {"device.cipher_suite": "uint32.gte_lte"}),
    ("e2ee device key short", "CreateDevice", _device(signature_key=b"k" * 31),
     {"device.signature_key": "bytes.min_len"}),
    ("e2ee device key long", "CreateDevice", _device(signature_key=b"k" * 134),
     {"device.signature_key": "bytes.max_len"}),
    ("e2ee get device name", "GetDevice", pb.GetDeviceRequest(name=USER),
     {"name": "string.pattern"}),
    ("e2ee list devices parent", "ListDevices",
     pb.ListDevicesRequest(parent=DEVICE), {"parent": "string.pattern"}),
    ("e2ee delete device name", "DeleteDevice",
     pb.DeleteDeviceRequest(name=f"{USER}/devices/a/b"), {"name": "string.pattern"}),
    ("e2ee upload device", "UploadKeyPackages",
     pb.UploadKeyPackagesRequest(device=USER), {"device": "string.pattern"}),
    ("e2ee upload at most 100", "UploadKeyPackages",
     pb.UploadKeyPackagesRequest(device=DEVICE, key_packages=[b"k"] * 101),
     {"key_packages": "repeated.max_items"}),
    ("e2ee upload empty package", "UploadKeyPackages",
     pb.UploadKeyPackagesRequest(device=DEVICE, key_packages=[b"k", b""]),
     {"key_packages[1]": "bytes.min_len"}),
    ("e2ee upload package at most 16 KiB", "UploadKeyPackages",
     pb.UploadKeyPackagesRequest(device=DEVICE, key_packages=[b"k" * 16385]),
     {"key_packages[0]": "bytes.max_len"}),
    ("e2ee upload last resort at most 16 KiB", "UploadKeyPackages",
     pb.UploadKeyPackagesRequest(device=DEVICE, last_resort=b"k" * 16385),
     {"last_resort": "bytes.max_len"}),
    ("e2ee claim conversation", "ClaimKeyPackages",
     pb.ClaimKeyPackagesRequest(conversation=USER, user_ids=["u2"]),
     {"conversation": "string.pattern"}),
    ("e2ee claim nobody", "ClaimKeyPackages",
     pb.ClaimKeyPackagesRequest(conversation=CONVERSATION),
     {"user_ids": "required"}),
    ("e2ee claim at most 50", "ClaimKeyPackages",
     pb.ClaimKeyPackagesRequest(conversation=CONVERSATION,
                                user_ids=[f"u{i}" for i in range(51)]),
     {"user_ids": "repeated.max_items"}),
    ("e2ee claim twice", "ClaimKeyPackages",
     pb.ClaimKeyPackagesRequest(conversation=CONVERSATION, user_ids=["u2", "u2"]),
     {"user_ids": "repeated.unique"}),
    ("e2ee claim user id", "ClaimKeyPackages",
     pb.ClaimKeyPackagesRequest(conversation=CONVERSATION, user_ids=["a b"]),
     {"user_ids[0]": "string.pattern"}),
    ("e2ee claim device id", "ClaimKeyPackages",
     pb.ClaimKeyPackagesRequest(conversation=CONVERSATION, user_ids=["u2"], device_id="a b"),
     {"device_id": "string.pattern"}),
    ("e2ee group name", "GetGroup", pb.GetGroupRequest(name=CONVERSATION),
     {"name": "string.pattern"}),
    ("e2ee welcomes parent", "ListWelcomes", pb.ListWelcomesRequest(parent=USER),
     {"parent": "string.pattern"}),
    ("e2ee welcomes page size", "ListWelcomes",
     pb.ListWelcomesRequest(parent=DEVICE, page_size=101), {"page_size": "int32.gte_lte"}),
    ("e2ee welcomes page token", "ListWelcomes",
     pb.ListWelcomesRequest(parent=DEVICE, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("send mls empty", "CreateMessage", _send(message=b""),
     {"message.mls.message": "required"}),
    ("send mls at most 256 KiB", "CreateMessage", _send(message=b"m" * 262145),
     {"message.mls.message": "bytes.max_len"}),
    ("send mls device id", "CreateMessage", _send(device_id="a b"),
     {"message.mls.device_id": "string.pattern"}),
    ("send mls welcome at most 512 KiB", "CreateMessage", _send(welcome=b"w" * 524289),
     {"message.mls.welcome": "bytes.max_len"}),
    ("edit mls empty", "UpdateMessage", _edit(message=b""),
     {"message.mls.message": "bytes.min_len"}),
    ("edit mls at most 256 KiB", "UpdateMessage", _edit(message=b"m" * 262145),
     {"message.mls.message": "bytes.max_len"}),
    ("edit mls device id", "UpdateMessage", _edit(device_id="a b"),
     {"message.mls.device_id": "string.pattern"}),
    ("edit mls welcome at most 512 KiB", "UpdateMessage", _edit(welcome=b"w" * 524289),
     {"message.mls.welcome": "bytes.max_len"}),
]
