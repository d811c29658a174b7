"""A huge failing output still names the failed revision (issue 15, item 9).

The revision prints megabytes and raises a 10 KB exception: the result in the termination
message is cut to fit 4 KiB, yet ``status.message`` starts with "revision X failed; database
left at Y" and ``status.failedRevision`` is X.
"""

from __future__ import annotations

from pathlib import Path

from tests.databases import Database
from tests.operator.harness import Cluster, add_image, condition, migration
from tests.runner.harness import HEAD, copy_project, revision_source

NOISY_IMAGE = "registry.example.com/shop/app:noisy"
NOISY = revision_source(
    "0010_noisy",
    HEAD,
    "    import sys\n"
    "    for _ in range(3000):\n"
    "        sys.stdout.write('x' * 1023 + '\\n')\n"  # 3 MB of output
    "    raise RuntimeError('boom ' + 'y' * 10240)",
)


async def test_a_huge_failure_keeps_the_failed_revision_in_status(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    add_image(cluster, NOISY_IMAGE, copy_project(tmp_path, extra={"0010_noisy.py": NOISY}))
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", image=NOISY_IMAGE))
    status = await cluster.wait_phase("shop", "Failed", within=120)
    assert condition(status, "Stalled")["reason"] == "MigrationFailed"
    assert status["message"].startswith(f"revision 0010_noisy failed; database left at {HEAD}")
    assert status["failedRevision"] == "0010_noisy"
    assert status["currentRevision"] == HEAD
    assert len(status["logTail"].encode()) <= 4096
    assert pg_database.versions() == {HEAD}
