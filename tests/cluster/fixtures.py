"""pytest fixtures: one real control plane per test session, a namespace and a kubelet per test.

Test-only (loaded by ``tests/conftest.py`` as a plugin). The control plane starts on first use
(a session that runs only pure-core tests never starts it) with the project's CRD installed
from ``crds/``. The operator's identity is the chart's: its ServiceAccount and cluster-wide RBAC
are rendered with the real ``helm template`` and applied once; the operator under test then
runs with a TokenRequest token of that ServiceAccount, so any request its RBAC does not allow
is a 403 the test sees.

Container mode: a test marked ``@pytest.mark.podman_kubelet`` gets a kubelet that runs its pods
with the real podman from the images scripts/image.sh builds (``built_images``, once per
session): the app image reference :data:`APP_IMAGE` is ``localhost/shop-app:dev``, the operator
image :data:`OPERATOR_IMAGE` is ``localhost/alembic-operator:dev``. When the collected tests
need those images, the build starts in the background as soon as collection ends (on a fresh
machine it installs podman and builds a base image: minutes, spent while earlier tests run).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from alembic_operator.model.reasons import Reason
from alembic_operator.model.spec import GROUP, VERSION
from tests.cluster.apiclient import ApiClient
from tests.cluster.client import Client
from tests.cluster.controlplane import REPO, SA_ISSUER, ControlPlane, write_kubeconfig
from tests.cluster.kubelet import TestKubelet
from tests.cluster.podman import APP_IMAGE as LOCAL_APP_IMAGE
from tests.cluster.podman import IMAGES, LocalImage, PodmanError, build_images
from tests.cluster.podman import OPERATOR_IMAGE as LOCAL_OPERATOR_IMAGE
from tests.cluster.processes import ImageSpec

TOOLS = REPO / ".tools" / "bin"
OPERATOR_NAMESPACE = "alembic-operator"
OPERATOR_RELEASE = "ao"
OPERATOR_SERVICE_ACCOUNT = f"{OPERATOR_RELEASE}-alembic-operator"
APP_IMAGE = "registry.example.com/shop/app:1.0"
OPERATOR_IMAGE = "ghcr.io/alembic-operator/alembic-operator:test"
MIGRATIONS = REPO / "migrations"


def tool(name: str) -> Path:
    """A real tool installed by scripts/tools.sh; its absence fails loudly."""
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: run scripts/tools.sh (make test does)")
    return path


def load_crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]


def kubectl(control_plane: ControlPlane, *args: str, stdin: str | None = None) -> str:
    """Run the real kubectl as the cluster admin; a failure raises with its output."""
    done = subprocess.run(
        [str(tool("kubectl")), f"--kubeconfig={control_plane.admin_kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def helm_template(*args: str) -> list[dict[str, Any]]:
    """The chart rendered by the real ``helm template`` (objects, in order)."""
    done = subprocess.run(
        [
            str(tool("helm")),
            "template",
            OPERATOR_RELEASE,
            str(REPO / "charts" / "alembic-operator"),
            "--namespace",
            OPERATOR_NAMESPACE,
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise AssertionError(f"helm template {' '.join(args)} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@dataclass(frozen=True)
class OperatorIdentity:
    """The chart's ServiceAccount: its token, and a kubeconfig that uses it."""

    service_account: str
    namespace: str
    token: str

    def kubeconfig(
        self, control_plane: ControlPlane, path: Path, namespace: str, *, server: str | None = None
    ) -> Path:
        """A kubeconfig with this identity; ``server``: e.g. a fault proxy (default: apiserver)."""
        return write_kubeconfig(
            path,
            server=server or control_plane.server,
            ca=control_plane.ca.cert,
            user=f"system:serviceaccount:{self.namespace}:{self.service_account}",
            token=self.token,
            namespace=namespace,
        )


RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def install_operator_identity(control_plane: ControlPlane, *helm_args: str) -> OperatorIdentity:
    """Apply the chart's ServiceAccount and RBAC (rendered with ``helm_args``); issue a token."""
    objects = [o for o in helm_template(*helm_args) if o["kind"] in RBAC_KINDS]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}
    kubectl(
        control_plane,
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=yaml.safe_dump_all([namespace, *objects]),
    )
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": [SA_ISSUER], "expirationSeconds": 86400},
    }
    answer = control_plane.request(
        "POST",
        f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/serviceaccounts/{OPERATOR_SERVICE_ACCOUNT}/token",
        request,
    )
    return OperatorIdentity(
        service_account=OPERATOR_SERVICE_ACCOUNT,
        namespace=OPERATOR_NAMESPACE,
        token=answer["status"]["token"],
    )


def namespace_name(nodeid: str) -> str:
    """A DNS-1123 label from a test id: readable prefix, unique suffix, ≤ 63 characters."""
    test = nodeid.rsplit("::", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", test.lower()).strip("-")[:40].strip("-")
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:4]
    return f"t-{slug}-{digest}{secrets.token_hex(2)}"


def foreign_reasons(control_plane: ControlPlane, namespace: str) -> list[str]:
    """Reasons in this namespace that are not members of the one enum (``Reason``).

    Every Event the operator posted (``source.component`` is ours: on migrations and on gated
    Deployments) and every condition in a DatabaseMigration's status.
    """
    ours = {reason.value for reason in Reason}
    events = control_plane.request("GET", f"/api/v1/namespaces/{namespace}/events") or {}
    found = [
        f"Event {event.get('reason')!r} on {event['involvedObject'].get('name')}"
        for event in events.get("items", [])
        if (event.get("source") or {}).get("component") == "alembic-operator"
        and event.get("reason") not in ours
    ]
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/databasemigrations"
    for migration in (control_plane.request("GET", path) or {}).get("items", []):
        found += [
            f"condition {condition.get('type')} {condition.get('reason')!r} on "
            f"{migration['metadata']['name']}"
            for condition in (migration.get("status") or {}).get("conditions") or []
            if condition.get("reason") not in ours
        ]
    return found


def admin_ssl(control_plane: ControlPlane) -> ssl.SSLContext:
    return control_plane.ssl_context()


def admin_session(control_plane: ControlPlane) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        control_plane.server,
        connector=aiohttp.TCPConnector(ssl=control_plane.ssl_context()),
        headers={"Accept": "application/json"},
    )


def default_images() -> dict[str, ImageSpec]:
    """Images the test kubelet knows: the example app (``migrations/``) and the operator."""
    return {APP_IMAGE: ImageSpec(root=MIGRATIONS), OPERATOR_IMAGE: ImageSpec(root=REPO)}


def container_images() -> dict[str, LocalImage]:
    """The same references as :func:`default_images`, played by the real local images."""
    return {
        APP_IMAGE: LocalImage(LOCAL_APP_IMAGE),
        OPERATOR_IMAGE: LocalImage(LOCAL_OPERATOR_IMAGE),
    }


class BackgroundBuild:
    """scripts/image.sh run once, in a thread: started early, its outcome awaited where needed."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._output = ""
        self._error: PodmanError | None = None
        self.took = 0.0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="image.sh", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        # One build at a time on this machine (the images are the machine's, not this
        # checkout's): another test session, or another pytest-xdist worker, waits its turn.
        with IMAGE_BUILD_LOCK.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._output = build_images()
            except PodmanError as exc:
                self._error = exc
        self.took = time.monotonic() - started

    def result(self) -> str:
        """The build's output once it has finished (started now if it was not); raises its
        :class:`PodmanError`."""
        self.start()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._output

    def wait(self) -> None:
        """Let a started build finish (never leave scripts/image.sh half-way at exit)."""
        if self._thread is not None:
            self._thread.join()


IMAGE_BUILD_LOCK = Path(tempfile.gettempdir()) / "alembic-operator-image-build.lock"
IMAGE_BUILD = BackgroundBuild()


def needs_images(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return "built_images" in fixtures or item.get_closest_marker("podman_kubelet") is not None


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly and any(map(needs_images, session.items)):
        IMAGE_BUILD.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    IMAGE_BUILD.wait()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "podman_kubelet: the test kubelet runs pods as real podman containers of the images "
        "scripts/image.sh builds (container mode)",
    )


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager v1.36.2, the project's CRD installed."""
    plane = ControlPlane()
    plane.start(crds=load_crds())
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def operator_identity(control_plane: ControlPlane) -> OperatorIdentity:
    """The chart's ServiceAccount with the chart's cluster-wide RBAC, and its token."""
    return install_operator_identity(control_plane, "--set", "clusterWide=true")


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for this test, deleted (without waiting) afterwards.

    On the way out it checks that every reason the operator wrote there (Events, conditions) is
    a member of the one enum, so each end-to-end test also checks what it made the operator say.
    """
    name = namespace_name(request.node.nodeid)
    control_plane.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    try:
        yield name
        foreign = foreign_reasons(control_plane, name)
    finally:
        control_plane.request("DELETE", f"/api/v1/namespaces/{name}")
    assert not foreign, f"reasons that are not members of Reason: {foreign}"


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[Client]:
    """A JSON client with the cluster admin's credentials."""
    async with admin_session(control_plane) as session:
        yield Client(session)


@pytest.fixture(scope="session")
def built_images() -> tuple[str, ...]:
    """The operator, app and base images, (re)built once per session by scripts/image.sh.

    It is idempotent and its layer cache makes an up-to-date rebuild take seconds, so tests
    always run images of the current tree, never a stale build. On a fresh machine it installs
    buildah/podman and builds everything (minutes; docs/images.md). A failure fails the tests.
    The build started in the background when collection ended (:class:`BackgroundBuild`).
    """
    started = time.monotonic()
    try:
        output = IMAGE_BUILD.result()
    except PodmanError as exc:
        pytest.fail(str(exc), pytrace=False)
    waited = time.monotonic() - started
    print(f"\nscripts/image.sh: {IMAGE_BUILD.took:.1f} s, {waited:.1f} s waited\n{output[-600:]}")
    return IMAGES


@pytest.fixture
async def kubelet(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[TestKubelet]:
    """A test kubelet (its own Node) binding and running the pods of this test's namespace;
    in container mode for a test marked ``podman_kubelet``."""
    podman = request.node.get_closest_marker("podman_kubelet") is not None
    if podman:
        request.getfixturevalue("built_images")
    api = await ApiClient(control_plane.server, ssl_context=control_plane.ssl_context()).open()
    node = TestKubelet(
        api,
        node=f"node-{namespace}"[:63],
        images=container_images() if podman else default_images(),
        workdir=tmp_path / "kubelet",
        ca=control_plane.ca,
        namespace=namespace,
        runtime="podman" if podman else "processes",
    )
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
        await api.close()
