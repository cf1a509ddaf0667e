"""The certificate `/metrics` is served with: the one the user mounts, or one made at start.

Like controller-runtime, the operator makes a self-signed certificate when none is given
(ECDSA P-256, valid for a year, for the names and addresses it listens on): Prometheus
then scrapes with ``insecure_skip_verify`` but still over TLS, and the bearer token it
sends is never on the wire in clear. A certificate from cert-manager (or any other) is
used instead when ``--metrics-cert-dir`` names a folder holding ``tls.crt`` and
``tls.key`` (the layout of a kubernetes.io/tls Secret).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY: Final = dt.timedelta(days=365)
CERT_FILE: Final = "tls.crt"
KEY_FILE: Final = "tls.key"


def self_signed(names: Sequence[str], *, now: dt.datetime) -> tuple[bytes, bytes]:
    """A self-signed certificate and its key (PEM) for ``names`` (host names or addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dynamic-prefix-operator")])
    alternatives: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):  # in order, once each
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # a little clock skew
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    )
    if alternatives:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(
    cert_dir: Path | None, names: Sequence[str], *, now: dt.datetime
) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 at least) with the mounted or a new certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_dir is not None:
        context.load_cert_chain(cert_dir / CERT_FILE, cert_dir / KEY_FILE)
        return context
    certificate, key = self_signed(names, now=now)
    # ssl loads chains from files only: a private folder, removed once loaded
    with tempfile.TemporaryDirectory(prefix="dynamic-prefix-tls-") as scratch:
        cert_path, key_path = Path(scratch) / CERT_FILE, Path(scratch) / KEY_FILE
        cert_path.write_bytes(certificate)
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(key)
        context.load_cert_chain(cert_path, key_path)
    return context
