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

from alembic_operator.commands.tables import render_table

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
    """The CLI in a subprocess; ``kubeconfig`` becomes its ``KUBECONFIG`` (else none is set)."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}  # not the operator's
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


async def cli(*args: str, kubeconfig: Path) -> Result:
    """:func:`run_cli` off the event loop (the operator and the test kubelet run on it)."""
    return await asyncio.to_thread(run_cli, *args, kubeconfig=kubeconfig)


@dataclass(frozen=True)
class OnCall:
    """A person running the CLI with one kubeconfig (its context's namespace is the default)."""

    kubeconfig: Path

    async def __call__(self, *args: str) -> Result:
        return await cli(*args, kubeconfig=self.kubeconfig)


def normalise_age(text: str) -> str:
    """Replace the AGE column (the last one) of table rows with ``<age>``."""
    lines = text.split("\n")
    return "\n".join(
        line
        if not line or line.startswith(("$ ", "---", "NAME", "NAMESPACE")) or " " not in line
        else re.sub(r"\S+$", "<age>", line)
        for line in lines
    )


def normalise_namespace(namespace: str) -> Callable[[str], str]:
    """Replace this test's namespace (each test has its own) with ``<namespace>``."""
    return lambda text: re.sub(rf"\b{re.escape(namespace)}\b", "<namespace>", text)


def rows_of_namespace(namespace: str) -> Callable[[str], str]:
    """For ``status -A``: this test's rows only, its namespace as ``<namespace>``, re-aligned.

    Every test of a session shares the control plane, and namespaces of earlier tests may still
    hold migrations (the namespace controller deletes their contents in the background). The
    table's alignment is
    checked as printed; the kept rows are then laid out again with the CLI's own column rule
    (the namespace column is as wide as the longest namespace listed).
    """

    def normalise(text: str) -> str:
        lines = text.split("\n")
        start = next(i for i, line in enumerate(lines) if line.startswith("NAMESPACE "))
        end = next(i for i in range(start, len(lines)) if not lines[i] or lines[i][:3] == "---")
        table = lines[start:end]
        assert_aligned(table)
        rows = [re.split(r" {2,}", line) for line in table]
        kept = [r for r in rows[1:] if r[0] == namespace]
        assert kept, f"no row of namespace {namespace}:\n{text}"
        for row in kept:
            row[0] = "<namespace>"
        rendered = render_table(rows[0], kept).rstrip("\n").split("\n")
        return "\n".join([*lines[:start], *rendered, *lines[end:]])

    return normalise


def assert_aligned(table: list[str]) -> None:
    """Each cell of each row starts where its column's header starts (kubectl's layout)."""
    header = table[0]
    starts = [m.start() for m in re.finditer(r"(?:(?<=   )|^)\S", header)]
    for line in table[1:]:
        for column in starts[1:]:
            assert line[column - 1] == " " and line[column] != " ", (
                f"misaligned at column {column}:\n" + "\n".join(table)
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
