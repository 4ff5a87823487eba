"""Server settings: one typed object, read once from the environment and an optional file.

Precedence, highest first: environment variables (`CAAS_<NAME>`), then the TOML file
named by `--config` or `CAAS_CONFIG_FILE`, then the defaults below. The plans are the
file's table if it has one, else the defaults; `CAAS_PLANS__…` variables change parts
of them (`CAAS_PLANS__FREE__DEFAULT__PER_USER=900`: services/core/plan_sources.py).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from services.core.plan_sources import METHOD_NAME, Environment, PlanVariables, PublishedPlans


def _seconds(value: object) -> object:
    """Durations may be given as a number of seconds ("30", "0.5") or ISO 8601 ("PT30S")."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


Duration = Annotated[timedelta, BeforeValidator(_seconds)]

# What readiness can depend on (CAAS_READINESS_REQUIRES).
Dependency = Literal["store", "redis", "kafka"]
DEPENDENCIES: tuple[Dependency, ...] = ("store", "redis", "kafka")
OPERATOR_TOKEN_PREFIX = "caaso_"  # noqa: S105 - a prefix, not a secret


class RateLimit(BaseModel):
    """Calls per window to one RPC: for the whole app, and for each user of it."""

    model_config = ConfigDict(extra="forbid")  # a misspelt limit is an error, not ignored

    per_app: int = Field(gt=0)
    per_user: int = Field(gt=0)


GIB = 1024 ** 3
MIB = 1024 ** 2

# What the default plans take: pictures, video, sound, and the usual documents and
# archives; never executables or scripts (their bytes are checked, not their names).
DEFAULT_CONTENT_TYPES = (
    "image/*", "video/*", "audio/*", "text/plain", "text/csv", "application/pdf",
    "application/zip", "application/gzip", "application/x-7z-compressed", "application/json",
    "application/rtf", "application/msword", "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint", "application/vnd.openxmlformats-officedocument.*",
    "application/vnd.oasis.opendocument.*", "application/octet-stream")


class MediaLimits(BaseModel):
    """What a plan lets an app store: the largest file, all files together, and the
    media types (`type/subtype`, or `type/*`, or a prefix ending in `*`)."""

    model_config = ConfigDict(extra="forbid")

    max_file_bytes: int = Field(default=100 * MIB, gt=0, le=5 * GIB)
    quota_bytes: int = Field(default=5 * GIB, gt=0)
    content_types: list[str] = Field(default_factory=lambda: list(DEFAULT_CONTENT_TYPES))

    def allows(self, content_type: str) -> bool:
        return any(content_type == t or (t.endswith("*") and content_type.startswith(t[:-1]))
                   for t in self.content_types)


class Plan(BaseModel):
    """The rate limits of a plan (a default for every RPC, overrides per RPC, and the
    messages a user may send into one conversation) and its media limits.

    Override keys are full method names, `caas.auth.v1.AuthService/CreateSession`.
    """

    model_config = ConfigDict(extra="forbid")

    default: RateLimit
    methods: dict[str, RateLimit] = Field(default_factory=dict)
    media: MediaLimits = MediaLimits()
    # Messages one user may send into one conversation per rate-limit window: flooding
    # one conversation is refused long before the user's CreateMessage budget runs out.
    sends_per_conversation: int = Field(default=120, gt=0)
    _name: str = PrivateAttr("")  # its key in the settings' plans (metrics label it)

    @property
    def name(self) -> str:
        return self._name

    @field_validator("methods")
    @classmethod
    def _method_names(cls, value: dict[str, RateLimit]) -> dict[str, RateLimit]:
        bad = [name for name in value if not METHOD_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"not full method names (package.Service/Method): {bad}")
        return value

    def limit_for(self, method: str) -> RateLimit:
        return self.methods.get(method, self.default)


def default_plans() -> dict[str, Plan]:
    """The published default plans (README, "Rate limits").

    Per user the defaults allow 10 calls a second to each RPC, sustained for a
    minute, which no person typing can reach; signing in is stricter.
    """
    sign_in = "caas.auth.v1.AuthService/CreateSession"
    refresh = "caas.auth.v1.AuthService/RefreshSession"
    guest = "caas.auth.v1.AuthService/CreateGuestSession"  # per app only: no user yet
    plans = {
        "free": Plan(
            default=RateLimit(per_app=6_000, per_user=600),
            methods={sign_in: RateLimit(per_app=1_200, per_user=60),
                     refresh: RateLimit(per_app=1_200, per_user=60),
                     guest: RateLimit(per_app=600, per_user=1)},
        ),
        "standard": Plan(
            default=RateLimit(per_app=60_000, per_user=1_200),
            methods={sign_in: RateLimit(per_app=12_000, per_user=120),
                     refresh: RateLimit(per_app=12_000, per_user=120),
                     guest: RateLimit(per_app=6_000, per_user=1)},
            media=MediaLimits(max_file_bytes=GIB, quota_bytes=500 * GIB),
        ),
        "enterprise": Plan(
            default=RateLimit(per_app=600_000, per_user=3_000),
            methods={sign_in: RateLimit(per_app=120_000, per_user=300),
                     refresh: RateLimit(per_app=120_000, per_user=300),
                     guest: RateLimit(per_app=60_000, per_user=1)},
            media=MediaLimits(max_file_bytes=5 * GIB, quota_bytes=10 * 1024 * GIB),
        ),
    }
    return named(plans)


def named(plans: dict[str, Plan]) -> dict[str, Plan]:
    """`plans`, each told its name (its key)."""
    for name, plan in plans.items():
        plan._name = name
    return plans


class Settings(BaseSettings):
    """Everything configurable about a CAAS server process."""

    model_config = SettingsConfigDict(
        env_prefix="CAAS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    listen: str = Field("127.0.0.1:50051", description="host:port the gRPC server binds")
    workers: int = Field(
        1, ge=1, le=256,
        description="server processes on the listen port (SO_REUSEPORT); above 1 needs "
                    "redis_url — use one per core")
    reuse_port: bool = Field(
        False, description="bind with SO_REUSEPORT (set for the processes of --workers)")
    http_listen: str = Field(
        "127.0.0.1:8080",
        description="host:port of the HTTP listener (gRPC-Web, JSON, and gRPC too) that "
                    "`caas serve` runs Envoy on; empty: no Envoy")
    envoy_binary: str = Field(
        "envoy", description="the Envoy executable (a name looked up on PATH and beside "
                             "Python, or a path)")
    http_max_connections: int = Field(
        50_000, gt=0, description="open HTTP connections Envoy accepts (one per browser tab "
                                  "or device); past it new connections are refused. Keep it "
                                  "below the process's open-file limit")
    cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:*", "http://127.0.0.1:*"],
        description="browser origins allowed to call through Envoy (`*` matches any "
                    "characters but `/`, e.g. `https://*.example.com`)")
    data_dir: Path = Field(Path("caas-data"),
                           description="directory of the embedded store and generated secrets")
    store: Literal["sqlite", "mongodb"] = Field(
        "sqlite", description="sqlite (embedded, in data_dir) or mongodb")
    mongodb_url: str = Field("mongodb://127.0.0.1:27017/",
                             description="MongoDB connection string, when store=mongodb")
    mongodb_database: str = Field("caas", description="MongoDB database name")
    mongodb_keys_database: str = Field(
        "", description="MongoDB database of the data keys, apart from the data they seal "
                        "(back it up apart, for no longer than erasures may take); unset: "
                        "<mongodb_database>_keys")
    redis_url: str | None = Field(
        None, description="Redis URL shared by every server process: rate-limit counters, "
                          "real-time fan-out and presence; unset keeps them in the process")
    redis_timeout: Duration = Field(
        timedelta(milliseconds=500), gt=timedelta(0),
        description="longest a Redis command may take before it fails (calls that need "
                    "Redis answer UNAVAILABLE; rate limits are counted in the process)")
    kafka_bootstrap: str | None = Field(
        None, description="host:port[,…] of a Kafka(-protocol) cluster: when set, every "
                          "durable event is relayed there from the event log")
    kafka_tls: bool = Field(
        False, description="reach the Kafka brokers over TLS (trusting tls_ca_file)")
    kafka_topic_prefix: str = Field(
        "caas.events", description="topics are <prefix>.<family> (message, reaction, …)")
    kafka_partitions: int = Field(6, gt=0, description="partitions of topics CAAS creates")
    kafka_replication: int = Field(
        1, gt=0, description="replicas of topics CAAS creates (3 on a production cluster)")
    kafka_retention: Duration = Field(
        timedelta(days=7), description="retention of topics CAAS creates")
    operator_token: SecretStr | None = Field(
        None, description="operator credential (caaso_…); unset: generated into data_dir")
    access_token_ttl: Duration = Field(
        timedelta(minutes=15), description="default lifetime of user access tokens")
    refresh_token_ttl: Duration = Field(
        timedelta(days=30), description="a session expires when unused this long")
    token_leeway: Duration = Field(
        timedelta(seconds=5), description="clock skew tolerated when checking token expiry")
    auth_cache_ttl: Duration = Field(
        timedelta(seconds=5),
        description="how long a process trusts a checked API key or session before asking "
                    "the store again (bounds how late another process sees a revocation)")
    rate_limit_window: Duration = Field(
        timedelta(minutes=1), description="length of the fixed rate-limit window")
    default_plan: str = Field("free", description="plan of apps created without one")
    plans: dict[str, Plan] = Field(
        default_factory=default_plans,
        description="rate limits per plan: the file's [plans.<name>] table, else the "
                    "defaults; CAAS_PLANS__<PLAN>__DEFAULT__PER_USER=… and the like change "
                    "one part (docs/configuration.md)")
    max_group_members: int = Field(1_000, gt=1, description="members a group may have")
    max_channel_members: int = Field(100_000, gt=1,
                                     description="members a channel may have")
    max_request_bytes: int = Field(
        1024 * 1024, gt=0, description="largest request message accepted, in bytes")
    event_retention: Duration = Field(
        timedelta(days=7),
        description="how long events are kept for streams to resume from")
    webhook_timeout: Duration = Field(
        timedelta(seconds=10), description="longest a webhook delivery attempt may take")
    webhook_retry_delays: list[Duration] = Field(
        default_factory=lambda: [timedelta(seconds=s) for s in (
            10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 10 * 3600)],
        description="delays before each retry of a failed webhook delivery (each with "
                    "full jitter: 50-100 %); after the last, a dead letter")
    webhook_allow_insecure: bool = Field(
        False, description="accept http:// webhook URLs and deliver to loopback, private "
                           "and link-local addresses (development and tests only)")
    app_deletion_grace: Duration = Field(
        timedelta(days=7), ge=timedelta(0),
        description="how long a deleted app (DeleteApp) can be restored (UndeleteApp) "
                    "before all its data is erased")
    export_ttl: Duration = Field(
        timedelta(days=7), gt=timedelta(0),
        description="how long a user's data export (ExportUserData) is kept for download "
                    "before its archive is deleted")
    max_webhooks_per_app: int = Field(20, gt=0, description="webhook endpoints an app may have")
    media_store: Literal["local", "s3"] = Field(
        "local", description="where media bytes live: local (files in data_dir/media, "
                             "served by caas serve) or s3 (any S3-compatible store)")
    media_s3_endpoint: str = Field(
        "s3.amazonaws.com", description="host[:port] of the S3 API, when media_store=s3")
    media_s3_bucket: str = Field("caas-media", description="the S3 bucket (created if missing)")
    media_s3_region: str = Field("us-east-1", description="the bucket's region")
    media_s3_access_key: str = Field("", description="S3 access key id")
    media_s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret access key")
    media_s3_secure: bool = Field(True, description="talk to S3 over https")
    media_s3_virtual_host: bool = Field(
        False, description="virtual-host style S3 URLs (bucket.host) instead of path style")
    media_public_url: str = Field(
        "", description="scheme://host[:port] of the public HTTP endpoint (or a CDN in front "
                        "of it) that download URLs point at; empty: Envoy's own address")
    media_listen: str = Field(
        "127.0.0.1:0", description="host:port where caas serve serves media bytes to Envoy "
                                   "(port 0: any free one)")
    media_url_ttl: Duration = Field(
        timedelta(hours=1), ge=timedelta(minutes=5),
        description="how long signed download URLs work (at least; rounded up to 5 minutes)")
    media_upload_ttl: Duration = Field(
        timedelta(hours=24), gt=timedelta(0),
        description="how long an upload may take to complete before it is deleted")
    media_part_size: int = Field(
        16 * MIB, ge=5 * MIB, le=GIB, description="bytes per upload part (large files: more "
                                                   "parts, at most 10000)")
    media_unattached_ttl: Duration = Field(
        timedelta(days=7), description="a media no message carries is deleted this long after "
                                       "it is processed")
    media_retention: Duration = Field(
        timedelta(0), description="how long the media of a deleted message or user is kept "
                                  "before its bytes are deleted")
    media_processors: int = Field(
        1, ge=0, le=64, description="media processed at the same time by one process (0: "
                                    "this process processes none)")
    media_processing_lease: Duration = Field(
        timedelta(minutes=10), gt=timedelta(0),
        description="how long a process may take to process a media before another one "
                    "takes it over (after a crash, processing resumes this late)")
    media_max_attempts: int = Field(
        5, ge=1, description="processing attempts (each after a crash or an error) before a "
                             "media is FAILED with PROCESSING_FAILED")
    media_clamd: str = Field(
        "", description="host:port or socket path of a ClamAV daemon that scans every "
                        "upload (a finding quarantines it); empty: no scanning")
    metrics_listen: str = Field(
        "", description="host:port of the Prometheus endpoint (GET /metrics, and /healthz "
                        "and /readyz), a port of its own off the public listener; empty: "
                        "none")
    readiness_requires: list[Dependency] = Field(
        default_factory=lambda: list(DEPENDENCIES),
        description="dependencies without which the process is not ready (/readyz 503, "
                    "health NOT_SERVING), each when configured; one left out is still "
                    "probed and reported (caas_component_up) but only degrades service")
    search_engine: Literal["embedded", "elasticsearch"] = Field(
        "embedded", description="where the search index lives: embedded (SQLite FTS5 in "
                                "data_dir/search.db, one server) or elasticsearch")
    search_elasticsearch_url: str = Field(
        "http://127.0.0.1:9200", description="the Elasticsearch URL, when "
                                             "search_engine=elasticsearch")
    search_elasticsearch_api_key: SecretStr = Field(
        SecretStr(""), description="an Elasticsearch API key (encoded); empty: none")
    search_index_prefix: str = Field(
        "caas", pattern=r"^[a-z][a-z0-9_-]{0,40}$",
        description="prefix of the Elasticsearch index and alias names")
    analytics_flush_interval: Duration = Field(
        timedelta(seconds=10), gt=timedelta(0),
        description="how often a process writes the usage it counts itself (API calls, "
                    "stream peaks, webhook attempts, sign-ins); also at shutdown")
    stripe_api_key: SecretStr = Field(
        SecretStr(""), description="Stripe secret key (`sk_…`) that collects invoices; "
        "empty: invoices are issued, numbered, rendered and emailed, and the operator "
        "marks them paid (MarkInvoicePaid)")
    stripe_publishable_key: str = Field(
        "", description="Stripe publishable key (`pk_…`) the portal adds cards with")
    stripe_webhook_secret: SecretStr = Field(
        SecretStr(""), description="signing secret (`whsec_…`) of the Stripe webhook "
        "endpoint `/billing/v1/stripe/webhook`; empty: Stripe's webhooks are refused")
    stripe_api_base: str = Field(
        "", description="another Stripe API address (a test emulator); empty: Stripe's own")
    billing_enabled: bool = Field(
        True, description="enforce the plans' hard caps and run billing (warnings, "
        "invoices, collection); false: the BillingService still answers, nothing is "
        "enforced or invoiced (a deployment that does not bill its apps)")
    billing_interval: Duration = Field(
        timedelta(seconds=60), gt=timedelta(0),
        description="how often billing checks usage against plans (warnings, caps), closes "
                    "ended periods and collects invoices (one process at a time)")
    billing_quota_refresh: Duration = Field(
        timedelta(seconds=10), gt=timedelta(0),
        description="how long a process trusts an app's counts when checking a hard cap "
                    "(how far a cap can be passed before sends are refused)")
    billing_close_grace: Duration = Field(
        timedelta(hours=1), ge=timedelta(0),
        description="how long after a period ends its invoice waits, for the last "
                    "counts of every process to arrive")
    billing_retry_days: list[int] = Field(
        [3, 5, 7], description="days after each failed payment before the next try; after "
        "the last, the subscription is unpaid (capped to the free plan's units)")
    billing_payment_terms: Duration = Field(
        timedelta(days=14), ge=timedelta(0), description="an invoice's due date, after issue")
    billing_currency: str = Field("EUR", pattern=r"^[A-Z]{3}$",
                                  description="currency of the seeded plans (ISO 4217)")
    billing_issuer_name: str = Field("CAAS", description="who issues the invoices")
    billing_issuer_address: str = Field(
        "", description="the issuer's address on invoices (lines separated by `\\n`)")
    billing_issuer_tax_id: str = Field("", description="the issuer's VAT id on invoices")
    billing_invoice_prefix: str = Field(
        "INV", pattern=r"^[A-Z0-9]{1,10}$", description="invoice numbers' prefix: INV-2026-000001")
    billing_credit_note_prefix: str = Field(
        "CN", pattern=r"^[A-Z0-9]{1,10}$", description="credit note numbers' prefix")
    stream_heartbeat_interval: Duration = Field(
        timedelta(seconds=15), description="longest silence on a real-time stream")
    stream_queue_limit: int = Field(
        2_000, gt=0,
        description="events a stream may have waiting; past it the stream ends with "
                    "ABORTED (STREAM_LAGGING) and the client resumes from its token")
    stream_batch_window: Duration = Field(
        timedelta(milliseconds=25), ge=timedelta(0),
        description="under load, how long a process's streams of one app gather events "
                    "before sending them together (one write per stream for all of "
                    "them); an event after a quiet moment goes at once. 0: every commit "
                    "is sent on its own")
    max_streams_per_user: int = Field(
        20, gt=0, description="real-time streams one user may hold open on one server "
                              "process (devices, tabs)")
    typing_ttl: Duration = Field(
        timedelta(seconds=5), description="how long a typing signal shows unless renewed")
    call_ring_timeout: Duration = Field(
        timedelta(seconds=30), description="how long a call rings before the unanswered "
                                           "have missed it")
    call_max_participants: int = Field(
        4, ge=2, le=16, description="devices in one call at once (a full mesh: each sends "
                                   "its media to each other)")
    call_signal_retention: Duration = Field(
        timedelta(minutes=2), description="how long the event log keeps WebRTC signals, "
                                          "for streams resumed after a short cut")
    call_reconnect_grace: Duration = Field(
        timedelta(seconds=30), description="how long a participant's device may stay "
                                           "without a stream before it is dropped from "
                                           "the call")
    stun_urls: list[str] = Field(
        default_factory=list, description="STUN server URLs given to call devices "
                                          "(`stun:host:port`)")
    turn_urls: list[str] = Field(
        default_factory=list, description="TURN server URLs given to call devices "
                                          "(`turn:host:3478?transport=udp`, `turns:…`)")
    turn_secret: SecretStr = Field(
        SecretStr(""), description="the secret shared with the TURN server "
                                   "(coturn `static-auth-secret`) that signs credentials")
    turn_credential_ttl: Duration = Field(
        timedelta(hours=1), description="how long a device's TURN credentials work")
    trusted_proxy_hops: int = Field(
        0, ge=0, le=10, description="proxies of the deployment's own in front of Envoy (a load "
                                    "balancer, a Kubernetes Gateway): a caller's address is "
                                    "then the one the outermost of them saw, for the "
                                    "per-address limits of sign-ins and guests")
    push_contact: str = Field(
        "", description="the contact (`mailto:` or `https:`) push services may use about "
                        "the apps' Web Push, when an app names none (the VAPID `sub`)")
    push_collapse_window: Duration = Field(
        timedelta(seconds=5), description="a conversation's pushes to a device go at most "
                                          "once per window: a burst makes one, with a count")
    push_rate: float = Field(
        1000.0, gt=0, description="pushes per second one app may hand to the providers "
                                 "(bursts of as many); more wait in the queue")
    push_delivery_retention: Duration = Field(
        timedelta(days=7), description="how long sent, failed and cancelled pushes stay "
                                       "listed (ListPushDeliveries)")
    apns_url: str = Field(
        "https://api.push.apple.com", description="APNs for production tokens (a proxy's "
                                                  "or a test stand-in's URL otherwise)")
    apns_sandbox_url: str = Field(
        "https://api.sandbox.push.apple.com", description="APNs for sandbox (development) "
                                                          "tokens")
    fcm_url: str = Field(
        "https://fcm.googleapis.com", description="Firebase Cloud Messaging's HTTP v1 API "
                                                  "(the OAuth token URL is the service "
                                                  "account's own `token_uri`)")
    shutdown_grace: Duration = Field(
        timedelta(seconds=10),
        description="on SIGTERM, how long in-flight calls may finish before being cancelled")
    key_provider: Literal["local"] = Field(
        "local", description="where the key-encryption keys of encryption at rest live: "
                             "local (master key files in key_dir)")
    key_dir: Path | None = Field(
        None, description="directory of the local master keys (made with the first on "
                          "first start; keep it out of the store's backups); unset: "
                          "data_dir/keys")
    content_encryption: bool = Field(
        True, description="seal message content at rest (text, attachment titles and "
                          "links, metadata values, previews, flags' copies) under each "
                          "sender's own data key, for crypto-shredding; off, new content "
                          "is stored in clear (what is sealed still opens)")
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain served on the gRPC port, Envoy's listener "
                          "and the media and metrics ports (with tls_key_file): set, they "
                          "take TLS only. Reloaded when the file is replaced")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle: callers of the gRPC port must present a "
                          "certificate it issued (mutual TLS); Envoy presents tls_cert_file")
    tls_ca_file: Path | None = Field(
        None, description="PEM CA bundle trusted for the connections CAAS makes over TLS "
                          "(Envoy to the server, Redis, Kafka, MongoDB, S3, Elasticsearch); "
                          "unset: the system's")
    tls_self_signed: bool = Field(
        False, description="development: make a local CA and a certificate for this host in "
                           "data_dir/tls, and serve TLS with them (`caas serve "
                           "--tls-self-signed`)")
    portal_url: str = Field(
        "", description="where the portal is, as developers reach it: the links of the "
                        "emails it sends (verification, password reset, invitations) start "
                        "with it; empty: /portal/ where clients reach Envoy")
    portal_dir: Path | None = Field(
        None, description="the built portal (web_bridge/portal/dist) served under /portal/; "
                          "unset: the one of the checkout the server runs from")
    portal_session_lifetime: Duration = Field(
        timedelta(hours=12), gt=timedelta(0),
        description="how long a portal session (developer login) lasts")
    login_lockout_failures: int = Field(
        5, gt=0, description="failed logins in a row that lock a developer account")
    login_lockout_duration: Duration = Field(
        timedelta(minutes=15), gt=timedelta(0),
        description="how long a locked developer account stays locked")
    login_attempts_per_address: int = Field(
        30, gt=0, description="logins, sign-ups and reset requests per client address per "
                              "rate_limit_window")
    login_attempts_per_email: int = Field(
        10, gt=0, description="logins, sign-ups, reset requests and verification emails per "
                              "email address per rate_limit_window")
    guest_sessions_per_address: int = Field(
        30, gt=0, description="guest sessions (AuthService.CreateGuestSession, every app "
                              "together) per client address per rate_limit_window")
    breached_password_url: str = Field(
        "https://api.pwnedpasswords.com/range/",
        description="Have I Been Pwned's range API (k-anonymity: only 5 hex characters of "
                    "the password's SHA-1 leave) that refuses breached passwords; empty: "
                    "no breach check (the strength check stays)")
    invitations_per_window: int = Field(
        20, gt=0, description="invitations an organization may send per rate_limit_window")
    invitation_lifetime: Duration = Field(
        timedelta(days=7), gt=timedelta(0),
        description="how long an organization invitation's link works")
    smtp_host: str = Field("", description="SMTP server of the portal's emails; empty: "
                                           "emails are written to the log (development)")
    smtp_port: int = Field(587, gt=0, lt=65536, description="SMTP server port")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="STARTTLS, implicit TLS (port 465) or none (local relays)")
    smtp_username: str = Field("", description="SMTP login; empty: none")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password")
    mail_from: str = Field("CAAS <no-reply@caas.localhost>",
                           description="the From of the portal's emails")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="log level of the JSON logs on stderr")
    access_log: bool = Field(True, description="log one line per RPC (logger caas.access)")
    access_log_sample: float = Field(
        1.0, ge=0, le=1, description="share of the successful calls the access log keeps "
                                     "(chosen at random); failed calls are always logged")

    @field_validator("webhook_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be more than 0 seconds")
        return value

    @field_validator("webhook_retry_delays")
    @classmethod
    def _delays(cls, value: list[timedelta]) -> list[timedelta]:
        if any(delay < timedelta(0) for delay in value) or len(value) > 50:
            raise ValueError("at most 50 delays, none negative")
        return value

    @field_validator("operator_token")
    @classmethod
    def _operator_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if not secret.startswith(OPERATOR_TOKEN_PREFIX) or len(secret) < 32:
                raise ValueError(
                    f"must start with {OPERATOR_TOKEN_PREFIX!r} and be at least 32 characters "
                    "(`caas admin new-operator-token` makes one)")
        return value

    @model_validator(mode="after")
    def _turn(self) -> Settings:
        if self.turn_urls and not self.turn_secret.get_secret_value():
            raise ValueError("turn_urls needs turn_secret (the TURN server's shared secret)")
        return self

    @model_validator(mode="after")
    def _tls_files(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_self_signed and self.tls_cert_file is not None:
            raise ValueError("tls_self_signed makes its own certificate: unset tls_cert_file")
        if self.tls_client_ca_file is not None and not self.tls_enabled:
            raise ValueError("tls_client_ca_file needs TLS (tls_cert_file or tls_self_signed)")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None or self.tls_self_signed

    @model_validator(mode="after")
    def _default_plan_exists(self) -> Settings:
        if self.default_plan not in self.plans:
            raise ValueError(f"default_plan {self.default_plan!r} is not one of the plans")
        named(self.plans)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The plans' variables are read apart (PlanVariables) and change parts of the
        # plans in force, which are the published ones (PublishedPlans, last) unless a
        # source gives a whole table.
        plans = PlanVariables(settings_cls, os.environ)
        sources: list[PydanticBaseSettingsSource] = [init_settings, Environment(settings_cls),
                                                      plans]
        # Secrets as files (Docker and Compose secrets, Kubernetes Secret volumes): a
        # file per setting named like its variable (`CAAS_OPERATOR_TOKEN`, any case)
        # in CAAS_SECRETS_DIR; below the environment, above the configuration file.
        secrets_dir = os.environ.get("CAAS_SECRETS_DIR")
        if secrets_dir:
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir))
        config_file = os.environ.get("CAAS_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        sources.append(PublishedPlans(settings_cls, plans, _published_plans))
        return tuple(sources)


def _published_plans() -> dict[str, Any]:
    return {name: plan.model_dump() for name, plan in default_plans().items()}


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; `overrides` win over every source (tests use them).

    Raises pydantic.ValidationError naming each bad setting.
    """
    return Settings(**overrides)  # type: ignore[arg-type]


def describe_settings() -> str:
    """One line per setting (environment variable, default, meaning) for --help."""
    lines = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if name == "plans":
            shown = "free, standard, enterprise"
        elif isinstance(default, timedelta):
            shown = f"{int(default.total_seconds())}s"
        else:
            shown = str(default)
        lines.append(f"  CAAS_{name.upper():<22} {field.description} [default: {shown}]")
    return "\n".join(lines)
