"""caas.push.v1.PushService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from caas.push.v1 import push_service_pb2 as pb
from caas.push.v1 import resources_pb2 as res

from services.core.errors import invalid_field
from services.core.names import parse_push_device, parse_user, parse_web_push_key
from services.core.protoconv import timestamp
from services.gateway.gateway import Call
from services.push.actions import PushActions
from services.push.models import (
    APNS,
    FCM,
    PRODUCTION,
    SANDBOX,
    WEB_PUSH,
    PushDevice,
    WebPushKey,
    b64url,
    from_b64url,
)

_ENVIRONMENTS = {SANDBOX: res.ApnsToken.ENVIRONMENT_SANDBOX,
                 PRODUCTION: res.ApnsToken.ENVIRONMENT_PRODUCTION}
_ENVIRONMENT_OF = {value: key for key, value in _ENVIRONMENTS.items()}


def push_device_proto(device: PushDevice) -> res.PushDevice:
    proto = res.PushDevice(name=device.name, device_id=device.device_id, locale=device.locale,
                           create_time=timestamp(device.create_time),
                           update_time=timestamp(device.update_time))
    keys = device.keys
    if device.provider == WEB_PUSH:
        proto.web_push.CopyFrom(res.WebPushSubscription(
            endpoint=device.address, p256dh=from_b64url(keys["p256dh"]),
            auth=from_b64url(keys["auth"]),
            application_server_key=from_b64url(keys["application_server_key"])))
    elif device.provider == APNS:
        proto.apns.CopyFrom(res.ApnsToken(device_token=device.address,
                                          environment=_ENVIRONMENTS[keys["environment"]]))
    else:
        proto.fcm.CopyFrom(res.FcmToken(token=device.address))
    return proto


def web_push_key_proto(key: WebPushKey) -> res.WebPushKey:
    return res.WebPushKey(name=f"apps/{key.app_id}/webPushKey", public_key=key.public_key,
                          create_time=timestamp(key.create_time),
                          previous_public_key=key.previous_public_key)


def _channel(device: res.PushDevice) -> tuple[str, str, dict[str, str]]:
    """(provider, address, keys) of the channel a request names."""
    match device.WhichOneof("channel"):
        case "web_push":
            web = device.web_push
            keys = {"p256dh": b64url(web.p256dh), "auth": b64url(web.auth)}
            if web.application_server_key:
                keys["application_server_key"] = b64url(web.application_server_key)
            return WEB_PUSH, web.endpoint, keys
        case "apns":
            return (APNS, device.apns.device_token.lower(),
                    {"environment": _ENVIRONMENT_OF[device.apns.environment]})
        case "fcm":
            return FCM, device.fcm.token, {}
    raise invalid_field("push_device", "needs a channel: web_push, apns or fcm")


class PushServicer:
    def __init__(self, actions: PushActions) -> None:
        self._actions = actions

    async def CreatePushDevice(self, request: pb.CreatePushDeviceRequest, call: Call
                               ) -> pb.CreatePushDeviceResponse:
        app_id, user_id = parse_user(request.parent, "parent")
        provider, address, keys = _channel(request.push_device)
        device, created = await self._actions.register(
            call.principal, app_id, user_id, provider, address, keys,
            request.push_device.device_id, request.push_device.locale)
        return pb.CreatePushDeviceResponse(push_device=push_device_proto(device),
                                           created=created)

    async def GetPushDevice(self, request: pb.GetPushDeviceRequest, call: Call
                            ) -> pb.GetPushDeviceResponse:
        device = await self._actions.get(call.principal, *parse_push_device(request.name))
        return pb.GetPushDeviceResponse(push_device=push_device_proto(device))

    async def ListPushDevices(self, request: pb.ListPushDevicesRequest, call: Call
                              ) -> pb.ListPushDevicesResponse:
        devices = await self._actions.list(call.principal, *parse_user(request.parent, "parent"))
        return pb.ListPushDevicesResponse(push_devices=[push_device_proto(d) for d in devices])

    async def DeletePushDevice(self, request: pb.DeletePushDeviceRequest, call: Call
                               ) -> pb.DeletePushDeviceResponse:
        await self._actions.delete(call.principal, *parse_push_device(request.name))
        return pb.DeletePushDeviceResponse()

    async def GetWebPushKey(self, request: pb.GetWebPushKeyRequest, call: Call
                            ) -> pb.GetWebPushKeyResponse:
        key = await self._actions.web_push_key(call.principal, parse_web_push_key(request.name))
        return pb.GetWebPushKeyResponse(web_push_key=web_push_key_proto(key))

    async def RotateWebPushKey(self, request: pb.RotateWebPushKeyRequest, call: Call
                               ) -> pb.RotateWebPushKeyResponse:
        key = await self._actions.rotate_web_push_key(call.principal,
                                                      parse_web_push_key(request.name))
        return pb.RotateWebPushKeyResponse(web_push_key=web_push_key_proto(key))
