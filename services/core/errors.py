"""Domain errors: what went wrong, in terms a client can act on.

Each error has a gRPC status code, a stable reason (a name of
`caas.errors.v1.ErrorReason` without its prefix), a message safe to show to the
caller, and optional structured details. One gateway stage turns them into
`google.rpc.Status`; nothing else about the failure reaches the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import grpc

# Reasons any call may get, from the gateway or the edge, whatever its RPC: listed once
# in the API reference; every other reason is declared by the RPCs that may return it
# (`option (caas.errors.v1.errors)`). METHOD_NOT_FOUND answers a call that names no RPC.
COMMON_REASONS = (
    "CREDENTIALS_MISSING", "CREDENTIALS_MALFORMED", "API_KEY_INVALID", "API_KEY_REVOKED",
    "API_KEY_EXPIRED", "API_KEY_SCOPE_MISSING", "ACCESS_TOKEN_INVALID", "ACCESS_TOKEN_EXPIRED",
    "SESSION_REVOKED", "ACCOUNT_SESSION_INVALID", "MFA_REQUIRED_BY_ORGANIZATION",
    "OPERATOR_TOKEN_INVALID", "APP_UNAVAILABLE", "PRINCIPAL_NOT_ALLOWED", "REQUEST_INVALID",
    "REQUEST_MALFORMED", "REQUEST_TOO_LARGE", "RATE_LIMITED", "METHOD_NOT_FOUND",
    "UNAVAILABLE", "STORAGE_FULL", "DEADLINE_EXCEEDED", "INTERNAL")
# Reasons of the plain HTTP routes (media URLs: services/media/http.py; billing's:
# services/billing/http.py), which no RPC returns.
MEDIA_URL_REASONS = ("URL_SIGNATURE_INVALID", "URL_EXPIRED", "STRIPE_WEBHOOK_SIGNATURE_INVALID")


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One field that breaks the contract: its path (`app.display_name`) and why."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """An exhausted budget: whose (`app:demo`) and which one."""

    subject: str
    description: str


@dataclass(eq=False)
class DomainError(Exception):
    """Base of every error the server reports deliberately."""

    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    quota_violations: tuple[QuotaViolation, ...] = ()
    retry_after: timedelta | None = None
    resource: tuple[str, str] | None = None  # (resource type, resource name)

    code = grpc.StatusCode.UNKNOWN

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


class OutOfRange(DomainError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Aborted(DomainError):
    code = grpc.StatusCode.ABORTED


def not_found(resource_type: str, name: str) -> NotFound:
    """The named resource does not exist, or the caller may not learn that it does."""
    return NotFound("RESOURCE_NOT_FOUND", f"{name} not found",
                    metadata={"resource": name}, resource=(resource_type, name))


def already_exists(resource_type: str, name: str) -> AlreadyExists:
    return AlreadyExists("RESOURCE_ALREADY_EXISTS", f"{name} already exists",
                         metadata={"resource": name}, resource=(resource_type, name))


def invalid_field(field_path: str, description: str, reason: str = "REQUEST_INVALID"
                  ) -> InvalidArgument:
    return InvalidArgument(reason, f"invalid {field_path}: {description}",
                           field_violations=(FieldViolation(field_path, description),))


class CapacityExceeded(Exception):
    """A store write would pass a count limit (members of a conversation, reactions of a
    message). Raised by store adapters, with nothing written; `limit` names it."""

    def __init__(self, limit: str, maximum: int) -> None:
        super().__init__(f"{limit} exceeds {maximum}")
        self.limit = limit
        self.maximum = maximum


def limit_exceeded(limit: str, maximum: int) -> FailedPrecondition:
    return FailedPrecondition("LIMIT_EXCEEDED", f"at most {maximum} {limit}",
                              metadata={"limit": limit, "maximum": str(maximum)})


class StoreConflict(Exception):
    """A store write lost to a concurrent one (unique key taken, compare-and-set failed).

    Raised by store adapters; actions turn it into a domain error or retry.
    """
