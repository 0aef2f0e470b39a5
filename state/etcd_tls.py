"""The certificates etcd and its clients present: a CA of the cloud's own and what it signs.

Owns: making the CA (an ECDSA P-256 key and a self-signed certificate) on
first use, issuing certificates from it (a server certificate for etcd's
client and peer listeners; a client certificate per etcd user, its common
name the user's name — or, for a client alone, its organisational unit: etcd's JSON
gateway refuses clients whose certificate has a common name), the credential directories clients read (``ca.pem``,
``cert.pem``, ``key.pem``, ``user``, ``password``), and writing every secret
readable by its owner alone.

Must never: write a key or password with a mode beyond 0600, or in a
directory beyond 0700; give a certificate a lifetime longer than its CA's.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from state.private_files import write_private

#: a CA lives this long; the certificates it signs, LEAF_DAYS (renewed by ``desired up``
#: when less than RENEW_DAYS are left)
CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_DAYS = 30


@dataclass(frozen=True)
class Credentials:
    """What an etcd client presents: the CA it trusts, its certificate and key, and the
    etcd user and password it authenticates as (empty: none, on an etcd without
    authentication)."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    user: str = ""
    password: str = ""

    @staticmethod
    def read(directory: Path) -> Credentials:
        """The credentials kept in a credential directory (``ca.pem``, ``cert.pem``,
        ``key.pem`` and, for an etcd with authentication, ``user`` and ``password``)."""

        def text(name: str) -> str:
            path = directory / name
            return path.read_text().strip() if path.exists() else ""

        for name in ("ca.pem", "cert.pem", "key.pem"):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"etcd credentials: {directory / name} is missing")
        return Credentials(
            directory / "ca.pem",
            directory / "cert.pem",
            directory / "key.pem",
            text("user"),
            text("password"),
        )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Authority:
    """The cloud's CA, kept as ``ca.pem`` and ``ca-key.pem`` in a directory of its own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert_file = directory / "ca.pem"
        key_file = directory / "ca-key.pem"
        if not self.cert_file.exists():
            self._make(key_file)
        self.cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        loaded = serialization.load_pem_private_key(key_file.read_bytes(), None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file} is not an ECDSA key")
        self.key = loaded

    def _make(self, key_file: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "desired etcd CA")])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        write_private(key_file, _pem_key(key))
        write_private(self.cert_file, cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        common_name: str,
        *,
        server_names: tuple[str, ...] = (),
        days: int = LEAF_DAYS,
        not_before: datetime.datetime | None = None,
    ) -> tuple[bytes, bytes]:
        """A certificate (PEM) and its key (PEM) for ``common_name``: a client certificate
        naming it as its organisational unit (etcd's JSON gateway refuses a client
        certificate with a common name; clients authenticate with a password), and with
        ``server_names`` (DNS names or IP addresses) a server one with that common name."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or _now() - datetime.timedelta(minutes=5)
        end = min(start + datetime.timedelta(days=days), self.cert.not_valid_after_utc)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "desired"),
                        x509.NameAttribute(
                            NameOID.COMMON_NAME
                            if server_names
                            else NameOID.ORGANIZATIONAL_UNIT_NAME,
                            common_name,
                        ),
                    ]
                )
            )
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server_names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            sans: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    sans.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False).sign(
            self.key, hashes.SHA256()
        )
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def credential_dir(
        self, directory: Path, user: str, *, server_names: tuple[str, ...] = ()
    ) -> Credentials:
        """A credential directory for etcd user ``user`` (made, or its certificate renewed
        when it ends within RENEW_DAYS or was not signed by this CA); its password is kept."""
        cert_file = directory / "cert.pem"
        if not _current(cert_file, self.cert):
            cert, key = self.issue(user, server_names=server_names)
            write_private(directory / "key.pem", key)
            write_private(cert_file, cert)
        write_private(directory / "ca.pem", self.cert_file.read_bytes())
        if not (directory / "password").exists():
            write_private(directory / "password", secrets.token_urlsafe(24).encode())
        write_private(directory / "user", user.encode())
        return Credentials.read(directory)


def _current(cert_file: Path, ca: x509.Certificate) -> bool:
    """Whether the certificate in ``cert_file`` was signed by ``ca`` and lives on for at
    least RENEW_DAYS."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc - _now() > datetime.timedelta(days=RENEW_DAYS)
