"""The composition root: the one place that builds and wires every part.

`build_runtime(settings)` is what `caas serve`, the admin CLI and the tests call;
tests pass their own store, bus or clock. ("Runtime" rather than "App": in CAAS
an app is a tenant.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import ssl
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from opentelemetry.trace import Tracer
from redis.asyncio import Redis

from services.accounts.actions import Accounts
from services.accounts.mongo_store import MongoAccountStore
from services.accounts.passwords import BreachCheck, NoBreachCheck, Passwords, PwnedPasswords
from services.accounts.sqlite_store import SqliteAccountStore
from services.accounts.store import AccountStore
from services.analytics.actions import AnalyticsActions
from services.analytics.consumer import LogCounter
from services.analytics.mongo_store import MongoAnalyticsStore
from services.analytics.sqlite_store import SqliteAnalyticsStore
from services.analytics.store import AnalyticsStore, live_apps
from services.analytics.usage import Usage, UsageFlusher
from services.apps.actions import AppPlans, AppsActions
from services.apps.mongo_store import MongoAppStore
from services.apps.sqlite_store import SqliteAppStore
from services.apps.store import AppStore
from services.audit.actions import AuditActions
from services.audit.mongo_store import MongoAuditStore
from services.audit.recorder import AuditRecorder
from services.audit.sqlite_store import SqliteAuditStore
from services.audit.store import AuditStore
from services.auth.actions import AuthActions
from services.auth.authenticator import CredentialAuthenticator
from services.auth.mongo_store import MongoAuthStore
from services.auth.signing import MAX_SESSION_ACCESS_TTL, SigningKeys
from services.auth.sqlite_store import SqliteAuthStore
from services.auth.store import AuthStore
from services.billing.actions import BillingActions
from services.billing.collection import Collector
from services.billing.cycle import BillingCycle
from services.billing.http import BillingRoutes, InvoiceLinks
from services.billing.metering import Meter
from services.billing.models import Issuer
from services.billing.mongo_store import MongoBillingStore
from services.billing.payments import PaymentProvider
from services.billing.plans import Catalogue
from services.billing.quota import QuotaGate
from services.billing.sqlite_store import SqliteBillingStore
from services.billing.store import BillingStore
from services.billing.stripe_provider import StripeProvider
from services.billing.subscriptions import Subscriptions
from services.calls.actions import CallsActions
from services.calls.mongo_store import MongoCallStore
from services.calls.sqlite_store import SqliteCallStore
from services.calls.store import CallStore
from services.calls.turn import IceConfig
from services.compliance.erasure import Eraser, UserDataActions
from services.compliance.exports import Exporter, expire_exports
from services.compliance.mongo_store import MongoComplianceStore, MongoOperationStore
from services.compliance.offboarding import AppDeleter
from services.compliance.operations import (
    DELETE_APP,
    ERASE_USER,
    EXPORT_USER_DATA,
    OperationStore,
    OperationWorker,
)
from services.compliance.retention import RetentionActions, RetentionSweeper
from services.compliance.sqlite_store import SqliteComplianceStore, SqliteOperationStore
from services.compliance.store import ComplianceStore
from services.conversations.actions import ConversationsActions
from services.conversations.mongo_store import MongoConversationStore
from services.conversations.sqlite_store import SqliteConversationStore
from services.conversations.store import ConversationStore
from services.core.clock import Clock, SystemClock
from services.core.db.mongo import MongoDatabase
from services.core.db.sqlite import SqliteDatabase
from services.core.db.transient import store_outage
from services.core.db.writes import WatchedEngine, WriteWatch
from services.core.events import EventBus, InProcessBus
from services.core.health import SERVING, Background, Health
from services.core.health_http import HealthRoutes
from services.core.ids import new_id, new_secret
from services.core.mail import ConsoleMailer, Mailer, SmtpMailer, SmtpOptions
from services.core.metrics import Metrics, served
from services.core.settings import OPERATOR_TOKEN_PREFIX, Settings
from services.core.tracing import Tracing
from services.e2ee.actions import E2eeActions
from services.e2ee.mongo_store import MongoDeviceStore
from services.e2ee.sqlite_store import SqliteDeviceStore
from services.e2ee.store import DeviceStore
from services.edge.portal import (
    PortalAddress,
    PortalFiles,
    default_portal_dir,
    kit_gallery_files,
    widget_files,
)
from services.events.kafka_sink import KafkaSink, Topics, kafka_broker
from services.events.log import EventLog
from services.events.mongo_log import MongoEventLog
from services.events.relay import OpeningSink, Relay, Wake
from services.events.sqlite_log import SqliteEventLog
from services.gateway.gateway import Gateway
from services.gateway.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from services.gateway.validation import RequestValidator
from services.keys.keyring import Keyring
from services.keys.mongo_store import MongoDataKeyStore
from services.keys.provider import LocalKeyProvider
from services.keys.sqlite_store import SqliteDataKeyStore
from services.keys.store import DataKeyStore
from services.media.actions import MediaActions
from services.media.blobs import BlobStore
from services.media.delivery import MediaUrls
from services.media.http import MediaHttp
from services.media.local_blobs import LocalBlobStore
from services.media.mongo_store import MongoMediaStore
from services.media.processing import process
from services.media.s3_blobs import S3BlobStore
from services.media.scanning import ClamdScanner, NoScanner, Scanner
from services.media.sqlite_store import SqliteMediaStore
from services.media.store import MediaStore
from services.media.worker import MediaCollector, MediaProcessor
from services.messages.actions import MessagesActions
from services.messages.flood import SendRate
from services.messages.mongo_store import MongoMessageStore
from services.messages.sealing import ContentSeal, PreviewOpeningStore, SealedMessageStore
from services.messages.sqlite_store import SqliteMessageStore
from services.messages.store import MessageStore
from services.moderation.actions import ModerationActions
from services.moderation.conditions import Subject
from services.moderation.content_filters import FilterActions
from services.moderation.flags import FlagActions
from services.moderation.matching import Folding
from services.moderation.models import DEFAULT_HOOK_TIMEOUT
from services.moderation.mongo_store import (
    MongoFilterStore,
    MongoFlagStore,
    MongoPolicyStore,
    MongoRestrictionStore,
    MongoSendHookStore,
)
from services.moderation.permissions import Permissions, PolicyStore, SubjectLookup
from services.moderation.restrictions import Restrictions
from services.moderation.screening import Screening
from services.moderation.sealed import SealedFlagStore, SealedSendHookStore
from services.moderation.send_hooks import HookMeter, SendHooks
from services.moderation.sqlite_store import (
    SqliteFilterStore,
    SqliteFlagStore,
    SqlitePolicyStore,
    SqliteRestrictionStore,
    SqliteSendHookStore,
)
from services.moderation.store import FilterStore, FlagStore, RestrictionStore, SendHookStore
from services.organizations.access import MemberAccess
from services.organizations.actions import Organizations
from services.organizations.mongo_store import MongoOrganizationStore
from services.organizations.sqlite_store import SqliteOrganizationStore
from services.organizations.store import OrganizationStore
from services.push.actions import PushActions
from services.push.apns import ApnsSender
from services.push.fcm import FcmSender
from services.push.mongo_store import MongoPushStore
from services.push.notifier import Notifier
from services.push.sender import PushSender
from services.push.sqlite_store import SqlitePushStore
from services.push.store import PushStore
from services.push.webpush import WebPushSender
from services.realtime.actions import RealtimeActions
from services.realtime.codec import encoder
from services.realtime.fanout import Fanout, LocalFanout, RedisFanout
from services.realtime.hub import Hub
from services.realtime.presence import PresenceBoard, Presences, RedisPresence
from services.sampling import Sampler
from services.search.actions import SearchActions
from services.search.elastic_index import ElasticIndex
from services.search.index import SearchIndex
from services.search.indexer import Indexer
from services.search.sqlite_index import SqliteSearchIndex
from services.users.actions import UsersActions
from services.users.mongo_store import MongoUserStore
from services.users.sqlite_store import SqliteUserStore
from services.users.store import UserStore
from services.webhooks.actions import WebhooksActions
from services.webhooks.delivery import Deliverer
from services.webhooks.mongo_store import MongoWebhookStore
from services.webhooks.sealed import SealedWebhookStore
from services.webhooks.sqlite_store import SqliteWebhookStore
from services.webhooks.store import WebhookStore
from services.webhooks.worker import WebhookWorker


@dataclass
class Stores:
    """Every domain's store, on one engine, migrated to the current schema."""

    apps: AppStore
    auth: AuthStore
    users: UserStore
    conversations: ConversationStore
    messages: MessageStore
    events: EventLog
    webhooks: WebhookStore
    media: MediaStore
    moderation: RestrictionStore
    flags: FlagStore
    filters: FilterStore
    send_hooks: SendHookStore
    policies: PolicyStore
    audit: AuditStore
    data_keys: DataKeyStore
    compliance: ComplianceStore
    operations: OperationStore
    keyring: Keyring  # seals secrets with the data keys above
    # Signs the media URLs that events carry (messages with pictures, media.ready),
    # with the deployment's secret kept in the media store (started once migrated).
    media_urls: MediaUrls
    close: Callable[[], Awaitable[None]]
    engine: WatchedEngine | None = None  # reports its writes, for readiness
    # Leave nothing deleted on disk (erasure): SQLite's checkpoint; MongoDB: nothing.
    compact: Callable[[], Awaitable[object]] = field(default=lambda: asyncio.sleep(0))
    # Delete every record of an app (but in the tables or collections named): offboarding.
    purge_app: Callable[[str, frozenset[str]], Awaitable[int]] = field(
        default=lambda app_id, keep: asyncio.sleep(0, 0))
    content: ContentSeal = field(init=False)  # seals message content (set once open)
    accounts: AccountStore = field(init=False)  # developer accounts of the portal
    organizations: OrganizationStore = field(init=False)
    analytics: AnalyticsStore = field(init=False)  # usage counts (services/analytics)
    billing: BillingStore = field(init=False)  # plans, subscriptions, invoices
    devices: DeviceStore = field(init=False)  # MLS devices and KeyPackages (services/e2ee)
    calls: CallStore = field(init=False)  # voice and video calls (services/calls)
    push: PushStore = field(init=False)  # push channels and Web Push keys (services/push)


PLATFORM = "_platform"  # the data key owner of the deployment's own secrets (no app id)
MEDIA_SECRET = "media.signing_secret"  # noqa: S105 - where it is sealed, not a secret
PUSH_TIMEOUT = 30.0  # seconds a push provider has to answer


def key_dir(settings: Settings) -> Path:
    """The local master keys' directory; with the embedded store, also the data keys'
    database (`keys.db`)."""
    directory = settings.key_dir or settings.data_dir / "keys"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def keyring(settings: Settings, data_keys: DataKeyStore) -> Keyring:
    """The keyring of encryption at rest, on the configured key provider."""
    provider = LocalKeyProvider.open(key_dir(settings))
    return Keyring(data_keys, provider, SystemClock(), settings.auth_cache_ttl.total_seconds())


def closing(*closers: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        for close_one in closers:
            await close_one()

    return close


def compacting(*compacts: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    async def compact() -> bool:
        return all([await compact_one() for compact_one in compacts])

    return compact


def purging(purge_app: Callable[[str, frozenset[str]], Awaitable[int]],
            data_keys: DataKeyStore) -> Callable[[str, frozenset[str]], Awaitable[int]]:
    """Purging an app from the store and its data keys from theirs (a backup of the
    store, then, holds nothing of it that opens). Twice over the store: the second
    pass takes what a worker wrote while the first went table by table (a webhook
    attempt finishing while its delivery was not purged yet)."""
    async def purge(app_id: str, keep: frozenset[str]) -> int:
        gone = await purge_app(app_id, keep)
        gone += await purge_app(app_id, keep)
        return gone + await data_keys.delete_app(app_id)

    return purge


async def open_stores(settings: Settings, bus: EventBus | None = None,
                      tracing: Tracing | None = None) -> Stores:
    """Open the configured engine and bring its schema up to date (idempotent).

    Chat writes record their events in the event log (with the trace context of the
    request, when `tracing` is on) and publish them on `bus` once committed."""
    bus = bus or InProcessBus()
    traced = tracing is not None and tracing.enabled
    urls = MediaUrls(SystemClock(), settings.media_url_ttl.total_seconds())
    urls.base_url = settings.media_public_url
    encode_event = encoder(urls)
    stores: Stores
    if settings.store == "mongodb":
        mongo = await MongoDatabase.open(settings.mongodb_url, settings.mongodb_database,
                                         settings.tls_ca_file)
        mongo_log = MongoEventLog(mongo, bus, encode_event, traced=traced)
        mongo_keys = MongoDataKeyStore(mongo.database(
            settings.mongodb_keys_database or f"{settings.mongodb_database}_keys"), mongo)
        stores = Stores(MongoAppStore(mongo), MongoAuthStore(mongo), MongoUserStore(mongo),
                        MongoConversationStore(mongo, mongo_log),
                        MongoMessageStore(mongo, mongo_log), mongo_log,
                        MongoWebhookStore(mongo), MongoMediaStore(mongo, mongo_log),
                        MongoRestrictionStore(mongo, mongo_log), MongoFlagStore(mongo, mongo_log),
                        MongoFilterStore(mongo), MongoSendHookStore(mongo),
                        MongoPolicyStore(mongo), MongoAuditStore(mongo), mongo_keys,
                        MongoComplianceStore(mongo), MongoOperationStore(mongo),
                        keyring(settings, mongo_keys), urls, mongo.close, mongo,
                        purge_app=purging(mongo.purge_app, mongo_keys))
        stores.accounts = MongoAccountStore(mongo)
        stores.organizations = MongoOrganizationStore(mongo)
        stores.analytics = MongoAnalyticsStore(mongo)
        stores.billing = MongoBillingStore(mongo, mongo_log)
        stores.devices = MongoDeviceStore(mongo, mongo_log)
        stores.calls = MongoCallStore(mongo, mongo_log)
        stores.push = MongoPushStore(mongo)
    else:
        sqlite = await SqliteDatabase.open(settings.data_dir / "caas.db")
        sqlite_log = SqliteEventLog(sqlite, bus, encode_event, traced=traced)
        sqlite_keys = SqliteDataKeyStore(await SqliteDatabase.open(key_dir(settings) / "keys.db"),
                                          sqlite)
        stores = Stores(SqliteAppStore(sqlite), SqliteAuthStore(sqlite),
                        SqliteUserStore(sqlite), SqliteConversationStore(sqlite, sqlite_log),
                        SqliteMessageStore(sqlite, sqlite_log), sqlite_log,
                        SqliteWebhookStore(sqlite), SqliteMediaStore(sqlite, sqlite_log),
                        SqliteRestrictionStore(sqlite, sqlite_log),
                        SqliteFlagStore(sqlite, sqlite_log), SqliteFilterStore(sqlite),
                        SqliteSendHookStore(sqlite), SqlitePolicyStore(sqlite),
                        SqliteAuditStore(sqlite), sqlite_keys, SqliteComplianceStore(sqlite),
                        SqliteOperationStore(sqlite), keyring(settings, sqlite_keys), urls,
                        closing(sqlite.close, sqlite_keys.close), sqlite,
                        compacting(sqlite.compact, sqlite_keys.compact),
                        purging(sqlite.purge_app, sqlite_keys))
        stores.accounts = SqliteAccountStore(sqlite)
        stores.organizations = SqliteOrganizationStore(sqlite)
        stores.analytics = SqliteAnalyticsStore(sqlite)
        stores.billing = SqliteBillingStore(sqlite, sqlite_log)
        stores.devices = SqliteDeviceStore(sqlite, sqlite_log)
        stores.calls = SqliteCallStore(sqlite, sqlite_log)
        stores.push = SqlitePushStore(sqlite)
    # Secrets at rest: sealed with each app's data key; content with each sender's.
    stores.webhooks = SealedWebhookStore(stores.webhooks, stores.keyring)
    stores.send_hooks = SealedSendHookStore(stores.send_hooks, stores.keyring)
    stores.content = ContentSeal(stores.keyring, settings.content_encryption)
    stores.messages = SealedMessageStore(stores.messages, stores.content)
    stores.conversations = PreviewOpeningStore(stores.conversations, stores.content)
    stores.flags = SealedFlagStore(stores.flags, stores.content)
    # The log last: it reads members.
    for store in (stores.apps, stores.auth, stores.users, stores.conversations,
                  stores.messages, stores.webhooks, stores.media, stores.moderation,
                  stores.audit, stores.data_keys, stores.compliance, stores.operations,
                  stores.accounts, stores.organizations, stores.analytics, stores.billing,
                  stores.devices, stores.calls, stores.push, stores.events):
        await store.migrate()
    # The deployment's media URL secret, sealed with the platform's own data key.
    sealed = await stores.media.signing_secret(await stores.keyring.seal(
        PLATFORM, MEDIA_SECRET, secrets.token_bytes(32)))
    urls.start(await stores.keyring.open(PLATFORM, MEDIA_SECRET, sealed))
    return stores


def open_mailer(settings: Settings) -> Mailer:
    """SMTP when a server is configured, else the log (development)."""
    if not settings.smtp_host:
        return ConsoleMailer()
    return SmtpMailer(SmtpOptions(settings.smtp_host, settings.smtp_port, settings.mail_from,
                                  settings.smtp_username,
                                  settings.smtp_password.get_secret_value(),
                                  settings.smtp_security))


def breach_check(settings: Settings) -> BreachCheck:
    url = settings.breached_password_url
    return PwnedPasswords(url) if url else NoBreachCheck()


def app_role(users: UserStore) -> SubjectLookup:
    """How permissions learn a user's app role and attributes: from their profile."""
    async def subject_of(app_id: str, user_id: str) -> Subject:
        user = await users.get_user(app_id, user_id)
        if user is None:
            return Subject("")
        return Subject(user.role, dict(user.metadata), user.create_time)

    return subject_of


def open_blobs(settings: Settings, urls: MediaUrls) -> BlobStore:
    """Where media bytes live: S3, or files in the data directory."""
    if settings.media_store == "s3":
        return S3BlobStore(settings.media_s3_endpoint, settings.media_s3_bucket,
                           settings.media_s3_region, settings.media_s3_access_key,
                           settings.media_s3_secret_key.get_secret_value(),
                           secure=settings.media_s3_secure,
                           virtual_host=settings.media_s3_virtual_host,
                           ca_file=settings.tls_ca_file)
    return LocalBlobStore(settings.data_dir / "media", urls.signer)


async def open_search(settings: Settings, stores: Stores, clock: Clock, bus: EventBus,
                      background: Background, health: Health, metrics: Metrics | None
                      ) -> Indexer:
    """The search index (embedded, or Elasticsearch) and its indexer, which creates the
    index and follows the log in the background. The server starts while the engine is
    down (Elasticsearch's client connects lazily): the task is restarted with growing
    delays until the engine answers."""
    index: SearchIndex
    if settings.search_engine == "elasticsearch":
        index = ElasticIndex.connect(settings.search_elasticsearch_url,
                                     settings.search_elasticsearch_api_key.get_secret_value(),
                                     settings.search_index_prefix, settings.tls_ca_file)
    else:
        index = await SqliteSearchIndex.open(settings.data_dir / "search.db")
    indexer = Indexer(index, stores.events, stores.conversations, stores.messages, clock,
                      health, metrics.relay("search") if metrics else None,
                      stores.content.open_payload)
    wake = Wake.on_commits(bus)

    async def index_events(ok: Callable[[], None]) -> None:
        await indexer.start()
        ok()
        await indexer.run(wake)

    background.start("search-indexer", index_events)
    return indexer


def count_usage(settings: Settings, stores: Stores, usage: Usage, bus: EventBus, clock: Clock,
                background: Background, health: Health, metrics: Metrics | None
                ) -> UsageFlusher:
    """Usage analytics in the background: the event log's consumer, and the flushes of
    what this process counts itself (`usage`, told of sign-ins by the bus)."""
    bus.subscribe(usage.on_event)
    live = live_apps(stores.apps)  # no counts outlive a deleted app
    flusher = UsageFlusher(usage, stores.analytics,
                           settings.analytics_flush_interval.total_seconds(), live)
    background.start("analytics-flush", flusher.run)
    counter = LogCounter(stores.events, stores.analytics, clock, health,
                         metrics.relay("analytics") if metrics else None, live=live)
    wake = Wake.on_commits(bus)
    background.start("analytics", lambda ok: counter.run(wake, ok))
    return flusher


@dataclass
class Billing:
    """Billing's parts (services/billing): the RPCs' actions, the quota gate the gateway
    asks, the background cycle, the HTTP routes (Stripe's webhooks, invoice PDFs)."""

    actions: BillingActions
    gate: QuotaGate
    cycle: BillingCycle
    routes: BillingRoutes
    links: InvoiceLinks
    provider: PaymentProvider | None

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()


def billing_issuer(settings: Settings) -> Issuer:
    return Issuer(settings.billing_issuer_name,
                  settings.billing_issuer_address.replace("\\n", "\n"),
                  settings.billing_issuer_tax_id, settings.billing_invoice_prefix,
                  settings.billing_credit_note_prefix)


async def open_billing(settings: Settings, stores: Stores, clock: Clock, bus: EventBus,
                       members: MemberAccess, usage: Usage, blobs: BlobStore, mailer: Mailer,
                       portal: PortalAddress, background: Background, gateway: Gateway
                       ) -> Billing:
    """Plans (seeded on a new deployment), subscriptions, the quota gate (which the
    gateway asks) and the cycle in the background; Stripe when a key is configured."""
    provider: PaymentProvider | None = None
    if settings.stripe_api_key.get_secret_value():
        provider = StripeProvider(settings.stripe_api_key.get_secret_value(),
                                  settings.stripe_publishable_key,
                                  settings.stripe_webhook_secret.get_secret_value(),
                                  settings.stripe_api_base)
    refresh = settings.billing_quota_refresh.total_seconds()
    catalogue = Catalogue(stores.billing, refresh)
    await catalogue.seed(settings.billing_currency, clock.now(), settings.default_plan)
    subscriptions = Subscriptions(stores.billing, stores.apps, clock, bus)
    meter = Meter(stores.analytics, stores.media, stores.billing)
    issuer = billing_issuer(settings)
    actions: BillingActions

    async def recipients(organization_id: str) -> list[str]:
        return await actions.recipients(organization_id)

    collector = Collector(stores.billing, subscriptions, provider, clock,
                          settings.billing_retry_days, recipients)
    actions = BillingActions(stores.billing, catalogue, subscriptions, meter, collector,
                             provider, stores.apps, stores.organizations, stores.accounts,
                             members, clock, bus, issuer, frozenset(settings.plans))
    gate = QuotaGate(subscriptions, catalogue, meter, stores.apps, clock, refresh, bus,
                     usage.open_streams, stores.analytics.is_member)
    if settings.billing_enabled:
        gateway.check_admission(gate.admit)
    cycle = BillingCycle(stores.billing, subscriptions, catalogue, meter, collector,
                         stores.events, blobs, mailer, clock, issuer, recipients,
                         lambda organization_id: f"{portal.url}organizations/{organization_id}"
                                                 "/billing",
                         grace=settings.billing_close_grace,
                         payment_terms=settings.billing_payment_terms,
                         interval=settings.billing_interval.total_seconds())
    if settings.billing_enabled:
        background.start("billing", cycle.run)
    links = InvoiceLinks(stores.media_urls, clock, settings.media_url_ttl.total_seconds())
    routes = BillingRoutes(stores.billing, collector, provider, blobs, links, clock)
    return Billing(actions, gate, cycle, routes, links, provider)


def operator_token(settings: Settings) -> str:
    """The configured operator token, else the one generated into the data directory."""
    if settings.operator_token is not None:
        return settings.operator_token.get_secret_value()
    path = operator_token_path(settings)
    if not path.exists():
        # Written aside, then linked into place: processes starting together on a new
        # data directory all end up with the one token that won.
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".operator-token.{os.getpid()}.{new_id()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as out:
            out.write(new_operator_token() + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return path.read_text().strip()


def operator_token_path(settings: Settings) -> Path:
    return settings.data_dir / "operator-token"


def new_operator_token() -> str:
    return OPERATOR_TOKEN_PREFIX + new_secret()


class Outbox:
    """The relay from the event log to Kafka, in the background. The server starts
    without waiting for Kafka: until it is reachable, events wait in the log."""

    def __init__(self, settings: Settings, stores: Stores, bus: EventBus, clock: Clock,
                 background: Background, health: Health, metrics: Metrics | None,
                 tracer: Tracer | None = None) -> None:
        assert settings.kafka_bootstrap
        self._tracer = tracer  # tracing on: records are sent in spans
        self._health = health
        self._meter = metrics.relay("kafka") if metrics else None
        self._now = clock.now
        self._broker = kafka_broker(settings)
        self._topics = Topics(settings.kafka_topic_prefix, settings.kafka_partitions,
                              settings.kafka_replication, settings.kafka_retention)
        self._events = stores.events
        self._open = stores.content.open_payload  # Kafka is for other systems: in clear
        self._sink: KafkaSink | None = None
        self._wake = Wake.on_commits(bus)
        # Supervised: until Kafka (or the store) answers, the task is restarted with
        # growing delays, its component down ("kafka-relay", logged once).
        background.start("kafka-relay", self._run)

    async def _run(self, ok: Callable[[], None]) -> None:
        relay_name = "kafka"
        await self._events.register(relay_name)  # purges wait for it from now on
        if self._sink is None:  # raises while Kafka is not there yet: events wait
            self._sink = await KafkaSink.open(self._broker, self._topics, self._tracer)
        ok()
        await Relay(self._events, OpeningSink(self._sink, self._open), relay_name, now=self._now,
                    health=self._health, meter=self._meter).run(self._wake)

    async def ping(self) -> None:
        """Whether Kafka answers the relay's producer (raises while it does not)."""
        if self._sink is None:
            raise ConnectionError("the Kafka producer has not connected yet")
        await self._sink.ping()

    async def close(self) -> None:
        """Close the sink (the runtime has stopped the task already)."""
        if self._sink is not None:
            await self._sink.close()


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    bus: EventBus
    stores: Stores
    limiter: RateLimiter
    apps: AppsActions
    accounts: Accounts
    organizations: Organizations
    portal: PortalAddress
    auth: AuthActions
    users: UsersActions
    conversations: ConversationsActions
    messages: MessagesActions
    e2ee: E2eeActions
    calls: CallsActions
    push: PushActions
    push_sender: PushSender
    realtime: RealtimeActions
    hub: Hub
    fanout: Fanout
    presence: Presences
    authenticator: CredentialAuthenticator
    gateway: Gateway
    webhooks: WebhooksActions
    webhook_worker: WebhookWorker
    health: Health
    background: Background
    plans: AppPlans
    media: MediaActions
    media_urls: MediaUrls
    media_scanner: Scanner
    media_http: MediaHttp
    blobs: BlobStore
    media_processor: MediaProcessor
    search: SearchActions
    indexer: Indexer
    moderation: ModerationActions
    flags: FlagActions
    filters: FilterActions
    send_hooks: SendHooks
    permissions: Permissions
    restrictions: Restrictions
    audit: AuditActions
    analytics: AnalyticsActions
    usage: UsageFlusher  # writes what this process counts itself (analytics)
    billing: Billing
    retention: RetentionActions
    sweeper: RetentionSweeper
    user_data: UserDataActions
    operations: OperationWorker
    metrics: Metrics
    sampler: Sampler
    outbox: Outbox | None = None
    write_watch: WriteWatch | None = None
    tracing: Tracing = field(default_factory=Tracing)

    async def close(self) -> None:
        await self.sampler.close()
        if self.write_watch is not None:
            await self.write_watch.close()
        await self.background.close()
        await self.usage.close()  # the last flush of this process's usage counts
        await self.billing.close()
        self.media_processor.close()
        await self.blobs.close()
        await self.indexer.index.close()
        await self.webhook_worker.close()
        await self.push_sender.close()
        await self.send_hooks.close()
        if self.outbox is not None:
            await self.outbox.close()
        await self.presence.close()
        await self.fanout.close()
        await self.hub.close()
        await self.limiter.close()
        await self.stores.close()
        await self.tracing.shutdown()  # last: the spans of all the above are sent


def watch_store(settings: Settings, stores: Stores, health: Health, background: Background,
                metrics: Metrics, recorded: Metrics | None, tracing: Tracing
                ) -> WriteWatch | None:
    """Metrics follow the process's health and (when `recorded`, served) time the store's
    operations, which are traced when tracing is on; readiness follows the store (down
    while it does not answer, or while the disk is full) and the process's draining
    (SERVING)."""
    health.listen(lambda name, ok, _: metrics.component(name, ok, health.ready()))
    health.register(SERVING, readiness=True)
    if stores.engine is None:
        return None
    if recorded is not None:
        stores.engine.time_operations(recorded.store(settings.store))
    if (tracer := tracing.tracer("caas.store")) is not None:
        stores.engine.trace_operations(tracer)
    background.probe("store", stores.engine.ping,
                     readiness="store" in settings.readiness_requires)
    return WriteWatch(health, stores.engine)


def shared_state(settings: Settings, hub: Hub, health: Health, background: Background,
                 window: float) -> tuple[RateLimiter, Fanout, Presences]:
    """Rate limits, fan-out and presence: in Redis when configured (probed for
    readiness), else in the process."""
    if not settings.redis_url:
        return InProcessRateLimiter(window), LocalFanout(hub), PresenceBoard()
    # Commands give up after redis_timeout (a frozen Redis must not hold calls up);
    # the fan-out's subscription waits for messages as long as it takes.
    timeout = settings.redis_timeout.total_seconds()
    # rediss:// is Redis over TLS, trusting tls_ca_file when set.
    tls: dict[str, Any] = ({"ssl_ca_certs": str(settings.tls_ca_file)}
                           if settings.tls_ca_file and settings.redis_url.startswith("rediss:")
                           else {})
    redis = Redis.from_url(settings.redis_url, socket_timeout=timeout,
                           socket_connect_timeout=timeout, **tls)
    listener = Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, **tls)
    background.probe("redis", redis.ping, readiness="redis" in settings.readiness_requires)
    return (RedisRateLimiter(redis, window, health),
            RedisFanout(hub, redis, listener, background, health),
            RedisPresence(redis, health))


def open_e2ee(stores: Stores, conversations: ConversationsActions, clock: Clock,
              bus: EventBus) -> E2eeActions:
    """The MLS delivery service and device directory; revoked sessions and deleted users
    lose their devices."""
    e2ee = E2eeActions(stores.devices, conversations, stores.conversations, stores.users,
                       stores.messages, clock)
    bus.subscribe(e2ee.on_event)
    return e2ee


def open_calls(settings: Settings, stores: Stores, conversations: ConversationsActions,
               presence: Presences, clock: Clock, bus: EventBus, background: Background
               ) -> CallsActions:
    """Calls: ring timeouts and records swept in the background, signals purged soon,
    members removed and devices without a stream dropped from their calls."""
    ice = IceConfig(tuple(settings.stun_urls), tuple(settings.turn_urls),
                    settings.turn_secret.get_secret_value(), settings.turn_credential_ttl)
    calls = CallsActions(stores.calls, conversations, stores.conversations, stores.messages,
                         presence, stores.events, ice, clock, settings)
    bus.subscribe(calls.on_event)
    background.start("calls", calls.run)
    return calls


def open_push(settings: Settings, stores: Stores, presence: Presences, clock: Clock,
              bus: EventBus, background: Background, health: Health,
              metrics: Metrics | None) -> tuple[PushActions, PushSender]:
    """Push channels, the apps' keys and settings (a deleted user's channels go with
    them); the notifier following the log in the background, and the sender handing
    its pushes to Web Push, APNs and FCM over clients trusting `tls_ca_file`."""
    push = PushActions(stores.push, stores.users, stores.keyring, clock)
    bus.subscribe(push.on_event)
    trust = ssl.create_default_context(cafile=settings.tls_ca_file)
    web = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust),
                                timeout=aiohttp.ClientTimeout(total=PUSH_TIMEOUT))
    http2 = httpx.AsyncClient(http2=True, verify=trust, timeout=PUSH_TIMEOUT)
    sender = PushSender(stores.push, push, stores.messages, WebPushSender(web),
                        ApnsSender(http2, settings.apns_sandbox_url, settings.apns_url),
                        FcmSender(http2, settings.fcm_url), clock, settings.push_contact,
                        settings.push_rate, settings.push_delivery_retention,
                        metrics.push() if metrics else None, closing=(web.close, http2.aclose))
    notifier = Notifier(stores.push, stores.conversations, stores.messages, stores.users,
                        presence, clock, settings.push_collapse_window, sender.wake)
    wake = Wake.on_commits(bus)

    async def notify(ok: Callable[[], None]) -> None:
        relay = Relay(stores.events, OpeningSink(notifier, stores.content.open_payload),
                      "push", wants=notifier.wants, health=health,
                      meter=metrics.relay("push") if metrics else None)
        await relay.start()
        ok()
        await relay.run(wake)

    background.start("push-notifier", notify)
    background.start("push-sender", sender.run)
    return push, sender


async def build_runtime(settings: Settings, *, stores: Stores | None = None,
                        bus: EventBus | None = None, clock: Clock | None = None,
                        tracing: Tracing | None = None) -> Runtime:
    """Everything, wired. Tracing (default: as the OTEL_* variables say) is handed to
    the stores (when this builds them), the gateway, the Kafka relay and webhooks."""
    clock = clock or SystemClock()
    bus = bus or InProcessBus()
    tracing = tracing or Tracing.from_environment()
    stores = stores or await open_stores(settings, bus, tracing)
    cache_ttl = settings.auth_cache_ttl.total_seconds()
    # A replaced key verifies for the longest token life, plus the time other processes
    # may still sign with it (their cache), plus the tolerated clock skew.
    verify_window = (max(settings.access_token_ttl, MAX_SESSION_ACCESS_TTL)
                     + settings.auth_cache_ttl + settings.token_leeway)
    signing = SigningKeys(stores.auth, clock, cache_ttl, verify_window, stores.keyring)
    authenticator = CredentialAuthenticator(stores.apps, stores.auth, signing, clock, settings,
                                            operator_token(settings), bus, stores.accounts)
    members = MemberAccess(stores.organizations, stores.apps, cache_ttl, bus)
    window = settings.rate_limit_window.total_seconds()
    usage = Usage(clock)  # what this process counts for analytics (services/analytics)
    hub = Hub(stores.events, settings.stream_heartbeat_interval.total_seconds(),
              settings.max_streams_per_user, settings.stream_batch_window.total_seconds(),
              stores.content.open_payload, usage)
    health = Health()
    background = Background(health)
    metrics = Metrics()
    recorded = metrics if served(settings.metrics_listen) else None  # else not recorded
    write_watch = watch_store(settings, stores, health, background, metrics, recorded,
                              tracing)
    limiter, fanout, presence = shared_state(settings, hub, health, background, window)
    await fanout.start()
    await presence.start()
    permissions = Permissions(stores.policies, app_role(stores.users), cache_ttl, bus, clock)
    users = UsersActions(stores.users, stores.apps, stores.auth, clock, bus,
                         permissions.check_role)
    restrictions = Restrictions(stores.moderation, clock, cache_ttl, bus)
    conversations = ConversationsActions(stores.conversations, stores.users, clock, settings,
                                         restrictions, permissions)

    stores.events.watch_commits(fanout.deliver)
    outbox = (Outbox(settings, stores, bus, clock, background, health, recorded,
                     tracing.tracer("caas.kafka"))
              if settings.kafka_bootstrap else None)
    if outbox is not None:
        background.probe("kafka", outbox.ping,
                         readiness="kafka" in settings.readiness_requires)
    plans = AppPlans(stores.apps, settings, bus)
    gateway = Gateway(authenticator, limiter, plans, RequestValidator(), store_outage,
                      recorded, tracing.tracer("caas.gateway"),
                      AuditRecorder(stores.audit, clock), members,
                      settings.trusted_proxy_hops)
    gateway.count_calls(usage.called)
    flusher = count_usage(settings, stores, usage, bus, clock, background, health, recorded)
    mailer = open_mailer(settings)
    portal = PortalAddress(settings.portal_url)
    blobs = open_blobs(settings, stores.media_urls)
    await blobs.start()
    scanner: Scanner = ClamdScanner(settings.media_clamd) if settings.media_clamd else NoScanner()
    processor = MediaProcessor(stores.media, blobs, plans, scanner, clock, settings, process)
    media = MediaActions(stores.media, blobs, conversations, stores.conversations, plans, clock,
                         settings, bus, processor.wake)
    for number in range(settings.media_processors):
        background.start(f"media-processor-{number + 1}", processor.run)
    background.start("media-collector",
                     MediaCollector(stores.media, blobs, media, clock, settings).run)
    screening = Screening(stores.filters, stores.flags, Folding.load(), clock, cache_ttl)
    send_hooks = SendHooks(
        stores.send_hooks, Deliverer(DEFAULT_HOOK_TIMEOUT.total_seconds(),
                                     public_only=not settings.webhook_allow_insecure),
        clock, cache_ttl, HookMeter(recorded.send_hook_calls, recorded.send_hook_seconds)
        if recorded else HookMeter(), settings.webhook_allow_insecure)
    messages = MessagesActions(stores.messages, conversations, stores.conversations,
                               stores.users, clock, media, restrictions, screening,
                               send_hooks, SendRate(limiter, plans),
                               e2ee := open_e2ee(stores, conversations, clock, bus))
    indexer = await open_search(settings, stores, clock, bus, background, health, recorded)
    billing = await open_billing(settings, stores, clock, bus, members, usage, blobs, mailer,
                                 portal, background, gateway)
    moderation = ModerationActions(stores.moderation, conversations, stores.conversations,
                                   stores.users, stores.auth, clock, bus)
    operations = OperationWorker(stores.operations, {
        ERASE_USER: Eraser(users, stores.users, stores.messages, stores.conversations,
                           stores.events, stores.flags, stores.webhooks, indexer, blobs,
                           stores.keyring, stores.compact, clock),
        EXPORT_USER_DATA: Exporter(stores.users, stores.auth, stores.conversations,
                                   stores.messages, blobs, clock),
        DELETE_APP: AppDeleter(stores.apps, stores.purge_app, indexer.index, blobs,
                               stores.compact, clock)}, clock)
    push, push_sender = open_push(settings, stores, presence, clock, bus, background, health,
                                  recorded)
    return Runtime(
        settings=settings, clock=clock, bus=bus, stores=stores, limiter=limiter,
        apps=AppsActions(stores.apps, clock, bus, settings, members),
        accounts=Accounts(stores.accounts, Passwords(), breach_check(settings), mailer,
                          stores.keyring, clock, limiter, bus, settings, portal,
                          members.mfa_required_by),
        portal=portal,
        organizations=Organizations(stores.organizations, stores.accounts, members, mailer,
                                    clock, bus, portal,
                                    settings.invitation_lifetime, limiter,
                                    settings.invitations_per_window),
        auth=AuthActions(stores.apps, stores.auth, signing, clock, bus, settings,
                         users.ensure_user, restrictions, limiter, users.create_guest),
        users=users, conversations=conversations,
        messages=messages, e2ee=e2ee,
        calls=open_calls(settings, stores, conversations, presence, clock, bus, background),
        realtime=RealtimeActions(hub, fanout, stores.events, conversations,
                                 stores.conversations, presence, clock, settings),
        push=push, push_sender=push_sender,
        hub=hub, fanout=fanout, presence=presence,
        authenticator=authenticator, gateway=gateway, health=health, background=background,
        webhooks=WebhooksActions(stores.webhooks, clock, settings),
        webhook_worker=WebhookWorker(settings, stores.webhooks, stores.events, bus, clock,
                                     health, recorded, tracing, stores.content.open_payload,
                                     usage),
        plans=plans, media=media, media_urls=stores.media_urls, media_scanner=scanner, blobs=blobs,
        media_processor=processor,
        media_http=MediaHttp(stores.media, blobs, stores.media_urls, HealthRoutes(health), (
            PortalFiles(settings.portal_dir or default_portal_dir()), widget_files(),
            kit_gallery_files(), billing.routes)),
        search=SearchActions(indexer.index, conversations, stores.conversations, messages,
                             stores.messages, stores.users),
        indexer=indexer, metrics=metrics,
        moderation=moderation,
        flags=FlagActions(stores.flags, moderation, messages, stores.conversations,
                          stores.users, clock),
        filters=FilterActions(stores.filters, screening, clock), send_hooks=send_hooks,
        permissions=permissions,
        restrictions=restrictions,
        audit=AuditActions(stores.audit, stores.apps),
        analytics=AnalyticsActions(stores.analytics, stores.apps), usage=flusher,
        billing=billing,
        retention=RetentionActions(stores.compliance, stores.apps, stores.conversations,
                                   stores.users, permissions, clock),
        sweeper=RetentionSweeper(
            stores.compliance, stores.conversations, stores.messages, clock,
            lambda: expire_exports(stores.operations, blobs, clock.now(), settings.export_ttl)),
        user_data=UserDataActions(stores.operations, stores.users, operations, clock),
        operations=operations,
        sampler=Sampler(metrics, hub, stores.events, stores.webhooks), outbox=outbox,
        write_watch=write_watch, tracing=tracing,
    )
