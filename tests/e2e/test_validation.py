"""Every limit the contract states is enforced by the running server, one case per limit.

`test_every_contract_rule_has_a_case` keeps the table honest: a new rule in proto/
without a case here fails the suite.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from unittest.mock import Mock

import grpc
import pytest
from buf.validate import validate_pb2
from caas.accounts.v1 import accounts_service_pb2
from caas.analytics.v1 import analytics_service_pb2
from caas.apps.v1 import apps_service_pb2 as apps_pb
from caas.apps.v1 import resources_pb2 as apps_res
from caas.audit.v1 import audit_service_pb2
from caas.auth.v1 import auth_service_pb2 as auth_pb
from caas.auth.v1 import resources_pb2 as auth_res
from caas.billing.v1 import billing_service_pb2
from caas.calls.v1 import calls_service_pb2
from caas.compliance.v1 import compliance_service_pb2
from caas.conversations.v1 import conversations_service_pb2
from caas.e2ee.v1 import e2ee_service_pb2
from caas.media.v1 import media_service_pb2
from caas.messages.v1 import messages_service_pb2
from caas.messages.v1 import resources_pb2 as msg_res
from caas.moderation.v1 import moderation_service_pb2
from caas.organizations.v1 import organizations_service_pb2
from caas.push.v1 import push_service_pb2
from caas.realtime.v1 import realtime_service_pb2 as rt_pb
from caas.search.v1 import search_service_pb2
from caas.type.v1 import access_pb2
from caas.users.v1 import users_service_pb2
from caas.webhooks.v1 import webhooks_service_pb2
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from services.server import services as server_services
from tests.conftest import AppHandle, create_app, expect_error, sign_in, unique_id
from tests.e2e.validation_cases_accounts import CASES as ACCOUNT_CASES
from tests.e2e.validation_cases_analytics import CASES as ANALYTICS_CASES
from tests.e2e.validation_cases_audit import CASES as AUDIT_CASES
from tests.e2e.validation_cases_billing import CASES as BILLING_CASES
from tests.e2e.validation_cases_calls import CASES as CALL_CASES
from tests.e2e.validation_cases_chat import CASES as CHAT_CASES
from tests.e2e.validation_cases_compliance import CASES as COMPLIANCE_CASES
from tests.e2e.validation_cases_e2ee import CASES as E2EE_CASES
from tests.e2e.validation_cases_media import CASES as MEDIA_CASES
from tests.e2e.validation_cases_moderation import CASES as MODERATION_CASES
from tests.e2e.validation_cases_push import CASES as PUSH_CASES
from tests.e2e.validation_cases_search import CASES as SEARCH_CASES
from tests.e2e.validation_cases_webhooks import CASES as WEBHOOK_CASES
from tests.support.client import Client, bearer
from tests.support.mail import SmtpServer
from tests.support.portal import sign_up
from tests.support.servers import CaasServer

SERVICES = (apps_pb.DESCRIPTOR.services_by_name["AppsService"],
            auth_pb.DESCRIPTOR.services_by_name["AuthService"],
            users_service_pb2.DESCRIPTOR.services_by_name["UsersService"],
            conversations_service_pb2.DESCRIPTOR.services_by_name["ConversationsService"],
            messages_service_pb2.DESCRIPTOR.services_by_name["MessagesService"],
            rt_pb.DESCRIPTOR.services_by_name["RealtimeService"],
            webhooks_service_pb2.DESCRIPTOR.services_by_name["WebhooksService"],
            media_service_pb2.DESCRIPTOR.services_by_name["MediaService"],
            search_service_pb2.DESCRIPTOR.services_by_name["SearchService"],
            moderation_service_pb2.DESCRIPTOR.services_by_name["ModerationService"],
            audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"],
            compliance_service_pb2.DESCRIPTOR.services_by_name["ComplianceService"],
            accounts_service_pb2.DESCRIPTOR.services_by_name["AccountsService"],
            organizations_service_pb2.DESCRIPTOR.services_by_name["OrganizationsService"],
            analytics_service_pb2.DESCRIPTOR.services_by_name["AnalyticsService"],
            billing_service_pb2.DESCRIPTOR.services_by_name["BillingService"],
            e2ee_service_pb2.DESCRIPTOR.services_by_name["E2eeService"],
            calls_service_pb2.DESCRIPTOR.services_by_name["CallsService"],
            push_service_pb2.DESCRIPTOR.services_by_name["PushService"])
APP = "apps/some-app"
USER = f"{APP}/users/u1"
SESSION = f"{USER}/sessions/aaaaaaaaaaaaaaaa"
LONG = "x" * 101

# (case id, RPC, request breaking one rule, expected {field path: rule id})
CASES: list[tuple[str, str, Message, dict[str, str]]] = [
    ("DeleteApp name pattern", "DeleteApp", apps_pb.DeleteAppRequest(name="apps/X"),
     {"name": "string.pattern"}),
    ("UndeleteApp name pattern", "UndeleteApp", apps_pb.UndeleteAppRequest(name="apps/X"),
     {"name": "string.pattern"}),
    ("app_id pattern", "CreateApp",
     apps_pb.CreateAppRequest(app_id="Bad_Id", app=apps_res.App(display_name="x")),
     {"app_id": "string.pattern"}),
    ("app_id too long", "CreateApp",
     apps_pb.CreateAppRequest(app_id="a" * 41, app=apps_res.App(display_name="x")),
     {"app_id": "string.pattern"}),
    ("app required", "CreateApp", apps_pb.CreateAppRequest(app_id="abc"), {"app": "required"}),
    ("display_name required on create", "CreateApp",
     apps_pb.CreateAppRequest(app_id="abc", app=apps_res.App()),
     {"app.display_name": "required"}),
    ("display_name at most 100", "CreateApp",
     apps_pb.CreateAppRequest(app_id="abc", app=apps_res.App(display_name=LONG)),
     {"app.display_name": "string.max_len"}),
    ("plan at most 40", "CreateApp",
     apps_pb.CreateAppRequest(app_id="abc", app=apps_res.App(display_name="x", plan="p" * 41)),
     {"app.plan": "string.max_len"}),
    ("media_retention not negative", "CreateApp",
     apps_pb.CreateAppRequest(app_id="abc", app=apps_res.App(
         display_name="x", media_retention=duration_pb2.Duration(seconds=-1))),
     {"app.media_retention": "duration.gte_lte"}),
    ("media_retention at most 3650 days", "CreateApp",
     apps_pb.CreateAppRequest(app_id="abc", app=apps_res.App(
         display_name="x", media_retention=duration_pb2.Duration(seconds=315_360_001))),
     {"app.media_retention": "duration.gte_lte"}),
    ("app guest session_lifetime at least 5 min", "CreateApp",
     apps_pb.CreateAppRequest(app_id="abc", app=apps_res.App(
         display_name="x", guest_access=apps_res.GuestAccess(
             enabled=True, session_lifetime=duration_pb2.Duration(seconds=299)))),
     {"app.guest_access.session_lifetime": "duration.gte_lte"}),
    ("UpdateApp guest session_lifetime at most 30 days", "UpdateApp",
     apps_pb.UpdateAppRequest(
         app=apps_res.App(name=APP, guest_access=apps_res.GuestAccess(
             session_lifetime=duration_pb2.Duration(seconds=30 * 86400 + 1))),
         update_mask=field_mask_pb2.FieldMask(paths=["guest_access"])),
     {"app.guest_access.session_lifetime": "duration.gte_lte"}),
    ("app organization pattern", "CreateApp",
     apps_pb.CreateAppRequest(app_id="abc", app=apps_res.App(
         display_name="x", organization="organizations/X")),
     {"app.organization": "string.pattern"}),
    ("UpdateApp organization pattern", "UpdateApp",
     apps_pb.UpdateAppRequest(app=apps_res.App(name=APP, organization="orgs/x"),
                              update_mask=field_mask_pb2.FieldMask(paths=["plan"])),
     {"app.organization": "string.pattern"}),
    ("ListApps organization pattern", "ListApps",
     apps_pb.ListAppsRequest(organization="organizations/"), {"organization": "string.pattern"}),
    ("GetApp name pattern", "GetApp", apps_pb.GetAppRequest(name="apps/"),
     {"name": "string.pattern"}),
    ("ListApps page_size at most 200", "ListApps", apps_pb.ListAppsRequest(page_size=201),
     {"page_size": "int32.gte_lte"}),
    ("ListApps page_size not negative", "ListApps", apps_pb.ListAppsRequest(page_size=-1),
     {"page_size": "int32.gte_lte"}),
    ("ListApps page_token at most 512", "ListApps", apps_pb.ListAppsRequest(page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("UpdateApp app required", "UpdateApp",
     apps_pb.UpdateAppRequest(update_mask=field_mask_pb2.FieldMask(paths=["plan"])),
     {"app": "required"}),
    ("UpdateApp app name format", "UpdateApp",
     apps_pb.UpdateAppRequest(app=apps_res.App(name="nope"),
                              update_mask=field_mask_pb2.FieldMask(paths=["plan"])),
     {"app": "app.name_format"}),
    ("UpdateApp display_name at most 100", "UpdateApp",
     apps_pb.UpdateAppRequest(app=apps_res.App(name=APP, display_name=LONG),
                              update_mask=field_mask_pb2.FieldMask(paths=["display_name"])),
     {"app.display_name": "string.max_len"}),
    ("UpdateApp plan at most 40", "UpdateApp",
     apps_pb.UpdateAppRequest(app=apps_res.App(name=APP, plan="p" * 41),
                              update_mask=field_mask_pb2.FieldMask(paths=["plan"])),
     {"app.plan": "string.max_len"}),
    ("UpdateApp media_retention not negative", "UpdateApp",
     apps_pb.UpdateAppRequest(
         app=apps_res.App(name=APP, media_retention=duration_pb2.Duration(nanos=-1)),
         update_mask=field_mask_pb2.FieldMask(paths=["media_retention"])),
     {"app.media_retention": "duration.gte_lte"}),
    ("UpdateApp media_retention at most 3650 days", "UpdateApp",
     apps_pb.UpdateAppRequest(
         app=apps_res.App(name=APP, media_retention=duration_pb2.Duration(seconds=315_360_001)),
         update_mask=field_mask_pb2.FieldMask(paths=["media_retention"])),
     {"app.media_retention": "duration.gte_lte"}),
    ("UpdateApp display_name not emptied", "UpdateApp",
     apps_pb.UpdateAppRequest(app=apps_res.App(name=APP, display_name=""),
                              update_mask=field_mask_pb2.FieldMask(paths=["display_name"])),
     {"app.display_name": "required"}),
    ("UpdateApp mask required", "UpdateApp",
     apps_pb.UpdateAppRequest(app=apps_res.App(name=APP)), {"update_mask": "required"}),
    ("UpdateApp mask not empty", "UpdateApp",
     apps_pb.UpdateAppRequest(app=apps_res.App(name=APP),
                              update_mask=field_mask_pb2.FieldMask()),
     {"update_mask": "update_mask.not_empty"}),
    ("UpdateApp mask known paths", "UpdateApp",
     apps_pb.UpdateAppRequest(app=apps_res.App(name=APP),
                              update_mask=field_mask_pb2.FieldMask(paths=["create_time"])),
     {"update_mask": "field_mask.in"}),
    ("CreateApiKey parent pattern", "CreateApiKey",
     apps_pb.CreateApiKeyRequest(parent="apps/X"), {"parent": "string.pattern"}),
    ("CreateApiKey display_name at most 100", "CreateApiKey",
     apps_pb.CreateApiKeyRequest(parent=APP, api_key=apps_res.ApiKey(display_name=LONG)),
     {"api_key.display_name": "string.max_len"}),
    ("CreateApiKey scopes from the catalogue", "CreateApiKey",
     apps_pb.CreateApiKeyRequest(parent=APP, api_key=apps_res.ApiKey(
         scopes=["users:read", "messages:delete"])), {"api_key.scopes[1]": "string.in"}),
    ("CreateApiKey scopes unique", "CreateApiKey",
     apps_pb.CreateApiKeyRequest(parent=APP, api_key=apps_res.ApiKey(
         scopes=["users:read", "users:read"])), {"api_key.scopes": "repeated.unique"}),
    ("CreateApiKey expire_time in the future", "CreateApiKey",
     apps_pb.CreateApiKeyRequest(parent=APP, api_key=apps_res.ApiKey(
         expire_time=timestamp_pb2.Timestamp(seconds=int(time.time()) - 60))),
     {"api_key.expire_time": "timestamp.gt_now"}),
    ("CreateApiKey expire_time within 10 years", "CreateApiKey",
     apps_pb.CreateApiKeyRequest(parent=APP, api_key=apps_res.ApiKey(
         expire_time=timestamp_pb2.Timestamp(seconds=int(time.time()) + 3700 * 86400))),
     {"api_key.expire_time": "timestamp.within"}),
    ("ListApiKeys parent pattern", "ListApiKeys",
     apps_pb.ListApiKeysRequest(parent="apps"), {"parent": "string.pattern"}),
    ("ListApiKeys page_size", "ListApiKeys",
     apps_pb.ListApiKeysRequest(parent=APP, page_size=1000), {"page_size": "int32.gte_lte"}),
    ("ListApiKeys page_token", "ListApiKeys",
     apps_pb.ListApiKeysRequest(parent=APP, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("RevokeApiKey name pattern", "RevokeApiKey",
     apps_pb.RevokeApiKeyRequest(name=f"{APP}/apiKeys/UPPER"), {"name": "string.pattern"}),
    ("CreateSession user id pattern", "CreateSession",
     auth_pb.CreateSessionRequest(parent=f"{APP}/users/-starts-with-dash"),
     {"parent": "string.pattern"}),
    ("CreateSession user id at most 128", "CreateSession",
     auth_pb.CreateSessionRequest(parent=f"{APP}/users/{'u' * 129}"),
     {"parent": "string.pattern"}),
    ("CreateSession device_name at most 100", "CreateSession",
     auth_pb.CreateSessionRequest(parent=USER, session=auth_res.Session(device_name=LONG)),
     {"session.device_name": "string.max_len"}),
    ("CreateSession access_token_ttl at least 1 s", "CreateSession",
     auth_pb.CreateSessionRequest(parent=USER,
                                  access_token_ttl=duration_pb2.Duration(nanos=500_000_000)),
     {"access_token_ttl": "duration.gte_lte"}),
    ("CreateSession access_token_ttl at most 1 h", "CreateSession",
     auth_pb.CreateSessionRequest(parent=USER,
                                  access_token_ttl=duration_pb2.Duration(seconds=3601)),
     {"access_token_ttl": "duration.gte_lte"}),
    ("CreateGuestSession parent required", "CreateGuestSession",
     auth_pb.CreateGuestSessionRequest(display_name="Visitor"), {"parent": "required"}),
    ("CreateGuestSession parent pattern", "CreateGuestSession",
     auth_pb.CreateGuestSessionRequest(parent=USER), {"parent": "string.pattern"}),
    ("CreateGuestSession display_name at most 100", "CreateGuestSession",
     auth_pb.CreateGuestSessionRequest(parent=APP, display_name=LONG),
     {"display_name": "string.max_len"}),
    ("CreateGuestSession device_name at most 100", "CreateGuestSession",
     auth_pb.CreateGuestSessionRequest(parent=APP, device_name=LONG),
     {"device_name": "string.max_len"}),
    ("RefreshSession token required", "RefreshSession", auth_pb.RefreshSessionRequest(),
     {"refresh_token": "required"}),
    ("RefreshSession token at most 512", "RefreshSession",
     auth_pb.RefreshSessionRequest(refresh_token="r" * 513), {"refresh_token": "string.max_len"}),
    ("GetSession name pattern", "GetSession",
     auth_pb.GetSessionRequest(name=f"{USER}/sessions/short"), {"name": "string.pattern"}),
    ("ListSessions parent pattern", "ListSessions",
     auth_pb.ListSessionsRequest(parent=f"{APP}/users/"), {"parent": "string.pattern"}),
    ("ListSessions page_size", "ListSessions",
     auth_pb.ListSessionsRequest(parent=USER, page_size=201), {"page_size": "int32.gte_lte"}),
    ("ListSessions page_token", "ListSessions",
     auth_pb.ListSessionsRequest(parent=USER, page_token="t" * 513),
     {"page_token": "string.max_len"}),
    ("RevokeSession name pattern", "RevokeSession",
     auth_pb.RevokeSessionRequest(name=SESSION + "x"), {"name": "string.pattern"}),
    ("RotateSigningKey parent pattern", "RotateSigningKey",
     auth_pb.RotateSigningKeyRequest(parent=USER), {"parent": "string.pattern"}),
    ("ListSigningKeys parent pattern", "ListSigningKeys",
     auth_pb.ListSigningKeysRequest(parent="app/x"), {"parent": "string.pattern"}),
]


CASES += CHAT_CASES
CASES += WEBHOOK_CASES
CASES += MEDIA_CASES
CASES += SEARCH_CASES
CASES += MODERATION_CASES
CASES += AUDIT_CASES
CASES += ACCOUNT_CASES
CASES += COMPLIANCE_CASES
CASES += ANALYTICS_CASES
CASES += BILLING_CASES
CASES += E2EE_CASES
CASES += CALL_CASES
CASES += PUSH_CASES
CASES += [
    ("subscribe name", "Subscribe", rt_pb.SubscribeRequest(name="users/u1"),
     {"name": "string.pattern"}),
    ("subscribe token too long", "Subscribe",
     rt_pb.SubscribeRequest(name=USER, resume_token="t" * 257),
     {"resume_token": "string.max_len"}),
    ("subscribe device", "Subscribe", rt_pb.SubscribeRequest(name=USER, device_id="a b"),
     {"device_id": "string.pattern"}),
    ("typing conversation", "SendTyping", rt_pb.SendTypingRequest(conversation=USER),
     {"conversation": "string.pattern"}),
    ("typing thread root", "SendTyping",
     rt_pb.SendTypingRequest(conversation=f"{APP}/conversations/c1", thread_root_sequence=-1),
     {"thread_root_sequence": "int64.gte"}),
    ("presence name", "SetPresence",
     rt_pb.SetPresenceRequest(name=APP, status=rt_pb.Presence.STATUS_AWAY),
     {"name": "string.pattern"}),
    ("presence status", "SetPresence",
     rt_pb.SetPresenceRequest(name=USER, status=rt_pb.Presence.STATUS_OFFLINE),
     {"status": "enum.in"}),
    ("presences parent", "BatchGetPresences",
     rt_pb.BatchGetPresencesRequest(parent=USER, names=[f"{USER}/presence"]),
     {"parent": "string.pattern"}),
    ("presences none", "BatchGetPresences", rt_pb.BatchGetPresencesRequest(parent=APP),
     {"names": "required"}),
    ("presences too many", "BatchGetPresences", rt_pb.BatchGetPresencesRequest(
        parent=APP, names=[f"{APP}/users/u{n}/presence" for n in range(101)]),
     {"names": "repeated.max_items"}),
    ("presences twice", "BatchGetPresences", rt_pb.BatchGetPresencesRequest(
        parent=APP, names=[f"{USER}/presence", f"{USER}/presence"]),
     {"names": "repeated.unique"}),
    ("presences name", "BatchGetPresences",
     rt_pb.BatchGetPresencesRequest(parent=APP, names=[USER]),
     {"names[0]": "string.pattern"}),
    ("presence device", "SetPresence",
     rt_pb.SetPresenceRequest(name=USER, status=rt_pb.Presence.STATUS_AWAY, device_id="a b"),
     {"device_id": "string.pattern"}),
]


def _method(rpc: str) -> pb_descriptor.MethodDescriptor:
    for service in SERVICES:
        if rpc in service.methods_by_name:
            return service.methods_by_name[rpc]
    raise KeyError(rpc)


async def _call(client: Client, rpc: str, request: Message,
                metadata: tuple[tuple[str, str], ...]) -> object:
    """The response (a stream's first item) of calling `rpc` with `request`."""
    method = _method(rpc)
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.server_streaming:
        stream = client.channel.unary_stream(
            path, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda b: b)(request, metadata=metadata)
        async for item in stream:
            return item
        return None
    stub = client.channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                      response_deserializer=lambda b: b)
    return await stub(request, metadata=metadata)


@pytest.fixture(scope="module")
async def developer_token(client: Client, smtp: SmtpServer) -> str:
    """A developer's portal session, for the RPCs only developers may call."""
    developer = await sign_up(client, smtp.inbox, f"{unique_id('validator')}@example.com")
    return developer.token


@pytest.fixture(scope="module")
async def user_token(client: Client, server: CaasServer) -> str:
    """A user's access token, for the RPCs only users may call."""
    app = await create_app(client, server.operator_token)
    return (await sign_in(client, app, "validator")).credentials.access_token


@pytest.mark.parametrize(("rpc", "request_message", "expected"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
async def test_contract_limit_is_enforced(client: Client, server: CaasServer, user_token: str,
                                          developer_token: str, rpc: str,
                                          request_message: Message,
                                          expected: dict[str, str]) -> None:
    allowed = _method(rpc).GetOptions().Extensions[access_pb2.access].allow
    metadata: tuple[tuple[str, str], ...] = ()
    if access_pb2.PRINCIPAL_OPERATOR in allowed:
        metadata = bearer(server.operator_token)
    elif access_pb2.PRINCIPAL_USER in allowed:
        metadata = bearer(user_token)
    elif access_pb2.PRINCIPAL_DEVELOPER in allowed:
        metadata = bearer(developer_token)
    got = await expect_error(_call(client, rpc, request_message, metadata),
                             grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    assert got.field_violations == expected


def _rule_fields(message: pb_descriptor.Descriptor, prefix: str = "",
                 seen: frozenset[str] = frozenset()) -> Iterator[str]:
    """Paths of the fields reachable from `message` that carry buf.validate rules."""
    for field in message.fields:
        path = prefix + field.name
        if field.GetOptions().HasExtension(validate_pb2.field):
            yield path
        nested = field.message_type
        if (nested is not None and not nested.full_name.startswith("google.protobuf.")
                and nested.full_name not in seen):
            yield from _rule_fields(nested, path + ".", seen | {nested.full_name})


def _message_rules(message: pb_descriptor.Descriptor) -> Iterator[str]:
    """Ids of the message-level (CEL) rules of `message`; their violations name no field."""
    for rule in message.GetOptions().Extensions[validate_pb2.message].cel:
        yield rule.id


def test_the_table_covers_every_served_service() -> None:
    served = {descriptor.full_name for descriptor, _ in server_services(Mock())}
    assert served == {service.full_name for service in SERVICES}


def test_every_contract_rule_has_a_case() -> None:
    covered = {(rpc, re.sub(r"\[[^]]*\]", "", path))
               for _, rpc, _, expected in CASES for path in expected}
    declared = {(method.name, path) for service in SERVICES for method in service.methods
                for path in _rule_fields(method.input_type)}
    assert declared - covered == set(), "field rules without a validation case"
    covered_ids = {(rpc, rule) for _, rpc, _, expected in CASES for rule in expected.values()}
    message_rules = {(method.name, rule) for service in SERVICES for method in service.methods
                     for rule in _message_rules(method.input_type)}
    assert message_rules - covered_ids == set(), "message rules without a validation case"


async def test_a_missing_required_field_says_it_is_required(
        client: Client, app: AppHandle) -> None:
    # No pattern or length talk for a field that is simply absent (AIP-203).
    session = await sign_in(client, app, "req")
    got = await expect_error(client.messages.CreateMessage(
        messages_service_pb2.CreateMessageRequest(
            parent=f"{app.name}/conversations/c1",
            message=msg_res.Message(text="hi")),
        metadata=bearer(session.credentials.access_token)),
        grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_INVALID")
    assert got.message == "invalid request: request_id: is required"
    assert got.field_violations == {"request_id": "required"}


async def test_malformed_request_bytes_are_invalid_argument(
        client: Client, server: CaasServer) -> None:
    stub = client.channel.unary_unary("/caas.apps.v1.AppsService/GetApp",
                                      request_serializer=lambda b: b,
                                      response_deserializer=lambda b: b)
    got = await expect_error(stub(b"\x0a\xff\xff\xff", metadata=bearer(server.operator_token)),
                             grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_MALFORMED")
    assert "does not parse" in got.message


async def test_oversize_request_is_refused_before_the_service(
        client: Client, app: AppHandle) -> None:
    huge = apps_pb.CreateApiKeyRequest(parent=app.name,
                                       api_key=apps_res.ApiKey(display_name="x" * 2_000_000))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.apps.CreateApiKey(huge, metadata=app.auth)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    keys = await client.apps.ListApiKeys(apps_pb.ListApiKeysRequest(parent=app.name),
                                         metadata=app.auth)
    assert len(keys.api_keys) == 1  # nothing was written


async def test_unknown_and_foreign_page_tokens(client: Client, app: AppHandle) -> None:
    for _ in range(3):
        await sign_in(client, app, "pat")
    first = await client.auth.ListSessions(
        auth_pb.ListSessionsRequest(parent=f"{app.name}/users/pat", page_size=2),
        metadata=app.auth)
    assert first.next_page_token
    await expect_error(client.auth.ListSessions(
        auth_pb.ListSessionsRequest(parent=f"{app.name}/users/pat", page_token="garbage"),
        metadata=app.auth), grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")
    # A token is bound to its request: another user's listing refuses it.
    await expect_error(client.auth.ListSessions(
        auth_pb.ListSessionsRequest(parent=f"{app.name}/users/other",
                                    page_token=first.next_page_token),
        metadata=app.auth), grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")
