"""caas.apps.v1.AppsService: protobuf in, domain calls, protobuf out — nothing else."""

from __future__ import annotations

from datetime import datetime

from caas.apps.v1 import apps_service_pb2 as pb
from caas.apps.v1 import resources_pb2 as res
from google.longrunning import operations_pb2

from services.apps.actions import AppsActions
from services.apps.models import KEEP, NO_GUESTS, ApiKey, App, GuestAccess
from services.compliance.erasure import UserDataActions
from services.compliance.offboarding import AppDeleter
from services.compliance.operations import DELETE_APP
from services.compliance.servicer import operation_proto
from services.core.clock import Clock
from services.core.names import api_key_name, app_name, parse_api_key, parse_app
from services.core.protoconv import duration, duration_or_none, timestamp, timestamp_or_none
from services.gateway.gateway import Call
from services.media.delivery import MediaUrls


def guest_access_proto(guests: GuestAccess) -> res.GuestAccess | None:
    if guests == NO_GUESTS:
        return None
    return res.GuestAccess(enabled=guests.enabled,
                           session_lifetime=duration(guests.session_lifetime))


def guest_access_of(app: res.App) -> GuestAccess:
    """The app's guest access as the request carries it (absent: no guests)."""
    if not app.HasField("guest_access"):
        return NO_GUESTS
    return GuestAccess(app.guest_access.enabled,
                       duration_or_none(app.guest_access, "session_lifetime"))


def app_proto(app: App) -> res.App:
    return res.App(name=app_name(app.app_id), display_name=app.display_name, plan=app.plan,
                   create_time=timestamp(app.create_time), update_time=timestamp(app.update_time),
                   media_retention=duration(app.media_retention),
                   delete_time=timestamp(app.delete_time), purge_time=timestamp(app.purge_time),
                   organization=(f"organizations/{app.organization_id}"
                                 if app.organization_id else ""),
                   guest_access=guest_access_proto(app.guest_access))


def api_key_proto(key: ApiKey, now: datetime) -> res.ApiKey:
    if not key.active:
        state = res.ApiKey.STATE_REVOKED
    elif key.expired(now):
        state = res.ApiKey.STATE_EXPIRED
    else:
        state = res.ApiKey.STATE_ACTIVE
    return res.ApiKey(
        name=api_key_name(key.app_id, key.key_id), display_name=key.display_name,
        secret_hint=key.secret_hint, state=state, create_time=timestamp(key.create_time),
        revoke_time=timestamp(key.revoke_time), scopes=sorted(key.scopes),
        expire_time=timestamp(key.expire_time))


class AppsServicer:
    def __init__(self, actions: AppsActions, clock: Clock, operations: UserDataActions,
                 urls: MediaUrls) -> None:
        self._actions = actions
        self._clock = clock
        self._operations = operations
        self._urls = urls

    async def DeleteApp(self, request: pb.DeleteAppRequest, call: Call
                        ) -> operations_pb2.Operation:
        app_id = parse_app(request.name)
        await self._actions.do_delete_app(call.principal, app_id)
        started = await self._operations.start(DELETE_APP, AppDeleter.steps[0], app_id, app_id)
        return operation_proto(started, self._urls)

    async def UndeleteApp(self, request: pb.UndeleteAppRequest, call: Call
                          ) -> pb.UndeleteAppResponse:
        app = await self._actions.do_undelete_app(call.principal, parse_app(request.name))
        return pb.UndeleteAppResponse(app=app_proto(app))

    async def CreateApp(self, request: pb.CreateAppRequest, call: Call) -> pb.CreateAppResponse:
        app, first = await self._actions.do_create_app(
            call.principal, request.app_id, request.app.display_name, request.app.plan,
            duration_or_none(request.app, "media_retention"), request.app.organization,
            guest_access_of(request.app))
        return pb.CreateAppResponse(app=app_proto(app),
                                    api_key=api_key_proto(first.key, app.create_time),
                                    api_key_secret=first.secret)

    async def GetApp(self, request: pb.GetAppRequest, call: Call) -> pb.GetAppResponse:
        app = await self._actions.get_app(call.principal, parse_app(request.name))
        return pb.GetAppResponse(app=app_proto(app))

    async def ListApps(self, request: pb.ListAppsRequest, call: Call) -> pb.ListAppsResponse:
        page = await self._actions.list_apps(call.principal, request.page_size,
                                             request.page_token, request.organization)
        return pb.ListAppsResponse(apps=[app_proto(a) for a in page.items],
                                   next_page_token=page.next_page_token)

    async def UpdateApp(self, request: pb.UpdateAppRequest, call: Call) -> pb.UpdateAppResponse:
        paths = set(request.update_mask.paths)
        app = await self._actions.do_update_app(
            call.principal, parse_app(request.app.name, "app.name"),
            display_name=request.app.display_name if "display_name" in paths else None,
            plan=request.app.plan if "plan" in paths else None,
            # Named in the mask but unset: back to the server's default (AIP-134).
            media_retention=(duration_or_none(request.app, "media_retention")
                             if "media_retention" in paths else KEEP),
            guest_access=guest_access_of(request.app) if "guest_access" in paths else None)
        return pb.UpdateAppResponse(app=app_proto(app))

    async def CreateApiKey(self, request: pb.CreateApiKeyRequest, call: Call
                           ) -> pb.CreateApiKeyResponse:
        api_key = request.api_key
        new = await self._actions.do_create_api_key(
            call.principal, parse_app(request.parent, "parent"), api_key.display_name,
            frozenset(api_key.scopes),
            timestamp_or_none(api_key, "expire_time"))
        return pb.CreateApiKeyResponse(api_key=api_key_proto(new.key, self._clock.now()),
                                       secret=new.secret)

    async def ListApiKeys(self, request: pb.ListApiKeysRequest, call: Call
                          ) -> pb.ListApiKeysResponse:
        page = await self._actions.list_api_keys(
            call.principal, parse_app(request.parent, "parent"), request.page_size,
            request.page_token)
        now = self._clock.now()
        return pb.ListApiKeysResponse(api_keys=[api_key_proto(k, now) for k in page.items],
                                      next_page_token=page.next_page_token)

    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, call: Call
                           ) -> pb.RevokeApiKeyResponse:
        app_id, key_id = parse_api_key(request.name)
        key = await self._actions.do_revoke_api_key(call.principal, app_id, key_id)
        return pb.RevokeApiKeyResponse(api_key=api_key_proto(key, self._clock.now()))
