"""Push channels and the app's Web Push key against the running server, on both
stores: a device registers its channel (Web Push with the app's VAPID key, APNs, FCM),
again without duplicates, moves with the device to another user, at most 20 per user;
the key is made once, rotated with the previous one still taken, its private half sealed
and matching; a deleted user's channels go; and every rule tried by someone it must
refuse. (Delivering notifications comes next: see issue 25.)"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess

import grpc
import httpx
from caas.audit.v1 import audit_service_pb2 as audit_pb
from caas.push.v1 import push_service_pb2 as pb
from caas.push.v1 import resources_pb2 as res
from caas.users.v1 import users_service_pb2 as users_pb
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import AppHandle, expect_error
from tests.e2e.test_http import grpc_web_frame, grpc_web_frames
from tests.e2e.test_ops import GRPCURL
from tests.support.chat import Person, person
from tests.support.client import Client, bearer
from tests.support.servers import CaasServer

FAILED = grpc.StatusCode.FAILED_PRECONDITION
DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND


def subscription(key: bytes = b"", endpoint: str = "") -> res.WebPushSubscription:
    """A browser's subscription: a fresh P-256 key and auth secret."""
    browser = ec.generate_private_key(ec.SECP256R1()).public_key()
    return res.WebPushSubscription(
        endpoint=endpoint or f"https://push.example.com/send/{os.urandom(8).hex()}",
        p256dh=browser.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint),
        auth=os.urandom(16), application_server_key=key)


async def register(who: Person, device: res.PushDevice, user: str = "",
                   auth: tuple[tuple[str, str], ...] = ()) -> pb.CreatePushDeviceResponse:
    response: pb.CreatePushDeviceResponse = await who.client.push.CreatePushDevice(
        pb.CreatePushDeviceRequest(parent=f"apps/{who.app_id}/users/{user or who.user_id}",
                                   push_device=device), metadata=auth or who.auth)
    return response


async def web_push_key(who: Person) -> res.WebPushKey:
    response = await who.client.push.GetWebPushKey(
        pb.GetWebPushKeyRequest(name=f"apps/{who.app_id}/webPushKey"), metadata=who.auth)
    return response.web_push_key


async def test_channels_register_once_and_follow_the_device(client: Client,
                                                            app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    bob = await person(client, app.app_id, app.api_key, "bob")
    key = await web_push_key(alice)
    assert len(key.public_key) == 65 and key.public_key[0] == 4 and not key.previous_public_key
    assert (await web_push_key(bob)).public_key == key.public_key  # one per app
    web = subscription(key.public_key)
    first = await register(alice, res.PushDevice(web_push=web, device_id="laptop", locale="fr"))
    assert first.created and first.push_device.name.startswith(
        f"apps/{app.app_id}/users/alice/pushDevices/")
    assert first.push_device.web_push == web and first.push_device.locale == "fr"
    # The browser renews its keys: the same endpoint updates the same channel.
    renewed = subscription(endpoint=web.endpoint)
    again = await register(alice, res.PushDevice(web_push=renewed, device_id="laptop"))
    assert not again.created and again.push_device.name == first.push_device.name
    assert again.push_device.web_push.p256dh == renewed.p256dh
    assert again.push_device.web_push.application_server_key == key.public_key  # the current
    assert again.push_device.create_time == first.push_device.create_time
    apns = await register(alice, res.PushDevice(apns=res.ApnsToken(
        device_token="AB" * 32, environment=res.ApnsToken.ENVIRONMENT_SANDBOX)))
    assert apns.push_device.apns.device_token == "ab" * 32  # one spelling of a token
    fcm = await register(alice, res.PushDevice(fcm=res.FcmToken(token="fcm:tok_en-1")))
    listed = await client.push.ListPushDevices(pb.ListPushDevicesRequest(
        parent=f"apps/{app.app_id}/users/alice"), metadata=alice.auth)
    assert [d.name for d in listed.push_devices] == [
        first.push_device.name, apns.push_device.name, fcm.push_device.name]
    # The phone changes hands: bob signs in on it; its channel is his now.
    moved = await register(bob, res.PushDevice(fcm=res.FcmToken(token="fcm:tok_en-1")))
    assert moved.push_device.name.endswith(fcm.push_device.name.rsplit("/", 1)[1])
    assert moved.push_device.name.startswith(f"apps/{app.app_id}/users/bob/")
    await expect_error(client.push.GetPushDevice(pb.GetPushDeviceRequest(
        name=fcm.push_device.name), metadata=alice.auth), NOT_FOUND, "RESOURCE_NOT_FOUND")
    await client.push.DeletePushDevice(pb.DeletePushDeviceRequest(
        name=apns.push_device.name), metadata=alice.auth)
    await expect_error(client.push.DeletePushDevice(pb.DeletePushDeviceRequest(
        name=apns.push_device.name), metadata=alice.auth), NOT_FOUND, "RESOURCE_NOT_FOUND")
    left = await client.push.ListPushDevices(pb.ListPushDevicesRequest(
        parent=f"apps/{app.app_id}/users/alice"), metadata=alice.auth)
    assert [d.name for d in left.push_devices] == [first.push_device.name]


async def test_at_most_twenty_channels_per_user(client: Client, app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    tokens = [f"tok-{n}" for n in range(25)]
    # 25 registrations at once: exactly 20 are taken, whatever the order.
    outcomes = await asyncio.gather(
        *(register(alice, res.PushDevice(fcm=res.FcmToken(token=t))) for t in tokens),
        return_exceptions=True)
    taken = [o for o in outcomes if isinstance(o, pb.CreatePushDeviceResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert (len(taken), len(refused)) == (20, 5)
    assert {e.code() for e in refused} == {FAILED}
    listed = await client.push.ListPushDevices(pb.ListPushDevicesRequest(
        parent=f"apps/{app.app_id}/users/alice"), metadata=alice.auth)
    assert sorted(d.fcm.token for d in listed.push_devices) == sorted(
        t.push_device.fcm.token for t in taken)
    again = await register(alice, taken[3].push_device)
    assert not again.created  # one held: still fine at the limit


async def test_the_key_rotates_and_the_previous_one_still_signs(
        client: Client, app: AppHandle, other_app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    first = await web_push_key(alice)
    # The first asks of an app, at once: one key.
    fresh = await person(client, other_app.app_id, other_app.api_key, "zoe")
    made = await asyncio.gather(*(web_push_key(fresh) for _ in range(8)))
    assert len({k.public_key for k in made}) == 1
    # A key of another app is refused.
    foreign = made[0].public_key
    await expect_error(register(alice, res.PushDevice(web_push=subscription(foreign))),
                       FAILED, "WEB_PUSH_KEY_UNKNOWN")
    # Users do not rotate; the app's backend does.
    await expect_error(client.push.RotateWebPushKey(pb.RotateWebPushKeyRequest(
        name=f"apps/{app.app_id}/webPushKey"), metadata=alice.auth), DENIED,
        "PRINCIPAL_NOT_ALLOWED")
    await expect_error(client.push.RotateWebPushKey(pb.RotateWebPushKeyRequest(
        name=f"apps/{app.app_id}/webPushKey"), metadata=bearer(other_app.api_key)), DENIED,
        "APP_MISMATCH")
    rotated = (await client.push.RotateWebPushKey(pb.RotateWebPushKeyRequest(
        name=f"apps/{app.app_id}/webPushKey"), metadata=app.auth)).web_push_key
    assert rotated.public_key != first.public_key
    assert rotated.previous_public_key == first.public_key
    # The rotation is in the app's audit log.
    listed = await client.audit.ListAuditRecords(audit_pb.ListAuditRecordsRequest(
        parent=app.name, page_size=50), metadata=app.auth)
    rotations = [(r.action.rsplit("/", 1)[-1], r.target, r.code) for r in listed.audit_records
                 if r.action.endswith("RotateWebPushKey")]
    assert (("RotateWebPushKey", f"apps/{app.app_id}/webPushKey", "OK") in rotations), rotations
    assert (await web_push_key(alice)).public_key == rotated.public_key
    # Subscribed with the previous key: still taken; after another rotation, not.
    assert (await register(alice, res.PushDevice(web_push=subscription(first.public_key))))
    await client.push.RotateWebPushKey(pb.RotateWebPushKeyRequest(
        name=f"apps/{app.app_id}/webPushKey"), metadata=app.auth)
    await expect_error(register(alice, res.PushDevice(web_push=subscription(
        first.public_key))), FAILED, "WEB_PUSH_KEY_UNKNOWN")


async def test_nobody_reaches_into_anothers_channels(client: Client, app: AppHandle,
                                                     other_app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    bob = await person(client, app.app_id, app.api_key, "bob")
    mallory = await person(client, other_app.app_id, other_app.api_key, "mallory")
    mine = (await register(alice, res.PushDevice(fcm=res.FcmToken(token="alice-1")))
            ).push_device
    # Bob, of the same app: none of alice's channels are his to touch or see.
    await expect_error(register(bob, res.PushDevice(fcm=res.FcmToken(token="x")),
                                user="alice"), DENIED, "USER_MISMATCH")
    for attempt in (
            bob.client.push.GetPushDevice(pb.GetPushDeviceRequest(name=mine.name),
                                          metadata=bob.auth),
            bob.client.push.DeletePushDevice(pb.DeletePushDeviceRequest(name=mine.name),
                                             metadata=bob.auth),
            bob.client.push.ListPushDevices(pb.ListPushDevicesRequest(
                parent=f"apps/{app.app_id}/users/alice"), metadata=bob.auth)):
        await expect_error(attempt, DENIED, "USER_MISMATCH")
    for attempt in (
            mallory.client.push.GetPushDevice(pb.GetPushDeviceRequest(name=mine.name),
                                              metadata=mallory.auth),
            mallory.client.push.GetWebPushKey(pb.GetWebPushKeyRequest(
                name=f"apps/{app.app_id}/webPushKey"), metadata=mallory.auth)):
        await expect_error(attempt, DENIED, "APP_MISMATCH")
    # The app's backend registers for any user of its app, not for someone unknown.
    made = await register(alice, res.PushDevice(fcm=res.FcmToken(token="bob-1")), user="bob",
                          auth=app.auth)
    assert made.push_device.name.startswith(f"apps/{app.app_id}/users/bob/")
    await expect_error(register(alice, res.PushDevice(fcm=res.FcmToken(token="n-1")),
                                user="nobody", auth=app.auth), NOT_FOUND, "RESOURCE_NOT_FOUND")
    # A deleted user's channels go with them.
    await client.users.DeleteUser(users_pb.DeleteUserRequest(
        name=f"apps/{app.app_id}/users/bob"), metadata=app.auth)
    gone = await client.push.ListPushDevices(pb.ListPushDevicesRequest(
        parent=f"apps/{app.app_id}/users/bob"), metadata=app.auth)
    assert list(gone.push_devices) == []


async def test_a_browsers_subscription_json_goes_through_envoy(
        http: httpx.AsyncClient, client: Client, app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    headers = {"authorization": f"Bearer {alice.token}"}
    got = await http.get(f"/v1/apps/{app.app_id}/webPushKey", headers=headers)
    assert got.status_code == 200, got.text
    key = base64.urlsafe_b64decode(got.json()["webPushKey"]["publicKey"] + "==")
    web = subscription(key)

    def b64url(data: bytes) -> str:  # as PushSubscription.toJSON() gives them
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    made = await http.post(f"/v1/apps/{app.app_id}/users/alice/pushDevices", headers=headers,
                           json={"webPush": {"endpoint": web.endpoint,
                                             "p256dh": b64url(web.p256dh),
                                             "auth": b64url(web.auth),
                                             "applicationServerKey": b64url(key)}})
    assert made.status_code == 200, made.text
    assert made.json()["created"] is True
    bad = await http.post(f"/v1/apps/{app.app_id}/users/alice/pushDevices", headers=headers,
                          json={"webPush": {"endpoint": "http://insecure.example.com/x",
                                            "p256dh": b64url(web.p256dh),
                                            "auth": b64url(web.auth)}})
    assert bad.status_code == 400
    violations = bad.json()["details"][1]["fieldViolations"]
    assert [v["field"] for v in violations] == ["push_device.web_push.endpoint"]


async def test_settings_config_and_deliveries_over_json_grpc_web_and_grpcurl(
        http: httpx.AsyncClient, client: Client, server: CaasServer, app: AppHandle) -> None:
    alice = await person(client, app.app_id, app.api_key, "alice")
    mine = {"authorization": f"Bearer {alice.token}"}
    settings = f"/v1/apps/{app.app_id}/users/alice/notificationSettings"
    changed = await http.patch(settings, headers=mine, params={"updateMask": "level,doNotDisturb"},
                               json={"level": "NOTIFICATION_LEVEL_MENTIONS",
                                     "doNotDisturb": {"startMinute": 1320, "endMinute": 420,
                                                      "timeZone": "Asia/Tokyo"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["notificationSettings"]["level"] == "NOTIFICATION_LEVEL_MENTIONS"
    same = await http.get(settings, headers=mine)
    assert same.json()["notificationSettings"]["doNotDisturb"] == {
        "startMinute": 1320, "endMinute": 420, "timeZone": "Asia/Tokyo"}
    span = await http.patch(settings, headers=mine, params={"updateMask": "doNotDisturb"},
                            json={"doNotDisturb": {"startMinute": 60, "endMinute": 60}})
    assert span.status_code == 400
    assert span.json()["details"][1]["fieldViolations"][0]["field"] == \
        "notification_settings.do_not_disturb"
    backend = {"authorization": f"Bearer {app.api_key}"}
    config = await http.patch(f"/v1/apps/{app.app_id}/pushConfig", headers=backend,
                              params={"updateMask": "webPushContact,defaultLocale"},
                              json={"webPushContact": "https://example.com/contact",
                                    "defaultLocale": "fr"})
    assert config.status_code == 200, config.text
    assert config.json()["pushConfig"]["defaultLocale"] == "fr"
    refused = await http.get(f"/v1/apps/{app.app_id}/pushConfig", headers=mine)
    assert refused.status_code == 403
    listed = await http.get(f"/v1/apps/{app.app_id}/users/alice/pushDeliveries", headers=mine)
    assert listed.status_code == 200 and listed.json().get("pushDeliveries", []) == []
    # gRPC-Web, as a browser's settings page asks.
    response = await http.post(
        "/caas.push.v1.PushService/GetNotificationSettings", headers={
            **mine, "x-grpc-web": "1", "content-type": "application/grpc-web+proto"},
        content=grpc_web_frame(pb.GetNotificationSettingsRequest(
            name=f"apps/{app.app_id}/users/alice/notificationSettings").SerializeToString()))
    messages, trailers = grpc_web_frames(response.content)
    assert trailers["grpc-status"] == "0"
    got = pb.GetNotificationSettingsResponse.FromString(messages[0]).notification_settings
    assert got.do_not_disturb.time_zone == "Asia/Tokyo"
    ran = await asyncio.to_thread(
        subprocess.run,
        [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {app.api_key}", "-d",
         json.dumps({"name": f"apps/{app.app_id}/pushConfig"}), server.address,
         "caas.push.v1.PushService/GetPushConfig"],
        capture_output=True, text=True, timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["pushConfig"]["webPushContact"] == "https://example.com/contact"
