"""Pod networking for the test kubelet (opt-in, process mode): a sandbox per pod, as a CNI gives.

Test-only. With ``TestKubelet(..., network=PodNetwork(apiserver_port=...))`` every pod runs its
processes in a network and mount namespace of its own (held by a sleeping ``unshare`` process,
entered with ``nsenter``), so two replicas of one Deployment both bind ``0.0.0.0:9443`` as they
would on two pod IPs of a real cluster. Needs root (CAP_SYS_ADMIN), as a real kubelet does.

- **Pod IP**: each pod gets its own address from 198.18.0.0/15 (reserved for benchmarks, so
  never a real network's), added to the host's loopback device while the pod lives (``ip addr
  add <ip>/32 dev lo``) and reported in ``status.podIP`` and the downward API. Not 127.0.0.0/8:
  the apiserver refuses loopback addresses in EndpointSlices. For every ``containerPort``
  the kubelet listens on ``<pod IP>:<port>`` in the host's namespace and forwards each connection
  to ``127.0.0.1:<port>`` inside the pod: so the apiserver (webhooks through EndpointSlices with
  ``--enable-aggregator-routing``), the EndpointSlice controller and tests reach a pod at its IP.
- **The way out**: inside the pod, ``127.0.0.1:<port>`` of the apiserver (and of any
  :attr:`PodNetwork.forwarded_ports`) is forwarded to the host's, so ``KUBERNETES_SERVICE_HOST=
  127.0.0.1`` works as the in-cluster address (a real cluster's kube-proxy role, by port).
- **Fixed paths**: volume mounts under ``/var/run/secrets/`` (the ServiceAccount token a client
  library reads at a fixed path, not from an argument) are bind-mounted at their path inside the
  pod's mount namespace; other mounts stay rewritten by :class:`~.processes.PathRewriter`.

Sockets inside a pod's network namespace are made by switching the calling thread there with
``setns(2)`` just for the ``socket()`` call (a socket stays in the namespace it was made in).
The namespaces die with the holder process, which dies with us; the pod's address is removed
from ``lo`` when the pod ends (a killed test session can leave one /32 behind: harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import errno
import os
import random
import shutil
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import die_with_parent

CLONE_NEWNET = 0x40000000
FIXED_MOUNTS = "/var/run/secrets/"
_HOLDER = (
    'set -e; ip link set lo up; while [ "$#" -gt 0 ]; do mkdir -p "$2"; '
    'mount --bind "$1" "$2"; shift 2; done; echo ready; exec sleep infinity'
)
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


@dataclasses.dataclass(frozen=True)
class PodNetwork:
    """Give every pod its own network namespace and IP (module doc).

    ``apiserver_port``: reachable in every pod at ``127.0.0.1`` and announced as
    ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``; with it the kubelet fills
    ServiceAccount token volumes. ``forwarded_ports``: more host loopback ports the pods reach
    at ``127.0.0.1`` (e.g. a database).
    """

    apiserver_port: int
    forwarded_ports: tuple[int, ...] = ()

    def service_env(self) -> dict[str, str]:
        """What a kubelet tells every container about the ``kubernetes`` Service."""
        port = str(self.apiserver_port)
        return {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
        }


def check_available() -> None:
    """Fail loudly (never skip) where pod networks cannot work: not root, or a tool missing."""
    missing = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        raise RuntimeError(
            "pod networks (PodNetwork) need root and util-linux's unshare/nsenter and iproute2's "
            f"ip (missing: {', '.join(missing) or 'root'}): apt-get install -y util-linux iproute2"
        )


def socket_in(namespace_fd: int) -> socket.socket:
    """A TCP socket made inside the network namespace ``namespace_fd`` (this thread returns)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(namespace_fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the pod's network namespace failed")
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover - would be fatal
                raise OSError(ctypes.get_errno(), "setns back to the kubelet's namespace failed")
    finally:
        os.close(own)


def container_ports(pod: Mapping[str, Any]) -> list[int]:
    ports = {
        int(port["containerPort"])
        for container in (pod.get("spec") or {}).get("containers") or []
        for port in container.get("ports") or []
        if str(port.get("protocol") or "TCP") == "TCP"
    }
    return sorted(ports)


def fixed_mounts(pod: Mapping[str, Any], volumes: Mapping[str, Path]) -> list[tuple[Path, str]]:
    """(local folder, container path) of every mount under :data:`FIXED_MOUNTS`."""
    found: dict[str, Path] = {}
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for mount in container.get("volumeMounts") or []:
            path, local = str(mount["mountPath"]), volumes.get(str(mount["name"]))
            if path.startswith(FIXED_MOUNTS) and local is not None and not mount.get("subPath"):
                found[path] = local
    return [(local, path) for path, local in sorted(found.items())]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass


async def _splice(
    one: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    other: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    try:
        await asyncio.gather(_pipe(one[0], other[1]), _pipe(other[0], one[1]))
    finally:
        for writer in (one[1], other[1]):
            writer.close()


async def _ip(*args: str) -> bool:
    """Run ``ip ARGS``; whether it succeeded."""
    process = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait() == 0


class IpPool:
    """Pod IPs from one random /24 of 198.18.0.0/15 (an address in use is skipped)."""

    def __init__(self) -> None:
        self._prefix = f"198.{random.randint(18, 19)}.{random.randint(0, 255)}."
        self._next = 2

    def take(self) -> str:
        address = f"{self._prefix}{self._next}"
        self._next = self._next + 1 if self._next < 254 else 2
        return address


@dataclasses.dataclass(eq=False)
class PodSandbox:
    """One pod's namespaces (held by a sleeping process), its IP and its forwarders."""

    ip: str
    holder: asyncio.subprocess.Process
    namespace_fd: int
    servers: list[asyncio.Server] = dataclasses.field(default_factory=list)
    address: str = ""  # added to ``lo`` by this sandbox (removed by :meth:`close`)

    @classmethod
    async def create(
        cls,
        pool: IpPool,
        *,
        ports: Sequence[int],
        egress: Iterable[int],
        binds: Sequence[tuple[Path, str]],
    ) -> PodSandbox:
        argv = [str(p) for pair in binds for p in pair]
        holder = await asyncio.create_subprocess_exec(
            "unshare", "--net", "--mount", "--", "sh", "-c", _HOLDER, "holder", *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,  # the namespaces die with this process
        )  # fmt: skip
        assert holder.stdout is not None
        line = await holder.stdout.readline()
        if line.strip() != b"ready":
            await holder.wait()
            raise OSError(f"the pod sandbox did not start (exit {holder.returncode})")
        sandbox = cls(
            ip="", holder=holder, namespace_fd=os.open(f"/proc/{holder.pid}/ns/net", os.O_RDONLY)
        )
        try:
            for port in sorted(set(egress)):
                sandbox.servers.append(await sandbox._egress(port))
            await sandbox._ingress(pool, ports)
        except BaseException:
            await sandbox.close()
            raise
        return sandbox

    def wrap(self, argv: Sequence[str], cwd: Path) -> list[str]:
        """``argv`` run inside the pod's namespaces, in ``cwd``."""
        pid = self.holder.pid
        return [
            "nsenter", f"--net=/proc/{pid}/ns/net", f"--mount=/proc/{pid}/ns/mnt",
            f"--wd={cwd}", "--", *argv,
        ]  # fmt: skip

    async def _egress(self, port: int) -> asyncio.Server:
        inside = socket_in(self.namespace_fd)
        inside.bind(("127.0.0.1", port))
        inside.listen(64)
        inside.setblocking(False)

        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                host = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                writer.close()
                return
            await _splice((reader, writer), host)

        return await asyncio.start_server(forward, sock=inside)

    async def _ingress(self, pool: IpPool, ports: Sequence[int]) -> None:
        for _attempt in range(64):
            ip, servers = pool.take(), []
            if not await _ip("addr", "add", f"{ip}/32", "dev", "lo"):
                continue  # another pod's (perhaps another session's)
            self.address = ip
            try:
                for port in ports:
                    servers.append(
                        await asyncio.start_server(self._into(port), ip, port, reuse_address=True)
                    )
            except OSError as exc:
                for server in servers:
                    server.close()
                await self._remove_address()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self.ip = ip
            self.servers.extend(servers)
            return
        raise OSError("no free pod IP in the kubelet's range")

    def _into(self, port: int) -> Any:
        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            inside = socket_in(self.namespace_fd)
            inside.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(inside, ("127.0.0.1", port))
                pod = await asyncio.open_connection(sock=inside)
            except OSError:
                inside.close()
                writer.close()  # nothing listens in the pod (yet): as a refused connection
                return
            await _splice((reader, writer), pod)

        return forward

    async def _remove_address(self) -> None:
        if self.address:
            await _ip("addr", "del", f"{self.address}/32", "dev", "lo")
            self.address = ""

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        await self._remove_address()
        with contextlib.suppress(OSError):
            os.close(self.namespace_fd)
        if self.holder.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.holder.kill()
            await self.holder.wait()
