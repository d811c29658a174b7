"""The test kubelet's pod sandboxes (tests/cluster/podnet.py), without a cluster.

Two sandboxes both serve ``0.0.0.0:<port>`` inside (as two replicas of one Deployment do) and
each answers at its own pod IP; inside, ``127.0.0.1:<port>`` of a forwarded host port reaches
the host; a bind mount under /var/run/secrets/ is seen at its path. Needs root, as pod networks do.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import free_port
from tests.cluster.podnet import (
    IpPool,
    PodSandbox,
    check_available,
    container_ports,
    fixed_mounts,
)
from tests.operator.harness import wait_for

SA = "/var/run/secrets/kubernetes.io/serviceaccount"


def pod(containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"spec": {"containers": containers}}


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        pytest.param([{"name": "a"}], [], id="no-ports"),
        pytest.param(
            [{"name": "a", "ports": [{"containerPort": 9443}, {"containerPort": 8080}]}],
            [8080, 9443],
            id="sorted",
        ),
        pytest.param(
            [{"name": "a", "ports": [{"containerPort": 53, "protocol": "UDP"}]}], [], id="udp-left"
        ),
        pytest.param(
            [
                {"name": "a", "ports": [{"containerPort": 80}]},
                {"name": "b", "ports": [{"containerPort": 80}]},
            ],
            [80],
            id="once-per-pod",
        ),
    ],
)
def test_container_ports(containers: list[dict[str, Any]], expected: list[int]) -> None:
    assert container_ports(pod(containers)) == expected


@pytest.mark.parametrize(
    ("mounts", "expected"),
    [
        pytest.param([{"name": "tok", "mountPath": SA}], [(Path("/l/tok"), SA)], id="token"),
        pytest.param([{"name": "tmp", "mountPath": "/tmp"}], [], id="rewritten-not-bound"),
        pytest.param(
            [{"name": "tok", "mountPath": SA, "subPath": "x"}], [], id="subpath-not-bound"
        ),
        pytest.param([{"name": "gone", "mountPath": SA}], [], id="unknown-volume"),
    ],
)
def test_fixed_mounts(mounts: list[dict[str, Any]], expected: list[tuple[Path, str]]) -> None:
    volumes = {"tok": Path("/l/tok"), "tmp": Path("/l/tmp")}
    assert fixed_mounts(pod([{"name": "a", "volumeMounts": mounts}]), volumes) == expected


SERVER = """
import http.server, sys
body = (sys.argv[1] + ":" + open(sys.argv[2]).read()).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(body)
http.server.HTTPServer(("0.0.0.0", int(sys.argv[3])), H).serve_forever()
"""


async def get(ip: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(ip, port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.split(b"\r\n\r\n", 1)[1]


async def test_two_sandboxes_serve_one_port_each_at_its_ip(tmp_path: Path) -> None:
    check_available()
    port = free_port()
    pool = IpPool()
    host_answers: list[bytes] = []

    async def host_service(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host_answers.append(await reader.readline())
        writer.write(b"host\n")
        await writer.drain()
        writer.close()

    host_port = free_port()
    host = await asyncio.start_server(host_service, "127.0.0.1", host_port)
    sandboxes, processes = [], []
    try:
        for name in ("one", "two"):
            folder = tmp_path / name
            folder.mkdir()
            (folder / "token").write_text(f"token-{name}")
            sandbox = await PodSandbox.create(
                pool, ports=[port], egress=[host_port], binds=[(folder, SA)]
            )
            sandboxes.append(sandbox)
            argv = [sys.executable, "-c", SERVER, name, f"{SA}/token", str(port)]
            processes.append(await asyncio.create_subprocess_exec(*sandbox.wrap(argv, tmp_path)))
        assert len({s.ip for s in sandboxes}) == 2

        async def answers() -> list[bytes]:
            found = []
            for sandbox in sandboxes:
                try:
                    found.append(await get(sandbox.ip, port))
                except (OSError, IndexError):
                    found.append(b"")
            return found

        async def both() -> list[bytes] | None:
            got = await answers()
            return got if all(got) else None

        got = await wait_for(both, within=20, what="both sandboxes' servers answering")
        assert got == [b"one:token-one", b"two:token-two"]

        # The way out: the host's port at 127.0.0.1 inside the pod.
        client = (
            "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
            " s.sendall(b'hi\\n'); print(s.recv(10).decode().strip())"
        )
        out = await asyncio.create_subprocess_exec(
            *sandboxes[0].wrap([sys.executable, "-c", client, str(host_port)], tmp_path),
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await asyncio.wait_for(out.communicate(), 20)
        assert stdout.decode().strip() == "host"
        assert host_answers == [b"hi\n"]
    finally:
        for process in processes:
            process.kill()
            await process.wait()
        for sandbox in sandboxes:
            await sandbox.close()
        host.close()
    # Nothing left: the addresses are off lo again.
    shown = await asyncio.create_subprocess_exec(
        "ip", "-o", "addr", "show", "dev", "lo", stdout=asyncio.subprocess.PIPE
    )
    listing, _ = await shown.communicate()
    assert not any(s.ip and f" {s.ip}/" in listing.decode() for s in sandboxes)
    assert all(s.holder.returncode is not None for s in sandboxes)
