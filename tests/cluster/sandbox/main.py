"""Runs the sandbox: the cluster, the scenario, the verdict, and ``--keep``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from alembic_operator.sandbox.environments import SandboxError, sandbox_cluster
from alembic_operator.sandbox.scenarios import default_database_url, run_scenario


def run_sandbox(*, workdir: Path, database_url: str | None, port: int, keep: bool) -> int:
    try:
        return asyncio.run(_main(workdir=workdir, database_url=database_url, port=port, keep=keep))
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _main(*, workdir: Path, database_url: str | None, port: int, keep: bool) -> int:
    async with sandbox_cluster(workdir=workdir, port=port) as sandbox:
        url = database_url or default_database_url(workdir)
        problems = await run_scenario(sandbox, database_url=url)
        for problem in problems:
            print(f"UNEXPECTED: {problem}")
        print(
            "sandbox: everything behaved"
            if not problems
            else f"sandbox: {len(problems)} problem(s); operator log: {workdir / 'operator.log'}"
        )
        if keep:
            print(
                f"\nThe emulator keeps running. In another shell:\n"
                f"  export KUBECONFIG={sandbox.kubeconfig}\n  kubectl get dbm,deployments,jobs\n"
                f"Press Ctrl-C to stop."
            )
            await asyncio.Event().wait()
        return 1 if problems else 0
