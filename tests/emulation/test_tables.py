"""Server-side Tables: what ``kubectl get`` prints for a custom resource's printer columns."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.tables import human_duration
from tests.conftest import REPO
from tests.emulation.helpers import Client

DBM = "/apis/alembic-operator.dev/v1alpha1/namespaces/default/databasemigrations"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
KUBECTL = REPO / ".tools" / "bin" / "kubectl"


def body(name: str) -> dict[str, object]:
    return {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"name": name},
        "spec": {"image": "app:1", "database": {"urlSecretRef": {"name": "db", "key": "url"}}},
    }


async def served() -> tuple[ApiServer, Client]:
    api = ApiServer()
    await api.start()
    api.install_crd(yaml.safe_load((REPO / "crds" / "databasemigrations.yaml").read_text()))
    return api, Client(aiohttp.ClientSession(api.base_url))


async def test_table_for_a_custom_resource_with_printer_columns() -> None:
    api, client = await served()
    try:
        await client.ok("POST", DBM, body("shop"))
        await client.ok(
            "PATCH",
            f"{DBM}/shop/status",
            {"status": {"phase": "Succeeded", "targetRevision": "head", "currentRevision": "r9"}},
            content_type="application/merge-patch+json",
        )
        async with client.session.get(DBM, headers={"Accept": TABLE}) as response:
            table = await response.json()
        assert table["kind"] == "Table"
        names = [c["name"] for c in table["columnDefinitions"]]
        assert names == ["Name", "Phase", "Target", "Current", "Duration", "Age", "Message"]
        row = table["rows"][0]
        assert row["cells"][:4] == ["shop", "Succeeded", "head", "r9"]
        assert row["cells"][5].endswith("s")  # an age, not a timestamp
        assert row["object"]["metadata"]["name"] == "shop"
        plain = await client.ok("GET", DBM)  # without the Accept: plain JSON, as before
        assert plain["kind"] == "DatabaseMigrationList"
    finally:
        await client.session.close()
        await api.stop()


async def test_kubectl_prints_the_printer_columns(tmp_path: Path) -> None:
    if not KUBECTL.exists():
        pytest.fail(f"{KUBECTL} is missing: scripts/tools.sh installs it (make test runs it)")
    api, client = await served()
    try:
        await client.ok("POST", DBM, body("shop"))
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        done = await asyncio.to_thread(
            subprocess.run,
            [str(KUBECTL), "--kubeconfig", str(kubeconfig), "get", "dbm"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        header = done.stdout.splitlines()[0].split()
        assert header == ["NAME", "PHASE", "TARGET", "CURRENT", "DURATION", "AGE"]
        assert done.stdout.splitlines()[1].startswith("shop")
        assert "could also match" not in done.stderr  # no duplicate short names in discovery
    finally:
        await client.session.close()
        await api.stop()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 + 5, "3h"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (30 * 86400, "30d"),
        (800 * 86400, "2y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text
