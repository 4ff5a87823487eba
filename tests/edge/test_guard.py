"""The edge guard's own answers use the error catalogue: each reason it gives exists, with
the gRPC code the catalogue declares for it."""

from __future__ import annotations

import re

import grpc
import pytest
from caas.errors.v1 import errors_pb2

from services.edge.guard import GRPC_ERRORS, HTTP_ERRORS, guard_filter

ANSWERS = sorted({(code, reason) for code, reason in HTTP_ERRORS.values()}
                 | {(code, reason) for *_, code, reason in GRPC_ERRORS}, key=str)
# Where the gRPC protocol fixes the code, whatever the reason's own (said in its comment).
PROTOCOL_CODES = {("METHOD_NOT_FOUND", grpc.StatusCode.UNIMPLEMENTED)}


@pytest.mark.parametrize(("code", "reason"), ANSWERS)
def test_every_reason_of_the_edge_is_catalogued_with_its_code(
        code: grpc.StatusCode, reason: str) -> None:
    value = errors_pb2.ErrorReason.DESCRIPTOR.values_by_name[f"ERROR_REASON_{reason}"]
    declared = value.GetOptions().Extensions[errors_pb2.code]
    assert declared == code.value[0] or (reason, code) in PROTOCOL_CODES


def test_the_reasons_the_lua_source_writes_are_catalogued() -> None:
    written = set(re.findall(r'"([A-Z]+(?:_[A-Z]+)+)"', guard_filter()))
    catalogue = {name.removeprefix("ERROR_REASON_")
                 for name in errors_pb2.ErrorReason.DESCRIPTOR.values_by_name}
    assert written and written <= catalogue
