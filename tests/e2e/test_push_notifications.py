"""Push notifications end to end: a running CAAS follows its event log and hands Web
Push messages to a local push service (an HTTPS stand-in: tests/support/
webhook_receiver.py), where they are decrypted as the browser would (tests/support/
web_push_client.py). Who is told, and of what, is tried against every rule that says
no — the sender, a live stream, a muted conversation, levels, quiet hours, a block, a
thread the member does not follow — and collapsing, clearing on read, pruning, retries,
templates, settings and their authorization. The server's collapse window is 3 s."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from caas.calls.v1 import calls_service_pb2 as calls_pb
from caas.calls.v1 import resources_pb2 as calls_res
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.push.v1 import push_service_pb2 as pb
from caas.push.v1 import resources_pb2 as res
from caas.realtime.v1 import realtime_service_pb2 as rt_pb
from caas.users.v1 import resources_pb2 as user_res
from caas.users.v1 import users_service_pb2 as user_pb
from google.protobuf import field_mask_pb2

from tests.conftest import TEST_CONFIG, AppHandle, create_app, expect_error, unique_id
from tests.support.chat import DIRECT, GROUP, Person, person
from tests.support.client import Client
from tests.support.metrics import metrics_port, samples, value
from tests.support.processes import free_port
from tests.support.push_providers import (
    Answer,
    ApnsStandIn,
    FcmStandIn,
    provider_tls,
    running_apns,
    running_fcm,
)
from tests.support.servers import CaasServer, ExternalServer, start_caas
from tests.support.stream import subscribed
from tests.support.web_push_client import Browser, verify_vapid
from tests.support.webhook_receiver import Received, Receiver, running_receiver, self_signed

CONTACT = "mailto:ops@example.com"
DENIED = grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture(scope="module")
def push_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, Path]]:
    context, certificate = self_signed(tmp_path_factory.mktemp("push-service"))
    with running_receiver(context) as receiver:
        yield receiver, certificate


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[ApnsStandIn, FcmStandIn, Path]]:
    """APNs and FCM stand-ins (HTTP/2 over TLS), and their certificate."""
    tls, certificate = provider_tls(tmp_path_factory.mktemp("providers"))
    with running_apns(tls) as apns, running_fcm(tls) as fcm:
        yield apns, fcm, certificate


@pytest.fixture(scope="module", params=["sqlite", "mongodb"])
def pushing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            push_service: tuple[Receiver, Path],
            providers: tuple[ApnsStandIn, FcmStandIn, Path]) -> Iterator[CaasServer]:
    """A server on each store engine sending to the stand-ins, trusting their
    certificates, its metrics served."""
    directory = tmp_path_factory.mktemp("caas")
    apns, fcm, provider_certificate = providers
    trusted = directory / "trusted.pem"
    trusted.write_bytes(push_service[1].read_bytes() + provider_certificate.read_bytes())
    env = {"CAAS_TLS_CA_FILE": str(trusted), "CAAS_PUSH_CONTACT": CONTACT,
           "CAAS_PUSH_COLLAPSE_WINDOW": "3", "CAAS_APNS_URL": apns.production_url,
           "CAAS_APNS_SANDBOX_URL": apns.sandbox_url, "CAAS_FCM_URL": fcm.url,
           "CAAS_METRICS_LISTEN": f"127.0.0.1:{free_port()}"}
    if request.param == "mongodb":
        mongo: ExternalServer = request.getfixturevalue("mongo")
        env |= {"CAAS_STORE": "mongodb", "CAAS_MONGODB_URL": mongo.url,
                "CAAS_MONGODB_DATABASE": unique_id("push")}
    server = start_caas(directory / "data", env=env, config=TEST_CONFIG)
    yield server
    assert server.process.stop() == 0


@pytest.fixture
async def client(pushing: CaasServer) -> AsyncIterator[Client]:
    client = Client(pushing.address)
    yield client
    await client.close()


@pytest.fixture
async def app(client: Client, pushing: CaasServer) -> AppHandle:
    return await create_app(client, pushing.operator_token)


class Phone:
    """A user's browser subscribed to push at the stand-in."""

    def __init__(self, user: Person, receiver: Receiver, mode: str = "created") -> None:
        self.user = user
        self.receiver = receiver
        self.endpoint = receiver.url(mode)
        self.browser = Browser()
        self.device = res.PushDevice()

    async def register(self, locale: str = "") -> Phone:
        created = await self.user.client.push.CreatePushDevice(pb.CreatePushDeviceRequest(
            parent=self.user.name, push_device=res.PushDevice(
                web_push=res.WebPushSubscription(endpoint=self.endpoint,
                                                 p256dh=self.browser.p256dh,
                                                 auth=self.browser.auth),
                locale=locale)), metadata=self.user.auth)
        self.device = created.push_device
        return self

    async def pushes(self, count: int) -> list[dict[str, object]]:
        """The first `count` pushes it got (waits for them), opened."""
        got = await self.receiver.wait(self.endpoint, lambda r: len(r) >= count)
        return [self.browser.open(r.body) for r in got[:count]]

    def requests(self) -> list[Received]:
        return self.receiver.to(self.endpoint)


async def deliveries(user: Person) -> list[res.PushDelivery]:
    listed = await user.client.push.ListPushDeliveries(
        pb.ListPushDeliveriesRequest(parent=user.name), metadata=user.auth)
    return list(listed.push_deliveries)


async def settle(user: Person, count: int) -> list[res.PushDelivery]:
    """The user's deliveries once `count` are no longer pending (bounded wait)."""
    for _ in range(200):
        found = await deliveries(user)
        done = [d for d in found if d.state != res.PushDelivery.STATE_PENDING]
        if len(done) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{user.user_id}: {found}")


async def until(user: Person, done: Callable[[list[res.PushDelivery]], bool]
                ) -> list[res.PushDelivery]:
    """The user's deliveries once `done` holds for them (bounded wait)."""
    for _ in range(200):
        found = await deliveries(user)
        if found and done(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{user.user_id}: {found}")


async def set_settings(user: Person, paths: list[str], **fields: object) -> None:
    await user.client.push.UpdateNotificationSettings(pb.UpdateNotificationSettingsRequest(
        notification_settings=res.NotificationSettings(
            name=f"{user.name}/notificationSettings", **fields),  # type: ignore[arg-type]
        update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=user.auth)


async def people(client: Client, app: AppHandle, *names: str) -> list[Person]:
    return [await person(client, app.app_id, app.api_key, name) for name in names]


async def test_an_offline_member_gets_an_encrypted_signed_push(
        client: Client, app: AppHandle, push_service: tuple[Receiver, Path]) -> None:
    receiver, _ = push_service
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",), title="Team")
    phone = await Phone(bob, receiver).register()
    own = await Phone(alice, receiver).register()
    sent = await alice.send(group.name, "hello   bob,\nsee you")
    (push,) = await phone.pushes(1)
    assert push["title"] == "Team" and push["body"] == "Alice: hello bob, see you"
    data = push["data"]
    assert isinstance(data, dict)
    assert data["conversation"] == group.name and data["type"] == "message"
    assert data["message"] == sent.message.name and data["sequence"] == "1"
    assert push["tag"] == group.name.rsplit("/", 1)[1] and push["silent"] is False
    (request,) = phone.requests()
    key = await bob.client.push.GetWebPushKey(
        pb.GetWebPushKeyRequest(name=f"apps/{app.app_id}/webPushKey"), metadata=bob.auth)
    claims = verify_vapid(request.headers["authorization"], key.web_push_key.public_key,
                          receiver.base)
    assert claims["sub"] == CONTACT
    assert request.headers["urgency"] == "normal" and len(request.headers["topic"]) == 32
    (delivery,) = await settle(bob, 1)
    assert delivery.state == res.PushDelivery.STATE_SENT and delivery.count == 1
    assert delivery.kind == res.NOTIFICATION_KIND_MESSAGE
    assert delivery.push_device == phone.device.name
    assert [a.status_code for a in delivery.attempts] == [201]
    assert delivery.attempts[0].error == "" and delivery.HasField("send_time")
    assert await deliveries(alice) == [] and own.requests() == []  # never to the sender


async def test_pushes_are_counted(client: Client, app: AppHandle, pushing: CaasServer,
                                  push_service: tuple[Receiver, Path]) -> None:
    receiver, _ = push_service
    port = metrics_port(pushing)
    before = samples(port)
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    await Phone(bob, receiver).register()
    await Phone(carol, receiver, "gone").register()
    group = await alice.create(GROUP, ("bob", "carol"))
    await alice.send(group.name, "count me")
    await settle(bob, 1)
    await settle(carol, 1)
    after = samples(port)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("caas_push_notifications_total", provider="web_push", outcome="sent") >= 1
    assert grew("caas_push_notifications_total", provider="web_push", outcome="pruned") >= 1
    assert grew("caas_push_latency_seconds_count", provider="web_push") >= 1


async def test_every_rule_that_says_no(client: Client, app: AppHandle,
                                       push_service: tuple[Receiver, Path]) -> None:
    """One message to nine members: two are told; the others each have a reason not to
    be, and their lists stay empty once the first two are (one event, one batch)."""
    receiver, _ = push_service
    alice, bob, carol, dave, erin, frank, gina, hank, ivan = await people(
        client, app, "alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan")
    others = (bob, carol, dave, erin, frank, gina, hank, ivan)
    group = await alice.create(GROUP, tuple(p.user_id for p in others), title="All")
    phones = {p.user_id: await Phone(p, receiver).register() for p in others}
    await carol.client.conversations.UpdateMember(conv_pb.UpdateMemberRequest(
        member=conv_res.Member(name=f"{group.name}/members/carol", muted=True),
        update_mask=field_mask_pb2.FieldMask(paths=["muted"])), metadata=carol.auth)
    await set_settings(dave, ["level"], level=res.NOTIFICATION_LEVEL_NONE)
    await set_settings(erin, ["conversations"], conversations=[
        res.ConversationNotificationLevel(conversation_id=group.name.rsplit("/", 1)[1],
                                          level=res.NOTIFICATION_LEVEL_MENTIONS)])
    now = datetime.now(UTC)
    minute = now.hour * 60 + now.minute
    await set_settings(frank, ["do_not_disturb"], do_not_disturb=res.DoNotDisturb(
        start_minute=(minute - 60) % 1440, end_minute=(minute + 60) % 1440))
    await gina.client.users.CreateBlock(user_pb.CreateBlockRequest(
        parent=gina.name, block=user_res.Block(blocked_user_id="alice")), metadata=gina.auth)
    live = await subscribed(hank, device_id="hank-web")
    away = await subscribed(ivan, device_id="ivan-web")
    await ivan.client.realtime.SetPresence(rt_pb.SetPresenceRequest(
        name=ivan.name, status=rt_pb.Presence.STATUS_AWAY), metadata=ivan.auth)
    try:
        await alice.send(group.name, "lunch?")
        (told,) = await phones["bob"].pushes(1)
        (also,) = await phones["ivan"].pushes(1)  # streams, but in the background
        assert told["body"] == also["body"] == "Alice: lunch?"
        await settle(bob, 1)
        await settle(ivan, 1)
        for quiet in (carol, dave, erin, frank, gina, hank):
            assert await deliveries(quiet) == [], quiet.user_id

        # A mention passes erin's mentions-only level (and bob's ALL); dave's NONE not.
        await alice.send(group.name, "@erin you too", mention_ids=["erin", "dave"])
        (mention,) = await phones["erin"].pushes(1)
        assert mention["title"] == "Alice mentioned you in All"
        assert mention["body"] == "@erin you too"
        assert await deliveries(dave) == []
    finally:
        await live.close()
        await away.close()


async def test_a_burst_collapses_and_reading_elsewhere_clears(
        client: Client, app: AppHandle, push_service: tuple[Receiver, Path]) -> None:
    receiver, _ = push_service
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",), title="Burst")
    phone = await Phone(bob, receiver).register()
    for n in range(4):
        await alice.send(group.name, f"message {n}")
    found = await settle(bob, 1)
    while sum(d.count for d in found if d.state == res.PushDelivery.STATE_SENT) < 4:
        found = await settle(bob, len([d for d in found if d.state
                                       != res.PushDelivery.STATE_PENDING]) + 1)
    sent = [d for d in found if d.state == res.PushDelivery.STATE_SENT]
    assert 1 <= len(sent) <= 2, found  # four messages, at most two notifications
    pushes = await phone.pushes(len(sent))
    assert pushes[-1]["body"] == "Alice: message 3"
    if len(sent) == 2:
        assert pushes[1]["title"] == f"Burst ({sent[0].count} new messages)"
    assert {p["tag"] for p in pushes} == {group.name.rsplit("/", 1)[1]}

    # Read on another device: what the phone shows is cleared, silently.
    await bob.mark_read(group.name, 4)
    cleared = (await phone.pushes(len(sent) + 1))[-1]
    assert cleared["silent"] is True and cleared["title"] == cleared["body"] == ""
    assert cleared["tag"] == pushes[-1]["tag"]
    data = cleared["data"]
    assert isinstance(data, dict) and data["type"] == "clear"
    assert data["conversation"] == group.name
    kinds = [d.kind for d in await settle(bob, len(sent) + 1)]
    assert kinds[0] == res.NOTIFICATION_KIND_CLEAR  # newest first

    # A message sent and read before its collapse window ends is never pushed.
    await alice.send(group.name, "one more")  # sent at once: a clear came last
    await settle(bob, len(sent) + 2)
    await alice.send(group.name, "and another")  # held until the window ends
    held = (await until(bob, lambda ds: ds[0].state == res.PushDelivery.STATE_PENDING))[0]
    await bob.mark_read(group.name, 6)
    listed = await until(bob, lambda ds: ds[0].kind == res.NOTIFICATION_KIND_CLEAR
                         and ds[0].state == res.PushDelivery.STATE_SENT)
    (canceled,) = [d for d in listed if d.name == held.name]
    assert canceled.state == res.PushDelivery.STATE_CANCELED and canceled.attempts == []
    last = (await phone.pushes(len(sent) + 3))[-1]  # … and "one more" is cleared
    assert last["silent"] is True and last["data"]["type"] == "clear"  # type: ignore[index]
    assert len(phone.requests()) == len(sent) + 3


async def test_gone_subscriptions_are_pruned_and_failures_retried(
        client: Client, app: AppHandle, push_service: tuple[Receiver, Path]) -> None:
    receiver, _ = push_service
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    group = await alice.create(GROUP, ("bob", "carol"))
    gone = await Phone(bob, receiver, "gone").register()
    flaky = await Phone(carol, receiver, "flaky2").register()
    await alice.send(group.name, "anyone?")
    (pruned,) = await settle(bob, 1)
    assert pruned.state == res.PushDelivery.STATE_PRUNED
    assert [(a.status_code, a.error) for a in pruned.attempts] == [(410, "status 410")]
    devices = await bob.client.push.ListPushDevices(
        pb.ListPushDevicesRequest(parent=bob.name), metadata=bob.auth)
    assert list(devices.push_devices) == [] and len(gone.requests()) == 1
    (retried,) = await settle(carol, 1)  # 500, 500, then taken
    assert retried.state == res.PushDelivery.STATE_SENT
    assert [a.status_code for a in retried.attempts] == [500, 500, 200]
    assert len(await flaky.pushes(3)) == 3


async def test_reactions_calls_and_threads(client: Client, app: AppHandle,
                                           push_service: tuple[Receiver, Path]) -> None:
    receiver, _ = push_service
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    alices = await Phone(alice, receiver).register()
    bobs = await Phone(bob, receiver).register()
    carols = await Phone(carol, receiver).register()
    group = await alice.create(GROUP, ("bob", "carol"), title="Trio")
    root = (await bob.send(group.name, "a thread")).message  # alice, carol told
    await alices.pushes(1)
    await carols.pushes(1)
    await carol.client.messages.AddReaction(msg_pb.AddReactionRequest(
        name=root.name, emoji="👍"), metadata=carol.auth)
    (reaction,) = await bobs.pushes(1)
    assert (reaction["title"], reaction["body"]) == ("Carol reacted 👍", "a thread")
    # A reply tells the thread's followers (bob started it), not the other members.
    await carol.send(group.name, "a reply", thread_root_sequence=root.sequence)
    reply = (await bobs.pushes(2))[1]
    assert reply["title"] == "Carol replied in Trio" and reply["body"] == "a reply"
    assert len(alices.requests()) == 1
    kinds = [d.kind for d in await deliveries(alice)]
    assert kinds == [res.NOTIFICATION_KIND_MESSAGE]

    direct = await alice.create(DIRECT, ("bob",))
    await alice.client.calls.StartCall(calls_pb.StartCallRequest(
        parent=direct.name, media=calls_res.Call.MEDIA_VIDEO, device_id="alice-1",
        request_id=uuid.uuid4().hex), metadata=alice.auth)
    ring = (await bobs.pushes(3))[2]
    assert (ring["title"], ring["body"], ring["urgent"]) == ("Alice", "Incoming video call",
                                                              True)
    data = ring["data"]
    assert isinstance(data, dict) and data["type"] == "call" and data["call"]
    assert bobs.requests()[2].headers["urgency"] == "high"
    # Answered on another device: the ring this one shows is cleared.
    await bob.client.calls.AcceptCall(calls_pb.AcceptCallRequest(
        name=str(data["call"]), device_id="bob-laptop"), metadata=bob.auth)
    cleared = (await bobs.pushes(4))[3]
    assert cleared["silent"] is True and cleared["tag"] == ring["tag"]
    assert cleared["data"]["type"] == "clear"  # type: ignore[index]


async def test_templates_by_language(client: Client, app: AppHandle,
                                     push_service: tuple[Receiver, Path]) -> None:
    receiver, _ = push_service
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    await client.push.UpdatePushConfig(pb.UpdatePushConfigRequest(
        push_config=res.PushConfig(name=f"apps/{app.app_id}/pushConfig", templates=[
            res.NotificationTemplate(kind=res.NOTIFICATION_KIND_MESSAGE, locale="fr",
                                     title="{conversation}", body="{sender} a écrit : {text}"),
            res.NotificationTemplate(kind=res.NOTIFICATION_KIND_MESSAGE,
                                     title="[{conversation}]", body="{sender} says {text}")]),
        update_mask=field_mask_pb2.FieldMask(paths=["templates"])), metadata=app.auth)
    french = await Phone(bob, receiver).register(locale="fr-CA")
    other = await Phone(carol, receiver).register(locale="de")
    group = await alice.create(GROUP, ("bob", "carol"), title="Café")
    await alice.send(group.name, "bonjour")
    (fr,) = await french.pushes(1)
    (de,) = await other.pushes(1)
    assert (fr["title"], fr["body"]) == ("Café", "Alice a écrit : bonjour")
    assert (de["title"], de["body"]) == ("[Café]", "Alice says bonjour")


async def test_settings_and_config_are_guarded(client: Client, app: AppHandle,
                                               pushing: CaasServer) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    await expect_error(bob.client.push.GetNotificationSettings(
        pb.GetNotificationSettingsRequest(name=f"{alice.name}/notificationSettings"),
        metadata=bob.auth), DENIED, "USER_MISMATCH")
    await expect_error(bob.client.push.UpdateNotificationSettings(
        pb.UpdateNotificationSettingsRequest(
            notification_settings=res.NotificationSettings(
                name=f"{alice.name}/notificationSettings", level=res.NOTIFICATION_LEVEL_NONE),
            update_mask=field_mask_pb2.FieldMask(paths=["level"])), metadata=bob.auth),
        DENIED, "USER_MISMATCH")
    await expect_error(bob.client.push.ListPushDeliveries(
        pb.ListPushDeliveriesRequest(parent=alice.name), metadata=bob.auth),
        DENIED, "USER_MISMATCH")
    config = f"apps/{app.app_id}/pushConfig"
    await expect_error(bob.client.push.GetPushConfig(
        pb.GetPushConfigRequest(name=config), metadata=bob.auth), DENIED, "PRINCIPAL_NOT_ALLOWED")
    other = await create_app(client, pushing.operator_token)
    await expect_error(client.push.GetPushConfig(
        pb.GetPushConfigRequest(name=config), metadata=other.auth), DENIED, "APP_MISMATCH")
    await expect_error(client.push.UpdateNotificationSettings(
        pb.UpdateNotificationSettingsRequest(
            notification_settings=res.NotificationSettings(
                name=f"{alice.name}/notificationSettings",
                do_not_disturb=res.DoNotDisturb(start_minute=1, end_minute=2,
                                                time_zone="Mars/Olympus")),
            update_mask=field_mask_pb2.FieldMask(paths=["do_not_disturb"])),
        metadata=app.auth), grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    await expect_error(client.push.UpdatePushConfig(pb.UpdatePushConfigRequest(
        push_config=res.PushConfig(name=config, apns=res.ApnsCredentials(
            key_id="ABCDE12345", team_id="TEAM123456", topic="com.example.chat",
            private_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----")),
        update_mask=field_mask_pb2.FieldMask(paths=["apns"])), metadata=app.auth),
        grpc.StatusCode.INVALID_ARGUMENT, "PUSH_CREDENTIALS_INVALID")
    # The user's own settings round-trip; the backend sees them.
    await set_settings(alice, ["level", "do_not_disturb"], level=res.NOTIFICATION_LEVEL_MENTIONS,
                       do_not_disturb=res.DoNotDisturb(start_minute=1320, end_minute=420,
                                                       time_zone="Europe/Paris"))
    seen = await client.push.GetNotificationSettings(pb.GetNotificationSettingsRequest(
        name=f"{alice.name}/notificationSettings"), metadata=app.auth)
    settings = seen.notification_settings
    assert settings.level == res.NOTIFICATION_LEVEL_MENTIONS
    assert (settings.do_not_disturb.start_minute, settings.do_not_disturb.end_minute,
            settings.do_not_disturb.time_zone) == (1320, 420, "Europe/Paris")


async def register_token(user: Person, **channel: object) -> res.PushDevice:
    created = await user.client.push.CreatePushDevice(pb.CreatePushDeviceRequest(
        parent=user.name, push_device=res.PushDevice(**channel)),  # type: ignore[arg-type]
        metadata=user.auth)
    return created.push_device


async def test_apple_and_android_devices(client: Client, app: AppHandle,
                                         providers: tuple[ApnsStandIn, FcmStandIn, Path],
                                         pushing: CaasServer) -> None:
    apns, fcm, _ = providers
    credentials = apns.new_credentials(topic="com.example.chat")
    config = f"apps/{app.app_id}/pushConfig"
    updated = await client.push.UpdatePushConfig(pb.UpdatePushConfigRequest(
        push_config=res.PushConfig(
            name=config, apns=res.ApnsCredentials(
                key_id=credentials.key_id, team_id=credentials.team_id,
                topic=credentials.topic, private_key=credentials.private_key_pem),
            fcm=res.FcmCredentials(service_account_json=fcm.new_service_account("chat-prod"))),
        update_mask=field_mask_pb2.FieldMask(paths=["apns", "fcm"])), metadata=app.auth)
    shown = updated.push_config
    assert shown.apns.private_key == "" and shown.apns.private_key_set  # never read back
    assert shown.fcm.service_account_json == "" and shown.fcm.project_id == "chat-prod"
    assert shown.fcm.client_email.endswith("chat-prod.iam.gserviceaccount.com")
    alice, bob, carol, dave = await people(client, app, "alice", "bob", "carol", "dave")
    # Tokens of their own: the stand-ins serve both engines' runs.
    iphone, android = uuid.uuid4().hex * 2, f"fcm-{uuid.uuid4().hex}"
    gone_iphone, gone_android = uuid.uuid4().hex * 2, f"fcm-{uuid.uuid4().hex}"
    apns.answer(gone_iphone, Answer(410, "Unregistered"))
    fcm.answer(gone_android, Answer(404, "UNREGISTERED"))
    sandbox = res.ApnsToken.ENVIRONMENT_SANDBOX
    await register_token(bob, apns=res.ApnsToken(device_token=iphone, environment=sandbox))
    await register_token(bob, fcm=res.FcmToken(token=android))
    await register_token(carol, apns=res.ApnsToken(
        device_token=gone_iphone, environment=res.ApnsToken.ENVIRONMENT_PRODUCTION))
    await register_token(dave, fcm=res.FcmToken(token=gone_android))
    group = await alice.create(GROUP, ("bob", "carol", "dave"), title="Mobile")
    await alice.send(group.name, "to your phones")

    await apns.wait(lambda rs: any(r.token == iphone for r in rs))
    (alert,) = apns.to(iphone)
    assert alert.service == "sandbox" and alert.status == 200
    assert alert.headers["apns-topic"] == "com.example.chat"
    assert alert.headers["apns-push-type"] == "alert" and alert.headers["apns-priority"] == "10"
    aps = alert.json()["aps"]
    assert aps["alert"] == {"title": "Mobile", "body": "Alice: to your phones"}
    assert alert.json()["caas"]["conversation"] == group.name
    await fcm.wait(lambda rs: any(r.token == android for r in rs))
    message = fcm.to(android)[0].json()["message"]
    assert message["notification"] == {"title": "Mobile", "body": "Alice: to your phones"}
    assert message["data"]["conversation"] == group.name

    (pruned_apns,) = await settle(carol, 1)
    (pruned_fcm,) = await settle(dave, 1)
    assert (pruned_apns.state, pruned_apns.attempts[0].error) == (
        res.PushDelivery.STATE_PRUNED, "Unregistered")
    assert (pruned_fcm.state, pruned_fcm.attempts[0].error) == (
        res.PushDelivery.STATE_PRUNED, "UNREGISTERED")
    for gone in (carol, dave):
        listed = await gone.client.push.ListPushDevices(
            pb.ListPushDevicesRequest(parent=gone.name), metadata=gone.auth)
        assert list(listed.push_devices) == []

    # Read elsewhere: a background push to the iPhone, a data message to the Android.
    await settle(bob, 2)
    await bob.mark_read(group.name, 1)
    await apns.wait(lambda rs: len([r for r in rs if r.token == iphone]) >= 2)
    clear = apns.to(iphone)[1]
    assert clear.headers["apns-push-type"] == "background"
    assert clear.headers["apns-priority"] == "5"
    assert clear.json()["aps"] == {"content-available": 1}
    assert clear.json()["caas"]["type"] == "clear"
    await fcm.wait(lambda rs: len([r for r in rs if r.token == android]) >= 2)
    data_only = fcm.to(android)[1]
    assert "notification" not in data_only.json()["message"]
    assert data_only.json()["message"]["data"]["type"] == "clear"


async def test_a_provider_the_app_did_not_configure_fails_clearly(
        client: Client, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    await register_token(bob, apns=res.ApnsToken(
        device_token=uuid.uuid4().hex * 2, environment=res.ApnsToken.ENVIRONMENT_PRODUCTION))
    group = await alice.create(GROUP, ("bob",))
    await alice.send(group.name, "nobody configured APNs")
    (failed,) = await settle(bob, 1)
    assert failed.state == res.PushDelivery.STATE_FAILED
    assert [(a.status_code, a.error) for a in failed.attempts] == [
        (0, "APNs is not configured for the app")]


async def test_a_message_deleted_before_its_push_goes_is_not_told(
        client: Client, app: AppHandle, push_service: tuple[Receiver, Path]) -> None:
    receiver, _ = push_service
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",))
    phone = await Phone(bob, receiver).register()
    await alice.send(group.name, "first")
    await settle(bob, 1)
    oops = (await alice.send(group.name, "oops, wrong group")).message
    held = (await until(bob, lambda ds: ds[0].state == res.PushDelivery.STATE_PENDING))[0]
    await alice.client.messages.DeleteMessage(msg_pb.DeleteMessageRequest(name=oops.name),
                                              metadata=alice.auth)
    listed = await until(bob, lambda ds: ds[0].state != res.PushDelivery.STATE_PENDING)
    assert listed[0].name == held.name
    assert listed[0].state == res.PushDelivery.STATE_CANCELED and listed[0].attempts == []
    assert [p["body"] for p in await phone.pushes(1)] == ["Alice: first"]
    assert len(phone.requests()) == 1
