"""caas.push.v1.PushService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from caas.push.v1 import push_service_pb2 as pb
from caas.push.v1 import resources_pb2 as res

from services.core.errors import invalid_field
from services.core.names import (
    parse_notification_settings,
    parse_push_config,
    parse_push_device,
    parse_user,
    parse_web_push_key,
)
from services.core.protoconv import timestamp
from services.gateway.gateway import Call
from services.push.actions import ApnsUpdate, ConfigUpdate, PushActions
from services.push.models import (
    ALL,
    APNS,
    CALL,
    CANCELED,
    CLEAR,
    FAILED,
    FCM,
    MENTION,
    MENTIONS,
    MESSAGE,
    NONE,
    PENDING,
    PRODUCTION,
    PRUNED,
    REACTION,
    SANDBOX,
    SENT,
    THREAD_REPLY,
    WEB_PUSH,
    DoNotDisturb,
    NotificationSettings,
    Push,
    PushConfig,
    PushDevice,
    Template,
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


_KINDS = {MESSAGE: res.NOTIFICATION_KIND_MESSAGE, MENTION: res.NOTIFICATION_KIND_MENTION,
          THREAD_REPLY: res.NOTIFICATION_KIND_THREAD_REPLY,
          REACTION: res.NOTIFICATION_KIND_REACTION, CALL: res.NOTIFICATION_KIND_CALL,
          CLEAR: res.NOTIFICATION_KIND_CLEAR}
_KIND_OF = {value: key for key, value in _KINDS.items()}
_LEVELS = {ALL: res.NOTIFICATION_LEVEL_ALL, MENTIONS: res.NOTIFICATION_LEVEL_MENTIONS,
           NONE: res.NOTIFICATION_LEVEL_NONE}
_LEVEL_OF = {value: key for key, value in _LEVELS.items()}
_STATES = {PENDING: res.PushDelivery.STATE_PENDING, SENT: res.PushDelivery.STATE_SENT,
           FAILED: res.PushDelivery.STATE_FAILED, PRUNED: res.PushDelivery.STATE_PRUNED,
           CANCELED: res.PushDelivery.STATE_CANCELED}


def push_config_proto(config: PushConfig) -> res.PushConfig:
    proto = res.PushConfig(
        name=f"apps/{config.app_id}/pushConfig", web_push_contact=config.web_push_contact,
        templates=[res.NotificationTemplate(kind=_KINDS[t.kind], locale=t.locale,
                                            title=t.title, body=t.body)
                   for t in config.templates],
        default_locale=config.default_locale, update_time=timestamp(config.update_time))
    if config.apns:
        proto.apns.CopyFrom(res.ApnsCredentials(
            key_id=config.apns["key_id"], team_id=config.apns["team_id"],
            topic=config.apns["topic"], private_key_set=bool(config.apns_sealed_key)))
    if config.fcm:
        proto.fcm.CopyFrom(res.FcmCredentials(project_id=config.fcm["project_id"],
                                              client_email=config.fcm["client_email"]))
    return proto


def settings_proto(settings: NotificationSettings) -> res.NotificationSettings:
    proto = res.NotificationSettings(
        name=f"apps/{settings.app_id}/users/{settings.user_id}/notificationSettings",
        level=_LEVELS[settings.level],
        conversations=[res.ConversationNotificationLevel(conversation_id=c, level=_LEVELS[v])
                       for c, v in sorted(settings.conversations.items())],
        update_time=timestamp(settings.update_time))
    dnd = settings.do_not_disturb
    if dnd is not None:
        proto.do_not_disturb.CopyFrom(res.DoNotDisturb(
            start_minute=dnd.start_minute, end_minute=dnd.end_minute, time_zone=dnd.time_zone))
    return proto


def push_delivery_proto(push: Push) -> res.PushDelivery:
    return res.PushDelivery(
        name=push.name,
        push_device=f"apps/{push.app_id}/users/{push.user_id}/pushDevices/{push.push_device_id}",
        kind=_KINDS[push.kind],
        conversation=f"apps/{push.app_id}/conversations/{push.conversation_id}",
        count=push.count, state=_STATES[push.state],
        attempts=[res.PushAttempt(time=timestamp(a.time), status_code=a.status, error=a.error,
                                  latency_ms=a.latency_ms) for a in push.attempts],
        create_time=timestamp(push.create_time), send_time=timestamp(push.send_time))


def _config_update(proto: res.PushConfig, paths: list[str]) -> ConfigUpdate:
    apns = fcm = None
    if proto.HasField("apns"):
        apns = ApnsUpdate(proto.apns.key_id, proto.apns.team_id, proto.apns.topic,
                          proto.apns.private_key)
    if proto.HasField("fcm"):
        fcm = proto.fcm.service_account_json
    return ConfigUpdate(frozenset(paths), proto.web_push_contact, apns, fcm,
                        tuple(Template(_KIND_OF[t.kind], t.locale, t.title, t.body)
                              for t in proto.templates), proto.default_locale)


def _settings_of(app_id: str, user_id: str, proto: res.NotificationSettings
                 ) -> NotificationSettings:
    dnd = proto.do_not_disturb
    return NotificationSettings(
        app_id, user_id, _LEVEL_OF.get(proto.level, ALL),
        DoNotDisturb(dnd.start_minute, dnd.end_minute, dnd.time_zone)
        if proto.HasField("do_not_disturb") else None,
        {c.conversation_id: _LEVEL_OF[c.level] for c in proto.conversations})


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

    async def GetPushConfig(self, request: pb.GetPushConfigRequest, call: Call
                            ) -> pb.GetPushConfigResponse:
        config = await self._actions.get_config(call.principal,
                                                parse_push_config(request.name))
        return pb.GetPushConfigResponse(push_config=push_config_proto(config))

    async def UpdatePushConfig(self, request: pb.UpdatePushConfigRequest, call: Call
                               ) -> pb.UpdatePushConfigResponse:
        app_id = parse_push_config(request.push_config.name, "push_config.name")
        config = await self._actions.update_config(
            call.principal, app_id,
            _config_update(request.push_config, list(request.update_mask.paths)))
        return pb.UpdatePushConfigResponse(push_config=push_config_proto(config))

    async def GetNotificationSettings(self, request: pb.GetNotificationSettingsRequest,
                                      call: Call) -> pb.GetNotificationSettingsResponse:
        settings = await self._actions.get_settings(
            call.principal, *parse_notification_settings(request.name))
        return pb.GetNotificationSettingsResponse(notification_settings=settings_proto(settings))

    async def UpdateNotificationSettings(self, request: pb.UpdateNotificationSettingsRequest,
                                         call: Call) -> pb.UpdateNotificationSettingsResponse:
        proto = request.notification_settings
        app_id, user_id = parse_notification_settings(proto.name, "notification_settings.name")
        settings = await self._actions.update_settings(
            call.principal, app_id, user_id, set(request.update_mask.paths),
            _settings_of(app_id, user_id, proto))
        return pb.UpdateNotificationSettingsResponse(
            notification_settings=settings_proto(settings))

    async def ListPushDeliveries(self, request: pb.ListPushDeliveriesRequest, call: Call
                                 ) -> pb.ListPushDeliveriesResponse:
        app_id, user_id = parse_user(request.parent, "parent")
        page = await self._actions.list_deliveries(call.principal, app_id, user_id,
                                                   request.page_size, request.page_token)
        return pb.ListPushDeliveriesResponse(
            push_deliveries=[push_delivery_proto(p) for p in page.items],
            next_page_token=page.next_page_token)
