"""The webhook's certificate, managed by the operator (no cert-manager): created on the first
start, its CA written into the webhook configuration, rotated before expiry on every replica
while admission keeps working through the webhook (failurePolicy Fail: a TLS failure would
refuse the request)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from datetime import UTC, datetime

from cryptography import x509

from tests.cluster.client import Client
from tests.cluster.fixtures import OPERATOR_NAMESPACE
from tests.ha.harness import SERVICE, Replicas
from tests.ha.helpers import (
    ca_bundles,
    dbm_path,
    deployment,
    deployments_path,
    gating_migration,
    held_in_request,
    leaf,
    own_secret,
)
from tests.operator.harness import wait_for


async def gated(kube: Client, namespace: str) -> None:
    """A migration that never succeeds (its database Secret is missing) gates ``app: web``."""
    await kube.ok("POST", dbm_path(namespace), gating_migration())

    async def known() -> bool:  # the leader wrote a status: every replica's watch saw it
        body = await kube.ok("GET", f"{dbm_path(namespace)}/shop")
        return bool((body.get("status") or {}).get("conditions"))

    await wait_for(known, within=30, what="the migration's first status")


async def test_certificate_created_on_first_start(
    replicas: Replicas, kube: Client, namespace: str
) -> None:
    started = time.monotonic()
    first = await replicas.start("replica-a")
    secret = await wait_for(lambda: own_secret(kube), within=30, what="the certificate Secret")
    assert set(secret) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    bundle = base64.b64encode(secret["ca.crt"]).decode()

    async def written() -> bool:
        return set(await ca_bundles(kube)) == {bundle}  # every webhook (Deployments, pods)

    await wait_for(written, within=30, what="the caBundle to be written")
    served = await asyncio.to_thread(first.served_certificate)
    assert served == leaf(secret)
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{SERVICE}.{OPERATOR_NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    assert f"{SERVICE}.{OPERATOR_NAMESPACE}.svc.cluster.local" in names.get_values_for_type(
        x509.DNSName
    )
    # A Deployment CREATE in the gated namespace goes through the webhook: held in the request.
    await gated(kube, namespace)
    answer = await kube.ok("POST", deployments_path(namespace), deployment("web"))
    assert held_in_request(answer), answer
    # Not gated: the webhook answers and leaves it alone.
    other = await kube.ok("POST", deployments_path(namespace), deployment("api", app="api"))
    assert not (other.get("spec") or {}).get("paused")
    # A second replica adopts the stored certificate instead of making another.
    second = await replicas.start("replica-b")
    assert await asyncio.to_thread(second.served_certificate) == leaf(secret)
    assert await own_secret(kube) == secret
    print(f"certificate created and served: {time.monotonic() - started:.1f}s")


VALIDITY = 16.0  # seconds: renewed when about a third is left, i.e. about every 11 s


async def test_certificate_rotates_before_expiry_and_admission_keeps_working(
    replicas: Replicas, kube: Client, namespace: str
) -> None:
    replicas.validity = VALIDITY
    a = await replicas.start("replica-a")
    b = await replicas.start("replica-b")
    await gated(kube, namespace)
    first = await wait_for(lambda: own_secret(kube), within=30, what="the certificate Secret")
    bundle = first["ca.crt"]
    leaves: dict[int, tuple[x509.Certificate, datetime]] = {}  # serial -> (cert, first seen)
    created = 0
    deadline = time.monotonic() + 4 * VALIDITY
    while time.monotonic() < deadline:
        # Admission through the webhook, all along: every CREATE is held in the request.
        answer = await kube.ok("POST", deployments_path(namespace), deployment(f"web-{created}"))
        assert held_in_request(answer), (created, answer)
        created += 1
        secret = await own_secret(kube)
        assert secret is not None
        current = leaf(secret)
        leaves.setdefault(current.serial_number, (current, datetime.now(UTC)))
        if len(leaves) >= 3:
            break
        await asyncio.sleep(0.5)
    assert len(leaves) >= 3, f"{len(leaves)} certificates in {4 * VALIDITY}s"
    ordered = sorted(leaves.values(), key=lambda item: item[1])
    for (old, _), (_, replaced_at) in itertools.pairwise(ordered):
        left = (old.not_valid_after_utc - replaced_at).total_seconds()
        assert left > VALIDITY / 5, f"renewed {left:.1f}s before expiry: too late"
    # The CA stays (it lives 10x longer): the caBundle never had to change.
    latest = await own_secret(kube)
    assert latest is not None and latest["ca.crt"] == bundle
    assert set(await ca_bundles(kube)) == {base64.b64encode(bundle).decode()}

    # Every replica serves the newest certificate (each loads it from the Secret).
    async def both_current() -> bool:
        newest = leaf(await own_secret(kube) or {})
        served = [await asyncio.to_thread(r.served_certificate) for r in (a, b)]
        return all(s == newest for s in served)

    await wait_for(both_current, within=VALIDITY, what="both replicas to serve the newest")
    # A fresh connection from the apiserver (the other replica's connections end) still works.
    await replicas.stop(a)
    answer = await kube.ok("POST", deployments_path(namespace), deployment("web-last"))
    assert held_in_request(answer), answer
    print(f"{created} admissions across {len(leaves) - 1} rotations")
