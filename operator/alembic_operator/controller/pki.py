"""The webhook certificate's cryptography (``cryptography``): a CA, a serving certificate, and
reading back what a Secret holds. No I/O, no clock (``now`` is passed in).

The Secret's keys: ``ca.crt`` (the trusted CA bundle, PEM, the current CA first: it is what the
webhook configuration's ``caBundle`` carries), ``ca.key`` (the current CA's key), ``tls.crt`` and
``tls.key`` (the serving certificate and its key). Keys are ECDSA P-256.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from alembic_operator.core.certificates import CA_LIFETIMES, CaStep, Renewal, Stored, Validity

CA_CRT, CA_KEY, TLS_CRT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"
BACKDATE_FRACTION = 0.05  # not_before slightly in the past: tolerate clocks a little behind
MAX_BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class Material:
    """The PEM texts of a Secret's four keys."""

    ca_bundle: bytes
    ca_key: bytes
    tls_crt: bytes
    tls_key: bytes

    def as_data(self) -> dict[str, bytes]:
        return {
            CA_CRT: self.ca_bundle,
            CA_KEY: self.ca_key,
            TLS_CRT: self.tls_crt,
            TLS_KEY: self.tls_key,
        }

    @classmethod
    def from_data(cls, data: dict[str, bytes]) -> Material:
        return cls(*(data.get(k, b"") for k in (CA_CRT, CA_KEY, TLS_CRT, TLS_KEY)))


def _validity(cert: x509.Certificate) -> Validity:
    return Validity(cert.not_valid_before_utc, cert.not_valid_after_utc)


def _certs(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem) if pem.strip() else []
    except ValueError:
        return []


def _key(pem: bytes) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _pairs(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> bool:
    return key is not None and cert.public_key() == key.public_key()


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def names_of(cert: x509.Certificate) -> frozenset[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    dns = san.get_values_for_type(x509.DNSName)
    ips = san.get_values_for_type(x509.IPAddress)
    return frozenset([*dns, *(str(ip) for ip in ips)])


def read(material: Material, *, now: datetime) -> Stored:
    """What ``material`` holds, for :func:`alembic_operator.core.certificates.renewal`."""
    bundle = _certs(material.ca_bundle)
    ca = bundle[0] if bundle and _pairs(bundle[0], _key(material.ca_key)) else None
    leaves = _certs(material.tls_crt)
    leaf = leaves[0] if leaves and _pairs(leaves[0], _key(material.tls_key)) else None
    trusted = leaf is not None and any(
        _validity(c).usable(now) and _signed_by(leaf, c) for c in bundle
    )
    return Stored(
        ca=_validity(ca) if ca is not None else None,
        leaf=_validity(leaf) if leaf is not None else None,
        leaf_names=names_of(leaf) if leaf is not None else frozenset(),
        leaf_trusted=trusted,
    )


def _window(now: datetime, validity: timedelta) -> tuple[datetime, datetime]:
    return now - min(validity * BACKDATE_FRACTION, MAX_BACKDATE), now + validity


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def new_ca(common_name: str, *, now: datetime, validity: timedelta) -> tuple[bytes, bytes]:
    """A self-signed CA: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start, end = _window(now, validity)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert), _pem_key(key)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def new_leaf(
    ca_pem: bytes, ca_key_pem: bytes, names: list[str], *, now: datetime, validity: timedelta
) -> tuple[bytes, bytes]:
    """A serving certificate for ``names`` (the first is the common name), signed by the CA."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = _key(ca_key_pem)
    if ca_key is None:
        raise ValueError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _window(now, validity)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(min(end, ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(cert), _pem_key(key)


def renew(
    material: Material,
    plan: Renewal,
    *,
    names: list[str],
    common_name: str,
    now: datetime,
    validity: timedelta,
) -> Material:
    """``material`` with what ``plan`` says renewed (expired CAs leave the bundle)."""
    ca_pem, ca_key = material.ca_bundle, material.ca_key
    kept = [c for c in _certs(material.ca_bundle) if _validity(c).usable(now)]
    if plan.ca is not CaStep.KEEP:
        ca_pem, ca_key = new_ca(common_name, now=now, validity=validity * CA_LIFETIMES)
        previous = [] if plan.ca is CaStep.REPLACE else kept
        bundle = ca_pem + b"".join(_pem(c) for c in previous)
    else:
        bundle = b"".join(_pem(c) for c in kept)
    tls_crt, tls_key = material.tls_crt, material.tls_key
    if plan.leaf:
        current = _certs(bundle)[0]
        tls_crt, tls_key = new_leaf(_pem(current), ca_key, names, now=now, validity=validity)
    return Material(ca_bundle=bundle, ca_key=ca_key, tls_crt=tls_crt, tls_key=tls_key)
