"""TLS against running servers: `caas serve --tls-self-signed` serves TLS on the gRPC
port, Envoy's listener and the media and metrics ports; native gRPC, gRPC-Web, JSON
and grpcurl work over it, plaintext and old or weak TLS are refused, replaced
certificate files are served without a restart, and with a client CA the gRPC port
takes only callers with a certificate it issued (mutual TLS)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from caas.messages.v1 import messages_service_pb2 as msg_pb
from cryptography import x509
from grpc_health.v1 import health_pb2

from services.core.tls import SelfSigned, issue, load_ca, local_names, self_signed
from tests.conftest import TEST_CONFIG, AppHandle, create_app
from tests.e2e.test_http import grpc_web_frame, grpc_web_frames
from tests.support.chat import person
from tests.support.client import Client, bearer
from tests.support.metrics import metrics_port
from tests.support.servers import BIN, CaasServer, start_caas, start_redis
from tests.support.waiting import eventually


@dataclass
class TlsServer:
    caas: CaasServer
    files: SelfSigned
    media_port: int
    metrics_port: int

    def credentials(self, client: tuple[bytes, bytes] | None = None
                    ) -> grpc.ChannelCredentials:
        key, cert = client if client else (None, None)
        return grpc.ssl_channel_credentials(self.files.ca.read_bytes(), key, cert)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.caas.http_url, timeout=30,
                                 verify=ssl.create_default_context(cafile=self.files.ca))


def start_tls_server(data_dir: Path, **env: str) -> TlsServer:
    files = self_signed(data_dir)  # what the server will find and keep
    caas = start_caas(data_dir, env={"CAAS_TLS_SELF_SIGNED": "true",
                                     "CAAS_METRICS_LISTEN": "127.0.0.1:0", **env},
                      config=TEST_CONFIG, http=True)
    serving = next(entry for entry in caas.logs() if entry.get("message") == "serving")
    return TlsServer(caas, files, int(str(serving["media_port"])), metrics_port(caas))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    server = start_tls_server(tmp_path_factory.mktemp("caas-tls"))
    yield server
    assert server.caas.process.stop() == 0


@pytest.fixture
async def tls_client(tls_server: TlsServer) -> AsyncIterator[Client]:
    client = Client(tls_server.caas.address, credentials=tls_server.credentials())
    yield client
    await client.close()


@dataclass
class Handshake:
    certificate: x509.Certificate
    alpn: str | None
    version: str | None


def handshake(port: int, ca: Path, *, alpn: tuple[str, ...] = ("h2", "http/1.1"),
              maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
              ciphers: str = "", client: tuple[Path, Path] | None = None) -> Handshake:
    """A TLS handshake with 127.0.0.1:`port`, checking its certificate against `ca`."""
    context = ssl.create_default_context(cafile=ca)
    with warnings.catch_warnings():  # old versions on purpose: to see them refused
        warnings.simplefilter("ignore", DeprecationWarning)
        context.maximum_version = maximum
        if maximum < ssl.TLSVersion.TLSv1_2:
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("ALL:@SECLEVEL=0")
    if ciphers:
        context.set_ciphers(ciphers)
    context.set_alpn_protocols(list(alpn))
    if client:
        context.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return Handshake(x509.load_der_x509_certificate(der), tls.selected_alpn_protocol(),
                         tls.version())


async def test_native_grpc_over_tls(tls_server: TlsServer, tls_client: Client) -> None:
    app = await create_app(tls_client, tls_server.caas.operator_token)
    alice = await person(tls_client, app.app_id, app.api_key, "alice")
    conversation = await alice.create()
    sent = await alice.send(conversation.name, "over TLS")
    listed = await tls_client.messages.ListMessages(
        msg_pb.ListMessagesRequest(parent=conversation.name), metadata=alice.auth)
    assert [m.name for m in listed.messages] == [sent.message.name]


async def test_plaintext_is_refused_on_every_port(tls_server: TlsServer) -> None:
    plain = Client(tls_server.caas.address)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await plain.health.Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                         grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        await plain.close()
    for port in (tls_server.caas.http_port, tls_server.media_port, tls_server.metrics_port):
        async with httpx.AsyncClient(timeout=5) as http:
            with pytest.raises(httpx.TransportError):
                await http.get(f"http://127.0.0.1:{port}/healthz")


def test_every_port_takes_modern_tls_only(tls_server: TlsServer) -> None:
    ca = tls_server.files.ca
    ports = {"grpc": tls_server.caas.port, "envoy": tls_server.caas.http_port,
             "media": tls_server.media_port, "metrics": tls_server.metrics_port}
    for name, port in ports.items():
        modern = handshake(port, ca)
        assert modern.version in ("TLSv1.2", "TLSv1.3"), name
        # TLS 1.2 without forward secrecy or with CBC ciphers: no shared suite.
        for weak in ("AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA:"
                     "ECDHE-ECDSA-AES128-SHA"):
            with pytest.raises(ssl.SSLError):
                handshake(port, ca, maximum=ssl.TLSVersion.TLSv1_2, ciphers=weak)
        with pytest.raises(ssl.SSLError):
            handshake(port, ca, maximum=ssl.TLSVersion.TLSv1_1)
    # HTTP/2 by ALPN where gRPC is served; the aiohttp ports speak HTTP/1.1.
    assert handshake(ports["grpc"], ca).alpn == "h2"
    assert handshake(ports["envoy"], ca).alpn == "h2"
    assert handshake(ports["envoy"], ca, alpn=("http/1.1",)).alpn == "http/1.1"
    assert handshake(ports["media"], ca).alpn == "http/1.1"


async def test_json_and_grpc_web_through_envoy_over_tls(tls_server: TlsServer,
                                                        tls_client: Client) -> None:
    app = await create_app(tls_client, tls_server.caas.operator_token)
    alice = await person(tls_client, app.app_id, app.api_key, "alice")
    conversation = await alice.create()
    await alice.send(conversation.name, "read over HTTPS")
    headers = {"authorization": f"Bearer {alice.token}"}
    async with tls_server.http() as http:
        listed = await http.get(f"/v1/{conversation.name}/messages", headers=headers)
        assert listed.status_code == 200, listed.text
        assert [m["text"] for m in listed.json()["messages"]] == ["read over HTTPS"]
        assert listed.http_version == "HTTP/1.1"

        request = msg_pb.ListMessagesRequest(parent=conversation.name).SerializeToString()
        web = await http.post("/caas.messages.v1.MessagesService/ListMessages",
                              content=grpc_web_frame(request),
                              headers={**headers, "x-grpc-web": "1",
                                       "content-type": "application/grpc-web+proto"})
        messages, trailers = grpc_web_frames(web.content)
        assert trailers["grpc-status"] == "0"
        assert [m.text for m in msg_pb.ListMessagesResponse.FromString(messages[0]).messages
                ] == ["read over HTTPS"]
        # Envoy reaches the media port over TLS too: it answers readiness.
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    async with httpx.AsyncClient(timeout=5) as untrusting:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.get(f"{tls_server.caas.http_url}/healthz")


def test_grpcurl_over_tls(tls_server: TlsServer) -> None:
    def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "grpcurl"), "-max-time", "10", *args],
                              capture_output=True, text=True, timeout=60, check=False)

    for port in (tls_server.caas.port, tls_server.caas.http_port):
        listed = grpcurl("-cacert", str(tls_server.files.ca), f"127.0.0.1:{port}", "list")
        assert listed.returncode == 0, listed.stderr
        assert "caas.messages.v1.MessagesService" in listed.stdout.split()
        assert grpcurl("-plaintext", f"127.0.0.1:{port}", "list").returncode != 0
        assert grpcurl(f"127.0.0.1:{port}", "list").returncode != 0  # CA not trusted


def _replace(path: Path, data: bytes) -> None:
    """Put `data` at `path` as certificate managers do: a new file moved into place."""
    partial = path.with_name(f".{path.name}.new")
    partial.write_bytes(data)
    os.replace(partial, path)


async def test_replaced_certificate_files_are_served_without_a_restart(
        tls_server: TlsServer) -> None:
    files, ca = tls_server.files, tls_server.files.ca
    ports = (tls_server.caas.port, tls_server.caas.http_port, tls_server.media_port)
    serial = x509.load_pem_x509_certificate(files.cert.read_bytes()).serial_number
    assert {handshake(port, ca).certificate.serial_number for port in ports} == {serial}
    ca_cert, ca_key = load_ca(files)
    cert, key = issue(ca_cert, ca_key, "localhost", local_names())
    new_serial = x509.load_pem_x509_certificate(cert).serial_number

    # Half a rotation (the key only) is refused: the old pair stays in force.
    _replace(files.key, key)
    assert {handshake(port, ca).certificate.serial_number for port in ports} == {serial}

    _replace(files.cert, cert)

    async def all_serve_the_new_one() -> bool:
        served = {handshake(port, ca).certificate.serial_number for port in ports}
        return served == {new_serial}

    await eventually(all_serve_the_new_one, within=20, every=0.2)


async def test_mutual_tls_takes_only_callers_with_a_certificate_of_the_ca(
        tmp_path: Path) -> None:
    files = self_signed(tmp_path)
    issued = await asyncio.to_thread(
        subprocess.run, [str(BIN / "caas"), "admin", "tls-client-certificate", "backend-1"],
        capture_output=True, text=True, timeout=60, check=False,
        env={"CAAS_DATA_DIR": str(tmp_path), "PATH": str(BIN)})
    assert issued.returncode == 0, issued.stderr
    printed = json.loads(issued.stdout)
    client_cert = Path(printed["certificate_file"]), Path(printed["key_file"])
    assert client_cert[1].stat().st_mode & 0o077 == 0  # the key is the owner's only

    server = start_tls_server(tmp_path, CAAS_TLS_CLIENT_CA_FILE=str(files.ca))
    try:
        pair = (client_cert[1].read_bytes(), client_cert[0].read_bytes())
        with_cert = Client(server.caas.address, credentials=server.credentials(pair))
        without = Client(server.caas.address, credentials=server.credentials())
        try:
            answer = await with_cert.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await without.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                             grpc.StatusCode.DEADLINE_EXCEEDED)
            # A certificate from another CA is refused as well.
            other_dir = tmp_path / "elsewhere"
            other = self_signed(other_dir)
            stranger = (other.key.read_bytes(), other.cert.read_bytes())
            outsider = Client(server.caas.address, credentials=server.credentials(stranger))
            try:
                with pytest.raises(grpc.aio.AioRpcError):
                    await outsider.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            finally:
                await outsider.close()
            # Browsers come through Envoy, which presents the server's certificate.
            app: AppHandle = await create_app(with_cert, server.caas.operator_token)
            async with server.http() as http:
                got = await http.get(f"/v1/{app.name}",
                                     headers=dict(bearer(server.caas.operator_token)))
                assert got.status_code == 200, got.text
                assert got.json()["app"]["name"] == app.name
        finally:
            await with_cert.close()
            await without.close()
    finally:
        assert server.caas.process.stop() == 0


async def test_redis_over_tls_with_the_trusted_ca(tmp_path: Path) -> None:
    """rediss:// reaches a Redis that takes TLS only, checking its certificate against
    CAAS_TLS_CA_FILE: trusted, Redis is up; not trusted, it is down (no silent
    fallback to an unchecked connection)."""
    files = self_signed(tmp_path / "pki")
    (tmp_path / "redis").mkdir()
    redis = start_redis(tmp_path / "redis", tls=(files.cert, files.key))
    component = health_pb2.HealthCheckRequest(service="caas.component.redis")
    serving = health_pb2.HealthCheckResponse.SERVING
    try:
        for trusted in (True, False):
            env = {"CAAS_REDIS_URL": redis.url, "CAAS_READINESS_REQUIRES": '["store"]'}
            if trusted:
                env["CAAS_TLS_CA_FILE"] = str(files.ca)
            caas = start_caas(tmp_path / f"caas-{trusted}", env=env, config=TEST_CONFIG)
            client = Client(caas.address)
            try:
                async def reported(client: Client = client, trusted: bool = trusted) -> bool:
                    try:
                        got = await client.health.Check(component, timeout=5)
                    except grpc.aio.AioRpcError:
                        return False  # not probed yet
                    return (got.status == serving) is trusted

                await eventually(reported, within=30, every=0.1)
            finally:
                await client.close()
                assert caas.process.stop() == 0
    finally:
        redis.process.stop()
