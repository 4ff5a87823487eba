"""Push channels of users' devices and the apps' Web Push keys (see
caas.push.v1.PushService)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from services.core.clock import Clock, to_ms
from services.core.errors import (
    CapacityExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Unavailable,
    invalid_field,
    limit_exceeded,
    not_found,
)
from services.core.events import DomainEvent
from services.core.pagination import Page, time_id_page
from services.core.principal import Principal, require_app, require_backend, require_user_or_app
from services.keys.keyring import Keyring
from services.push.apns import ApnsCredentials
from services.push.fcm import FcmCredentials
from services.push.models import (
    MAX_PUSH_DEVICES,
    WEB_PUSH,
    NotificationSettings,
    Push,
    PushConfig,
    PushDevice,
    Template,
    WebPushKey,
    b64url,
    channel_id,
    from_b64url,
    new_key_pair,
    push_device_name,
)
from services.push.quiet import zone
from services.push.store import PushStore
from services.users.actions import user_not_found
from services.users.store import UserStore

VAPID_CONTEXT = "push.vapid"  # what an app's data key seals its VAPID private keys for
APNS_CONTEXT = "push.apns"  # … its APNs signing key
FCM_CONTEXT = "push.fcm"  # … its FCM service account
ATTEMPTS = 8  # of a key change losing to concurrent ones


def key_unknown() -> FailedPrecondition:
    return FailedPrecondition(
        "WEB_PUSH_KEY_UNKNOWN", "the subscription was made with a key that is not the app's: "
        "subscribe again with the key of GetWebPushKey")


class PushActions:
    def __init__(self, store: PushStore, users: UserStore, keyring: Keyring,
                 clock: Clock) -> None:
        self._store = store
        self._users = users
        self._keyring = keyring
        self._clock = clock

    async def register(self, principal: Principal, app_id: str, user_id: str,
                       provider: str, address: str, keys: Mapping[str, str], device_id: str,
                       locale: str) -> tuple[PushDevice, bool]:
        require_user_or_app(principal, app_id, user_id)
        if await self._users.get_user(app_id, user_id) is None:
            raise user_not_found(app_id, user_id)
        if provider == WEB_PUSH:
            current = await self.web_push_key(principal, app_id)
            asked = from_b64url(keys.get("application_server_key", ""))
            if asked and not current.knows(asked):
                raise key_unknown()
            keys = {**keys, "application_server_key": b64url(asked or current.public_key)}
        device = PushDevice(app_id, user_id, channel_id(app_id, provider, address), provider,
                            address, dict(keys), device_id, locale,
                            update_time=self._clock.now())
        try:
            return await self._store.put_device(device, MAX_PUSH_DEVICES)
        except CapacityExceeded as full:
            raise limit_exceeded(full.limit, full.maximum) from None

    async def get(self, principal: Principal, app_id: str, user_id: str,
                  push_device_id: str) -> PushDevice:
        require_user_or_app(principal, app_id, user_id)
        device = await self._store.get_device(app_id, user_id, push_device_id)
        if device is None:
            raise not_found("caas.dev/PushDevice",
                            push_device_name(app_id, user_id, push_device_id))
        return device

    async def list(self, principal: Principal, app_id: str, user_id: str) -> list[PushDevice]:
        require_user_or_app(principal, app_id, user_id)
        return await self._store.list_devices(app_id, user_id)

    async def delete(self, principal: Principal, app_id: str, user_id: str,
                     push_device_id: str) -> None:
        require_user_or_app(principal, app_id, user_id)
        if not await self._store.delete_device(app_id, user_id, push_device_id):
            raise not_found("caas.dev/PushDevice",
                            push_device_name(app_id, user_id, push_device_id))

    async def _new_key(self, app_id: str, before: WebPushKey | None) -> WebPushKey:
        public, private = new_key_pair()
        sealed = await self._keyring.seal(app_id, VAPID_CONTEXT, private)
        return WebPushKey(app_id, public, sealed, self._clock.now(),
                          before.public_key if before is not None else b"",
                          before.sealed_private_key if before is not None else b"")

    async def web_push_key(self, principal: Principal, app_id: str) -> WebPushKey:
        """The app's key, made on first ask (concurrent first asks agree on one)."""
        require_app(principal, app_id)
        key = await self._store.get_key(app_id)
        if key is not None:
            return key
        return await self._store.put_key(await self._new_key(app_id, None), b"")

    async def rotate_web_push_key(self, principal: Principal, app_id: str) -> WebPushKey:
        require_backend(principal, app_id, "the Web Push key")
        for _ in range(ATTEMPTS):
            current = await self._store.get_key(app_id)
            new = await self._new_key(app_id, current)
            stored = await self._store.put_key(
                new, current.public_key if current is not None else b"")
            if stored.public_key == new.public_key:
                return stored
        raise Unavailable("UNAVAILABLE", "the key kept changing: try again")

    async def private_key(self, key: WebPushKey, public_key: bytes) -> bytes:
        """The private key (32-byte scalar) of `public_key`, one of `key`'s."""
        sealed = (key.sealed_private_key if public_key == key.public_key
                  else key.previous_sealed_private_key)
        return await self._keyring.open(key.app_id, VAPID_CONTEXT, sealed)

    async def on_event(self, event: DomainEvent) -> None:
        """A deleted user's push channels, settings and pushes go with them."""
        if event.type == "user.deleted":
            await self._store.forget_user(event.app_id, event.data["user"])

    async def stored_web_push_key(self, app_id: str) -> WebPushKey | None:
        """The app's key as stored (the sender's: no caller)."""
        return await self._store.get_key(app_id)

    async def get_config(self, principal: Principal, app_id: str) -> PushConfig:
        require_backend(principal, app_id, "the push settings")
        return await self._store.get_config(app_id) or PushConfig(app_id)

    async def update_config(self, principal: Principal, app_id: str, update: ConfigUpdate
                            ) -> PushConfig:
        """The settings with the fields of `update.paths` replaced; new credentials are
        checked and sealed (an empty key or file keeps the stored one)."""
        require_backend(principal, app_id, "the push settings")
        current = await self._store.get_config(app_id) or PushConfig(app_id)
        changed = replace(current, update_time=self._clock.now())
        paths = update.paths
        if "web_push_contact" in paths:
            changed = replace(changed, web_push_contact=update.web_push_contact)
        if "templates" in paths:
            changed = replace(changed, templates=tuple(update.templates))
        if "default_locale" in paths:
            changed = replace(changed, default_locale=update.default_locale)
        if "apns" in paths:
            changed = await self._with_apns(changed, current, update.apns)
        if "fcm" in paths:
            changed = await self._with_fcm(changed, current, update.fcm_account)
        await self._store.put_config(changed)
        return changed

    async def _with_apns(self, config: PushConfig, current: PushConfig,
                         apns: ApnsUpdate | None) -> PushConfig:
        if apns is None:
            return replace(config, apns={}, apns_sealed_key=b"")
        sealed = current.apns_sealed_key
        pem = apns.private_key
        if not pem:
            if not sealed:
                raise credentials_invalid("apns", "apns.private_key",
                                          "the .p8 key is required the first time")
            pem = (await self._keyring.open(config.app_id, APNS_CONTEXT, sealed)).decode()
        try:
            ApnsCredentials(apns.key_id, apns.team_id, apns.topic, pem)
        except ValueError as error:
            raise credentials_invalid("apns", "apns.private_key", str(error)) from None
        if apns.private_key:
            sealed = await self._keyring.seal(config.app_id, APNS_CONTEXT, pem.encode())
        return replace(config, apns={"key_id": apns.key_id, "team_id": apns.team_id,
                                     "topic": apns.topic}, apns_sealed_key=sealed)

    async def _with_fcm(self, config: PushConfig, current: PushConfig, account: str | None
                        ) -> PushConfig:
        if account is None:
            return replace(config, fcm={}, fcm_sealed_account=b"")
        if not account:
            if not current.fcm_sealed_account:
                raise credentials_invalid("fcm", "fcm.service_account_json",
                                          "the service account file is required the first "
                                          "time")
            return replace(config, fcm=current.fcm,
                           fcm_sealed_account=current.fcm_sealed_account)
        try:
            parsed = FcmCredentials.from_json(account)
        except ValueError as error:
            raise credentials_invalid("fcm", "fcm.service_account_json", str(error)) from None
        sealed = await self._keyring.seal(config.app_id, FCM_CONTEXT, account.encode())
        return replace(config, fcm={"project_id": parsed.project_id,
                                    "client_email": parsed.client_email},
                       fcm_sealed_account=sealed)

    async def opened_config(self, app_id: str) -> tuple[PushConfig | None,
                                                        ApnsCredentials | None,
                                                        FcmCredentials | None]:
        """The app's settings and its provider credentials opened (the sender's)."""
        config = await self._store.get_config(app_id)
        if config is None:
            return None, None, None
        apns = fcm = None
        if config.apns_sealed_key:
            pem = await self._keyring.open(app_id, APNS_CONTEXT, config.apns_sealed_key)
            apns = ApnsCredentials(config.apns["key_id"], config.apns["team_id"],
                                   config.apns["topic"], pem.decode())
        if config.fcm_sealed_account:
            fcm = FcmCredentials.from_json(
                (await self._keyring.open(app_id, FCM_CONTEXT, config.fcm_sealed_account)
                 ).decode())
        return config, apns, fcm

    async def get_settings(self, principal: Principal, app_id: str, user_id: str
                           ) -> NotificationSettings:
        require_user_or_app(principal, app_id, user_id)
        if await self._users.get_user(app_id, user_id) is None:
            raise user_not_found(app_id, user_id)
        found = await self._store.get_settings(app_id, [user_id])
        return found.get(user_id) or NotificationSettings(app_id, user_id)

    async def update_settings(self, principal: Principal, app_id: str, user_id: str,
                              paths: set[str], wanted: NotificationSettings
                              ) -> NotificationSettings:
        current = await self.get_settings(principal, app_id, user_id)
        changed = replace(current, update_time=self._clock.now())
        if "level" in paths:
            changed = replace(changed, level=wanted.level)
        if "do_not_disturb" in paths:
            dnd = wanted.do_not_disturb
            if dnd is not None:
                try:
                    zone(dnd.time_zone)
                except ValueError as error:
                    raise invalid_field("notification_settings.do_not_disturb.time_zone",
                                        str(error)) from None
            changed = replace(changed, do_not_disturb=dnd)
        if "conversations" in paths:
            changed = replace(changed, conversations=dict(wanted.conversations))
        await self._store.put_settings(changed)
        return changed

    async def list_deliveries(self, principal: Principal, app_id: str, user_id: str,
                              page_size: int, page_token: str) -> Page[Push]:
        require_user_or_app(principal, app_id, user_id)
        return await time_id_page(
            page_size, page_token, [app_id, user_id, "pushDeliveries"],
            lambda limit, after: self._store.list_pushes(app_id, user_id, limit, after),
            lambda push: (to_ms(push.create_time), push.push_id))


@dataclass(frozen=True, slots=True)
class ApnsUpdate:
    key_id: str
    team_id: str
    topic: str
    private_key: str  # "" keeps the stored one


@dataclass(frozen=True, slots=True)
class ConfigUpdate:
    """UpdatePushConfig's fields: those of `paths` apply (None: cleared)."""

    paths: frozenset[str]
    web_push_contact: str = ""
    apns: ApnsUpdate | None = None
    fcm_account: str | None = None  # the service-account JSON; "" keeps the stored one
    templates: tuple[Template, ...] = ()
    default_locale: str = ""


def credentials_invalid(provider: str, field_path: str, description: str) -> InvalidArgument:
    return InvalidArgument("PUSH_CREDENTIALS_INVALID", f"invalid {field_path}: {description}",
                           metadata={"provider": provider},
                           field_violations=(FieldViolation(field_path, description),))
