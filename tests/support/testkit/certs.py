"""Certificates for a TLS test node, made on the spot with `cryptography` (nothing fetched).

`make_tls_dir(folder, ip, keystore_password)` writes what scripts/cassandra/cassandra.sh
(CASS_TLS_DIR) and a client need: node.p12 (a PKCS#12 keystore with the node's private key and
certificate chain, locked with keystore_password), ca.pem (the CA that signed the node's
certificate: what a client trusts) and other-ca.pem (a second CA that signed nothing of the
node's: a client trusting only it must refuse the node). PKCS#12 rather than an encrypted PEM key:
Cassandra's PEM reader cannot open the PBES2-encrypted keys `cryptography` writes.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    folder: Path
    keystore: Path      # PKCS#12: the node's private key and certificate chain, password-protected
    ca: Path            # the CA that signed the node's certificate
    other_ca: Path      # a CA the node's certificate does not chain to


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "trade-migration tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str, now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_tls_dir(folder: Path, ip: str, keystore_password: str) -> TlsFiles:
    """A CA, the node's certificate for `ip` (an IP SAN: what the client checks) and an unrelated CA."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key, ca_cert = _ca("test CA", now)
    _, other_cert = _ca("another CA", now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(ip)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(folder, folder / "node.p12", folder / "ca.pem", folder / "other-ca.pem")
    files.keystore.write_bytes(pkcs12.serialize_key_and_certificates(
        b"node", key, cert, [ca_cert], serialization.BestAvailableEncryption(keystore_password.encode())))
    files.keystore.chmod(0o600)
    files.ca.write_bytes(_pem(ca_cert))
    files.other_ca.write_bytes(_pem(other_cert))
    return files
