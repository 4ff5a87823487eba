"""One case per contract rule of the push service (run by tests/e2e/test_validation.py,
whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.push.v1 import push_service_pb2 as pb
from caas.push.v1 import resources_pb2 as res
from google.protobuf.message import Message

USER = "apps/some-app/users/u1"
DEVICE = f"{USER}/pushDevices/aaaaaaaaaaaaaaaa"
KEY = "apps/some-app/webPushKey"
P256 = b"\x04" + b"k" * 64


def _web(**fields: object) -> pb.CreatePushDeviceRequest:
    web = {"endpoint": "https://push.example.com/x", "p256dh": P256, "auth": b"a" * 16,
           **fields}
    return pb.CreatePushDeviceRequest(parent=USER, push_device=res.PushDevice(
        web_push=res.WebPushSubscription(**web)))  # type: ignore[arg-type]


def _device(**fields: object) -> pb.CreatePushDeviceRequest:
    device = {"fcm": res.FcmToken(token="t"), **fields}
    return pb.CreatePushDeviceRequest(parent=USER, push_device=res.PushDevice(**device))  # type: ignore[arg-type]


CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("push device parent", "CreatePushDevice", pb.CreatePushDeviceRequest(
        parent="apps/some-app", push_device=res.PushDevice(fcm=res.FcmToken(token="t"))),
     {"parent": "string.pattern"}),
    ("push device required", "CreatePushDevice", pb.CreatePushDeviceRequest(parent=USER),
     {"push_device": "required"}),
    ("push device no channel", "CreatePushDevice",
     pb.CreatePushDeviceRequest(parent=USER, push_device=res.PushDevice(device_id="d")),
     {"push_device.channel": "required"}),
    ("push device id", "CreatePushDevice", _device(device_id="a b"),
     {"push_device.device_id": "string.pattern"}),
    ("push device locale", "CreatePushDevice", _device(locale="english!"),
     {"push_device.locale": "string.pattern"}),
    ("web push endpoint", "CreatePushDevice", _web(endpoint=""),
     {"push_device.web_push.endpoint": "required"}),
    ("web push endpoint not a uri", "CreatePushDevice", _web(endpoint="https://a b/x"),
     {"push_device.web_push.endpoint": "string.uri"}),
    ("web push endpoint http", "CreatePushDevice", _web(endpoint="http://push.example.com/x"),
     {"push_device.web_push.endpoint": "string.prefix"}),
    ("web push endpoint too long", "CreatePushDevice",
     _web(endpoint="https://push.example.com/" + "x" * 2030),
     {"push_device.web_push.endpoint": "string.max_len"}),
    ("web push p256dh", "CreatePushDevice", _web(p256dh=b""),
     {"push_device.web_push.p256dh": "required"}),
    ("web push p256dh length", "CreatePushDevice", _web(p256dh=b"\x04" * 33),
     {"push_device.web_push.p256dh": "bytes.len"}),
    ("web push p256dh point", "CreatePushDevice", _web(p256dh=b"\x02" + b"k" * 64),
     {"push_device.web_push.p256dh": "bytes.prefix"}),
    ("web push auth", "CreatePushDevice", _web(auth=b""),
     {"push_device.web_push.auth": "required"}),
    ("web push auth length", "CreatePushDevice", _web(auth=b"a" * 15),
     {"push_device.web_push.auth": "bytes.len"}),
    ("web push server key length", "CreatePushDevice",
     _web(application_server_key=b"k" * 64),
     {"push_device.web_push.application_server_key": "bytes.len"}),
    ("apns token", "CreatePushDevice", _device(fcm=None, apns=res.ApnsToken(
        device_token="xyz", environment=res.ApnsToken.ENVIRONMENT_SANDBOX)),
     {"push_device.apns.device_token": "string.pattern"}),
    ("apns environment", "CreatePushDevice",
     _device(fcm=None, apns=res.ApnsToken(device_token="ab" * 32)),
     {"push_device.apns.environment": "required"}),
    ("apns unknown environment", "CreatePushDevice", _device(fcm=None, apns=res.ApnsToken(
        device_token="ab" * 32, environment=7)),  # type: ignore[arg-type]
     {"push_device.apns.environment": "enum.defined_only"}),
    ("fcm token", "CreatePushDevice", _device(fcm=res.FcmToken(token="a b")),
     {"push_device.fcm.token": "string.pattern"}),
    ("fcm token too long", "CreatePushDevice", _device(fcm=res.FcmToken(token="t" * 4097)),
     {"push_device.fcm.token": "string.max_len"}),
    ("get push device name", "GetPushDevice", pb.GetPushDeviceRequest(name=USER),
     {"name": "string.pattern"}),
    ("list push devices parent", "ListPushDevices",
     pb.ListPushDevicesRequest(parent=DEVICE), {"parent": "string.pattern"}),
    ("delete push device name", "DeletePushDevice",
     pb.DeletePushDeviceRequest(name=f"{USER}/pushDevices/x"), {"name": "string.pattern"}),
    ("web push key name", "GetWebPushKey", pb.GetWebPushKeyRequest(name=USER),
     {"name": "string.pattern"}),
    ("rotate web push key name", "RotateWebPushKey", pb.RotateWebPushKeyRequest(name=""),
     {"name": "required"}),
]
