"""Thousands of malformed JSON requests across every HTTP route of the contract: each
must come back a 4xx with a `google.rpc.Status` JSON body — never text/plain, never
a 5xx — and leave no gRPC core error in the server's log.

The requests are built from the descriptors, so every route and every field is
covered as the contract grows: broken JSON syntax and encodings, a value of the wrong
JSON type for each field of each body, unknown fields and query parameters, query
values that do not parse, paths with control characters or broken escapes, and a
malformed `grpc-timeout`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from services.server import contract_services
from tests.e2e.test_http import auth
from tests.e2e.test_http_errors import GRPC_CORE_LOG
from tests.support.chat import Person
from tests.support.servers import CaasServer

T = FieldDescriptor
INTEGERS = {T.TYPE_INT32, T.TYPE_INT64, T.TYPE_UINT32, T.TYPE_UINT64, T.TYPE_SINT32,
            T.TYPE_SINT64, T.TYPE_FIXED32, T.TYPE_FIXED64, T.TYPE_SFIXED32, T.TYPE_SFIXED64}
FREE_FORM = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
             "google.protobuf.Any"}
STRING_FORMS = {"google.protobuf.Timestamp", "google.protobuf.Duration",
                "google.protobuf.FieldMask"}
# Bodies that are no JSON object of any message.
BROKEN_BODIES = [b"{", b"}", b"[", b'{"a":', b'{"a" 1}', b"{'a': 1}", b'{"a": 1,}', b"nul",
                 b'{"a": tru}', b'{"a": "\x01"}', b'"\xff\xfe"', b'{"\xc3\x28": 1}',
                 b"\x00\x01\x02", b'{"a": 1} {"b": 2}', b"[1, 2, 3]", b"42", b'"text"',
                 b"true", b'{"a": [1, 2}', b'{"a": {"b": 1}']


@dataclass(frozen=True)
class Route:
    rpc: str
    verb: str
    path: str  # with every variable filled in
    body: Descriptor | None  # the message the body holds, None if no body
    query: tuple[FieldDescriptor, ...]  # request fields outside path and body


def _routes() -> list[Route]:
    routes = []
    for service in contract_services():
        for method in service.methods:
            top = method.GetOptions().Extensions[annotations_pb2.http]
            for rule in (top, *top.additional_bindings):
                routes.append(_route(f"{service.name}/{method.name}", method.input_type, rule))
    return routes


def _route(rpc: str, request: Descriptor, rule: http_pb2.HttpRule) -> Route:
    verb = rule.WhichOneof("pattern")
    template = getattr(rule, verb)
    path = re.sub(r"\{[^}=]+=([^}]+)\}", lambda m: m.group(1).replace("*", "x1"), template)
    path = re.sub(r"\{[^}]+\}", "x1", path)
    bound = {rule.body, *(v.split(".")[0] for v in re.findall(r"\{([^}=]+)", template))}
    body: Descriptor | None = None
    if rule.body == "*":
        body = request
    elif rule.body:
        body = request.fields_by_name[rule.body].message_type
    query = tuple(f for f in request.fields if f.name not in bound and rule.body != "*")
    return Route(rpc, verb.upper(), path, body, query)


def _wrong_values(field: FieldDescriptor) -> list[str]:
    """JSON values no proto3 JSON parser takes for `field`."""
    if field.is_repeated and not (field.message_type
                                  and field.message_type.GetOptions().map_entry):
        return ['{"k": 1}', '"not a list"'] if field.type != T.TYPE_MESSAGE else ['"x"']
    if field.message_type is not None:
        name = field.message_type.full_name
        if field.message_type.GetOptions().map_entry:
            return ["[1]", "5"]
        if name in FREE_FORM:
            return []
        if name in STRING_FORMS:
            return ['"not a time or duration {"', "[1]", "{}"] if name != (
                "google.protobuf.FieldMask") else ["5", "[1]"]
        return ["5", '"x"', "true", "[1]"]
    if field.type == T.TYPE_STRING:
        return ["5", "true", '{"a": 1}', "[1]"]
    if field.type == T.TYPE_BYTES:
        return ['"not base64 !!!"', "5", "{}"]
    if field.type == T.TYPE_BOOL:
        return ['"maybe"', "5", "{}"]
    if field.type == T.TYPE_ENUM:
        return ['"NOT_A_VALUE_OF_THIS_ENUM"', "{}", "true"]
    if field.type in INTEGERS:
        return ['"abc"', "1.5", "{}", "true", "1e400"]
    return ['"abc"', "{}", "true"]  # float, double


def _bad_query_values(field: FieldDescriptor) -> list[str]:
    if field.message_type is not None or field.type in (T.TYPE_STRING, T.TYPE_BYTES):
        return []
    if field.type == T.TYPE_BOOL:
        return ["maybe"]
    if field.type == T.TYPE_ENUM:
        return ["NOT_A_VALUE_OF_THIS_ENUM"]
    if field.type in INTEGERS:
        return ["abc", "1.5", "99999999999999999999999"]
    return ["abc"]


@dataclass(frozen=True)
class Case:
    why: str
    method: str
    path: str
    params: dict[str, str]
    body: bytes | None
    headers: dict[str, str]


def cases(routes: list[Route]) -> Iterator[Case]:
    json = {"content-type": "application/json"}
    for route in routes:
        empty = b"{}" if route.body is not None else None
        # The path.
        for bad in ("%00", "%zz", "%1f", "%", "%7F", "a%0Ab"):
            yield Case(f"{route.rpc} path {bad}", route.verb, route.path + "/" + bad, {},
                       empty, json)
        # Headers and the query string.
        for timeout in ("1", "soon", "123456789S", "-1S"):
            yield Case(f"{route.rpc} grpc-timeout {timeout}", route.verb, route.path, {}, empty,
                       {**json, "grpc-timeout": timeout})
        for unknown in ("bogus", "zz_top", "pageSize2"):
            yield Case(f"{route.rpc} query {unknown}", route.verb, route.path, {unknown: "1"},
                       empty, json)
        for field in route.query:
            for value in _bad_query_values(field):
                yield Case(f"{route.rpc} query {field.name}={value}", route.verb, route.path,
                           {field.name: value}, empty, json)
        if route.body is None:
            continue
        # The body.
        for broken in BROKEN_BODIES:
            yield Case(f"{route.rpc} body {broken!r}", route.verb, route.path, {}, broken, json)
        yield Case(f"{route.rpc} unknown field", route.verb, route.path, {},
                   b'{"zzNoSuchField": 1}', json)
        for field in route.body.fields:
            for name in {field.json_name, field.name}:
                for value in _wrong_values(field):
                    yield Case(f"{route.rpc} {name}={value}", route.verb, route.path, {},
                               f'{{"{name}": {value}}}'.encode(), json)
            if field.message_type is not None and not (
                    field.message_type.GetOptions().map_entry
                    or field.message_type.full_name in FREE_FORM | STRING_FORMS):
                inner = "[{}]" if field.is_repeated else "{}"
                nested = inner.replace("{}", '{"zzNoSuchField": 1}')
                yield Case(f"{route.rpc} {field.json_name}.zzNoSuchField", route.verb,
                           route.path, {}, f'{{"{field.json_name}": {nested}}}'.encode(), json)


def test_the_fuzz_covers_every_route_with_thousands_of_requests() -> None:
    routes = _routes()
    assert {r.rpc for r in routes} == {f"{s.name}/{m.name}" for s in contract_services()
                                       for m in s.methods}
    built = list(cases(routes))
    assert len(built) >= 2000
    assert {c.why.split(" ")[0] for c in built} == {r.rpc for r in routes}


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_malformed_json_requests_are_4xx_with_a_status_body(
        server: CaasServer, alice: Person) -> None:
    log_start = len(server.process.lines)
    built = list(cases(_routes()))
    failures: list[str] = []
    statuses: dict[int, int] = {}
    gate = asyncio.Semaphore(32)
    limits = httpx.Limits(max_connections=32)

    async def send(client: httpx.AsyncClient, case: Case) -> None:
        async with gate:
            # Paths are sent as written: httpx would normalise their escapes.
            url = httpx.URL(server.http_url, raw_path=_raw(case.path, case.params))
            response = await client.request(case.method, url, content=case.body,
                                             headers={**case.headers, **auth(alice)})
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        problem = _problem(response)
        if problem:
            failures.append(f"{case.why}: {problem}")

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(send(client, case) for case in built))
    assert not failures, f"{len(failures)} of {len(built)}:\n" + "\n".join(failures[:40])
    assert sum(statuses.values()) == len(built) >= 2000
    assert all(400 <= status < 500 for status in statuses)
    assert not [line for line in server.process.lines[log_start:] if GRPC_CORE_LOG.match(line)]


def _raw(path: str, params: dict[str, str]) -> bytes:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return (path + ("?" + query if query else "")).encode()


def _problem(response: httpx.Response) -> str:
    """What is wrong with an answer to a malformed request ("" if nothing)."""
    if not 400 <= response.status_code < 500:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if response.headers.get("content-type") != "application/json":
        return f"content-type {response.headers.get('content-type')}: {response.text[:200]}"
    try:
        body: Any = response.json()
    except ValueError:
        return f"not JSON: {response.text[:200]}"
    if not (isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] > 0
            and isinstance(body.get("message"), str) and isinstance(body.get("details"), list)):
        return f"not a google.rpc.Status: {body}"
    reasons = [d.get("reason") for d in body["details"]
               if d.get("@type", "").endswith("google.rpc.ErrorInfo")]
    if not reasons or not reasons[0]:
        return f"no ErrorInfo reason: {body}"
    return ""
