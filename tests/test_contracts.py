"""Properties every RPC of the contract must have."""

from __future__ import annotations

import pytest
from caas.apps.v1 import apps_service_pb2
from caas.auth.v1 import auth_service_pb2
from caas.conversations.v1 import conversations_service_pb2
from caas.messages.v1 import messages_service_pb2
from caas.type.v1 import access_pb2
from caas.users.v1 import users_service_pb2
from google.api import annotations_pb2
from google.protobuf import descriptor as pb_descriptor

SERVICES = [apps_service_pb2.DESCRIPTOR.services_by_name["AppsService"],
            auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"],
            users_service_pb2.DESCRIPTOR.services_by_name["UsersService"],
            conversations_service_pb2.DESCRIPTOR.services_by_name["ConversationsService"],
            messages_service_pb2.DESCRIPTOR.services_by_name["MessagesService"]]
METHODS = [m for s in SERVICES for m in s.methods]


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
