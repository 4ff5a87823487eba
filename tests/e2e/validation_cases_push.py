"""One case per contract rule of the push service (run by tests/e2e/test_validation.py,
whose guard fails when a rule has no case)."""

from __future__ import annotations

from caas.push.v1 import push_service_pb2 as pb
from caas.push.v1 import resources_pb2 as res
from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

USER = "apps/some-app/users/u1"
DEVICE = f"{USER}/pushDevices/aaaaaaaaaaaaaaaa"
KEY = "apps/some-app/webPushKey"
CONFIG = "apps/some-app/pushConfig"
SETTINGS = f"{USER}/notificationSettings"
P256 = b"\x04" + b"k" * 64


def _web(**fields: object) -> pb.CreatePushDeviceRequest:
    web = {"endpoint": "https://push.example.com/x", "p256dh": P256, "auth": b"a" * 16,
           **fields}
    return pb.CreatePushDeviceRequest(parent=USER, push_device=res.PushDevice(
        web_push=res.WebPushSubscription(**web)))  # type: ignore[arg-type]


def _device(**fields: object) -> pb.CreatePushDeviceRequest:
    device = {"fcm": res.FcmToken(token="t"), **fields}
    return pb.CreatePushDeviceRequest(parent=USER, push_device=res.PushDevice(**device))  # type: ignore[arg-type]


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def _config(*paths: str, **fields: object) -> pb.UpdatePushConfigRequest:
    """An update of the app's push settings writing `paths`."""
    return pb.UpdatePushConfigRequest(
        push_config=res.PushConfig(name=CONFIG, **fields),  # type: ignore[arg-type]
        update_mask=_mask(*paths))


def _apns(**fields: object) -> pb.UpdatePushConfigRequest:
    apns = {"key_id": "ABC123DEFG", "team_id": "TEAM123456", "topic": "com.example.app",
            **fields}
    return _config("apns", apns=res.ApnsCredentials(**apns))  # type: ignore[arg-type]


def _template(**fields: object) -> pb.UpdatePushConfigRequest:
    template = {"kind": res.NOTIFICATION_KIND_MESSAGE, "title": "{sender}", "body": "{text}",
                **fields}
    return _config("templates", templates=[res.NotificationTemplate(**template)])  # type: ignore[arg-type]


def _settings(*paths: str, **fields: object) -> pb.UpdateNotificationSettingsRequest:
    """An update of the user's notification preferences writing `paths`."""
    return pb.UpdateNotificationSettingsRequest(
        notification_settings=res.NotificationSettings(name=SETTINGS, **fields),  # type: ignore[arg-type]
        update_mask=_mask(*paths))


def _quiet(**fields: object) -> pb.UpdateNotificationSettingsRequest:
    quiet = {"start_minute": 22 * 60, "end_minute": 7 * 60, **fields}
    return _settings("do_not_disturb", do_not_disturb=res.DoNotDisturb(**quiet))  # type: ignore[arg-type]


def _conversation(**fields: object) -> pb.UpdateNotificationSettingsRequest:
    level = {"conversation_id": "c1", "level": res.NOTIFICATION_LEVEL_MENTIONS, **fields}
    return _settings("conversations", conversations=[
        res.ConversationNotificationLevel(**level)])  # type: ignore[arg-type]


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
    ("get push config name", "GetPushConfig", pb.GetPushConfigRequest(name=KEY),
     {"name": "string.pattern"}),
    ("push config required", "UpdatePushConfig",
     pb.UpdatePushConfigRequest(update_mask=_mask("default_locale")),
     {"push_config": "required"}),
    ("push config name", "UpdatePushConfig",
     pb.UpdatePushConfigRequest(push_config=res.PushConfig(name=KEY),
                                update_mask=_mask("default_locale")),
     {"push_config": "push_config.name_format"}),
    ("push config mask required", "UpdatePushConfig",
     pb.UpdatePushConfigRequest(push_config=res.PushConfig(name=CONFIG)),
     {"update_mask": "required"}),
    ("push config mask empty", "UpdatePushConfig", _config(),
     {"update_mask": "update_mask.not_empty"}),
    ("push config mask unknown path", "UpdatePushConfig", _config("update_time"),
     {"update_mask": "field_mask.in"}),
    ("push config contact", "UpdatePushConfig",
     _config("web_push_contact", web_push_contact="ftp://example.com"),
     {"push_config.web_push_contact": "string.pattern"}),
    ("push config contact too long", "UpdatePushConfig",
     _config("web_push_contact", web_push_contact="https://example.com/" + "x" * 238),
     {"push_config.web_push_contact": "string.max_len"}),
    ("push config default locale", "UpdatePushConfig",
     _config("default_locale", default_locale="english!"),
     {"push_config.default_locale": "string.pattern"}),
    ("apns key id", "UpdatePushConfig", _apns(key_id="abc"),
     {"push_config.apns.key_id": "string.pattern"}),
    ("apns key id required", "UpdatePushConfig", _apns(key_id=""),
     {"push_config.apns.key_id": "required"}),
    ("apns team id", "UpdatePushConfig", _apns(team_id="team"),
     {"push_config.apns.team_id": "string.pattern"}),
    ("apns team id required", "UpdatePushConfig", _apns(team_id=""),
     {"push_config.apns.team_id": "required"}),
    ("apns topic", "UpdatePushConfig", _apns(topic=".com.example"),
     {"push_config.apns.topic": "string.pattern"}),
    ("apns topic required", "UpdatePushConfig", _apns(topic=""),
     {"push_config.apns.topic": "required"}),
    ("apns private key too long", "UpdatePushConfig", _apns(private_key="k" * 4097),
     {"push_config.apns.private_key": "string.max_len"}),
    ("fcm service account too long", "UpdatePushConfig",
     _config("fcm", fcm=res.FcmCredentials(service_account_json="{" + " " * 16384)),
     {"push_config.fcm.service_account_json": "string.max_len"}),
    ("templates at most 200", "UpdatePushConfig", _config("templates", templates=[
        res.NotificationTemplate(kind=res.NOTIFICATION_KIND_MESSAGE, title="t", body="b")
        for _ in range(201)]),
     {"push_config.templates": "repeated.max_items"}),
    ("template kind required", "UpdatePushConfig",
     _template(kind=res.NOTIFICATION_KIND_UNSPECIFIED),
     {"push_config.templates[0].kind": "required"}),
    ("template kind clear", "UpdatePushConfig", _template(kind=res.NOTIFICATION_KIND_CLEAR),
     {"push_config.templates[0].kind": "enum.not_in"}),
    ("template kind unknown", "UpdatePushConfig", _template(kind=99),
     {"push_config.templates[0].kind": "enum.defined_only"}),
    ("template locale", "UpdatePushConfig", _template(locale="english!"),
     {"push_config.templates[0].locale": "string.pattern"}),
    ("template title required", "UpdatePushConfig", _template(title=""),
     {"push_config.templates[0].title": "required"}),
    ("template title too long", "UpdatePushConfig", _template(title="t" * 201),
     {"push_config.templates[0].title": "string.max_len"}),
    ("template title empty outside the mask", "UpdatePushConfig", _config(
        "default_locale", templates=[res.NotificationTemplate(
            kind=res.NOTIFICATION_KIND_MESSAGE, title="", body="b")]),
     {"push_config.templates[0].title": "string.min_len"}),
    ("template body required", "UpdatePushConfig", _template(body=""),
     {"push_config.templates[0].body": "required"}),
    ("template body too long", "UpdatePushConfig", _template(body="b" * 501),
     {"push_config.templates[0].body": "string.max_len"}),
    ("template body empty outside the mask", "UpdatePushConfig", _config(
        "default_locale", templates=[res.NotificationTemplate(
            kind=res.NOTIFICATION_KIND_MESSAGE, title="t", body="")]),
     {"push_config.templates[0].body": "string.min_len"}),
    ("get notification settings name", "GetNotificationSettings",
     pb.GetNotificationSettingsRequest(name=USER), {"name": "string.pattern"}),
    ("notification settings required", "UpdateNotificationSettings",
     pb.UpdateNotificationSettingsRequest(update_mask=_mask("level")),
     {"notification_settings": "required"}),
    ("notification settings name", "UpdateNotificationSettings",
     pb.UpdateNotificationSettingsRequest(
         notification_settings=res.NotificationSettings(name=f"{USER}/settings"),
         update_mask=_mask("level")),
     {"notification_settings": "notification_settings.name_format"}),
    ("notification settings mask required", "UpdateNotificationSettings",
     pb.UpdateNotificationSettingsRequest(
         notification_settings=res.NotificationSettings(name=SETTINGS)),
     {"update_mask": "required"}),
    ("notification settings mask empty", "UpdateNotificationSettings", _settings(),
     {"update_mask": "update_mask.not_empty"}),
    ("notification settings mask unknown path", "UpdateNotificationSettings",
     _settings("name"), {"update_mask": "field_mask.in"}),
    ("notification level unknown", "UpdateNotificationSettings",
     _settings("level", level=9), {"notification_settings.level": "enum.defined_only"}),
    ("do not disturb start negative", "UpdateNotificationSettings", _quiet(start_minute=-1),
     {"notification_settings.do_not_disturb.start_minute": "int32.gte_lte"}),
    ("do not disturb start past midnight", "UpdateNotificationSettings",
     _quiet(start_minute=1440),
     {"notification_settings.do_not_disturb.start_minute": "int32.gte_lte"}),
    ("do not disturb end negative", "UpdateNotificationSettings", _quiet(end_minute=-1),
     {"notification_settings.do_not_disturb.end_minute": "int32.gte_lte"}),
    ("do not disturb end past midnight", "UpdateNotificationSettings",
     _quiet(end_minute=1440),
     {"notification_settings.do_not_disturb.end_minute": "int32.gte_lte"}),
    ("do not disturb empty span", "UpdateNotificationSettings",
     _quiet(start_minute=600, end_minute=600),
     {"notification_settings.do_not_disturb": "do_not_disturb.span"}),
    ("do not disturb time zone", "UpdateNotificationSettings",
     _quiet(time_zone="Europe/Paris time"),
     {"notification_settings.do_not_disturb.time_zone": "string.pattern"}),
    ("conversation levels at most 500", "UpdateNotificationSettings",
     _settings("conversations", conversations=[
         res.ConversationNotificationLevel(conversation_id=f"c{n}",
                                           level=res.NOTIFICATION_LEVEL_NONE)
         for n in range(501)]),
     {"notification_settings.conversations": "repeated.max_items"}),
    ("conversation level id", "UpdateNotificationSettings",
     _conversation(conversation_id="a b"),
     {"notification_settings.conversations[0].conversation_id": "string.pattern"}),
    ("conversation level id required", "UpdateNotificationSettings",
     _conversation(conversation_id=""),
     {"notification_settings.conversations[0].conversation_id": "required"}),
    ("conversation level required", "UpdateNotificationSettings",
     _conversation(level=res.NOTIFICATION_LEVEL_UNSPECIFIED),
     {"notification_settings.conversations[0].level": "required"}),
    ("conversation level unspecified outside the mask", "UpdateNotificationSettings",
     _settings("level", conversations=[res.ConversationNotificationLevel(
         conversation_id="c1")]),
     {"notification_settings.conversations[0].level": "enum.not_in"}),
    ("conversation level unknown", "UpdateNotificationSettings", _conversation(level=9),
     {"notification_settings.conversations[0].level": "enum.defined_only"}),
    ("list push deliveries parent", "ListPushDeliveries",
     pb.ListPushDeliveriesRequest(parent=DEVICE), {"parent": "string.pattern"}),
    ("list push deliveries page size too big", "ListPushDeliveries",
     pb.ListPushDeliveriesRequest(parent=USER, page_size=201),
     {"page_size": "int32.gte_lte"}),
    ("list push deliveries page size negative", "ListPushDeliveries",
     pb.ListPushDeliveriesRequest(parent=USER, page_size=-1),
     {"page_size": "int32.gte_lte"}),
    ("list push deliveries page token too long", "ListPushDeliveries",
     pb.ListPushDeliveriesRequest(parent=USER, page_token="t" * 513),
     {"page_token": "string.max_len"}),
]
