"""Properties every RPC of the contract must have."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from buf.validate import validate_pb2
from caas.apps.v1 import resources_pb2 as apps_res
from caas.errors.v1 import errors_pb2
from caas.type.v1 import access_pb2
from google.api import annotations_pb2
from google.longrunning import operations_proto_pb2
from google.protobuf import descriptor as pb_descriptor
from google.rpc import code_pb2

from services.core.errors import COMMON_REASONS, MEDIA_URL_REASONS, DomainError
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


def _key_scopes() -> set[str]:
    """The scopes an API key may hold: the `in` rule of `ApiKey.scopes`."""
    rules = apps_res.ApiKey.DESCRIPTOR.fields_by_name["scopes"].GetOptions().Extensions[
        validate_pb2.field]
    return set(getattr(rules.repeated.items.string, "in"))


def test_the_scope_catalogue_is_read() -> None:
    assert {"*", "messages:write", "moderation"} <= _key_scopes()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_every_rpc_open_to_api_keys_names_a_known_scope(
        method: pb_descriptor.MethodDescriptor) -> None:
    policy = method.GetOptions().Extensions[access_pb2.access]
    if access_pb2.PRINCIPAL_API_KEY in policy.allow:
        assert policy.api_key_scope in _key_scopes() - {"*"}
    else:
        assert not policy.api_key_scope, "a scope for an RPC that API keys cannot call"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_request_and_response_are_named_after_the_rpc(
        method: pb_descriptor.MethodDescriptor) -> None:
    assert method.input_type.name == f"{method.name}Request"
    if method.output_type.full_name == "google.longrunning.Operation":
        # AIP-151: a long-running RPC names its response and metadata types.
        info = method.GetOptions().Extensions[operations_proto_pb2.operation_info]
        assert method.name == "GetOperation" or (info.response_type and info.metadata_type)
        return
    assert method.output_type.name == f"{method.name}Response"


# Error reasons: the catalogue, what the code raises, what each RPC declares.

REASONS = set(errors_pb2.ErrorReason.keys()) - {"ERROR_REASON_UNSPECIFIED"}
REASON_NAMES = {name.removeprefix("ERROR_REASON_") for name in REASONS}
SERVICES_ROOT = Path(__file__).resolve().parent.parent / "services"


def _declared(method: pb_descriptor.MethodDescriptor) -> set[str]:
    reasons = method.GetOptions().Extensions[errors_pb2.errors].reasons
    return {errors_pb2.ErrorReason.Name(r).removeprefix("ERROR_REASON_") for r in reasons}


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in [direct, *_subclasses(direct)]]


def _raised_reasons() -> dict[str, list[str]]:
    """Every reason the services' code builds an error with → where (file:line, and the
    class built when a DomainError subclass is called with it).

    Found in calls of DomainError and its subclasses (the reason is their first
    argument), in `reason=` keywords (helpers such as `invalid_field`, ErrorInfo) and in
    the defaults of `reason` parameters. A reason that is neither a literal nor a
    `reason` parameter fails: the scan could not see it."""
    classes = {"DomainError", *(c.__name__ for c in _subclasses(DomainError))}
    found: dict[str, list[str]] = {}
    for path in sorted(SERVICES_ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SERVICES_ROOT.parent)}:{getattr(node, 'lineno', 0)}"
            values: list[ast.expr] = []
            if isinstance(node, ast.Call):
                func = node.func
                name = (func.id if isinstance(func, ast.Name)
                        else func.attr if isinstance(func, ast.Attribute) else "")
                if name in classes and node.args:
                    values.append(node.args[0])
                    where += f" {name}"
                values += [k.value for k in node.keywords if k.arg == "reason"]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = node.args
                positional = [*arguments.posonlyargs, *arguments.args]
                defaults = dict(zip([a.arg for a in positional[-len(arguments.defaults):]],
                                    arguments.defaults, strict=True)) if arguments.defaults else {}
                defaults |= {a.arg: d for a, d in zip(arguments.kwonlyargs,
                                                      arguments.kw_defaults, strict=True) if d}
                if "reason" in defaults:
                    values.append(defaults["reason"])
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found.setdefault(value.value, []).append(where)
                else:
                    assert isinstance(value, ast.Name | ast.Attribute), (
                        f"{where}: an error reason the scan cannot read")
    return found


def test_the_reason_scan_sees_the_errors() -> None:
    raised = _raised_reasons()
    assert {"RESOURCE_NOT_FOUND", "APP_MISMATCH", "USER_MISMATCH", "REQUEST_INVALID",
            "STREAM_LAGGING", "WEBHOOK_BUSY", "INTERNAL"} <= raised.keys()


def test_every_reason_raised_is_in_the_catalogue() -> None:
    unknown = {reason: where for reason, where in _raised_reasons().items()
               if reason not in REASON_NAMES}
    assert not unknown, f"raised but not values of caas.errors.v1.ErrorReason: {unknown}"


def _code_of(reason: str) -> str:
    value = errors_pb2.ErrorReason.DESCRIPTOR.values_by_name[f"ERROR_REASON_{reason}"]
    return code_pb2.Code.Name(value.GetOptions().Extensions[errors_pb2.code])


@pytest.mark.parametrize("reason", sorted(REASON_NAMES))
def test_every_reason_declares_its_grpc_code(reason: str) -> None:
    assert _code_of(reason) != "OK"


def test_reasons_are_raised_with_their_declared_code() -> None:
    codes = {cls.__name__: cls.code.name for cls in [DomainError, *_subclasses(DomainError)]}
    wrong = [f"{where}: {reason} is {_code_of(reason)}"
             for reason, places in _raised_reasons().items() for where in places
             if " " in where and codes[where.split(" ")[1]] != _code_of(reason)]
    assert wrong == []


def test_common_reasons_are_in_the_catalogue() -> None:
    assert set(COMMON_REASONS) <= REASON_NAMES


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_every_rpc_declares_its_errors(method: pb_descriptor.MethodDescriptor) -> None:
    assert method.GetOptions().HasExtension(errors_pb2.errors), (
        "needs an option (caas.errors.v1.errors) listing its error reasons")
    reasons = method.GetOptions().Extensions[errors_pb2.errors].reasons
    assert len(reasons) == len(set(reasons)), "a reason is listed twice"
    assert errors_pb2.ERROR_REASON_UNSPECIFIED not in reasons


def test_every_reason_but_the_common_ones_is_declared_by_an_rpc() -> None:
    declared = set().union(*(_declared(m) for m in METHODS))
    assert REASON_NAMES - set(COMMON_REASONS) - set(MEDIA_URL_REASONS) - declared == set()


def test_rpcs_declare_what_their_actions_say() -> None:
    """Spot checks against the code: rules that an RPC's declaration must keep."""
    by_name = {m.full_name: _declared(m) for m in METHODS}
    users_only = {m.full_name for m in METHODS
                  if list(m.GetOptions().Extensions[access_pb2.access].allow)
                  == [access_pb2.PRINCIPAL_USER]}
    assert "caas.realtime.v1.RealtimeService.Subscribe" in users_only
    assert {"RESUME_TOKEN_EXPIRED", "RESUME_TOKEN_FOREIGN", "RESUME_TOKEN_AHEAD",
            "STREAM_LAGGING"} <= by_name["caas.realtime.v1.RealtimeService.Subscribe"]
    assert "REFRESH_TOKEN_REUSED" in by_name["caas.auth.v1.AuthService.RefreshSession"]
    # Every RPC that takes a page token may refuse it.
    for method in METHODS:
        if "page_token" in method.input_type.fields_by_name:
            assert "PAGE_TOKEN_INVALID" in by_name[method.full_name], method.full_name
        # Operator-only RPCs never see another app's credentials.
        allow = list(method.GetOptions().Extensions[access_pb2.access].allow)
        if allow == [access_pb2.PRINCIPAL_OPERATOR]:
            assert "APP_MISMATCH" not in by_name[method.full_name], method.full_name
        elif {access_pb2.PRINCIPAL_API_KEY, access_pb2.PRINCIPAL_USER} & set(allow):
            # App credentials may name another app than theirs.
            assert "APP_MISMATCH" in by_name[method.full_name], method.full_name
