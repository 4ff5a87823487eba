"""Devices, KeyPackages, the groups of end-to-end encrypted conversations, and the check
of what a member's device sends into one (see caas.e2ee.v1.E2eeService)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.conversations.access import Access, conversation_name
from services.conversations.actions import ConversationsActions
from services.conversations.models import MlsGroup
from services.conversations.store import ConversationStore
from services.core.clock import Clock, to_ms
from services.core.errors import (
    AlreadyExists,
    CapacityExceeded,
    InvalidArgument,
    invalid_field,
    limit_exceeded,
    not_found,
)
from services.core.events import DomainEvent
from services.core.pagination import Page, time_id_page
from services.core.principal import Principal, User, require_user_or_app
from services.e2ee import delivery, mls
from services.e2ee.models import (
    LOW_KEY_PACKAGES,
    MAX_DEVICES_PER_USER,
    MAX_KEY_PACKAGES,
    Claimed,
    Device,
    device_name,
)
from services.e2ee.store import DeviceStore
from services.messages.actions import MlsSend, not_encrypted
from services.messages.models import APPLICATION, COMMIT, MlsContent, MlsDraft, Welcome
from services.users.actions import user_not_found
from services.users.store import UserStore

# The size of a signature key, by cipher suite, as MLS serializes it (RFC 9420 §5.1.1:
# Ed25519/Ed448 raw; ECDSA an uncompressed point).
KEY_SIZES = {1: 32, 2: 65, 3: 32, 4: 57, 5: 133, 6: 57, 7: 97}


@dataclass(frozen=True, slots=True)
class GroupView:
    """A conversation's group as its members see it."""

    app_id: str
    conversation_id: str
    state: MlsGroup
    leaves: list[tuple[int, Device | None, bool]]  # index, device (None: deleted), pending
    missing: list[Device]


class WelcomeSource(Protocol):
    """What the e2ee domain needs of the message store's Welcomes."""

    async def list_welcomes(self, app_id: str, user_id: str, device_id: str, limit: int,
                            after: tuple[int, str] | None) -> list[Welcome]:
        """Welcomes for the device, newest first: (create time in ms, Welcome.position)
        descending, after `after`."""

    async def forget_device(self, app_id: str, user_id: str, device_id: str) -> None:
        """Drop the device's Welcomes."""


class E2eeActions:
    def __init__(self, devices: DeviceStore, conversations: ConversationsActions,
                 conversation_store: ConversationStore, users: UserStore,
                 welcomes: WelcomeSource, clock: Clock) -> None:
        self._devices = devices
        self._conversations = conversations
        self._conversation_store = conversation_store
        self._users = users
        self._welcomes = welcomes
        self._clock = clock

    # Devices

    async def _user_exists(self, app_id: str, user_id: str) -> None:
        found = (await self._users.get_users(app_id, [user_id])).get(user_id)
        if found is None or found.deleted:
            raise user_not_found(app_id, user_id)

    async def create_device(self, principal: Principal, app_id: str, user_id: str,
                            device_id: str, cipher_suite: int, signature_key: bytes) -> Device:
        require_user_or_app(principal, app_id, user_id)
        await self._user_exists(app_id, user_id)
        if len(signature_key) != KEY_SIZES[cipher_suite]:
            raise invalid_field("device.signature_key", f"cipher suite {cipher_suite} takes"
                                f" a {KEY_SIZES[cipher_suite]}-byte signature key")
        session = principal.session_id if isinstance(principal, User) else ""
        asked = Device(app_id, user_id, device_id, cipher_suite, signature_key, session,
                       self._clock.now())
        try:
            device, created = await self._devices.create_device(asked, MAX_DEVICES_PER_USER)
        except CapacityExceeded as full:
            raise limit_exceeded(full.limit, full.maximum) from None
        if not created and (device.signature_key, device.cipher_suite) != (
                signature_key, cipher_suite):
            raise AlreadyExists("RESOURCE_ALREADY_EXISTS", f"{device.name} is registered with"
                                " another key: delete it to register it again",
                                metadata={"resource": device.name},
                                resource=("caas.dev/Device", device.name))
        return device

    async def get_device(self, principal: Principal, app_id: str, user_id: str,
                         device_id: str) -> Device:
        require_user_or_app(principal, app_id, user_id)
        device = await self._devices.get_device(app_id, user_id, device_id)
        if device is None:
            raise not_found("caas.dev/Device", device_name(app_id, user_id, device_id))
        return device

    async def list_devices(self, principal: Principal, app_id: str, user_id: str
                           ) -> list[Device]:
        require_user_or_app(principal, app_id, user_id)
        return await self._devices.list_devices(app_id, [user_id])

    async def delete_device(self, principal: Principal, app_id: str, user_id: str,
                            device_id: str) -> None:
        require_user_or_app(principal, app_id, user_id)
        if not await self._devices.delete_device(app_id, user_id, device_id):
            raise not_found("caas.dev/Device", device_name(app_id, user_id, device_id))
        await self._welcomes.forget_device(app_id, user_id, device_id)

    async def on_event(self, event: DomainEvent) -> None:
        """Revoking a session deletes the devices it registered; deleting a user, all
        theirs (KeyPackages and Welcomes with them)."""
        if event.type == "session.revoked":
            user_id = event.data["user"]
            gone = await self._devices.delete_session_devices(event.app_id, user_id,
                                                              [event.data["session"]])
        elif event.type == "user.deleted":
            user_id = event.data["user"]
            gone = [d.device_id for d in await self._devices.list_devices(event.app_id,
                                                                          [user_id])]
            for device_id in gone:
                await self._devices.delete_device(event.app_id, user_id, device_id)
        else:
            return
        for device_id in gone:
            await self._welcomes.forget_device(event.app_id, user_id, device_id)

    async def upload(self, principal: Principal, app_id: str, user_id: str, device_id: str,
                     packages: Sequence[bytes], last_resort: bytes) -> Device:
        require_user_or_app(principal, app_id, user_id)
        device = await self.get_device(principal, app_id, user_id, device_id)
        checked = [(_check_key_package(device, data, f"key_packages[{i}]").reference(), data)
                   for i, data in enumerate(packages)]
        if last_resort:
            _check_key_package(device, last_resort, "last_resort")
        try:
            stocked = await self._devices.add_key_packages(app_id, user_id, device_id,
                                                           checked, last_resort,
                                                           MAX_KEY_PACKAGES)
        except CapacityExceeded as full:
            raise limit_exceeded(full.limit, full.maximum) from None
        if stocked is None:
            raise not_found("caas.dev/Device", device.name)
        return stocked

    # Groups

    async def _encrypted(self, principal: Principal, app_id: str, conversation_id: str
                         ) -> tuple[Access, MlsGroup]:
        access = await self._conversations.access(principal, app_id, conversation_id)
        access.require_member()
        state = access.conversation.mls
        if state is None:
            raise not_encrypted(access)
        return access, state

    async def _member_devices(self, app_id: str, conversation_id: str, stock: bool = True
                              ) -> list[Device]:
        """The registered devices of the conversation's members (`stock`: with their
        KeyPackage counts)."""
        members = await self._conversation_store.member_ids(app_id, conversation_id)
        return await self._devices.list_devices(app_id, members, stock)

    async def claim(self, principal: Principal, app_id: str, conversation_id: str,
                    user_ids: Sequence[str], device_id: str = ""
                    ) -> tuple[list[Claimed], list[Device]]:
        """A KeyPackage of each device of these members not in the group (but the
        calling user's device `device_id`); and the devices that had none."""
        _, state = await self._encrypted(principal, app_id, conversation_id)
        members = set(await self._conversation_store.member_ids(app_id, conversation_id))
        for i, user_id in enumerate(user_ids):
            if user_id not in members:
                raise invalid_field(f"user_ids[{i}]", f"{user_id} is not a member of the"
                                    " conversation")
        caller = principal.user_id if isinstance(principal, User) else ""
        in_group = set(state.leaves)
        wanted = [d for d in await self._devices.list_devices(app_id, user_ids)
                  if d.key not in in_group and (d.user_id, d.device_id) != (caller, device_id)]
        claimed = await self._devices.claim(app_id, wanted, LOW_KEY_PACKAGES,
                                           self._clock.now())
        got = {c.device.key for c in claimed}
        return claimed, [d for d in wanted if d.key not in got]

    async def group(self, principal: Principal, app_id: str, conversation_id: str
                    ) -> GroupView:
        _, state = await self._encrypted(principal, app_id, conversation_id)
        devices = await self._member_devices(app_id, conversation_id)
        by_key = {d.key: d for d in devices}
        leaves = [(i, by_key.get(key), key not in by_key)
                  for i, key in state.occupied().items()]
        in_group = set(state.leaves)
        missing = [d for d in devices if d.key not in in_group]
        return GroupView(app_id, conversation_id, state, leaves, missing)

    async def welcomes(self, principal: Principal, app_id: str, user_id: str, device_id: str,
                       page_size: int, page_token: str) -> Page[Welcome]:
        await self.get_device(principal, app_id, user_id, device_id)
        return await time_id_page(
            page_size or 20, page_token, [device_name(app_id, user_id, device_id)],
            lambda limit, after: self._welcomes.list_welcomes(app_id, user_id, device_id,
                                                              limit, after),
            lambda w: (to_ms(w.create_time), w.position))

    # Sending

    async def check_send(self, access: Access, sender_id: str, send: MlsSend) -> MlsDraft:
        """What a member's device sends into the conversation's group, checked against
        the delivery service's rules (services/e2ee/delivery.py). Leaves whose device is
        gone or whose user left are pending removal. (A member leaving while a message
        is checked may miss this check; the server then delivers it no more to them.)"""
        state = access.conversation.mls
        assert state is not None
        framed = delivery.parse(send.data)
        group_id = conversation_name(access.app_id, access.conversation_id).encode()
        devices = await self._member_devices(access.app_id, access.conversation_id,
                                             stock=False)
        registered = {d.key for d in devices}
        pending = [i for i, key in state.occupied().items() if key not in registered]
        if framed.content_type != mls.COMMIT:
            if send.welcome:
                raise invalid_field(delivery.WELCOME_FIELD, "only a commit has a Welcome")
            checked = delivery.check_application(group_id, state, framed, pending)
            return MlsDraft(MlsContent(APPLICATION, checked.epoch, send.data,
                                        send.device_id))
        if not send.device_id:
            raise invalid_field("message.mls.device_id", "a commit names its device")
        sender = next((d for d in devices if d.user_id == sender_id
                       and d.device_id == send.device_id), None)
        if sender is None:
            raise not_found("caas.dev/Device",
                            device_name(access.app_id, sender_id, send.device_id))
        checked = delivery.check_commit(group_id, state, framed, send.welcome, sender,
                                        {d.identity: d for d in devices}, pending)
        return MlsDraft(MlsContent(COMMIT, checked.epoch, send.data, send.device_id),
                        checked.state,
                        send.welcome, checked.welcomed)


def _check_key_package(device: Device, data: bytes, field: str) -> mls.KeyPackage:
    def bad(description: str) -> InvalidArgument:
        return invalid_field(field, description, "KEY_PACKAGE_INVALID")

    try:
        package = mls.parse_key_package(data)
    except mls.MlsError as exc:
        raise bad(str(exc)) from None
    if package.cipher_suite != device.cipher_suite:
        raise bad(f"cipher suite {package.cipher_suite}, the device's is"
                  f" {device.cipher_suite}")
    if package.leaf.identity != device.identity:
        raise bad("its credential's identity must be the device's name")
    if package.leaf.signature_key != device.signature_key:
        raise bad("its signature key is not the device's")
    if not package.verify():
        raise bad("a signature does not verify")
    return package
