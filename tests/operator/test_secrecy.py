"""The database password never appears in status, Events, logs, Jobs, pods or operator output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.cluster.processes import ImageSpec
from tests.databases import Database, user_with_password
from tests.operator.harness import Cluster, migration
from tests.runner.harness import HEAD, copy_project, revision_source

PASSWORD = "Op3r@t0r%se:cr/et"
FORMS = (PASSWORD, quote(PASSWORD, safe=""), PASSWORD.replace("%", "%%"))
LEAKY_IMAGE = "registry.example.com/shop/app:leaky"


@pytest.fixture
def secret_url(pg_database: Database) -> Iterator[str]:
    with user_with_password(pg_database, PASSWORD) as url:
        yield url


async def test_password_appears_nowhere(cluster: Cluster, secret_url: str, tmp_path: Path) -> None:
    # A revision that prints the URL and puts it into its exception: the worst case.
    leaky = revision_source(
        "0010_leaky",
        HEAD,
        "    print('connecting to', os.environ['DATABASE_URL'])\n"
        "    raise RuntimeError('cannot use ' + os.environ['DATABASE_URL'])",
    )
    cluster.kubelet.images[LEAKY_IMAGE] = ImageSpec(
        root=copy_project(tmp_path, extra={"0010_leaky.py": leaky})
    )
    await cluster.create_secret("shop-db", secret_url)
    await cluster.create(migration("good"))
    await cluster.create(migration("leaky", image=LEAKY_IMAGE))
    await cluster.wait_phase("good", "Succeeded")
    failed = await cluster.wait_phase("leaky", "Failed")
    assert "cannot use" in failed["message"]
    assert failed["logTail"]

    seen = [json.dumps(await cluster.get(name)) for name in ("good", "leaky")]
    seen.append(json.dumps(await cluster.client.ok("GET", cluster.EVENTS)))
    seen.append(json.dumps(await cluster.client.ok("GET", cluster.JOBS)))
    pods = await cluster.client.ok("GET", cluster.PODS)
    seen.append(json.dumps(pods))
    for pod in pods["items"]:
        for container in ("write-runner", "migrate"):
            status, log = await cluster.client.get(
                f"{cluster.PODS}/{pod['metadata']['name']}/log", container=container
            )
            assert status == 200
            seen.append(str(log))
    seen.append(await cluster.stop_operator())
    everything = "\n".join(seen)
    assert "connecting to" in everything  # the leaky revision's output was captured
    for form in FORMS:
        assert form not in everything, f"{form!r} leaked"
