"""Plain helpers the tests share: paths, the test API key, CSV and mapping writers, a TLS context.

A module of its own, not conftest.py, so that ``from helpers import ...`` works the same under
``pytest`` and ``python -m pytest`` (pyproject puts tests/ on sys.path with ``pythonpath``);
conftest.py keeps the fixtures.
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import json
import ssl
from pathlib import Path

import aiohttp
from yarl import URL

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = ROOT / "sample_data" / "leads.csv"
SAMPLE_XLSX = ROOT / "sample_data" / "leads.xlsx"
EXAMPLE_MAPPING = ROOT / "mappings" / "example.yaml"
API_KEY = "test-key-3f9a1c"


class _NothingWritten:
    output_size = 0


class ScriptedResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` that aiohttp 3.14
    requires (pnuckowski/aioresponses#289); hand it a stand-in until a release fixes that.
    Pass ``response_class=ScriptedResponse`` to every scripted answer."""

    def __init__(self, method: str, url: URL, **kwargs) -> None:
        kwargs.setdefault("stream_writer", _NothingWritten())
        super().__init__(method, url, **kwargs)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_mapping(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def self_signed_tls(folder: Path) -> ssl.SSLContext:
    """A server TLS context for 127.0.0.1 with a certificate nobody trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
