"""caas.e2ee.v1.E2eeService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from caas.e2ee.v1 import e2ee_service_pb2 as pb
from caas.e2ee.v1 import resources_pb2 as res

from services.conversations.access import conversation_name
from services.conversations.servicer import parse_conversation
from services.core.names import parse_device, parse_user, session_name
from services.core.protoconv import timestamp
from services.e2ee.actions import E2eeActions, GroupView
from services.e2ee.models import Device, fingerprint
from services.gateway.gateway import Call
from services.messages.models import Welcome


def device_proto(device: Device) -> res.Device:
    return res.Device(
        name=device.name, cipher_suite=device.cipher_suite,
        signature_key=device.signature_key, credential_identity=device.identity,
        fingerprint=fingerprint(device.signature_key),
        key_package_count=device.key_package_count, has_last_resort=device.has_last_resort,
        session=(session_name(device.app_id, device.user_id, device.session_id)
                 if device.session_id else ""),
        create_time=timestamp(device.create_time))


def group_proto(view: GroupView) -> res.Group:
    name = conversation_name(view.app_id, view.conversation_id)
    state = view.state
    return res.Group(
        name=f"{name}/group", group_id=name.encode(), epoch=state.epoch,
        cipher_suite=state.cipher_suite, commit_sequence=state.commit_sequence,
        leaves=[res.Leaf(index=index, device=None if device is None else device_proto(device),
                         removal_pending=pending)
                for index, device, pending in view.leaves],
        missing_devices=[device_proto(d) for d in view.missing])


def welcome_proto(welcome: Welcome) -> res.Welcome:
    return res.Welcome(conversation=conversation_name(welcome.app_id, welcome.conversation_id),
                       sequence=welcome.sequence, epoch=welcome.epoch, welcome=welcome.data,
                       create_time=timestamp(welcome.create_time))


class E2eeServicer:
    def __init__(self, actions: E2eeActions) -> None:
        self._actions = actions

    async def CreateDevice(self, request: pb.CreateDeviceRequest, call: Call
                           ) -> pb.CreateDeviceResponse:
        app_id, user_id = parse_user(request.parent)
        device = await self._actions.create_device(
            call.principal, app_id, user_id, request.device_id, request.device.cipher_suite,
            request.device.signature_key)
        return pb.CreateDeviceResponse(device=device_proto(device))

    async def GetDevice(self, request: pb.GetDeviceRequest, call: Call
                        ) -> pb.GetDeviceResponse:
        device = await self._actions.get_device(call.principal, *parse_device(request.name))
        return pb.GetDeviceResponse(device=device_proto(device))

    async def ListDevices(self, request: pb.ListDevicesRequest, call: Call
                          ) -> pb.ListDevicesResponse:
        devices = await self._actions.list_devices(call.principal, *parse_user(request.parent))
        return pb.ListDevicesResponse(devices=[device_proto(d) for d in devices])

    async def DeleteDevice(self, request: pb.DeleteDeviceRequest, call: Call
                           ) -> pb.DeleteDeviceResponse:
        await self._actions.delete_device(call.principal, *parse_device(request.name))
        return pb.DeleteDeviceResponse()

    async def UploadKeyPackages(self, request: pb.UploadKeyPackagesRequest, call: Call
                                ) -> pb.UploadKeyPackagesResponse:
        device = await self._actions.upload(
            call.principal, *parse_device(request.device, "device"),
            list(request.key_packages), request.last_resort)
        return pb.UploadKeyPackagesResponse(device=device_proto(device))

    async def ClaimKeyPackages(self, request: pb.ClaimKeyPackagesRequest, call: Call
                               ) -> pb.ClaimKeyPackagesResponse:
        app_id, conversation_id = parse_conversation(request.conversation, "conversation")
        claimed, unavailable = await self._actions.claim(
            call.principal, app_id, conversation_id, list(request.user_ids), request.device_id)
        return pb.ClaimKeyPackagesResponse(
            key_packages=[res.ClaimedKeyPackage(device=c.device.name,
                                                key_package=c.key_package,
                                                last_resort=c.last_resort) for c in claimed],
            unavailable_devices=[d.name for d in unavailable])

    async def GetGroup(self, request: pb.GetGroupRequest, call: Call) -> pb.GetGroupResponse:
        app_id, conversation_id = parse_conversation(request.name.removesuffix("/group"))
        view = await self._actions.group(call.principal, app_id, conversation_id)
        return pb.GetGroupResponse(group=group_proto(view))

    async def ListWelcomes(self, request: pb.ListWelcomesRequest, call: Call
                           ) -> pb.ListWelcomesResponse:
        page = await self._actions.welcomes(call.principal,
                                            *parse_device(request.parent, "parent"),
                                            request.page_size, request.page_token)
        return pb.ListWelcomesResponse(welcomes=[welcome_proto(w) for w in page.items],
                                       next_page_token=page.next_page_token)
