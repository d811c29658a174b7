"""``status.failedRevision``: copied from the runner's result on failure (issue 15, item 9)."""

from __future__ import annotations

from dataclasses import replace

from alembic_operator.model.actions import CreateJob
from alembic_operator.model.reasons import Reason
from alembic_operator.model.results import RunnerResult, encode_result
from alembic_operator.model.status import Phase, parse_status, status_to_patch
from tests.core.observations import at, job, migration, pod, run, seen, with_status

RETRY = "alembic-operator.dev/retry"


def test_a_failed_run_records_the_failed_revision_until_the_next_run() -> None:
    m = migration()
    first = run(m)
    created = next(a for a in first.actions if isinstance(a, CreateJob))
    m = with_status(m, first.status)
    failed = RunnerResult(
        Reason.MIGRATION_FAILED,
        from_revisions=("0001",),
        to_revisions=("0002",),
        applied_revisions=("0002",),
        failed_revision="0003_broken",
        message="revision 0003_broken failed; database left at 0002: boom " + "x" * 10_000,
    )
    ended = job(created.name, pod(exit_code=10, message=encode_result(failed)), failed=True)
    decision = run(m, seen(ended), now=at(5))
    status = decision.status
    assert status.phase is Phase.FAILED and status.failed_revision == "0003_broken"
    assert (status.message or "").startswith("revision 0003_broken failed; database left at 0002")
    patch = status_to_patch(status)
    assert patch["failedRevision"] == "0003_broken"
    assert parse_status(patch).failed_revision == "0003_broken"
    retried = run(replace(with_status(m, status), annotations={RETRY: "1"}), now=at(6))
    assert retried.status.phase is Phase.RUNNING
    assert retried.status.failed_revision is None
    assert status_to_patch(retried.status)["failedRevision"] is None  # removed (merge patch)
