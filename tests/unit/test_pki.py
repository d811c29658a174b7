"""The webhook certificate's cryptography (controller/pki.py): what it issues, it reads back."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from alembic_operator.controller import pki
from alembic_operator.core.certificates import CaStep, renewal

NOW = datetime.now(UTC)
NAMES = ["web.ops.svc", "web.ops.svc.cluster.local", "127.0.0.1"]
VALIDITY = timedelta(hours=1)


def issue(material: pki.Material, now: datetime) -> pki.Material:
    plan = renewal(pki.read(material, now=now), names=frozenset(NAMES), now=now)
    return pki.renew(material, plan, names=NAMES, common_name="web-ca", now=now, validity=VALIDITY)


def test_a_fresh_certificate_is_read_back_as_valid_and_loads_into_tls(tmp_path: Path) -> None:
    material = issue(pki.Material.from_data({}), NOW)
    stored = pki.read(material, now=NOW)
    assert stored.leaf_names == frozenset(NAMES)
    assert stored.leaf_trusted
    assert not renewal(stored, names=frozenset(NAMES), now=NOW).needed
    (tmp_path / "tls.crt").write_bytes(material.tls_crt)
    (tmp_path / "tls.key").write_bytes(material.tls_key)
    ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH).load_cert_chain(
        tmp_path / "tls.crt", tmp_path / "tls.key"
    )
    leaf = x509.load_pem_x509_certificate(material.tls_crt)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= VALIDITY * 1.06


def test_a_rotated_ca_keeps_the_previous_one_in_the_bundle() -> None:
    first = issue(pki.Material.from_data({}), NOW)
    later = NOW + VALIDITY * 7  # the CA (10x) has less than a third left; the leaf expired
    rotated = issue(first, later)
    bundle = x509.load_pem_x509_certificates(rotated.ca_bundle)
    assert len(bundle) == 2
    assert bundle[1].public_bytes(pki.serialization.Encoding.PEM) in first.ca_bundle
    stored = pki.read(rotated, now=later)
    assert stored.leaf_trusted
    assert not renewal(stored, names=frozenset(NAMES), now=later).needed


def test_a_leaf_of_the_previous_ca_stays_trusted_after_a_rotation() -> None:
    first = issue(pki.Material.from_data({}), NOW)
    later = NOW + VALIDITY * 7
    plan = renewal(pki.read(first, now=later), names=frozenset(NAMES), now=later)
    assert plan.ca is CaStep.ROTATE
    only_ca = pki.renew(
        first, plan.__class__(plan.ca, False, ""), names=NAMES, common_name="x", now=later,
        validity=VALIDITY,
    )  # fmt: skip
    assert only_ca.tls_crt == first.tls_crt
    kept = pki.Material(only_ca.ca_bundle, only_ca.ca_key, first.tls_crt, first.tls_key)
    assert pki.read(kept, now=NOW + VALIDITY / 2).leaf_trusted


def test_broken_or_mismatched_material_is_not_usable() -> None:
    one, two = issue(pki.Material.from_data({}), NOW), issue(pki.Material.from_data({}), NOW)
    mixed = pki.Material(one.ca_bundle, one.ca_key, one.tls_crt, two.tls_key)
    assert pki.read(mixed, now=NOW).leaf is None
    foreign = pki.Material(two.ca_bundle, two.ca_key, one.tls_crt, one.tls_key)
    assert not pki.read(foreign, now=NOW).leaf_trusted
    garbage = pki.Material(b"not pem", b"", b"", b"")
    assert pki.read(garbage, now=NOW).ca is None
