"""Operator replicas as real processes: `alembic-operator run --leader-election` twice, each as
the chart's ServiceAccount (through a fault proxy that records their calls), with the operator's
own webhook certificate, behind a small TCP balancer that stands in for the webhook Service
(this machine has no kube-proxy): the chart's MutatingWebhookConfiguration is installed with
``clientConfig.url`` pointing at the balancer, which forwards each connection to a replica that
accepts it, as a Service forwards to ready endpoints.

The names the operator uses (Lease, Secret, Service, webhook configuration) are the chart's own
for the release the session's RBAC was rendered for, so the chart's ``resourceNames`` apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from tests.cluster.client import Client
from tests.cluster.controlplane import (
    ControlPlane,
    die_with_parent,
    free_port,
    http_ok,
    is_listening,
)
from tests.cluster.fixtures import (
    OPERATOR_IMAGE,
    OPERATOR_NAMESPACE,
    OPERATOR_RELEASE,
    helm_template,
    kubectl,
)
from tests.operator.harness import wait_for

FULLNAME = f"{OPERATOR_RELEASE}-alembic-operator"
LEASE = FULLNAME
SECRET = f"{FULLNAME}-webhook-tls"
SERVICE = f"{FULLNAME}-webhook"
CONFIGURATION = f"{FULLNAME}-{OPERATOR_NAMESPACE}"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NAMESPACE}/leases/{LEASE}"
SECRET_PATH = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{SECRET}"
CONFIGURATION_PATH = (
    f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{CONFIGURATION}"
)


class Balancer:
    """A TCP forwarder on 127.0.0.1: each connection goes to the next backend that accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.backends: list[int] = []
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self.connections: dict[int, int] = {}

    async def start(self) -> Balancer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        start = next(self._turn)
        ports = [self.backends[(start + i) % len(self.backends)] for i in range(len(self.backends))]
        for port in ports:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.connections[port] = self.connections.get(port, 0) + 1
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@dataclass
class Replica:
    identity: str
    process: asyncio.subprocess.Process
    metrics_port: int
    webhook_port: int
    log: Path

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def served_certificate(self) -> x509.Certificate:
        """The certificate this replica's webhook presents right now (no verification)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", self.webhook_port), timeout=5) as sock,
            context.wrap_socket(sock) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)


@dataclass
class Replicas:
    """The operator replicas of one test, the balancer in front of their webhooks."""

    plane: ControlPlane
    namespace: str
    kubeconfig: Path
    workdir: Path
    admin: Client
    balancer: Balancer
    validity: float | None = None
    replicas: list[Replica] = field(default_factory=list)

    async def start(self, identity: str) -> Replica:
        metrics_port, webhook_port = free_port(), free_port()
        args = [
            # As the chart runs it with clusterWide=true (the session's RBAC).
            "run", "--all-namespaces", "--standalone",
            "--leader-election", "--identity", identity,
            "--operator-namespace", OPERATOR_NAMESPACE, "--lease-name", LEASE,
            "--metrics-port", str(metrics_port), "--webhook-port", str(webhook_port),
            "--webhook-secret", SECRET, "--webhook-service", SERVICE,
            "--webhook-configuration", CONFIGURATION, "--webhook-host", "127.0.0.1",
        ]  # fmt: skip
        if self.validity is not None:
            args += ["--webhook-cert-validity", str(self.validity)]
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "ALEMBIC_OPERATOR_RUNNER_IMAGE": OPERATOR_IMAGE,
            "ALEMBIC_OPERATOR_WEBHOOK_ADDR": "127.0.0.1",
        }
        log = self.workdir / f"{identity}.log"
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "alembic_operator", *args,
                env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )  # fmt: skip
        replica = Replica(identity, process, metrics_port, webhook_port, log)
        self.replicas.append(replica)
        self.balancer.backends.append(webhook_port)

        async def serving() -> bool:
            if not replica.alive:
                raise AssertionError(f"{identity} exited:\n{replica.output()[-3000:]}")
            return await asyncio.to_thread(
                http_ok, f"http://127.0.0.1:{metrics_port}/metrics"
            ) and await is_listening(webhook_port)

        await wait_for(serving, within=90, what=f"{identity} to serve metrics and the webhook")
        return replica

    async def kill(self, replica: Replica) -> None:
        replica.process.send_signal(signal.SIGKILL)
        await replica.process.wait()

    async def stop(self, replica: Replica) -> None:
        if replica.alive:
            replica.process.terminate()
            try:
                await asyncio.wait_for(replica.process.wait(), 20)
            except TimeoutError:
                replica.process.kill()
                await replica.process.wait()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(r) for r in self.replicas))

    async def holder(self) -> str | None:
        status, lease = await self.admin.request("GET", LEASE_PATH)
        if status != 200:
            return None
        return (lease.get("spec") or {}).get("holderIdentity")

    def by_identity(self, identity: str) -> Replica:
        return next(r for r in self.replicas if r.identity == identity)


def install_webhook_configuration(plane: ControlPlane, namespace: str, port: int) -> None:
    """The chart's MutatingWebhookConfiguration (default values: failurePolicy Fail, the
    operator's own certificate, so no caBundle), selecting only ``namespace``, reached by URL."""
    rendered = helm_template("--set", f"watchNamespaces={{{namespace}}}")
    configs = [o for o in rendered if o["kind"] == "MutatingWebhookConfiguration"]
    assert [c["metadata"]["name"] for c in configs] == [CONFIGURATION]
    for hook in configs[0]["webhooks"]:
        client: dict[str, Any] = hook["clientConfig"]
        assert "caBundle" not in client
        path = client.pop("service")["path"]
        client["url"] = f"https://127.0.0.1:{port}{path}"
    kubectl(plane, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(configs))


def remove_own_objects(plane: ControlPlane) -> None:
    """The Lease, the certificate Secret and the webhook configuration of an earlier test."""
    for path in (LEASE_PATH, SECRET_PATH, CONFIGURATION_PATH):
        with contextlib.suppress(Exception):
            plane.request("DELETE", path)
