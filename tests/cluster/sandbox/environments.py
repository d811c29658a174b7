"""The sandbox's cluster: the emulator, the local kubelet, and the operator as a real process.

Must not: reach anything but 127.0.0.1, or leave processes behind (the operator is terminated
when the context ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alembic_operator import __version__
from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.kubelet import ImageSpec, LocalKubelet

REPO = Path(__file__).resolve().parents[3]
APP_IMAGE = "ghcr.io/alembic-operator/example-shop:1.0"
BROKEN_IMAGE = "ghcr.io/alembic-operator/example-shop:1.1-broken"
OPERATOR_IMAGE = f"ghcr.io/alembic-operator/alembic-operator:{__version__}"
BROKEN_REVISION = "0010_add_order_notes"


class SandboxError(Exception):
    """The sandbox cannot start (a missing checkout file, a port in use, ...)."""


def checkout_file(*parts: str) -> Path:
    path = REPO.joinpath(*parts)
    if not path.exists():
        raise SandboxError(f"{path} not found: run the sandbox from a checkout of the repository")
    return path


@dataclass
class Sandbox:
    api: ApiServer
    kubelet: LocalKubelet
    kubeconfig: Path
    workdir: Path
    operator: asyncio.subprocess.Process
    metrics_url: str
    started: float

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def images(workdir: Path) -> dict[str, ImageSpec]:
    """The example app image, a broken next version of it, and the operator's image."""
    migrations = checkout_file("migrations")
    broken = workdir / "images" / "example-shop-1.1-broken"
    if broken.exists():
        shutil.rmtree(broken)
    shutil.copytree(migrations, broken, ignore=shutil.ignore_patterns("__pycache__"))
    (broken / "versions" / f"{BROKEN_REVISION}.py").write_text(
        textwrap.dedent(f'''\
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
    )
    return {
        APP_IMAGE: ImageSpec(root=migrations),
        BROKEN_IMAGE: ImageSpec(root=broken),
        OPERATOR_IMAGE: ImageSpec(root=workdir),
    }


@contextlib.asynccontextmanager
async def sandbox_cluster(*, workdir: Path, port: int = 0) -> AsyncIterator[Sandbox]:
    """Emulator + kubelet + operator process; yields once the operator watches everything."""
    started = time.monotonic()
    crd = yaml.safe_load(checkout_file("crds", "databasemigrations.yaml").read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    async with ApiServer(port=port) as api:
        api.install_crd(crd)
        kubeconfig = api.write_kubeconfig(workdir / "kubeconfig")
        async with LocalKubelet(
            api.base_url,
            images=images(workdir),
            log_sink=api.set_pod_log,
            workdir=workdir / "kubelet",
        ) as kubelet:
            metrics_port = free_port()
            operator = await _start_operator(workdir, kubeconfig, metrics_port=metrics_port)
            try:
                await _ready(api, operator)
                yield Sandbox(
                    api=api,
                    kubelet=kubelet,
                    kubeconfig=kubeconfig,
                    workdir=workdir,
                    operator=operator,
                    metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
                    started=started,
                )
            finally:
                await _stop(operator)


async def _start_operator(
    workdir: Path, kubeconfig: Path, *, metrics_port: int
) -> asyncio.subprocess.Process:
    env: dict[str, Any] = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "ALEMBIC_OPERATOR_RUNNER_IMAGE": OPERATOR_IMAGE,
        "ALEMBIC_OPERATOR_METRICS_PORT": str(metrics_port),
    }
    log = (workdir / "operator.log").open("wb")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic_operator",
        "run",
        "--standalone",
        "--all-namespaces",
        "--metrics-port",
        str(metrics_port),
        env=env,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _ready(api: ApiServer, operator: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    while not any(
        c.plural == "databasemigrations" and c.verb == "list" and c.user_agent.startswith("kopf")
        for c in api.calls
    ):
        if operator.returncode is not None:
            raise SandboxError(f"the operator exited with code {operator.returncode}")
        if time.monotonic() > deadline:
            raise SandboxError("the operator did not start watching within 60 s")
        await asyncio.sleep(0.05)


async def _stop(operator: asyncio.subprocess.Process) -> None:
    if operator.returncode is not None:
        return
    operator.terminate()
    try:
        await asyncio.wait_for(operator.wait(), timeout=10)
    except TimeoutError:
        operator.kill()
        await operator.wait()
