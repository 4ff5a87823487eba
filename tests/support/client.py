"""A test client: generated stubs over one channel, and readable error details."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from caas.accounts.v1 import accounts_service_pb2_grpc
from caas.analytics.v1 import analytics_service_pb2_grpc
from caas.apps.v1 import apps_service_pb2_grpc
from caas.audit.v1 import audit_service_pb2_grpc
from caas.auth.v1 import auth_service_pb2_grpc
from caas.billing.v1 import billing_service_pb2_grpc
from caas.calls.v1 import calls_service_pb2_grpc
from caas.compliance.v1 import compliance_service_pb2_grpc
from caas.conversations.v1 import conversations_service_pb2_grpc
from caas.e2ee.v1 import e2ee_service_pb2_grpc
from caas.media.v1 import media_service_pb2_grpc
from caas.messages.v1 import messages_service_pb2_grpc
from caas.moderation.v1 import moderation_service_pb2_grpc
from caas.organizations.v1 import organizations_service_pb2_grpc
from caas.push.v1 import push_service_pb2_grpc
from caas.realtime.v1 import realtime_service_pb2_grpc
from caas.search.v1 import search_service_pb2_grpc
from caas.users.v1 import users_service_pb2_grpc
from caas.webhooks.v1 import webhooks_service_pb2_grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2_grpc


def bearer(credential: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {credential}"),)


class Client:
    def __init__(self, address: str, options: list[tuple[str, int]] | None = None,
                 credentials: grpc.ChannelCredentials | None = None) -> None:
        self.channel = (grpc.aio.insecure_channel(address, options=options)
                        if credentials is None
                        else grpc.aio.secure_channel(address, credentials, options=options))
        self.apps = apps_service_pb2_grpc.AppsServiceStub(self.channel)
        self.auth = auth_service_pb2_grpc.AuthServiceStub(self.channel)
        self.users = users_service_pb2_grpc.UsersServiceStub(self.channel)
        self.conversations = conversations_service_pb2_grpc.ConversationsServiceStub(
            self.channel)
        self.messages = messages_service_pb2_grpc.MessagesServiceStub(self.channel)
        self.realtime = realtime_service_pb2_grpc.RealtimeServiceStub(self.channel)
        self.webhooks = webhooks_service_pb2_grpc.WebhooksServiceStub(self.channel)
        self.media = media_service_pb2_grpc.MediaServiceStub(self.channel)
        self.search = search_service_pb2_grpc.SearchServiceStub(self.channel)
        self.moderation = moderation_service_pb2_grpc.ModerationServiceStub(self.channel)
        self.audit = audit_service_pb2_grpc.AuditServiceStub(self.channel)
        self.compliance = compliance_service_pb2_grpc.ComplianceServiceStub(self.channel)
        self.accounts = accounts_service_pb2_grpc.AccountsServiceStub(self.channel)
        self.organizations = organizations_service_pb2_grpc.OrganizationsServiceStub(
            self.channel)
        self.analytics = analytics_service_pb2_grpc.AnalyticsServiceStub(self.channel)
        self.billing = billing_service_pb2_grpc.BillingServiceStub(self.channel)
        self.e2ee = e2ee_service_pb2_grpc.E2eeServiceStub(self.channel)
        self.calls = calls_service_pb2_grpc.CallsServiceStub(self.channel)
        self.push = push_service_pb2_grpc.PushServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()


@dataclass
class ErrorDetails:
    """What a client can learn from a failed call."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: dict[str, str] = field(default_factory=dict)  # field → rule (reason)
    retry_seconds: int | None = None
    quota_subjects: list[str] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)


def details(error: grpc.aio.AioRpcError) -> ErrorDetails:
    """Parse the `google.rpc.Status` a CAAS error carries."""
    trailers = {}
    raw = b""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            raw = value if isinstance(value, bytes) else value.encode()
        elif isinstance(value, str):
            trailers[key] = value
    out = ErrorDetails(error.code(), error.details() or "", trailers=trailers)
    if not raw:
        return out
    status = status_pb2.Status.FromString(raw)
    assert status.code == error.code().value[0], "Status.code must match the gRPC status"
    for packed in status.details:
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            out.reason, out.domain, out.metadata = info.reason, info.domain, dict(info.metadata)
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            out.field_violations = {v.field: v.reason for v in bad.field_violations}
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            out.retry_seconds = retry.retry_delay.seconds
        elif packed.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = error_details_pb2.QuotaFailure()
            packed.Unpack(quota)
            out.quota_subjects = [v.subject for v in quota.violations]
    return out
