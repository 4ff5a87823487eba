"""The TLS settings and the local CA of `--tls-self-signed` (the served ports are in
tests/e2e/test_tls.py)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import ValidationError

from services.core.settings import Settings, load_settings
from services.core.tls import (
    SelfSigned,
    issue,
    issue_client_certificate,
    load_ca,
    self_signed,
    with_self_signed,
)
from services.server import Server


@pytest.mark.parametrize(("fields", "complaint"), [
    ({"tls_cert_file": "cert.pem"}, "go together"),
    ({"tls_key_file": "key.pem"}, "go together"),
    ({"tls_self_signed": True, "tls_cert_file": "c.pem", "tls_key_file": "k.pem"},
     "unset tls_cert_file"),
    ({"tls_client_ca_file": "ca.pem"}, "needs TLS"),
])
def test_tls_settings_that_cannot_work_are_refused(fields: dict[str, object],
                                                   complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(**fields)  # type: ignore[arg-type]


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_local_ca_is_made_once_and_kept(tmp_path: Path) -> None:
    first = self_signed(tmp_path)
    assert first == SelfSigned.under(tmp_path)
    for private in (first.key, first.ca_key):
        assert private.stat().st_mode & 0o077 == 0
    leaf, ca = _certificate(first.cert), _certificate(first.ca)
    assert leaf.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    again = self_signed(tmp_path)
    assert _certificate(again.cert).serial_number == leaf.serial_number
    assert _certificate(again.ca).serial_number == ca.serial_number


def test_a_certificate_near_its_end_is_made_anew_by_the_same_ca(tmp_path: Path) -> None:
    files = self_signed(tmp_path)
    ca_serial = _certificate(files.ca).serial_number
    ca_cert, ca_key = load_ca(files)
    cert, key = issue(ca_cert, ca_key, "localhost", [], days=10)
    files.cert.write_bytes(cert)
    files.key.write_bytes(key)
    renewed = self_signed(tmp_path)
    assert _certificate(renewed.cert).serial_number != x509.load_pem_x509_certificate(
        cert).serial_number
    assert _certificate(renewed.ca).serial_number == ca_serial


def test_settings_with_self_signed_name_the_local_files(tmp_path: Path) -> None:
    settings = with_self_signed(load_settings(data_dir=tmp_path, tls_self_signed=True))
    files = SelfSigned.under(tmp_path)
    assert (settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file) == (
        files.cert, files.key, files.ca)
    plain = load_settings(data_dir=tmp_path)
    assert with_self_signed(plain) is plain


def test_client_certificates_come_from_the_local_ca(tmp_path: Path) -> None:
    cert, key = issue_client_certificate(tmp_path, "backend/../1")
    assert cert.parent == key.parent == tmp_path / "tls" / "clients"
    issued = _certificate(cert)
    assert issued.issuer == _certificate(SelfSigned.under(tmp_path).ca).subject
    usage = issued.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usage


async def test_unusable_tls_files_stop_the_server_with_a_clear_message(tmp_path: Path) -> None:
    files = self_signed(tmp_path / "a")
    other = self_signed(tmp_path / "b")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    for cert, key in ((garbage, files.key), (files.cert, other.key),
                      (tmp_path / "missing.pem", files.key)):
        settings = load_settings(data_dir=tmp_path, tls_cert_file=cert, tls_key_file=key,
                                 http_listen="", listen="127.0.0.1:0")
        with pytest.raises(SystemExit, match="cannot use the TLS files"):
            await Server.start(settings)
