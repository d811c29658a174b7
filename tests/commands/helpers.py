"""Running the CLI as a subprocess (real exit codes) and comparing its output with golden files.

Regenerate the golden files with ``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/commands``.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
PROGRAM = ["-m", "alembic_operator"]
KUBECTL_PLUGIN = [
    "-c",
    "import sys; from alembic_operator.commands.main import kubectl_main; sys.exit(kubectl_main())",
]


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def transcript(self, prog: str = "alembic-operator") -> str:
        """The invocation, stdout, stderr and exit code: what a golden file holds."""
        text = f"$ {prog} {' '.join(self.args)}\n{self.out}"
        if self.err:
            text += f"--- stderr\n{self.err}"
        return text + f"--- exit {self.code}\n"


def run_cli(*args: str, kubeconfig: Path | None = None, program: list[str] = PROGRAM) -> Result:
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    done = subprocess.run(
        [sys.executable, *program, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return Result(tuple(args), done.returncode, done.stdout, done.stderr)


async def cli(*args: str, kubeconfig: Path | None = None) -> Result:
    """:func:`run_cli` off the event loop (the emulated cluster runs on it)."""
    return await asyncio.to_thread(run_cli, *args, kubeconfig=kubeconfig)


def normalise_age(text: str) -> str:
    """Replace the AGE column (the last one) of table rows with ``<age>``."""
    lines = text.split("\n")
    return "\n".join(
        line
        if not line or line.startswith(("$ ", "---", "NAME", "NAMESPACE")) or " " not in line
        else re.sub(r"\S+$", "<age>", line)
        for line in lines
    )


def check_golden(name: str, text: str, *normalisers: Callable[[str], str]) -> None:
    for normalise in normalisers:
        text = normalise(text)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run the test with UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (
        f"output differs from {path.name} (UPDATE_GOLDEN=1 rewrites it):\n{text}"
    )
