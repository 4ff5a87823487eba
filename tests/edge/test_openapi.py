"""The OpenAPI document of the JSON surface: valid, complete, and where Envoy puts fields."""

from __future__ import annotations

import importlib.resources
import json
import re
from typing import Any

import pytest
from caas.errors.v1 import errors_pb2
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import descriptor_pb2
from openapi_spec_validator import validate

from services.core.errors import COMMON_REASONS
from services.edge.openapi import openapi_document
from services.server import contract_services
from tests.conftest import repo_root

SERVICES = contract_services()
METHODS = [m for s in SERVICES for m in s.methods]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    files = descriptor_pb2.FileDescriptorSet.FromString(
        (repo_root() / "gen/caas.binpb").read_bytes())
    return openapi_document(files, [s.full_name for s in SERVICES])


def operation(document: dict[str, Any], grpc_method: str) -> tuple[str, str, dict[str, Any]]:
    """(verb, path, operation) of the first HTTP binding of a gRPC method."""
    for path, operations in document["paths"].items():
        for verb, op in operations.items():
            if op["x-grpc-method"] == grpc_method and not op["operationId"][-1].isdigit():
                return verb.upper(), path, op
    raise AssertionError(f"no operation for {grpc_method}")


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def params(op: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", ()) if p["in"] == where}


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises on an invalid document or a dangling $ref
    assert document["openapi"].startswith("3.1")
    assert document["servers"][0]["url"] == "http://127.0.0.1:8080"
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_the_packaged_document_is_the_contracts(document: dict[str, Any]) -> None:
    """gen/python/caas/openapi.json ships in the caas package, fresh from the contract."""
    text = importlib.resources.files("caas").joinpath("openapi.json").read_text()
    assert json.loads(text) == document
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _rules(method: pb_descriptor.MethodDescriptor) -> list[http_pb2.HttpRule]:
    rule = method.GetOptions().Extensions[annotations_pb2.http]
    return [rule, *rule.additional_bindings]


def _concrete(template: str) -> str:
    """A request path matching an HTTP rule's template: every `*` becomes `x1`."""
    def variable(match: re.Match[str]) -> str:
        return (match.group(2) or "*").replace("**", "x1").replace("*", "x1")
    return re.sub(r"\{([^}=]+)(?:=([^}]*))?\}", variable, template)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_every_http_rule_is_an_operation(document: dict[str, Any],
                                         method: pb_descriptor.MethodDescriptor) -> None:
    grpc_method = f"{method.containing_service.full_name}/{method.name}"
    found = sorted((verb.upper(), path, op["operationId"])
                   for path, ops in document["paths"].items() for verb, op in ops.items()
                   if op["x-grpc-method"] == grpc_method)
    expected = []
    for index, rule in enumerate(_rules(method)):
        kind = rule.WhichOneof("pattern")
        template = rule.custom.path if kind == "custom" else getattr(rule, kind)
        verb = rule.custom.kind.upper() if kind == "custom" else kind.upper()
        expected.append((verb, _concrete(template), f"{method.containing_service.name}_"
                         f"{method.name}" + (f"_{index}" if index else "")))
    assert [(v, re.sub(r"\{[^}]+\}", "x1", p), o) for v, p, o in found] == sorted(expected)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_operations_carry_access_and_errors(document: dict[str, Any],
                                            method: pb_descriptor.MethodDescriptor) -> None:
    _, _, op = operation(document, f"{method.containing_service.full_name}/{method.name}")
    declared = [errors_pb2.ErrorReason.Name(r).removeprefix("ERROR_REASON_")
                for r in method.GetOptions().Extensions[errors_pb2.errors].reasons]
    assert op["x-caas-errors"] == declared
    assert all(f"`{reason}`" in op["description"] for reason in declared)
    assert op["x-caas-access"]
    assert op["tags"] == [method.containing_service.name]
    assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/google.rpc.Status"}


def test_create_message_request_id_is_a_query_parameter(document: dict[str, Any]) -> None:
    verb, path, op = operation(document, "caas.messages.v1.MessagesService/CreateMessage")
    assert (verb, path) == ("POST", "/v1/apps/{app}/conversations/{conversation}/messages")
    query = params(op, "query")
    assert list(query) == ["request_id"]
    assert query["request_id"]["required"] is True
    assert query["request_id"]["schema"] == {"type": "string",
                                             "pattern": "^[A-Za-z0-9_-]{1,64}$"}
    body = op["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"]["$ref"] == (
        "#/components/schemas/caas.messages.v1.Message")
    path_params = params(op, "path")
    assert list(path_params) == ["app", "conversation"]
    assert path_params["app"]["schema"]["pattern"] == "^[a-z][a-z0-9-]{1,38}[a-z0-9]$"
    assert "`parent`" in path_params["conversation"]["description"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "caas.messages.v1.CreateMessageResponse")
    assert op["responses"]["403"] and op["responses"]["404"]


def test_body_star_is_the_request_without_path_fields(document: dict[str, Any]) -> None:
    _, path, op = operation(document, "caas.messages.v1.MessagesService/AddReaction")
    assert path.endswith("/messages/{message}:addReaction")
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert list(body["properties"]) == ["emoji"]
    assert body["required"] == ["emoji"]
    assert body["properties"]["emoji"]["minLength"] == 1
    assert "parameters" not in op or not params(op, "query")


def test_get_fields_are_query_parameters(document: dict[str, Any]) -> None:
    _, _, op = operation(document, "caas.messages.v1.MessagesService/ListMessages")
    query = params(op, "query")
    assert list(query) == ["page_size", "before_sequence", "after_sequence",
                           "around_sequence", "thread_root_sequence", "filter"]
    assert query["filter"]["schema"] == {"type": "string", "maxLength": 1024}
    assert query["page_size"]["schema"] == {"type": "integer", "format": "int32",
                                            "minimum": 0, "maximum": 200}
    assert query["before_sequence"]["schema"] == {"type": "string", "format": "int64"}
    assert "position" in query["before_sequence"]["description"]
    _, _, op = operation(document, "caas.realtime.v1.RealtimeService/BatchGetPresences")
    names = params(op, "query")["names"]
    assert names["schema"]["type"] == "array" and names["explode"] is True
    assert names["schema"]["maxItems"] == 100
    _, _, op = operation(document, "caas.messages.v1.MessagesService/UpdateMessage")
    assert list(params(op, "query")) == ["update_mask"]
    assert "comma" in params(op, "query")["update_mask"]["description"]


def test_subscribe_answers_a_json_array(document: dict[str, Any]) -> None:
    verb, path, op = operation(document, "caas.realtime.v1.RealtimeService/Subscribe")
    assert (verb, path) == ("POST", "/v1/apps/{app}/users/{user}:subscribe")
    ok = op["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/"
                                           "caas.realtime.v1.SubscribeResponse"}}
    assert '{"error": <google.rpc.Status>}' in ok["description"]
    assert {"RESUME_TOKEN_FOREIGN", "RESUME_TOKEN_AHEAD"} <= set(op["x-caas-errors"])


def test_anonymous_rpcs_need_no_credentials(document: dict[str, Any]) -> None:
    _, _, op = operation(document, "caas.auth.v1.AuthService/RefreshSession")
    assert op["security"] == []
    _, _, op = operation(document, "caas.auth.v1.AuthService/CreateSession")
    assert "security" not in op  # the document's default: bearerAuth


def test_schemas_follow_the_proto3_json_mapping(document: dict[str, Any]) -> None:
    message = schema(document, "caas.messages.v1.Message")["properties"]
    assert {"senderId", "createTime", "threadRootSequence", "mentionIds"} <= set(message)
    assert message["createTime"] == message["createTime"] | {
        "type": "string", "format": "date-time", "readOnly": True}
    assert message["sequence"]["type"] == "string" and message["sequence"]["readOnly"]
    assert message["text"]["maxLength"] == 4000
    assert message["attachments"]["maxItems"] == 10
    assert message["mentionIds"]["uniqueItems"] is True
    assert message["metadata"]["maxProperties"] == 16
    assert message["metadata"]["additionalProperties"]["maxLength"] == 1024
    assert message["metadata"]["propertyNames"]["pattern"] == "^[A-Za-z0-9_.-]{1,64}$"
    assert message["state"]["$ref"].endswith("caas.messages.v1.Message.State")
    # Empty means unset for sender_id: the pattern holds only for a value.
    assert message["senderId"]["anyOf"][0] == {"const": ""}
    attachment = schema(document, "caas.messages.v1.Attachment")
    assert "required" not in attachment  # a media, or a uri and a kind
    assert attachment["properties"]["media"]["anyOf"][0] == {"const": ""}
    assert attachment["properties"]["sizeBytes"]["type"] == "string"
    state = schema(document, "caas.messages.v1.Message.State")
    assert state["type"] == "string"
    assert state["enum"] == ["STATE_UNSPECIFIED", "STATE_ACTIVE", "STATE_DELETED"]
    ttl = schema(document, "caas.auth.v1.CreateSessionRequest")["properties"]["accessTokenTtl"]
    assert ttl["type"] == "string" and "1.5s" in ttl["description"]
    status = schema(document, "google.rpc.Status")["properties"]
    assert status["details"]["items"]["required"] == ["@type"]
    assert "google.rpc.ErrorInfo" in document["components"]["schemas"]


def test_common_errors_are_listed_once(document: dict[str, Any]) -> None:
    description = document["info"]["description"]
    assert all(f"| `{reason}` |" in description for reason in COMMON_REASONS)
    assert "| `REQUEST_TOO_LARGE` | RESOURCE_EXHAUSTED | 413 |" in description
