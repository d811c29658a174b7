"""The webhook's certificate, managed by the operator itself (the chart's default TLS source).

Every replica runs a :class:`CertificateManager`: it reads the certificate Secret in the
operator's namespace, renews what :func:`alembic_operator.core.certificates.renewal` says (a
missing Secret is created; a valid one is adopted; a write that loses a race, 409, is dropped
and the winner's certificate read back), makes the MutatingWebhookConfiguration's ``caBundle``
equal to the Secret's CA bundle (a JSON patch, only when different) and only *then* loads the
serving certificate into the webhook server's SSL context — in place, so new TLS handshakes use
it at once and the server never stops listening. The CA outlives the serving certificate and a
rotated CA stays in the bundle (core/certificates.py), so every replica may switch at its own
pace. See docs/gating.md, "The webhook's certificate".
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic_operator.controller.ownapi import OwnApi
from alembic_operator.core.certificates import Stored, next_check, renewal
from alembic_operator.errors import AlreadyExists, ApiError, Conflict

if TYPE_CHECKING:
    from alembic_operator.controller import pki

# controller.pki (cryptography, ≈9 MiB of RSS) is imported by the methods that use it: an
# operator whose certificate comes from files (cert-manager, --webhook-cert-dir) never loads it.

log = logging.getLogger("alembic_operator.certificates")

MAX_POLL = timedelta(seconds=60)
WRITE_RACES = 3


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CertificateSettings:
    namespace: str  # the operator's namespace: where the Secret lives
    secret: str  # the Secret's name
    service: str  # the webhook Service: its DNS names go into the certificate
    configuration: str | None  # the MutatingWebhookConfiguration whose caBundle is written
    hosts: tuple[str, ...] = ()  # extra names or IP addresses (e.g. 127.0.0.1)
    validity: timedelta = timedelta(days=365)

    def names(self) -> list[str]:
        svc, ns = self.service, self.namespace
        found = [f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local", svc, f"{svc}.{ns}"]
        return list(dict.fromkeys([*found, *self.hosts]))

    def poll(self) -> timedelta:
        """How often replicas look at the Secret (so each picks up another one's renewal)."""
        return max(min(self.validity / 10, MAX_POLL), timedelta(seconds=1))


class CertificateManager:
    """Keeps the Secret, the ``caBundle`` and this replica's SSL context in step."""

    def __init__(
        self,
        api: OwnApi,
        settings: CertificateSettings,
        *,
        workdir: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._api = api
        self.settings = settings
        self._clock = clock
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="alembic-operator-webhook-"))
        self._workdir.chmod(0o700)
        self.context = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
        self.ready = asyncio.Event()  # set once a certificate is loaded
        self._loaded: bytes | None = None
        self.rotations = 0  # certificates loaded after the first

    @property
    def certfile(self) -> Path:
        from alembic_operator.controller import pki  # noqa: PLC0415 - see the module's imports

        return self._workdir / pki.TLS_CRT

    async def run(self) -> None:
        """Sync forever: on the poll interval, sooner when a renewal falls due."""
        delay = timedelta(0)
        while True:
            await asyncio.sleep(delay.total_seconds())
            try:
                stored = await self.sync()
            except ApiError as exc:
                log.warning("webhook certificate: %s (retrying)", exc)
                delay = min(self.settings.poll(), timedelta(seconds=5))
                continue
            delay = next_check(stored, now=self._clock(), poll=self.settings.poll())

    async def sync(self) -> Stored:
        """One pass; returns what the Secret holds now."""
        from alembic_operator.controller import pki  # noqa: PLC0415 - see the module's imports

        material = await self._settle()
        if self.settings.configuration:
            await self.publish_ca_bundle(material.ca_bundle)
        self._load(material)
        return pki.read(material, now=self._clock())

    async def _settle(self) -> pki.Material:
        """The Secret's certificate, renewed (and written) first when due."""
        from alembic_operator.controller import pki  # noqa: PLC0415 - see the module's imports

        names = self.settings.names()
        for _ in range(WRITE_RACES):
            secret = await self._api.get_own_secret(self.settings.namespace, self.settings.secret)
            material = pki.Material.from_data(_decode(secret))
            now = self._clock()
            plan = renewal(pki.read(material, now=now), names=frozenset(names), now=now)
            if not plan.needed:
                return material
            renewed = pki.renew(
                material,
                plan,
                names=names,
                common_name=f"{self.settings.service}-ca",
                now=now,
                validity=self.settings.validity,
            )
            try:
                await self._write(secret, renewed)
            except (AlreadyExists, Conflict):
                log.info("webhook certificate: another replica wrote it first; reading theirs")
                continue
            log.info("webhook certificate renewed (%s)", plan.reason)
            return renewed
        raise Conflict("webhook certificate: the Secret kept changing while being renewed")

    async def _write(self, secret: dict[str, Any] | None, material: pki.Material) -> None:
        data = {k: base64.b64encode(v).decode() for k, v in material.as_data().items()}
        ns, name = self.settings.namespace, self.settings.secret
        if secret is None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": ns, "labels": _LABELS},
                "type": "kubernetes.io/tls",
                "data": data,
            }
            await self._api.create_own_secret(ns, body)
            return
        body = {**secret, "data": data}  # metadata.resourceVersion guards the update
        await self._api.update_own_secret(ns, body)

    async def publish_ca_bundle(self, bundle: bytes) -> bool:
        """Make every webhook's ``caBundle`` the Secret's bundle; whether a patch was sent."""
        name = self.settings.configuration
        assert name is not None
        config = await self._api.get_webhook_configuration(name)
        if config is None:
            log.warning("webhook certificate: MutatingWebhookConfiguration %s not found", name)
            return False
        wanted = base64.b64encode(bundle).decode()
        operations: list[dict[str, Any]] = []
        for i, hook in enumerate(config.get("webhooks") or ()):
            if (hook.get("clientConfig") or {}).get("caBundle") == wanted:
                continue
            operations += [
                {"op": "test", "path": f"/webhooks/{i}/name", "value": hook.get("name")},
                {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": wanted},
            ]
        if not operations:
            return False
        await self._api.patch_webhook_configuration(name, operations)
        log.info("webhook certificate: caBundle of %s updated", name)
        return True

    def _load(self, material: pki.Material) -> None:
        """Serve ``material``'s certificate from the next TLS handshake on (no restart)."""
        from alembic_operator.controller import pki  # noqa: PLC0415 - see the module's imports

        if material.tls_crt == self._loaded:
            return
        keyfile = self._workdir / pki.TLS_KEY
        _write_private(keyfile, material.tls_key)
        _write_private(self.certfile, material.tls_crt)
        _write_private(self._workdir / pki.CA_CRT, material.ca_bundle)
        self.context.load_cert_chain(self.certfile, keyfile)
        if self._loaded is not None:
            self.rotations += 1
            log.info("webhook certificate: serving the renewed certificate")
        self._loaded = material.tls_crt
        self.ready.set()


_LABELS = {
    "app.kubernetes.io/part-of": "alembic-operator",
    "app.kubernetes.io/component": "webhook",
}


def _decode(secret: dict[str, Any] | None) -> dict[str, bytes]:
    raw = (secret or {}).get("data") or {}
    decoded: dict[str, bytes] = {}
    for key, value in raw.items():
        try:
            decoded[key] = base64.b64decode(value)
        except (ValueError, TypeError):
            continue
    return decoded


def _write_private(path: Path, content: bytes) -> None:
    """Write ``content`` (mode 0600) atomically: a reader sees the old file or the new one."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(content)
    partial.replace(path)
