"""The OpenAPI document, served by Envoy at /openapi.json: the generated one, valid,
and every path it names is a route that reaches its RPC."""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.support.servers import CaasServer


@pytest.fixture
async def http(server: CaasServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_envoy_serves_the_generated_openapi_document(http: httpx.AsyncClient) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == importlib.resources.files("caas").joinpath(
        "openapi.json").read_bytes()
    document: dict[str, Any] = response.json()
    validate(document)  # type: ignore[arg-type]
    assert (await http.post("/openapi.json")).status_code == 404  # GET only


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_every_documented_operation_reaches_its_rpc(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    operations = 0
    for template, verbs in document["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x1", template)
        for verb, operation in verbs.items():
            body = {} if "requestBody" in operation else None
            response = await http.request(verb.upper(), path, json=body)
            # Without credentials: the RPC's own refusal, never "no RPC has this path".
            reason = [d.get("reason") for d in response.json().get("details", [])]
            assert "METHOD_NOT_FOUND" not in reason, (verb, template)
            assert response.status_code in (400, 401), (verb, template, response.text)
            operations += 1
    assert operations >= 61
