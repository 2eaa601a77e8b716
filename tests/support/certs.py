"""Certificates made by the tests: a private CA, server certificates (good, expired, for
another host), a client certificate, and a CA nobody trusts."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from faaspool.embedded import TLSFiles


@dataclasses.dataclass(frozen=True)
class CertSet:
    """Paths of the PEM files one test session uses."""

    ca: str
    server: TLSFiles
    expired: TLSFiles
    wrong_host: TLSFiles
    client_cert: str
    client_key: str
    other_ca: str


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> str:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


def _write_cert(path: Path, cert: x509.Certificate) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    common: str,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    expired: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = (
        (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
        if expired
        else (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        # Python 3.13 verifies with VERIFY_X509_STRICT, which requires both key identifiers.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


def make_certs(directory: Path) -> CertSet:
    """Write a full set of test certificates into ``directory``."""
    ca = _ca("faaspool test CA")
    ca_path = _write_cert(directory / "ca.pem", ca[0])
    local = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]

    def server_files(
        stem: str, cert_key: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
    ) -> TLSFiles:
        return TLSFiles(
            cert=_write_cert(directory / f"{stem}.pem", cert_key[0]),
            key=_write_key(directory / f"{stem}.key", cert_key[1]),
            ca=ca_path,
        )

    server = server_files("server", _leaf(ca, "localhost", local, ExtendedKeyUsageOID.SERVER_AUTH))
    expired = server_files(
        "expired", _leaf(ca, "localhost", local, ExtendedKeyUsageOID.SERVER_AUTH, expired=True)
    )
    wrong_host = server_files(
        "wrong-host",
        _leaf(
            ca, "cache.example", [x509.DNSName("cache.example")], ExtendedKeyUsageOID.SERVER_AUTH
        ),
    )
    client = _leaf(ca, "faaspool-client", [], ExtendedKeyUsageOID.CLIENT_AUTH)
    other = _ca("somebody else's CA")
    return CertSet(
        ca=ca_path,
        server=server,
        expired=expired,
        wrong_host=wrong_host,
        client_cert=_write_cert(directory / "client.pem", client[0]),
        client_key=_write_key(directory / "client.key", client[1]),
        other_ca=_write_cert(directory / "other-ca.pem", other[0]),
    )
