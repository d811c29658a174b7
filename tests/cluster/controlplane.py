"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Test-only (the tests, the sandbox and the benchmarks use it; the product never imports it).
Binaries come from ``$KUBEBUILDER_ASSETS`` (envtest's convention: a folder holding
``kube-apiserver``, ``kube-controller-manager`` and optionally ``etcd``); where that is unset
and ``../shared/k8s/install.sh`` exists beside the checkout, that script unpacks them into
``.k8s-assets/``. etcd falls back to the one on ``PATH`` (Debian's ``etcd-server``). A missing
binary is an error that says what to install — never a skip.

Every process runs on free 127.0.0.1 ports with a throw-away PKI, in its own session, with
``PR_SET_PDEATHSIG`` so it dies with the process that started it; :meth:`ControlPlane.stop`
ends them by PID (SIGTERM, then SIGKILL) and removes the folder. Custom resource definitions
passed to :meth:`ControlPlane.start` are installed *before* the controller manager starts, so
its garbage collector knows them from its first discovery (otherwise it needs up to ≈30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.pki import CertificateAuthority, KeyPair, service_account_keys

REPO = Path(__file__).resolve().parents[2]
SHARED_INSTALLER = REPO.parent / "shared" / "k8s" / "install.sh"
LOCAL_ASSETS = REPO / ".k8s-assets"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Controllers that need a cloud or a real node network; the rest (Job, Deployment, ReplicaSet,
# garbage collector, TTL-after-finished, service accounts, ...) are the real ones.
DISABLED_CONTROLLERS = (
    "nodeipam",
    "nodelifecycle",
    "cloud-node-lifecycle",
    "service-lb-controller",
    "node-route-controller",
    "persistentvolume-attach-detach-controller",
)
# The controller manager's client rate limit (its defaults: 20 requests/s, bursts of 30). At
# start-up it makes a ServiceAccount and a token for each of its ≈40 controllers
# (--use-service-account-credentials): throttled at the default, that alone took ≈5 s of every
# start. Raised, a start takes ≈0.5 s; the controllers are the same.
CONTROLLER_MANAGER_QPS = ("--kube-api-qps=500", "--kube-api-burst=1000")


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, started or reached (the message says why)."""


@dataclass(frozen=True)
class Assets:
    apiserver: Path
    controller_manager: Path
    etcd: Path


def find_assets() -> Assets:
    """The binaries: ``$KUBEBUILDER_ASSETS``, else ``../shared/k8s/install.sh``; etcd on PATH."""
    folder: Path | None = None
    if os.environ.get("KUBEBUILDER_ASSETS"):
        folder = Path(os.environ["KUBEBUILDER_ASSETS"])
    elif SHARED_INSTALLER.exists():
        done = subprocess.run(
            ["bash", str(SHARED_INSTALLER), str(LOCAL_ASSETS)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ControlPlaneError(f"{SHARED_INSTALLER} failed: {done.stderr.strip()}")
        folder = LOCAL_ASSETS
    if folder is None:
        raise ControlPlaneError(
            "no Kubernetes binaries: set KUBEBUILDER_ASSETS to a folder holding kube-apiserver "
            "and kube-controller-manager (e.g. `setup-envtest use 1.36 -p path`), or run beside "
            "../shared/k8s"
        )
    apiserver, manager = folder / "kube-apiserver", folder / "kube-controller-manager"
    for binary in (apiserver, manager):
        if not os.access(binary, os.X_OK):
            raise ControlPlaneError(f"{binary} is missing or not executable")
    etcd = folder / "etcd"
    if not os.access(etcd, os.X_OK):
        found = shutil.which("etcd")
        if found is None:
            raise ControlPlaneError(
                "no etcd: install Debian's etcd-server (apt-get install -y etcd-server) "
                "or put etcd into KUBEBUILDER_ASSETS"
            )
        etcd = Path(found)
    return Assets(apiserver=apiserver, controller_manager=manager, etcd=etcd)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """Child-side: SIGKILL this process when the parent dies (no orphaned control planes)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    os.setsid()


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca: Path,
    user: str,
    client: KeyPair | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Path:
    """A kubeconfig with one cluster, one user (a client certificate or a token), one context."""
    credentials: dict[str, Any] = {}
    if client is not None:
        credentials = {"client-certificate": str(client.cert), "client-key": str(client.key)}
    if token is not None:
        credentials = {"token": token}
    context: dict[str, Any] = {"cluster": "local", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "local", "context": context}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager; :meth:`start`, then :meth:`stop`."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="k8s-")))
    extra_apiserver_flags: Sequence[str] = ()
    keep_folder: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = 0

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.folder / "admin.kubeconfig"

    # --- start ------------------------------------------------------------------------------

    def start(self, *, crds: Iterable[dict[str, Any]] = (), timeout: float = 90) -> ControlPlane:
        assets = find_assets()
        try:
            self._pki()
            self._start_etcd(assets, timeout)
            self._start_apiserver(assets, timeout)
            for crd in crds:
                self.install_crd(crd, timeout=timeout)
            self._start_controller_manager(assets, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _pki(self) -> None:
        pki = self.folder / "pki"
        self.ca = CertificateAuthority(pki)
        self.serving = self.ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            hosts=(
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server=True,
        )
        self.admin = self.ca.issue("admin", common_name="admin", organizations=("system:masters",))
        self.kcm = self.ca.issue("kcm", common_name="system:kube-controller-manager")
        self.kubelet_client = self.ca.issue(
            "apiserver-kubelet-client",
            common_name="kube-apiserver-kubelet-client",
            organizations=("system:masters",),
        )
        self.sa_key, self.sa_pub = service_account_keys(pki)
        self.port = free_port()
        write_kubeconfig(
            self.admin_kubeconfig,
            server=self.server,
            ca=self.ca.cert,
            user="admin",
            client=self.admin,
        )

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (no threads yet matter: fork+exec)
            cwd=self.folder,
        )
        log.close()
        self.processes[name] = process
        return process

    def _start_etcd(self, assets: Assets, timeout: float) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                str(assets.etcd),
                "--data-dir",
                str(self.folder / "etcd"),
                "--listen-client-urls",
                self.etcd_url,
                "--advertise-client-urls",
                self.etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        self._wait("etcd", lambda: http_ok(f"{self.etcd_url}/health"), timeout)

    def _start_apiserver(self, assets: Assets, timeout: float) -> None:
        self._spawn(
            "kube-apiserver",
            [
                str(assets.apiserver),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--etcd-servers={self.etcd_url}",
                f"--tls-cert-file={self.serving.cert}",
                f"--tls-private-key-file={self.serving.key}",
                f"--client-ca-file={self.ca.cert}",
                f"--kubelet-client-certificate={self.kubelet_client.cert}",
                f"--kubelet-client-key={self.kubelet_client.key}",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={self.sa_pub}",
                f"--service-account-signing-key-file={self.sa_key}",
                f"--api-audiences={SA_ISSUER}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                "--enable-aggregator-routing=true",
                *self.extra_apiserver_flags,
            ],
        )
        self._wait("kube-apiserver", lambda: self._https_ok("/readyz"), timeout)

    def _start_controller_manager(self, assets: Assets, timeout: float) -> None:
        kubeconfig = write_kubeconfig(
            self.folder / "kcm.kubeconfig",
            server=self.server,
            ca=self.ca.cert,
            user="system:kube-controller-manager",
            client=self.kcm,
        )
        controllers = ",".join(["*", *(f"-{c}" for c in DISABLED_CONTROLLERS)])
        self._spawn(
            "kube-controller-manager",
            [
                str(assets.controller_manager),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.sa_key}",
                f"--root-ca-file={self.ca.cert}",
                f"--cluster-signing-cert-file={self.ca.cert}",
                f"--cluster-signing-key-file={self.ca.key}",
                f"--controllers={controllers}",
                *CONTROLLER_MANAGER_QPS,
            ],
        )

        def job_controller_ready() -> bool:
            # The service-account controller running is the cheapest sign the manager synced.
            answer = self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            return answer is not None

        self._wait("kube-controller-manager", job_controller_ready, timeout)

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {process.returncode}:\n{self.log_tail(name)}"
                )
            with contextlib.suppress(OSError, ControlPlaneError):
                if ready():
                    return
            time.sleep(0.1)
        raise ControlPlaneError(f"{name} not ready after {timeout}s:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.folder / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # --- requests as admin (synchronous, for set-up) -------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return context

    def _https_ok(self, path: str) -> bool:
        request = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=5) as answer:
                return bool(answer.status == 200)
        except urllib.error.HTTPError:
            return False

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
    ) -> Any:
        """One admin request; None for 404, :class:`ControlPlaneError` for other errors."""
        import json  # noqa: PLC0415

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self.ssl_context(), timeout=30) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise ControlPlaneError(
                f"{method} {path}: {error.code} {error.read().decode(errors='replace')}"
            ) from error

    def install_crd(self, crd: dict[str, Any], *, timeout: float = 30) -> None:
        """Create (or replace) a CRD and wait until it is Established."""
        name = crd["metadata"]["name"]
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        existing = self.request("GET", f"{path}/{name}")
        if existing is None:
            self.request("POST", path, crd)
        else:
            body = {**crd, "metadata": {**crd["metadata"], **_version_of(existing)}}
            self.request("PUT", f"{path}/{name}", body)

        def established() -> bool:
            current = self.request("GET", f"{path}/{name}") or {}
            conditions = (current.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        deadline = time.monotonic() + timeout
        while not established():
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"CRD {name} not Established after {timeout}s")
            time.sleep(0.05)

    # --- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """End every process by PID (SIGTERM, SIGKILL after 10 s); remove the folder."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if not self.keep_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _version_of(existing: dict[str, Any]) -> dict[str, Any]:
    return {"resourceVersion": existing["metadata"]["resourceVersion"]}


def http_ok(url: str) -> bool:
    """Whether ``url`` (plain HTTP on loopback) answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    try:
        _reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True
