"""Runs the sandbox: the cluster, the scenario, the verdict, and ``--keep``.

SIGTERM and SIGINT (Ctrl-C) stop everything it started — the operator, the kubelet's processes,
etcd, kube-apiserver, kube-controller-manager — by PID, also in ``--keep`` mode.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.cluster.kubelet import Runtime
from tests.cluster.sandbox.databases import default_database_url, ensure_database
from tests.cluster.sandbox.environments import NS, SandboxError, sandbox_cluster
from tests.cluster.sandbox.scenarios import run_scenario

STOPPED = 130


def run_sandbox(
    *, workdir: Path, database_url: str | None, keep: bool, runtime: Runtime = "processes"
) -> int:
    try:
        if runtime == "podman":
            check_container_database(database_url)
        return asyncio.run(
            _main(workdir=workdir, database_url=database_url, keep=keep, runtime=runtime)
        )
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return STOPPED


def check_container_database(url: str | None) -> None:
    """Containers reach a database server on 127.0.0.1 (host network), never a host file."""
    if url is None or make_url(url).get_backend_name() != "postgresql":
        raise SandboxError(
            "--runtime podman needs --database-url of a PostgreSQL database (e.g. "
            "postgresql+psycopg2://postgres@127.0.0.1:5432/shop): a SQLite file of this machine "
            "is not inside the containers, and the example app image carries only the "
            "PostgreSQL driver"
        )


async def _main(*, workdir: Path, database_url: str | None, keep: bool, runtime: Runtime) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await _sandbox(
            workdir=workdir, database_url=database_url, keep=keep, runtime=runtime
        )
    except asyncio.CancelledError:
        print("sandbox: stopped; everything it started has ended", flush=True)
        return STOPPED


async def _sandbox(*, workdir: Path, database_url: str | None, keep: bool, runtime: Runtime) -> int:
    url = database_url or default_database_url(workdir)
    created = await asyncio.to_thread(ensure_database, url)
    if created:
        print(f"sandbox: {created}", flush=True)
    async with sandbox_cluster(workdir=workdir, runtime=runtime) as sandbox:
        problems = await run_scenario(sandbox, database_url=url)
        log = (workdir / "operator.log").read_text(errors="replace")
        # A refusal reads "Forbidden" (kopf's and our errors); a bare "403" also appears in
        # timestamps (",403" milliseconds), so it is not what is looked for.
        if "Forbidden" in log:
            problems.append("the chart's RBAC refused the operator a request (see its log)")
        if "Traceback" in log:
            problems.append("the operator logged a traceback (see its log)")
        # Without --verbose the operator does not log each API or admission request.
        if "HTTP Request:" in log or '"POST /gate-' in log:
            problems.append("the operator logged every request (see its log)")
        for problem in problems:
            print(f"UNEXPECTED: {problem}")
        print(
            "sandbox: everything behaved"
            if not problems
            else f"sandbox: {len(problems)} problem(s); operator log: {workdir / 'operator.log'}",
            flush=True,
        )
        if keep:
            print(_keep_text(sandbox.kubeconfig, workdir), flush=True)
            await asyncio.Event().wait()
        return 1 if problems else 0


def _keep_text(kubeconfig: Path, workdir: Path) -> str:
    kubectl = "kubectl"
    return f"""
The cluster keeps running (kube-apiserver, kube-controller-manager, etcd, the test kubelet and
the operator). kubeconfig (cluster admin, namespace {NS}): {kubeconfig}
In another shell (scripts/tools.sh put kubectl into .tools/bin):
  export KUBECONFIG={kubeconfig}
  {kubectl} get dbm,deployments,jobs,pods
  {kubectl} describe dbm shop-schema
  {kubectl} logs deployment/shop-web
  {kubectl} apply -f examples/sandbox/migration.yaml   # back to image 1.0: Succeeded again
  {kubectl} wait --for=condition=Ready dbm/shop-schema --timeout=120s
Operator log: {workdir / "operator.log"}
Press Ctrl-C (or kill {os.getpid()}) to stop everything."""
