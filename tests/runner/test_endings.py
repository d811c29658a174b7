"""However a migration ends, the runner reports a result; only a result that says so is success.

A revision that calls ``sys.exit(0)`` (or runs a Click command in standalone mode) must not turn
into an exit 0 without a result. ``os._exit(0)`` cannot be caught: the process leaves no result,
and the operator's classification of that ending (core.outcomes) calls it a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alembic_operator.core.outcomes import Outcome, read_outcome
from alembic_operator.model.observations import ObservedJob, ObservedPod, Termination
from alembic_operator.model.reasons import Reason
from tests.databases import Database
from tests.runner.harness import HEAD, copy_project, revision_source, run_runner, start_runner

CLICK_COMMAND = (
    "    import click\n\n"
    "    @click.command()\n"
    "    def tool():\n"
    "        click.echo('tool done')\n\n"
    "    tool.main(args=[], standalone_mode=True)\n"
    "    op.create_table('never', sa.Column('id', sa.Integer))"
)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("    import sys\n    sys.exit(0)", id="sys-exit-0"),
        pytest.param("    raise SystemExit", id="raise-system-exit"),
        pytest.param("    import sys\n    sys.exit('done')", id="sys-exit-text"),
        pytest.param(CLICK_COMMAND, id="click-standalone"),
    ],
)
def test_a_revision_that_exits_is_a_reported_failure(
    database: Database, tmp_path: Path, body: str
) -> None:
    project = copy_project(
        tmp_path, extra={"0010_exits.py": revision_source("0010_exits", HEAD, body)}
    )
    run = run_runner(database.url, tmp_path=tmp_path, project=project)
    assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed"), run.stderr
    assert run.result["outcome"] == "Failed"
    assert run.result["failedRevision"] == "0010_exits"
    assert f"revision 0010_exits failed; database left at {HEAD}" in run.result["message"]
    assert "sys.exit()" in run.result["message"]
    assert run.termination == run.stdout.strip().splitlines()[-1]
    assert database.versions() == {HEAD}


def test_a_revision_that_exits_in_plan_mode_is_a_reported_failure(
    database: Database, tmp_path: Path
) -> None:
    body = "    import sys\n    sys.exit(0)"
    project = copy_project(
        tmp_path, extra={"0010_exits.py": revision_source("0010_exits", HEAD, body)}
    )
    assert run_runner(database.url, "--revision", HEAD, tmp_path=tmp_path).exit_code == 0
    run = run_runner(database.url, "--plan", tmp_path=tmp_path, project=project)
    assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed"), run.stderr
    assert "sys.exit()" in run.result["message"]


def _as_observed(exit_code: int, termination: str) -> ObservedJob:
    """The Job as the operator would observe it after this container ending."""
    ended = ObservedPod("pod-1", terminated=Termination(exit_code=exit_code, message=termination))
    return ObservedJob(name="job", uid="uid", complete=exit_code == 0, pods=(ended,))


def test_os_exit_leaves_no_result_and_the_operator_calls_it_a_failure(
    database: Database, tmp_path: Path
) -> None:
    body = "    os._exit(0)"
    project = copy_project(
        tmp_path, extra={"0010_exits.py": revision_source("0010_exits", HEAD, body)}
    )
    started = start_runner(database.url, tmp_path=tmp_path, project=project)
    stdout, _ = started.proc.communicate(timeout=120)
    termination = started.termination.read_text()
    assert (started.proc.returncode, termination) == (0, "")  # nothing the runner can do
    assert '"outcome"' not in stdout
    outcome = read_outcome(_as_observed(0, termination))
    assert isinstance(outcome, Outcome)
    assert (outcome.succeeded, outcome.reason) == (False, Reason.RUNNER_RESULT_MISSING)
    assert "without a runner result" in outcome.message
    assert database.versions() != {"0010_exits"}
