"""Properties every RPC of the contract must have."""

from __future__ import annotations

import pytest
from caas.type.v1 import access_pb2
from google.api import annotations_pb2
from google.protobuf import descriptor as pb_descriptor

from services.runtime import Runtime
from services.server import contract_services, services

SERVICES = contract_services()
METHODS = [m for s in SERVICES for m in s.methods]


def test_the_server_serves_exactly_the_contract_services(runtime: Runtime) -> None:
    """What Envoy transcodes and these checks cover (`contract_services`) is what the
    server serves."""
    assert [d.full_name for d, _ in services(runtime)] == [s.full_name for s in SERVICES]
    assert "caas.realtime.v1.RealtimeService" in [s.full_name for s in SERVICES]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_every_rpc_has_an_http_rule_and_an_access_policy(
        method: pb_descriptor.MethodDescriptor) -> None:
    options = method.GetOptions()
    rule = options.Extensions[annotations_pb2.http]
    assert rule.WhichOneof("pattern") is not None, "needs a google.api.http annotation"
    assert getattr(rule, rule.WhichOneof("pattern")).startswith("/v1/")
    assert list(options.Extensions[access_pb2.access].allow), "needs a caas.type.v1.access policy"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_request_and_response_are_named_after_the_rpc(
        method: pb_descriptor.MethodDescriptor) -> None:
    assert method.input_type.name == f"{method.name}Request"
    assert method.output_type.name == f"{method.name}Response"
