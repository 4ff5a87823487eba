"""The Envoy configuration: built from the contracts, accepted by Envoy itself."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from services.core.settings import Settings
from services.core.tls import self_signed
from services.edge.envoy import EdgeConfig, EdgeTls, descriptor_set, edge_config, find_envoy
from services.server import contract_services
from tests.support.servers import BIN

REPO = Path(__file__).resolve().parents[2]


def envoy_binary() -> str:
    binary = find_envoy("envoy")
    assert binary is not None, "envoy is not installed: run scripts/bootstrap.sh"
    return binary


def validate(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(config)],
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def runtime_config(tmp_path: Path, **changes: Any) -> EdgeConfig:
    (tmp_path / "caas.binpb").write_bytes(descriptor_set(contract_services()))
    settings = Settings(**changes)
    return edge_config(contract_services(), listen=settings.http_listen,
                       upstream=settings.listen, descriptor_path=str(tmp_path / "caas.binpb"),
                       cors_origins=settings.cors_origins,
                       max_request_bytes=settings.max_request_bytes,
                       max_connections=settings.http_max_connections)


def transcoder(config: dict[str, Any]) -> dict[str, Any]:
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    return next(f["typed_config"] for f in manager["typed_config"]["http_filters"]
                if f["name"] == "envoy.filters.http.grpc_json_transcoder")


def test_the_committed_config_validates() -> None:
    done = validate(REPO / "envoy/envoy.json", REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout


def test_the_config_caas_serve_renders_validates(tmp_path: Path) -> None:
    config = runtime_config(tmp_path, cors_origins=["https://*.example.com"])
    (tmp_path / "envoy.json").write_text(json.dumps(config.render()))
    done = validate(tmp_path / "envoy.json", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_config_does_not_validate(tmp_path: Path) -> None:
    """The check above can fail: Envoy refuses a service the descriptors lack."""
    config = runtime_config(tmp_path)
    rendered = config.render()
    transcoder(rendered)["services"].append("caas.nope.v1.NopeService")
    (tmp_path / "envoy.json").write_text(json.dumps(rendered))
    assert validate(tmp_path / "envoy.json", tmp_path).returncode != 0


def test_every_service_is_transcoded_and_every_stream_has_its_route(tmp_path: Path) -> None:
    rendered = runtime_config(tmp_path).render()
    services = [s.full_name for s in contract_services()]
    assert transcoder(rendered)["services"] == services
    routes = (rendered["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
              ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"])
    unlimited = {r["match"].get("path") for r in routes
                 if r.get("route", {}).get("timeout") == "0s"}
    assert "/caas.realtime.v1.RealtimeService/Subscribe" in unlimited
    streaming = {f"/{s.full_name}/{m.name}" for s in contract_services() for m in s.methods
                 if m.server_streaming}
    assert streaming <= unlimited


def test_the_descriptor_set_carries_error_details() -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set(contract_services()))
    names = [f.name for f in files.file]
    assert {"google/rpc/status.proto", "google/rpc/error_details.proto",
            "google/protobuf/any.proto"} <= set(names)
    # Dependencies come before the files that import them.
    for index, file in enumerate(files.file):
        assert set(file.dependency) <= set(names[:index]), file.name


@pytest.mark.parametrize(("pattern", "origin", "allowed"), [
    ("http://localhost:*", "http://localhost:5173", True),
    ("http://localhost:*", "http://localhost.evil.example", False),
    ("http://localhost:*", "http://localhost:80/x", False),
    ("https://*.example.com", "https://app.example.com", True),
    ("https://*.example.com", "https://example.com.evil.io", False),
    ("https://chat.example.com", "https://chat.example.com", True),
    ("https://chat.example.com", "https://chat.example.com.evil.io", False),
])
def test_origin_patterns(tmp_path: Path, pattern: str, origin: str, allowed: bool) -> None:
    cors = runtime_config(tmp_path, cors_origins=[pattern]).render()
    manager = (cors["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
               ["typed_config"])
    policy = manager["route_config"]["virtual_hosts"][0]["typed_per_filter_config"][
        "envoy.filters.http.cors"]
    matcher = policy["allow_origin_string_match"][0]
    matched = (re.fullmatch(matcher["safe_regex"]["regex"], origin) is not None
               if "safe_regex" in matcher else matcher["exact"] == origin)
    assert matched is allowed


def test_a_taken_http_port_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(BIN / "caas"), "serve"], cwd=tmp_path, capture_output=True, text=True,
            timeout=60, check=False,
            env={**os.environ, "CAAS_DATA_DIR": str(tmp_path), "CAAS_LISTEN": "127.0.0.1:0",
                 "CAAS_HTTP_LISTEN": f"127.0.0.1:{port}"})
    assert done.returncode != 0
    assert f"cannot start Envoy on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_config_with_tls_validates(tmp_path: Path) -> None:
    files = self_signed(tmp_path)
    tls = EdgeTls(cert=str(files.cert), key=str(files.key), trusted_ca=str(files.ca),
                  client_cert=True, secrets_dir=str(tmp_path))
    for name, secret in tls.secrets().items():
        (tmp_path / f"{name}.json").write_text(json.dumps(secret))
    config = dataclasses.replace(runtime_config(tmp_path), tls=tls,
                                 media_upstream="127.0.0.1:9")
    rendered = config.render()
    (tmp_path / "envoy.json").write_text(json.dumps(rendered))
    done = validate(tmp_path / "envoy.json", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    listener = rendered["static_resources"]["listeners"][0]["filter_chains"][0]
    downstream = listener["transport_socket"]["typed_config"]["common_tls_context"]
    assert downstream["tls_params"]["tls_minimum_protocol_version"] == "TLSv1_2"
    assert downstream["alpn_protocols"] == ["h2", "http/1.1"]
    clusters = {c["name"]: c for c in rendered["static_resources"]["clusters"]}
    grpc_tls = clusters["caas_grpc"]["transport_socket"]["typed_config"]["common_tls_context"]
    assert grpc_tls["tls_certificate_sds_secret_configs"]  # mutual TLS: Envoy's certificate
    assert "validation_context_sds_secret_config" in grpc_tls
    assert "transport_socket" in clusters["caas_media"]
