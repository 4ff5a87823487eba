"""The MLS delivery service against the running server, on both stores: devices and
their KeyPackages (checked, single use, last resort), a group formed by commits with
Welcomes, the total order of epochs (a stale commit or message refused, one of two
concurrent commits winning), membership kept equal to the conversation's (adds of
non-members refused, removals of those who left required before anything else is
sent), and what cannot work on ciphertext refused. The MLS messages are built by hand
(tests/support/mls.py): real KeyPackages and framing, random secrets; the SDK's tests
use a real MLS client."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import grpc
import httpx
from caas.auth.v1 import auth_service_pb2 as auth_pb
from caas.conversations.v1 import conversations_service_pb2 as conv_pb
from caas.conversations.v1 import resources_pb2 as conv_res
from caas.e2ee.v1 import e2ee_service_pb2 as e2ee_pb
from caas.e2ee.v1 import resources_pb2 as e2ee_res
from caas.messages.v1 import messages_service_pb2 as msg_pb
from caas.messages.v1 import resources_pb2 as msg_res
from caas.search.v1 import search_service_pb2 as search_pb

from tests.conftest import AppHandle, expect_error
from tests.e2e.test_api_key_scopes import new_key
from tests.e2e.test_http import grpc_web_frame, grpc_web_frames
from tests.support.chat import CHANNEL, GROUP, Person, person
from tests.support.client import Client, bearer
from tests.support.mls import (
    Phone,
    Signer,
    application,
    commit,
    form_group,
    key_package,
    leaf_node,
    reference,
    welcome,
)
from tests.support.stream import subscribed

ABORTED = grpc.StatusCode.ABORTED
FAILED = grpc.StatusCode.FAILED_PRECONDITION
INVALID = grpc.StatusCode.INVALID_ARGUMENT
COMMIT = msg_res.MlsContent.KIND_COMMIT
APPLICATION = msg_res.MlsContent.KIND_APPLICATION


async def people(client: Client, app: AppHandle, *names: str) -> list[Person]:
    return [await person(client, app.app_id, app.api_key, name) for name in names]


async def test_a_device_registers_once_with_its_key(client: Client, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    phone = Phone(alice, "phone")
    registered = await phone.register(packages=0)
    assert registered.name == phone.name and registered.key_package_count == 0
    got = (await client.e2ee.GetDevice(e2ee_pb.GetDeviceRequest(name=phone.name),
                                       metadata=alice.auth)).device
    assert got.signature_key == phone.signer.public and got.cipher_suite == 1
    assert got.credential_identity == phone.identity
    assert got.session.startswith(f"apps/{app.app_id}/users/alice/sessions/")
    assert len(got.fingerprint.replace(" ", "")) == 64
    # Again with the same key: the same device; with another: refused, nothing changes.
    again = await client.e2ee.CreateDevice(e2ee_pb.CreateDeviceRequest(
        parent=f"apps/{app.app_id}/users/alice", device_id="phone",
        device=e2ee_res.Device(cipher_suite=1, signature_key=phone.signer.public)),
        metadata=alice.auth)
    assert again.device.create_time == got.create_time
    await expect_error(client.e2ee.CreateDevice(e2ee_pb.CreateDeviceRequest(
        parent=f"apps/{app.app_id}/users/alice", device_id="phone",
        device=e2ee_res.Device(cipher_suite=1, signature_key=Signer().public)),
        metadata=alice.auth), grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")
    failed = await expect_error(client.e2ee.CreateDevice(e2ee_pb.CreateDeviceRequest(
        parent=f"apps/{app.app_id}/users/alice", device_id="tablet",
        device=e2ee_res.Device(cipher_suite=2, signature_key=Signer().public)),
        metadata=alice.auth), INVALID, "REQUEST_INVALID")
    assert "device.signature_key" in failed.field_violations
    # Someone else's devices are theirs: bob neither registers nor reads alice's.
    await expect_error(client.e2ee.CreateDevice(e2ee_pb.CreateDeviceRequest(
        parent=f"apps/{app.app_id}/users/alice", device_id="evil",
        device=e2ee_res.Device(cipher_suite=1, signature_key=Signer().public)),
        metadata=bob.auth), grpc.StatusCode.PERMISSION_DENIED, "USER_MISMATCH")
    await expect_error(client.e2ee.ListDevices(e2ee_pb.ListDevicesRequest(
        parent=f"apps/{app.app_id}/users/alice"), metadata=bob.auth),
        grpc.StatusCode.PERMISSION_DENIED, "USER_MISMATCH")
    # The app's backend registers for any user (no session then).
    laptop = Phone(alice, "laptop")
    made = await client.e2ee.CreateDevice(e2ee_pb.CreateDeviceRequest(
        parent=f"apps/{app.app_id}/users/alice", device_id="laptop",
        device=e2ee_res.Device(cipher_suite=1, signature_key=laptop.signer.public)),
        metadata=bearer(app.api_key))
    assert made.device.session == ""
    listed = await client.e2ee.ListDevices(e2ee_pb.ListDevicesRequest(
        parent=f"apps/{app.app_id}/users/alice"), metadata=alice.auth)
    assert [d.name for d in listed.devices] == [phone.name, laptop.name]
    # At most 20 devices per user.
    for number in range(18):
        await Phone(alice, f"d{number}").register(packages=0)
    await expect_error(Phone(alice, "one-too-many").register(packages=0), FAILED,
                       "LIMIT_EXCEEDED")
    await client.e2ee.DeleteDevice(e2ee_pb.DeleteDeviceRequest(name=laptop.name),
                                   metadata=alice.auth)
    await expect_error(client.e2ee.GetDevice(e2ee_pb.GetDeviceRequest(name=laptop.name),
                                             metadata=alice.auth),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


async def test_key_packages_are_checked_on_upload(client: Client, app: AppHandle) -> None:
    (alice,) = await people(client, app, "alice")
    phone = Phone(alice, "phone")
    assert (await phone.register(packages=2)).key_package_count == 2
    other = Signer()
    bad = {
        "garbage": b"\x00\x01\x00\x05nonsense",
        "another identity": key_package(f"apps/{app.app_id}/users/bob/devices/x".encode(),
                                        phone.signer),
        "another key": key_package(phone.identity, other),
        "a broken signature": phone.key_package(tamper=True),
        "another suite": phone.key_package(suite=3),
    }
    for why, package in bad.items():
        failed = await expect_error(phone.upload([phone.key_package(), package]), INVALID,
                                    "KEY_PACKAGE_INVALID")
        assert "key_packages[1]" in failed.field_violations, why
    device = await phone.upload([])
    assert device.key_package_count == 2  # nothing of the refused uploads stayed
    same = phone.key_package()
    assert (await phone.upload([same, same])).key_package_count == 3  # held once
    assert (await phone.upload([], phone.key_package())).has_last_resort


async def test_claims_hand_out_each_key_package_once_then_the_last_resort(
        client: Client, app: AppHandle) -> None:
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    assert group.end_to_end_encrypted
    a1 = Phone(alice, "a1")
    await a1.register()
    b1, b2 = Phone(bob, "b1"), Phone(bob, "b2")
    await b1.register(packages=2, last_resort=True)
    await b2.register(packages=0)  # nothing to hand out
    first = await a1.claim(group.name, "bob")
    second = await a1.claim(group.name, "bob")
    third = await a1.claim(group.name, "bob")
    fourth = await a1.claim(group.name, "bob")
    packages = [c.key_packages[0] for c in (first, second, third, fourth)]
    assert all(p.device == b1.name for p in packages)
    assert packages[0].key_package != packages[1].key_package
    assert [p.last_resort for p in packages] == [False, False, True, True]
    assert packages[2].key_package == packages[3].key_package  # the last resort stays
    assert list(first.unavailable_devices) == [b2.name]
    # The calling device is never claimed; the caller's other devices are.
    a2 = Phone(alice, "a2")
    await a2.register()
    mine = await a1.claim(group.name, "alice")
    assert [c.device for c in mine.key_packages] == [a2.name]
    device = (await client.e2ee.GetDevice(e2ee_pb.GetDeviceRequest(name=b1.name),
                                          metadata=bob.auth)).device
    assert (device.key_package_count, device.has_last_resort) == (0, True)
    # Only for members, by members, in encrypted conversations.
    failed = await expect_error(a1.claim(group.name, "carol"), INVALID, "REQUEST_INVALID")
    assert "user_ids[0]" in failed.field_violations
    await expect_error(Phone(carol, "c1").claim(group.name, "bob"),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")  # hidden from her
    plain = await alice.create(GROUP, ("bob",))
    await expect_error(a1.claim(plain.name, "bob"), FAILED, "E2EE_NOT_ENABLED")


async def test_a_group_forms_and_keeps_one_order_of_epochs(client: Client,
                                                          app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    a1, b1 = Phone(alice, "a1"), Phone(bob, "b1")
    await a1.register()
    await b1.register()
    first = await form_group(group.name, a1, b1)
    assert (first.sequence, first.mls.kind, first.mls.epoch) == (1, COMMIT, 0)
    assert not first.mls.welcome  # never returned
    assert first.mls.device_id == "a1"
    state = await b1.group(group.name)
    assert (state.epoch, state.commit_sequence, state.cipher_suite) == (1, 1, 1)
    assert [(leaf.index, leaf.device.name) for leaf in state.leaves] == [
        (0, a1.name), (1, b1.name)]
    assert state.group_id == group.name.encode() and not state.missing_devices
    (welcomed,) = await b1.welcomes()
    assert (welcomed.conversation, welcomed.sequence, welcomed.epoch) == (group.name, 1, 1)
    assert await a1.welcomes() == []

    # Application messages in the current epoch; the commit counted for nobody.
    sent = await a1.send(group.name, application(group.name.encode(), 1))
    assert (sent.sequence, sent.mls.kind, sent.mls.epoch) == (2, APPLICATION, 1)
    assert sent.text == "" and not sent.attachments
    got = await bob.client.conversations.GetConversation(
        conv_pb.GetConversationRequest(name=group.name), metadata=bob.auth)
    assert got.conversation.membership.unread_count == 1
    assert got.conversation.last_message.sequence == 2
    await expect_error(a1.send(group.name, application(group.name.encode(), 0)), ABORTED,
                       "MLS_EPOCH_STALE")

    # Two commits built on epoch 1: one goes, the other is told to catch up.
    results = await asyncio.gather(
        a1.send(group.name, commit(group.name.encode(), 1, 0)),
        b1.send(group.name, commit(group.name.encode(), 1, 1)), return_exceptions=True)
    won = [r for r in results if isinstance(r, msg_res.Message)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].code() == ABORTED
    stale = await expect_error(b1.send(group.name, commit(group.name.encode(), 1, 1)),
                               ABORTED, "MLS_EPOCH_STALE")
    assert stale.metadata == {"epoch": "2", "commit_sequence": str(won[0].sequence)}
    again = await b1.send(group.name, commit(group.name.encode(), 2, 1))
    assert again.mls.epoch == 2 and again.sequence == won[0].sequence + 1
    # Gapless and in order: what a device that was away reads back.
    listed = await b1.person.messages(group.name, after_sequence=0)
    assert [(m.sequence, m.mls.kind, m.mls.epoch) for m in listed.messages] == [
        (1, COMMIT, 0), (2, APPLICATION, 1), (3, COMMIT, 1), (4, COMMIT, 2)]
    # A retried send is the first one, also once the group moved past its epoch.
    request_id = uuid.uuid4().hex
    data = application(group.name.encode(), 3)
    once = await a1.send(group.name, data, request_id=request_id)
    twice = await a1.send(group.name, data, request_id=request_id)
    assert once.sequence == twice.sequence == 5
    committed = await b1.send(group.name, commit(group.name.encode(), 3, 1), request_id="c1")
    await a1.send(group.name, commit(group.name.encode(), 4, 0))
    assert (await a1.send(group.name, data, request_id=request_id)).sequence == 5
    assert (await b1.send(group.name, commit(group.name.encode(), 3, 1), request_id="c1")
            ).sequence == committed.sequence


async def test_commits_keep_the_group_to_the_conversations_members(
        client: Client, app: AppHandle) -> None:
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    gid = group.name.encode()
    a1, b1, c1 = Phone(alice, "a1"), Phone(bob, "b1"), Phone(carol, "c1")
    for phone in (a1, b1, c1):
        await phone.register()
    carols = c1.key_package()

    async def refused(data: bytes, rule: str, welcome_bytes: bytes = b"",
                      phone: Phone = a1) -> None:
        failed = await expect_error(phone.send(group.name, data, welcome_bytes), FAILED,
                                    "MLS_COMMIT_REFUSED")
        assert failed.metadata["rule"] == rule

    # Carol is no member: her device is not added.
    await refused(commit(gid, 0, 0, adds=[carols]), "add_not_member",
                  welcome([reference(carols)]))
    # A KeyPackage with another key than bob's registered one.
    forged = Phone(bob, "b1")
    forged_package = forged.key_package()
    await refused(commit(gid, 0, 0, adds=[forged_package]), "signature_key",
                  welcome([reference(forged_package)]))
    # The creator is leaf 0.
    await refused(commit(gid, 0, 3), "sender")
    # The Welcome must welcome exactly those added.
    bobs = (await a1.claim(group.name, "bob")).key_packages[0].key_package
    await expect_error(a1.send(group.name, commit(gid, 0, 0, adds=[bobs])), INVALID,
                       "MLS_MESSAGE_INVALID")
    await expect_error(a1.send(group.name, commit(gid, 0, 0, adds=[bobs]),
                               welcome([reference(carols)])), INVALID, "MLS_MESSAGE_INVALID")
    # Another conversation's group, or a commit the server cannot read.
    await expect_error(a1.send(group.name, commit(b"apps/x/conversations/y", 0, 0)),
                       INVALID, "MLS_MESSAGE_INVALID")
    await expect_error(a1.send(group.name, application(gid, 0)[:-3]), INVALID,
                       "MLS_MESSAGE_INVALID")
    private_commit = bytearray(application(gid, 0))
    private_commit[4 + 1 + len(gid) + 8] = 3  # content type: commit
    await expect_error(a1.send(group.name, bytes(private_commit)), INVALID,
                       "MLS_MESSAGE_INVALID")
    nothing = await client.messages.ListMessages(msg_pb.ListMessagesRequest(
        parent=group.name), metadata=alice.auth)
    assert list(nothing.messages) == []  # every refusal left no trace

    await a1.send(group.name, commit(gid, 0, 0, adds=[bobs]), welcome([reference(bobs)]))
    # Bob's device may not commit as alice's leaf, nor change its own credential.
    await refused(commit(gid, 1, 0), "sender", phone=b1)
    await refused(commit(gid, 1, 1, path=leaf_node(a1.identity, b1.signer, source=3)),
                  "credential", phone=b1)
    # Nor remove alice's device while she is a member; nor add bob's twice.
    await refused(commit(gid, 1, 1, removes=[0]), "remove", phone=b1)
    again = b1.key_package()
    await refused(commit(gid, 1, 0, adds=[again]), "add_twice", welcome([reference(again)]))
    state = await a1.group(group.name)
    assert state.epoch == 1 and len(state.leaves) == 2


async def test_who_left_is_removed_before_anything_else_is_sent(
        client: Client, app: AppHandle) -> None:
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    group = await alice.create(GROUP, ("bob", "carol"), encrypted=True)
    gid = group.name.encode()
    a1, b1, c1, c2 = Phone(alice, "a1"), Phone(bob, "b1"), Phone(carol, "c1"), Phone(carol, "c2")
    for phone in (a1, b1, c1, c2):
        await phone.register()
    await form_group(group.name, a1, b1, c1, c2)
    state = await a1.group(group.name)
    assert [leaf.device.name for leaf in state.leaves] == [a1.name, b1.name, c1.name,
                                                           c2.name]
    # Bob leaves: his leaf must go before the next message.
    await client.conversations.LeaveConversation(conv_pb.LeaveConversationRequest(
        name=group.name), metadata=bob.auth)
    failed = await expect_error(a1.send(group.name, application(gid, 1)), FAILED,
                                "MLS_REMOVAL_PENDING")
    assert failed.metadata == {"leaves": "1"}
    state = await a1.group(group.name)
    assert [(leaf.index, leaf.removal_pending) for leaf in state.leaves] == [
        (0, False), (1, True), (2, False), (3, False)]
    assert not state.leaves[1].HasField("device")  # no member's device any more
    # Carol deletes her second device: its leaf is pending too.
    await client.e2ee.DeleteDevice(e2ee_pb.DeleteDeviceRequest(name=c2.name),
                                   metadata=carol.auth)
    failed = await expect_error(c1.send(group.name, application(gid, 1)), FAILED,
                                "MLS_REMOVAL_PENDING")
    assert failed.metadata == {"leaves": "1,3"}
    await c1.send(group.name, commit(gid, 1, 2, removes=[1, 3]))
    state = await a1.group(group.name)
    assert [(leaf.index, leaf.device.name) for leaf in state.leaves] == [
        (0, a1.name), (2, c1.name)]
    assert (await a1.send(group.name, application(gid, 2))).mls.epoch == 2
    # A new device of a member is missing until added: it takes the leftmost blank leaf.
    c3 = Phone(carol, "c3")
    await c3.register()
    state = await a1.group(group.name)
    assert [d.name for d in state.missing_devices] == [c3.name]
    package = (await a1.claim(group.name, "carol")).key_packages[0]
    assert package.device == c3.name
    await a1.send(group.name, commit(gid, 2, 0, adds=[package.key_package]),
                  welcome([reference(package.key_package)]))
    state = await a1.group(group.name)
    assert [(leaf.index, leaf.device.name) for leaf in state.leaves] == [
        (0, a1.name), (1, c3.name), (2, c1.name)]
    (joined,) = await c3.welcomes()
    assert joined.epoch == 3
    # Bob, gone, lists no Welcome of the conversation for his device any more.
    assert await b1.welcomes() == []


async def test_revoking_a_session_deletes_the_devices_it_registered(
        client: Client, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    a1, b1 = Phone(alice, "a1"), Phone(bob, "b1")
    await a1.register()
    session = (await b1.register()).session
    await form_group(group.name, a1, b1)
    other = await person(client, app.app_id, app.api_key, "bob")  # bob's second session
    b2 = Phone(other, "b2")
    await b2.register()
    await client.auth.RevokeSession(auth_pb.RevokeSessionRequest(name=session),
                                    metadata=bearer(app.api_key))
    listed = await client.e2ee.ListDevices(e2ee_pb.ListDevicesRequest(
        parent=f"apps/{app.app_id}/users/bob"), metadata=other.auth)
    assert [d.name for d in listed.devices] == [b2.name]
    failed = await expect_error(a1.send(group.name, application(group.name.encode(), 1)),
                                FAILED, "MLS_REMOVAL_PENDING")
    assert failed.metadata == {"leaves": "1"}


async def test_what_cannot_work_on_ciphertext_is_refused(client: Client,
                                                         app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    gid = group.name.encode()
    a1, b1 = Phone(alice, "a1"), Phone(bob, "b1")
    await a1.register()
    await b1.register()
    first = await form_group(group.name, a1, b1)
    await expect_error(alice.send(group.name, "hello in the clear"), FAILED,
                       "E2EE_PLAINTEXT_REFUSED")
    await expect_error(client.messages.CreateMessage(msg_pb.CreateMessageRequest(
        parent=group.name, request_id=uuid.uuid4().hex, message=msg_res.Message(
            mls=msg_res.MlsContent(message=application(gid, 1)), metadata={"k": "v"})),
        metadata=alice.auth), FAILED, "E2EE_PLAINTEXT_REFUSED")
    plain = await alice.create(GROUP, ("bob",))
    await expect_error(a1.send(plain.name, application(plain.name.encode(), 0)), FAILED,
                       "E2EE_NOT_ENABLED")
    sent = await a1.send(group.name, application(gid, 1))

    async def unsupported(call: object, feature: str) -> None:
        failed = await expect_error(call, FAILED, "E2EE_NOT_SUPPORTED")  # type: ignore[arg-type]
        assert failed.metadata["feature"] == feature

    await unsupported(client.messages.UpdateMessage(msg_pb.UpdateMessageRequest(
        message=msg_res.Message(name=sent.name, text="edited"),
        update_mask={"paths": ["text"]}), metadata=alice.auth), "editing")
    await unsupported(client.messages.AddReaction(msg_pb.AddReactionRequest(
        name=sent.name, emoji="👍"), metadata=bob.auth), "reactions")
    await unsupported(client.messages.DeleteMessage(msg_pb.DeleteMessageRequest(
        name=first.name), metadata=alice.auth), "deleting_commits")
    await unsupported(client.messages.CreateMessage(msg_pb.CreateMessageRequest(
        parent=group.name, request_id=uuid.uuid4().hex, message=msg_res.Message(
            sender_id="alice", mls=msg_res.MlsContent(message=application(gid, 1)))),
        metadata=bearer(app.api_key)), "backend_send")
    await unsupported(client.conversations.CreateConversation(
        conv_pb.CreateConversationRequest(
            parent=f"apps/{app.app_id}", conversation=conv_res.Conversation(
                kind=CHANNEL, title="open", end_to_end_encrypted=True)),
        metadata=alice.auth), "channel")
    deleted = await client.messages.DeleteMessage(msg_pb.DeleteMessageRequest(
        name=sent.name), metadata=alice.auth)
    assert deleted.message.state == msg_res.Message.STATE_DELETED


async def test_streams_carry_the_group_and_tell_a_device_its_stock_runs_low(
        client: Client, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    a1, b1, b2 = Phone(alice, "a1"), Phone(bob, "b1"), Phone(bob, "b2")
    await a1.register()
    await b1.register(packages=11)  # the claim leaves 10: not low
    bobs = await subscribed(bob)
    alices = await subscribed(alice)
    try:
        await form_group(group.name, a1, b1)
        created = await bobs.event()
        assert created.type == "message.created"
        assert created.message_created.mls.kind == COMMIT
        sent = await a1.send(group.name, application(group.name.encode(), 1))
        got = await bobs.event()
        assert got.message_created.mls.message == sent.mls.message
        await b2.register(packages=11)
        await a1.claim(group.name, "bob")  # b2 keeps 10: not low yet
        await a1.claim(group.name, "bob")  # 9 left: bob's streams are told, alice's not
        low = await bobs.event()
        assert low.type == "e2ee.key_packages_low"
        assert (low.e2ee_key_packages_low.device, low.e2ee_key_packages_low.key_package_count
                ) == (b2.name, 9)
        seen = [(await alices.event()).type for _ in range(2)]
        assert seen == ["message.created", "message.created"]
        # Nothing else reached alice: her next event is her own send's.
        await a1.send(group.name, application(group.name.encode(), 1))
        assert (await alices.event()).type == "message.created"
    finally:
        await bobs.close()
        await alices.close()


async def test_searching_an_encrypted_conversation_is_refused(client: Client,
                                                              app: AppHandle) -> None:
    alice, bob, carol = await people(client, app, "alice", "bob", "carol")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    a1, b1 = Phone(alice, "a1"), Phone(bob, "b1")
    await a1.register()
    await b1.register()
    await form_group(group.name, a1, b1)
    await a1.send(group.name, application(group.name.encode(), 1))
    search = client.search.SearchMessages
    await unsupported_search(search(search_pb.SearchMessagesRequest(
        parent=f"apps/{app.app_id}", conversations=[group.name]), metadata=alice.auth))
    await unsupported_search(search(search_pb.SearchMessagesRequest(
        parent=f"apps/{app.app_id}", conversations=[group.name]),
        metadata=bearer(app.api_key)))
    # Someone who may not see it learns nothing of it: not found, as for none.
    await expect_error(search(search_pb.SearchMessagesRequest(
        parent=f"apps/{app.app_id}", conversations=[group.name]), metadata=carol.auth),
        grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


async def unsupported_search(call: Any) -> None:
    failed = await expect_error(call, FAILED, "E2EE_NOT_SUPPORTED")
    assert failed.metadata["feature"] == "search"


async def test_over_json_and_grpc_web_through_envoy(http: httpx.AsyncClient, client: Client,
                                                   app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    a1, b1 = Phone(alice, "a1"), Phone(bob, "b1")
    await a1.register()
    headers = {"authorization": f"Bearer {bob.token}"}
    # JSON: bytes are base64, the device id a query parameter.
    made = await http.post(f"/v1/apps/{app.app_id}/users/bob/devices",
                           params={"deviceId": "b1"}, headers=headers,
                           json={"cipherSuite": 1,
                                 "signatureKey": base64.b64encode(b1.signer.public).decode()})
    assert made.status_code == 200, made.text
    assert made.json()["device"]["name"] == b1.name
    uploaded = await http.post(f"/v1/{b1.name}:uploadKeyPackages", headers=headers, json={
        "keyPackages": [base64.b64encode(b1.key_package()).decode()]})
    assert uploaded.json()["device"]["keyPackageCount"] == 1
    first = await form_group(group.name, a1, b1)
    sent = await http.post(f"/v1/{group.name}/messages", headers=headers, json={
        "mls": {"message": base64.b64encode(application(group.name.encode(), 1)).decode(),
                "deviceId": "b1"}}, params={"requestId": uuid.uuid4().hex})
    assert sent.status_code == 200, sent.text
    assert sent.json()["message"]["mls"]["kind"] == "KIND_APPLICATION"
    stale = await http.post(f"/v1/{group.name}/messages", headers=headers, json={
        "mls": {"message": base64.b64encode(application(group.name.encode(), 0)).decode()}},
        params={"requestId": uuid.uuid4().hex})
    assert stale.status_code == 409  # ABORTED
    assert stale.json()["details"][0]["reason"] == "MLS_EPOCH_STALE"
    # gRPC-Web: the group, as a browser gets it.
    response = await http.post(
        "/caas.e2ee.v1.E2eeService/GetGroup", headers={
            **headers, "x-grpc-web": "1", "content-type": "application/grpc-web+proto"},
        content=grpc_web_frame(e2ee_pb.GetGroupRequest(
            name=f"{group.name}/group").SerializeToString()))
    messages, trailers = grpc_web_frames(response.content)
    assert trailers["grpc-status"] == "0"
    got = e2ee_pb.GetGroupResponse.FromString(messages[0]).group
    assert (got.epoch, got.commit_sequence) == (1, first.sequence)


async def test_nobody_reaches_into_anothers_devices_or_groups(
        client: Client, app: AppHandle, other_app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    (mallory,) = await people(client, other_app, "mallory")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    a1, b1 = Phone(alice, "a1"), Phone(bob, "b1")
    await a1.register()
    await b1.register()
    await form_group(group.name, a1, b1)
    denied = grpc.StatusCode.PERMISSION_DENIED
    # Another app's user: not even the question is answered.
    await expect_error(client.e2ee.GetGroup(e2ee_pb.GetGroupRequest(
        name=f"{group.name}/group"), metadata=mallory.auth), denied, "APP_MISMATCH")
    await expect_error(client.e2ee.ClaimKeyPackages(e2ee_pb.ClaimKeyPackagesRequest(
        conversation=group.name, user_ids=["bob"]), metadata=mallory.auth),
        denied, "APP_MISMATCH")
    await expect_error(client.e2ee.GetDevice(e2ee_pb.GetDeviceRequest(name=b1.name),
                                             metadata=mallory.auth), denied, "APP_MISMATCH")
    # Bob neither stocks alice's device, nor reads its Welcomes, nor deletes it.
    await expect_error(client.e2ee.UploadKeyPackages(e2ee_pb.UploadKeyPackagesRequest(
        device=a1.name, key_packages=[a1.key_package()]), metadata=bob.auth),
        denied, "USER_MISMATCH")
    await expect_error(client.e2ee.ListWelcomes(e2ee_pb.ListWelcomesRequest(parent=a1.name),
                                                metadata=bob.auth), denied, "USER_MISMATCH")
    await expect_error(client.e2ee.DeleteDevice(e2ee_pb.DeleteDeviceRequest(name=a1.name),
                                                metadata=bob.auth), denied, "USER_MISMATCH")
    # Nor commits as alice's device (its id named, his user's device looked up: none).
    forged = Phone(bob, "a1", a1.signer)
    await expect_error(forged.send(group.name, commit(group.name.encode(), 1, 0)),
                       grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    # A key needs users:write to register devices, conversations:read to read a group.
    reader = bearer((await new_key(client, app, "users:read")).secret)
    await expect_error(client.e2ee.CreateDevice(e2ee_pb.CreateDeviceRequest(
        parent=f"apps/{app.app_id}/users/bob", device_id="b9",
        device=e2ee_res.Device(cipher_suite=1, signature_key=Signer().public)),
        metadata=reader), denied, "API_KEY_SCOPE_MISSING")
    await expect_error(client.e2ee.GetGroup(e2ee_pb.GetGroupRequest(
        name=f"{group.name}/group"), metadata=reader), denied, "API_KEY_SCOPE_MISSING")
    # The app's backend sees the group (and its devices) of any conversation of the app.
    seen = await client.e2ee.GetGroup(e2ee_pb.GetGroupRequest(name=f"{group.name}/group"),
                                      metadata=bearer(app.api_key))
    assert [leaf.device.name for leaf in seen.group.leaves] == [a1.name, b1.name]


async def test_a_device_registered_again_under_its_id_is_another_device(
        client: Client, app: AppHandle) -> None:
    alice, bob = await people(client, app, "alice", "bob")
    group = await alice.create(GROUP, ("bob",), encrypted=True)
    gid = group.name.encode()
    a1, lost = Phone(alice, "a1"), Phone(bob, "phone")
    await a1.register()
    await lost.register()
    await form_group(group.name, a1, lost)
    await client.e2ee.DeleteDevice(e2ee_pb.DeleteDeviceRequest(name=lost.name),
                                   metadata=bob.auth)
    found = Phone(bob, "phone")  # the same id, a new key
    await found.register()
    # The lost phone's leaf is still to go; the new phone is not in the group.
    failed = await expect_error(a1.send(group.name, application(gid, 1)), FAILED,
                                "MLS_REMOVAL_PENDING")
    assert failed.metadata == {"leaves": "1"}
    state = await a1.group(group.name)
    assert [(leaf.index, leaf.removal_pending) for leaf in state.leaves] == [
        (0, False), (1, True)]
    assert [d.signature_key for d in state.missing_devices] == [found.signer.public]
    # Nor may the new phone commit as the old leaf.
    await expect_error(found.send(group.name, commit(gid, 1, 1)), FAILED,
                       "MLS_COMMIT_REFUSED")
    package = (await a1.claim(group.name, "bob")).key_packages[0].key_package
    await a1.send(group.name, commit(gid, 1, 0, removes=[1], adds=[package]),
                  welcome([reference(package)]))
    state = await a1.group(group.name)
    assert [(leaf.index, leaf.device.signature_key) for leaf in state.leaves] == [
        (0, a1.signer.public), (1, found.signer.public)]
    assert (await a1.send(group.name, application(gid, 2))).mls.epoch == 2
