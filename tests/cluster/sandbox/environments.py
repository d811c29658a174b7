"""The sandbox's cluster: a real control plane, a test kubelet, and the operator as a process.

etcd + kube-apiserver + kube-controller-manager (:class:`~tests.cluster.controlplane.ControlPlane`,
the CRD installed before the controllers start), the chart's ServiceAccount and RBAC rendered by
the real ``helm template``, the chart's MutatingWebhookConfiguration pointed at the operator's
webhook on 127.0.0.1 (a serving certificate from the cluster's CA: there is no kube-proxy to
reach a Service), a :class:`~tests.cluster.kubelet.TestKubelet` for the sandbox's namespace, and
``alembic-operator run --all-namespaces --standalone`` as a subprocess (as the chart's
Deployment runs it with ``clusterWide=true``) with a kubeconfig of
the chart's ServiceAccount — the same process a Deployment of the chart runs.

Must not: reach anything but 127.0.0.1, or leave processes behind (everything is ended by PID
when the context ends; the control plane's processes also die with this one).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import ssl
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alembic_operator import __version__
from tests.cluster.apiclient import ApiClient
from tests.cluster.controlplane import (
    REPO,
    ControlPlane,
    ControlPlaneError,
    die_with_parent,
    free_port,
    http_ok,
    is_listening,
)
from tests.cluster.fixtures import helm_template, install_operator_identity, kubectl, load_crds
from tests.cluster.kubelet import Runtime, TestKubelet
from tests.cluster.podman import APP_IMAGE as LOCAL_APP_IMAGE
from tests.cluster.podman import OPERATOR_IMAGE as LOCAL_OPERATOR_IMAGE
from tests.cluster.podman import LocalImage, PodmanError
from tests.cluster.processes import ImageSpec
from tests.cluster.sandbox.containers import WEB_ENV, build_broken_image, require_images

NS = "default"
APP_IMAGE = "ghcr.io/alembic-operator/example-shop:1.0"
BROKEN_IMAGE = "ghcr.io/alembic-operator/example-shop:1.1-broken"
OPERATOR_IMAGE = f"ghcr.io/alembic-operator/alembic-operator:{__version__}"
BROKEN_REVISION = "0010_add_order_notes"
SHOP_APP = Path(__file__).with_name("shop_app.py")
WEBHOOK_PATH = "/gate-deployments"


class SandboxError(Exception):
    """The sandbox cannot start (a missing checkout file or tool, a cluster that fails, ...)."""


def checkout_file(*parts: str) -> Path:
    path = REPO.joinpath(*parts)
    if not path.exists():
        raise SandboxError(f"{path} not found: run the sandbox from a checkout of the repository")
    return path


@dataclass
class Sandbox:
    plane: ControlPlane
    kubelet: TestKubelet
    kubeconfig: Path  # the cluster admin's (what a person uses: kubectl)
    workdir: Path
    operator: asyncio.subprocess.Process
    metrics_url: str
    started: float
    runtime: Runtime = "processes"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """The real kubectl as the cluster admin (raises with its output on failure)."""
        try:
            return kubectl(self.plane, *args, stdin=stdin)
        except AssertionError as exc:  # the test helper's way of failing
            raise SandboxError(str(exc)) from exc

    def ssl_context(self) -> ssl.SSLContext:
        return self.plane.ssl_context()


def app_image(root: Path) -> ImageSpec:
    """The example app image: its migrations, and ``CMD`` the shop server (on 127.0.0.1)."""
    server = checkout_file("examples", "app", "server.py")
    return ImageSpec(
        root=root,
        entrypoint=("python", str(SHOP_APP), str(server)),
        env={"SHOP_MIGRATIONS": str(root), "PYTHONUNBUFFERED": "1"},
    )


def broken_revision() -> str:
    """The source of the broken image's extra revision."""
    return textwrap.dedent(f'''\
        """Add order notes — with a typo in the table name, so it fails."""
        import sqlalchemy as sa
        from alembic import op

        revision = "{BROKEN_REVISION}"
        down_revision = "0009_widen_product_name"
        branch_labels = None
        depends_on = None


        def upgrade():
            op.add_column("order", sa.Column("notes", sa.Text()))


        def downgrade():
            op.drop_column("order", "notes")
        ''')


def images(workdir: Path) -> dict[str, ImageSpec]:
    """The example app image, a broken next version of it, and the operator's image."""
    migrations = checkout_file("migrations")
    broken = workdir / "images" / "example-shop-1.1-broken"
    if broken.exists():
        shutil.rmtree(broken)
    shutil.copytree(migrations, broken, ignore=shutil.ignore_patterns("__pycache__"))
    (broken / "versions" / f"{BROKEN_REVISION}.py").write_text(broken_revision())
    return {
        APP_IMAGE: app_image(migrations),
        BROKEN_IMAGE: app_image(broken),
        OPERATOR_IMAGE: ImageSpec(root=REPO),
    }


def container_images() -> dict[str, LocalImage]:
    """Container mode: the same references played by the real images (sandbox/containers.py)."""
    try:
        require_images()
        broken = build_broken_image(BROKEN_REVISION, broken_revision())
    except PodmanError as exc:
        raise SandboxError(str(exc)) from exc
    return {
        APP_IMAGE: LocalImage(LOCAL_APP_IMAGE, env=WEB_ENV),
        BROKEN_IMAGE: LocalImage(broken, env=WEB_ENV),
        OPERATOR_IMAGE: LocalImage(LOCAL_OPERATOR_IMAGE),
    }


@contextlib.asynccontextmanager
async def sandbox_cluster(
    *,
    workdir: Path,
    runtime: Runtime = "processes",
    extra_images: Mapping[str, ImageSpec] | None = None,
    apiserver_flags: Sequence[str] = (),
    kubelet_namespace: str | None = NS,
    chart_values: Sequence[str] = (),
) -> AsyncIterator[Sandbox]:
    """Control plane + RBAC + webhook + kubelet + operator; yields once the operator serves.

    ``extra_images``, ``apiserver_flags`` (e.g. an audit log), ``kubelet_namespace`` (None:
    the kubelet runs the pods of every namespace) and ``chart_values`` (more ``helm template``
    arguments, e.g. ``-f values.yaml`` with a ``webhook.namespaceSelector``) are for the
    benchmarks.
    """
    started = time.monotonic()
    kubelet_images: dict[str, ImageSpec | LocalImage] = {}
    if runtime == "podman":  # before the control plane starts: a missing image fails at once
        kubelet_images.update(await asyncio.to_thread(container_images))
    else:
        kubelet_images.update(images(workdir))
    kubelet_images.update(extra_images or {})
    workdir.mkdir(parents=True, exist_ok=True)
    folder = workdir / "cluster"
    shutil.rmtree(folder, ignore_errors=True)  # a previous run's etcd data must not come back
    folder.mkdir()
    plane = ControlPlane(folder=folder, extra_apiserver_flags=tuple(apiserver_flags))
    try:
        await asyncio.to_thread(plane.start, crds=load_crds())
    except ControlPlaneError as exc:
        raise SandboxError(str(exc)) from exc
    try:
        kubeconfig = workdir / "kubeconfig"
        shutil.copyfile(plane.admin_kubeconfig, kubeconfig)
        kubeconfig.chmod(0o600)
        webhook_port, certs = free_port(), _webhook_certificate(plane, workdir)
        chart_args = (*_chart_args(plane), *chart_values)
        identity = await asyncio.to_thread(install_operator_identity, plane, *chart_args)
        operator_kubeconfig = identity.kubeconfig(plane, workdir / "operator.kubeconfig", NS)
        await asyncio.to_thread(_install_webhook, plane, chart_args, webhook_port)
        api = await ApiClient(plane.server, ssl_context=plane.ssl_context()).open()
        kubelet = TestKubelet(
            api,
            node="sandbox",
            images=kubelet_images,
            workdir=workdir / "kubelet",
            ca=plane.ca,
            namespace=kubelet_namespace,
            runtime=runtime,
        )
        await kubelet.start()
        try:
            metrics_port = free_port()
            operator = await _start_operator(
                workdir,
                operator_kubeconfig,
                metrics_port=metrics_port,
                webhook_port=webhook_port,
                certs=certs,
            )
            try:
                metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
                await _ready(operator, metrics_url, webhook_port, workdir / "operator.log")
                yield Sandbox(
                    plane=plane,
                    kubelet=kubelet,
                    kubeconfig=kubeconfig,
                    workdir=workdir,
                    operator=operator,
                    metrics_url=metrics_url,
                    started=started,
                    runtime=runtime,
                )
            finally:
                await _stop(operator)
        finally:
            await kubelet.stop()
            await api.close()
    finally:
        await asyncio.to_thread(plane.stop)


def _chart_args(plane: ControlPlane) -> tuple[str, ...]:
    """The chart's values: cluster-wide RBAC, the webhook on with the cluster's CA."""
    ca_bundle = base64.b64encode(plane.ca.pem).decode()
    return (
        "--set",
        "clusterWide=true",
        "--set",
        "webhook.enabled=true",
        "--set",
        "webhook.existingSecret=sandbox-webhook-tls",
        "--set",
        f"webhook.caBundle={ca_bundle}",
    )


def _webhook_certificate(plane: ControlPlane, workdir: Path) -> Path:
    """``tls.crt``/``tls.key`` for the operator's webhook on 127.0.0.1, signed by the cluster CA."""
    pair = plane.ca.issue(
        "sandbox-webhook", common_name="alembic-operator-webhook", hosts=("127.0.0.1",), server=True
    )
    certs = workdir / "webhook-certs"
    certs.mkdir(exist_ok=True)
    shutil.copyfile(pair.cert, certs / "tls.crt")
    shutil.copyfile(pair.key, certs / "tls.key")
    return certs


def _install_webhook(plane: ControlPlane, chart_args: tuple[str, ...], port: int) -> None:
    """The chart's MutatingWebhookConfiguration, its Service reference replaced by a URL.

    A ``clientConfig.service`` is reached through the Service's ClusterIP, which needs a
    kube-proxy this machine does not have; ``url`` reaches the operator on the host directly.
    """
    configs = [o for o in helm_template(*chart_args) if o["kind"] == "MutatingWebhookConfiguration"]
    if not configs:
        raise SandboxError("the chart rendered no MutatingWebhookConfiguration")
    for config in configs:
        for hook in config["webhooks"]:
            client: dict[str, Any] = hook["clientConfig"]
            path = (client.pop("service", None) or {}).get("path", WEBHOOK_PATH)
            client["url"] = f"https://127.0.0.1:{port}{path}"
    kubectl(plane, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(configs))


async def _start_operator(
    workdir: Path, kubeconfig: Path, *, metrics_port: int, webhook_port: int, certs: Path
) -> asyncio.subprocess.Process:
    env: dict[str, Any] = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "ALEMBIC_OPERATOR_RUNNER_IMAGE": OPERATOR_IMAGE,
        "ALEMBIC_OPERATOR_WEBHOOK_ADDR": "127.0.0.1",
    }
    with (workdir / "operator.log").open("wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alembic_operator",
            "run",
            "--standalone",
            "--all-namespaces",  # as the chart runs it with clusterWide=true
            "--metrics-port",
            str(metrics_port),
            "--webhook-port",
            str(webhook_port),
            "--webhook-cert-dir",
            str(certs),
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,  # its own session; dies with the sandbox
        )


async def _ready(
    operator: asyncio.subprocess.Process, metrics_url: str, webhook_port: int, log: Path
) -> None:
    """The operator serves its metrics and its webhook (kopf starts both with its watches)."""
    deadline = time.monotonic() + 60
    while not (await asyncio.to_thread(http_ok, metrics_url) and await is_listening(webhook_port)):
        if operator.returncode is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise SandboxError(f"the operator exited with code {operator.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise SandboxError(f"the operator did not start within 60 s (log: {log})")
        await asyncio.sleep(0.1)


async def _stop(operator: asyncio.subprocess.Process) -> None:
    if operator.returncode is not None:
        return
    operator.terminate()
    try:
        await asyncio.wait_for(operator.wait(), timeout=10)
    except TimeoutError:
        operator.kill()
        await operator.wait()
