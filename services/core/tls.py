"""TLS for what CAAS serves (the gRPC port, Envoy's listener, the media and metrics
ports), and a local CA for development (`caas serve --tls-self-signed`).

Certificates are files, reloaded when they change: the gRPC server asks for them at
each handshake (a `stat` of the files, rereading them when one changed); the aiohttp
ports check every few seconds; Envoy watches them itself (services/edge/envoy.py). A
file that does not parse, or a key that does not match its certificate (a rotation
half-written), leaves the previous pair in force and is logged.

Settings, everywhere: TLS 1.2 or 1.3, ECDHE key exchange with AEAD ciphers only, and
HTTP/2 by ALPN.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.core.settings import Settings

log = logging.getLogger("caas.tls")

# TLS 1.2's suites (1.3 has only AEAD suites): forward secrecy, authenticated encryption.
CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
           "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
           "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305")
RELOAD_SECONDS = 2.0  # how often the aiohttp ports look at the files
SELF_SIGNED_DIR = "tls"
LEAF_DAYS = 397  # what browsers accept for a leaf certificate
CA_DAYS = 3650
RENEW_DAYS = 30  # a self-signed certificate this close to its end is made anew


@dataclass(frozen=True)
class TlsFiles:
    """What a TLS listener serves: a certificate chain and its key; with `client_ca`,
    it requires callers' certificates issued by that CA (mutual TLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


class _Files:
    """The certificate files, read again when one of them changed."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._paths = [p for p in (files.cert, files.key, files.client_ca) if p is not None]
        self._seen: tuple[tuple[int, int, int], ...] = ()

    def _signature(self) -> tuple[tuple[int, int, int], ...]:
        stats = [p.stat() for p in self._paths]
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        """Certificate, key and client CA as they are now. Raises ValueError when they do
        not make a pair (or do not parse), OSError when one cannot be read."""
        self._seen = self._signature()
        cert = self.files.cert.read_bytes()
        key = self.files.key.read_bytes()
        client_ca = self.files.client_ca.read_bytes() if self.files.client_ca else None
        check_pair(cert, key)
        if client_ca is not None:
            x509.load_pem_x509_certificates(client_ca)
        return cert, key, client_ca

    def changed(self) -> bool:
        try:
            return self._signature() != self._seen
        except OSError:
            return False  # being replaced: the next look finds it

    def reread(self) -> tuple[bytes, bytes, bytes | None] | None:
        """The new contents if the files changed and make a good pair, else None."""
        if not self.changed():
            return None
        try:
            return self.read()
        except (OSError, ValueError) as error:
            log.warning("TLS files changed but cannot be used: the previous ones stay",
                        extra={"cert_file": str(self.files.cert), "error": str(error)})
            return None


def check_pair(cert: bytes, key: bytes) -> None:
    """Raise ValueError unless `key` is the private key of the first certificate of
    `cert` (a PEM chain)."""
    chain = x509.load_pem_x509_certificates(cert)
    private = serialization.load_pem_private_key(key, password=None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (chain[0].public_key().public_bytes(serialization.Encoding.DER, public)
            != private.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise ValueError("the key is not the certificate's")


def grpc_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Server credentials that read `files` again, at a handshake, once they changed."""
    watched = _Files(files)

    def configuration(pem: tuple[bytes, bytes, bytes | None]
                      ) -> grpc.ServerCertificateConfiguration:
        cert, key, client_ca = pem
        return grpc.ssl_server_certificate_configuration([(key, cert)], client_ca)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        pem = watched.reread()
        return None if pem is None else configuration(pem)  # None: keep the current one

    return grpc.dynamic_ssl_server_credentials(
        configuration(watched.read()), fetch,  # type: ignore[arg-type]
        require_client_authentication=files.client_ca is not None)


class ServerContext:
    """An ssl.SSLContext for the aiohttp ports, kept up to date with the files once
    `watch` runs (the certificate of new connections changes; open ones keep theirs)
    until `close`."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = _Files(files)
        self._watching: asyncio.Task[None] | None = None
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_ciphers(":".join(CIPHERS))
        self.context.set_alpn_protocols(["http/1.1"])
        self._load(self._files.read())

    def _load(self, pem: tuple[bytes, bytes, bytes | None]) -> None:
        cert, key, _ = pem
        # load_cert_chain reads files: the bytes already checked go through a private
        # temporary directory, gone right after.
        with _private_files(cert, key) as (cert_path, key_path):
            self.context.load_cert_chain(cert_path, key_path)

    def watch(self) -> None:
        self._watching = asyncio.create_task(self._watch(), name="reload TLS files")

    def close(self) -> None:
        if self._watching is not None:
            self._watching.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            if (pem := self._files.reread()) is not None:
                self._load(pem)
                log.info("TLS certificate reloaded", extra={"cert_file": str(
                    self._files.files.cert)})


@contextlib.contextmanager
def _private_files(cert: bytes, key: bytes) -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="caas-tls-") as directory:
        cert_path, key_path = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert_path.write_bytes(cert)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        yield str(cert_path), str(key_path)


def served_files(settings: Settings) -> TlsFiles | None:
    """What the listeners serve, None without TLS (after `with_self_signed`)."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)


def client_context(settings: Settings) -> ssl.SSLContext:
    """For connections CAAS makes over TLS: trusting tls_ca_file (else the system's CAs),
    checking the server's name, TLS 1.2 or later."""
    cafile = str(settings.tls_ca_file) if settings.tls_ca_file else None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def with_self_signed(settings: Settings) -> Settings:
    """`settings` serving the local CA's certificate, when tls_self_signed (as is
    otherwise)."""
    if not settings.tls_self_signed:
        return settings
    files = self_signed(settings.data_dir)
    return settings.model_copy(update={
        "tls_self_signed": False, "tls_cert_file": files.cert, "tls_key_file": files.key,
        "tls_ca_file": settings.tls_ca_file or files.ca})


# --- the local CA of --tls-self-signed ---------------------------------------------------

@dataclass(frozen=True)
class SelfSigned:
    """The files `caas serve --tls-self-signed` makes in data_dir/tls."""

    ca: Path
    cert: Path
    key: Path
    ca_key: Path

    @classmethod
    def under(cls, data_dir: Path) -> SelfSigned:
        root = data_dir / SELF_SIGNED_DIR
        return cls(root / "ca.pem", root / "cert.pem", root / "key.pem", root / "ca-key.pem")

    def trust_hint(self) -> str:
        return (f"caas: serving TLS with a self-signed certificate of a local CA: {self.ca}\n"
                f"  grpcurl -cacert {self.ca} HOST:PORT list\n"
                f"  curl --cacert {self.ca} https://HOST:PORT/healthz\n"
                f"  Python and Node clients: SSL_CERT_FILE={self.ca} / "
                f"NODE_EXTRA_CA_CERTS={self.ca}\n"
                f"  trust it system-wide (Debian): cp {self.ca} "
                "/usr/local/share/ca-certificates/caas-dev.crt && update-ca-certificates\n"
                "  browsers: import it as an authority in the certificate settings")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Write `data` to `path` atomically (a rename: readers see the old or the new)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(partial, path)


def local_names() -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    host = socket.gethostname()
    if host and host != "localhost":
        names.append(x509.DNSName(host))
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    return names


def issue(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, common_name: str,
          names: list[x509.GeneralName], days: int = LEAF_DAYS
          ) -> tuple[bytes, bytes]:
    """A leaf certificate (PEM) and its key (PEM) issued by the CA, good for serving and
    for client authentication."""
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, key_encipherment=False, content_commitment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=False,
                   crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _new_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CAAS development"),
                      x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"CAAS local CA ({socket.gethostname()})")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=False, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _fresh(path: Path) -> bool:
    """Whether `path` holds a certificate valid for RENEW_DAYS more."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > datetime.timedelta(days=RENEW_DAYS)


def load_ca(files: SelfSigned) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{files.ca_key} is not the local CA's key")
    return cert, key


def self_signed(data_dir: Path) -> SelfSigned:
    """The local CA and this host's certificate in data_dir/tls: made on first use, kept
    after, and made anew when within RENEW_DAYS of their end."""
    files = SelfSigned.under(data_dir)
    files.ca.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (_fresh(files.ca) and files.ca_key.exists()):
        ca_cert, ca_key = _new_ca()
        _write(files.ca_key, _pem_key(ca_key), private=True)
        _write(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
        files.cert.unlink(missing_ok=True)
    if not (_fresh(files.cert) and files.key.exists()):
        ca_cert, ca_key = load_ca(files)
        cert, key = issue(ca_cert, ca_key, "localhost", local_names())
        _write(files.key, key, private=True)  # key first: the pair changes with the cert
        _write(files.cert, cert)
    return files


def issue_client_certificate(data_dir: Path, name: str) -> tuple[Path, Path]:
    """A client certificate for `name` from the local CA (made if missing), written
    to data_dir/tls/clients: its certificate file and key file."""
    files = self_signed(data_dir)
    ca_cert, ca_key = load_ca(files)
    cert, key = issue(ca_cert, ca_key, name, [])
    clients = files.ca.parent / "clients"
    clients.mkdir(exist_ok=True, mode=0o700)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "client"
    cert_path, key_path = clients / f"{safe}.pem", clients / f"{safe}-key.pem"
    _write(key_path, key, private=True)
    _write(cert_path, cert)
    return cert_path, key_path
