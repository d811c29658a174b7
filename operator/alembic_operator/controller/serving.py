"""How this replica runs: the admission webhook's server and TLS source, and leader election.

Read from the environment (``alembic-operator run`` turns its flags into these variables, the
chart sets them; see docs/operator.md and docs/gating.md):

- the webhook: off unless ``ALEMBIC_OPERATOR_WEBHOOK_PORT`` is set. Its TLS comes either from a
  directory with ``tls.crt``/``tls.key`` (``..._WEBHOOK_CERT_DIR``: cert-manager or a Secret you
  manage, mounted; kopf restarts the server when the files change) or, by default, from the
  operator itself (:mod:`alembic_operator.controller.certificates`: a Secret in the operator's
  namespace, the ``caBundle`` of ``..._WEBHOOK_CONFIGURATION``, rotated in place).
- the webhook's ``timeoutSeconds`` (``..._WEBHOOK_TIMEOUT``, default 5): a Deployment request
  waits for its consistent read of the migrations until 1 s before that, then is refused.
- leader election: on with ``ALEMBIC_OPERATOR_LEADER_ELECTION=1``; the Lease
  ``..._LEASE_NAME`` in the operator's namespace, this replica named ``..._IDENTITY``
  (default: ``$POD_NAME``, else host name and process id).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import kopf

from alembic_operator.controller.certificates import CertificateManager, CertificateSettings

WEBHOOK_PORT_ENV = "ALEMBIC_OPERATOR_WEBHOOK_PORT"
WEBHOOK_ADDR_ENV = "ALEMBIC_OPERATOR_WEBHOOK_ADDR"
WEBHOOK_CERT_DIR_ENV = "ALEMBIC_OPERATOR_WEBHOOK_CERT_DIR"
WEBHOOK_SECRET_ENV = "ALEMBIC_OPERATOR_WEBHOOK_SECRET"  # noqa: S105 - a variable name
WEBHOOK_SERVICE_ENV = "ALEMBIC_OPERATOR_WEBHOOK_SERVICE"
WEBHOOK_CONFIGURATION_ENV = "ALEMBIC_OPERATOR_WEBHOOK_CONFIGURATION"
WEBHOOK_HOSTS_ENV = "ALEMBIC_OPERATOR_WEBHOOK_HOSTS"
WEBHOOK_CERT_VALIDITY_ENV = "ALEMBIC_OPERATOR_WEBHOOK_CERT_VALIDITY"
WEBHOOK_TIMEOUT_ENV = "ALEMBIC_OPERATOR_WEBHOOK_TIMEOUT"
LEADER_ELECTION_ENV = "ALEMBIC_OPERATOR_LEADER_ELECTION"
LEASE_NAME_ENV = "ALEMBIC_OPERATOR_LEASE_NAME"
IDENTITY_ENV = "ALEMBIC_OPERATOR_IDENTITY"
NAMESPACE_ENV = "ALEMBIC_OPERATOR_NAMESPACE"

DEFAULT_NAME = "alembic-operator"
DEFAULT_VALIDITY = timedelta(days=365)
DEFAULT_WEBHOOK_TIMEOUT = 5.0  # the chart's webhook.timeoutSeconds


class OptionsError(ValueError):
    """The environment asks for something incomplete (e.g. a managed certificate, no namespace)."""


@dataclass(frozen=True)
class Options:
    webhook_port: int | None = None
    webhook_addr: str = "0.0.0.0"  # noqa: S104 - the apiserver calls in
    cert_dir: Path | None = None  # None: the operator manages the certificate
    certificate: CertificateSettings | None = None
    leader_election: bool = False
    namespace: str = ""
    lease_name: str = DEFAULT_NAME
    identity: str = ""
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT  # the API server's timeoutSeconds

    @property
    def admission_read_seconds(self) -> float:
        """How long a request may wait for the webhook's read of the migrations: 1 s less than
        the API server waits, so the refusal is ours (with its reason), also under ``Ignore``."""
        return max(0.5, self.webhook_timeout - 1.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Options:
        env = os.environ if environ is None else environ
        namespace = env.get(NAMESPACE_ENV) or env.get("POD_NAMESPACE") or ""
        identity = (
            env.get(IDENTITY_ENV) or env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        )
        election = env.get(LEADER_ELECTION_ENV, "").strip().lower() in ("1", "true", "yes")
        if election and not namespace:
            raise OptionsError("leader election needs the operator's namespace ($POD_NAMESPACE)")
        port = env.get(WEBHOOK_PORT_ENV, "").strip()
        cert_dir = env.get(WEBHOOK_CERT_DIR_ENV, "").strip()
        certificate = None
        if port and not cert_dir:
            if not namespace:
                raise OptionsError(
                    "a certificate managed by the operator needs its namespace ($POD_NAMESPACE)"
                )
            validity = env.get(WEBHOOK_CERT_VALIDITY_ENV, "").strip()
            hosts = [h.strip() for h in env.get(WEBHOOK_HOSTS_ENV, "").split(",") if h.strip()]
            certificate = CertificateSettings(
                namespace=namespace,
                secret=env.get(WEBHOOK_SECRET_ENV) or f"{DEFAULT_NAME}-webhook-tls",
                service=env.get(WEBHOOK_SERVICE_ENV) or f"{DEFAULT_NAME}-webhook",
                configuration=env.get(WEBHOOK_CONFIGURATION_ENV) or None,
                hosts=tuple(hosts),
                validity=timedelta(seconds=float(validity)) if validity else DEFAULT_VALIDITY,
            )
        return cls(
            webhook_port=int(port) if port else None,
            webhook_addr=env.get(WEBHOOK_ADDR_ENV) or "0.0.0.0",  # noqa: S104
            cert_dir=Path(cert_dir) if cert_dir else None,
            certificate=certificate,
            leader_election=election,
            namespace=namespace,
            lease_name=env.get(LEASE_NAME_ENV) or DEFAULT_NAME,
            identity=identity,
            webhook_timeout=float(env.get(WEBHOOK_TIMEOUT_ENV) or DEFAULT_WEBHOOK_TIMEOUT),
        )


class ManagedServer(kopf.WebhookServer):
    """kopf's webhook server on an SSL context the certificate manager reloads in place.

    It starts listening once the first certificate is loaded; a renewed certificate is used
    from the next handshake on, without a restart (kopf's own reload restarts the server).
    """

    def __init__(self, certificates: CertificateManager, **kwargs: Any) -> None:
        super().__init__(context=certificates.context, **kwargs)
        self._certificates = certificates

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        await self._certificates.ready.wait()
        async for config in super().__call__(fn):
            yield config

    def _build_ssl(self) -> tuple[bytes | None, ssl.SSLContext | None]:
        # The context already holds the certificate (kopf would otherwise generate one).
        return None, self.context


async def no_server(_fn: Any) -> AsyncIterator[Any]:
    """The webhook is off: serve nothing until the operator stops.

    kopf refuses admission handlers without a server, and stops when the server ends.
    """
    await asyncio.Event().wait()
    yield None  # pragma: no cover - never reached


def webhook_server(
    options: Options, certificates: CertificateManager | None
) -> kopf.WebhookServer | None:
    """The server ``options`` ask for (``None``: the webhook is off)."""
    if options.webhook_port is None:
        return None
    addr, port = options.webhook_addr, options.webhook_port
    if options.cert_dir is not None:
        certfile, pkeyfile = options.cert_dir / "tls.crt", options.cert_dir / "tls.key"
        return kopf.WebhookServer(addr=addr, port=port, certfile=certfile, pkeyfile=pkeyfile)
    assert certificates is not None
    return ManagedServer(certificates, addr=addr, port=port)
