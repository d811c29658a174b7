"""The import contracts (pyproject.toml, [tool.importlinter]) fail on a planted violation.

Each case copies the package to a temporary folder, adds one forbidden import to one module and
runs the real ``lint-imports`` on the copy: it must fail, naming exactly the contract the import
breaks, while the unmodified copy passes. Every contract has a case (a new contract without one
fails ``test_every_contract_has_a_planted_violation``). The runs go in parallel: ~0.5 s each.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "alembic_operator"
PYPROJECT = REPO / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@dataclass(frozen=True)
class Plant:
    """One forbidden import, appended to one module of the package's copy."""

    contract: str  # the id of the contract it must break (and no other)
    module: str  # path inside the package
    line: str


PLANTS = [
    # The examples: an upward import, a clock/chance in the core, a second metrics
    # library user, test code imported by the product.
    Plant("layers", "model/spec.py", "from alembic_operator.core import gates"),
    Plant("pure", "core/gates.py", "import random"),
    Plant("prometheus", "controller/webhooks.py", "import prometheus_client"),
    Plant("no-test-code", "controller/reconcilers.py", "from tests.cluster import sandbox"),
    Plant("independence", "controller/reconcilers.py", "import alembic_operator.runner"),
    Plant("kubernetes-client", "controller/observers.py", "import kubernetes"),
    Plant("alembic", "controller/executors.py", "import sqlalchemy"),
    Plant("kopf", "commands/main.py", "import kopf"),
    Plant("cryptography", "controller/certificates.py", "from cryptography import x509"),
]


def contracts() -> Mapping[str, str]:
    """Contract id -> name, from pyproject.toml."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return {contract["id"]: contract["name"] for contract in config["contracts"]}


def lint_copy(root: Path, plant: Plant | None) -> tuple[int, str]:
    """Copy the package under root, plant the import, run lint-imports there."""
    target = root / "alembic_operator"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    if plant is not None:
        module = target / plant.module
        module.write_text(f"{module.read_text()}\n{plant.line}  # planted\n")
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "1000", "NO_COLOR": "1"}
    done = subprocess.run(
        [str(LINT_IMPORTS), str(PYPROJECT), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT or BROKEN, from lint-imports' summary (names may wrap)."""
    flat = " ".join(output.split())
    found = {}
    for name in contracts().values():
        match = re.search(re.escape(name) + r" (KEPT|BROKEN)", flat)
        found[name] = match.group(1) if match else "missing"
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[int, str]]]:
    """lint-imports on the unmodified copy ("clean") and on one copy per plant, in parallel."""
    cases: dict[str, Plant | None] = {"clean": None}
    cases.update({plant.contract: plant for plant in PLANTS})
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = {
            key: pool.submit(lint_copy, tmp_path_factory.mktemp(key), plant)
            for key, plant in cases.items()
        }
        yield {key: future.result() for key, future in futures.items()}


def test_every_contract_has_a_planted_violation() -> None:
    assert sorted(plant.contract for plant in PLANTS) == sorted(contracts())


def test_the_unmodified_package_keeps_every_contract(runs: dict[str, tuple[int, str]]) -> None:
    code, output = runs["clean"]
    assert code == 0, output
    assert set(verdicts(output).values()) == {"KEPT"}, output


@pytest.mark.parametrize("plant", [pytest.param(p, id=p.contract) for p in PLANTS])
def test_a_planted_import_breaks_its_contract(
    plant: Plant, runs: dict[str, tuple[int, str]]
) -> None:
    code, output = runs[plant.contract]
    assert code != 0, output
    name = contracts()[plant.contract]
    broken = {contract for contract, verdict in verdicts(output).items() if verdict != "KEPT"}
    assert broken == {name}, output
    # The report names the planted module (as a dotted path), so the fix is findable.
    dotted = "alembic_operator." + plant.module.removesuffix(".py").replace("/", ".")
    assert dotted in output, output
