"""Domain errors → gRPC status with `google.rpc.Status` details (AIP-193)."""

from __future__ import annotations

import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from services.core.errors import DomainError

ERROR_DOMAIN = "caas.dev"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def rpc_status(error: DomainError) -> status_pb2.Status:
    """The full status for `error`: ErrorInfo always, the other details when set."""
    details: list[object] = [error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)]
    if error.field_violations:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=v.field, description=v.description, reason=v.reason)
            for v in error.field_violations]))
    if error.quota_violations:
        details.append(error_details_pb2.QuotaFailure(violations=[
            error_details_pb2.QuotaFailure.Violation(subject=v.subject, description=v.description)
            for v in error.quota_violations]))
    if error.retry_after is not None:
        seconds = max(1, math.ceil(error.retry_after.total_seconds()))
        details.append(error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=seconds)))
    if error.resource is not None:
        details.append(error_details_pb2.ResourceInfo(
            resource_type=error.resource[0], resource_name=error.resource[1]))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)  # type: ignore[arg-type]
        packed.append(holder)
    return status_pb2.Status(code=error.code.value[0], message=error.message, details=packed)


def internal_status(request_id: str) -> tuple[grpc.StatusCode, str, status_pb2.Status]:
    """What a client sees of an unexpected failure: nothing but a request id to report."""
    message = f"internal error; report request id {request_id}"
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN,
                                          metadata={"request_id": request_id}))
    return (grpc.StatusCode.INTERNAL, message,
            status_pb2.Status(code=grpc.StatusCode.INTERNAL.value[0], message=message,
                              details=[info]))
