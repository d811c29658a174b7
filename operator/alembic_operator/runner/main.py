"""The runner's entry point: classify, lock, migrate, verify, and report one JSON result.

Every byte the runner writes passes the redactor (stdout and stderr are wrapped before anything
else runs). The result goes to stdout (last line) and to the termination-message file.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from alembic.config import Config
from alembic.script import ScriptDirectory

from alembic_operator.core.revisions import (
    DOWNGRADE,
    Assessment,
    RevisionGraph,
    Target,
    assess,
    is_at_target,
    progress,
)
from alembic_operator.model.reasons import Reason
from alembic_operator.model.results import PlanSummary, RunnerResult
from alembic_operator.redaction import Redactor
from alembic_operator.runner.database import (
    RunnerFailure,
    classify_error,
    configure_session_environment,
    create_engine,
    describe,
    log,
    usable_url,
)
from alembic_operator.runner.locking import DatabaseLock
from alembic_operator.runner.output import redacted_output, report, write_sql
from alembic_operator.runner.scripts import (
    current_revisions,
    load_config,
    load_scripts,
    migrate_online,
    offline_sql,
    resolve_target,
    revision_graph,
)
from alembic_operator.runner.settings import (
    RunnerSettings,
    SettingsError,
    parse_settings,
    termination_path,
)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run once and return the exit code (documented in docs/runner.md)."""
    started = time.monotonic()
    env = os.environ if env is None else env
    args = list(sys.argv[1:] if argv is None else argv)
    redactor = Redactor.for_url(env.get("DATABASE_URL"))
    with redacted_output(redactor):
        settings: RunnerSettings | None = None
        try:
            try:
                settings = parse_settings(args, env)
            except SystemExit as exc:  # --help: argparse printed it, nothing runs
                if exc.code in (0, None):
                    return 0
                raise
            result = run(settings)
        except SettingsError as exc:
            result = RunnerResult(Reason.INVALID_CONFIGURATION, message=str(exc))
        except BaseException as exc:
            # A bug of ours, or sys.exit() in a script: either way a result is written, and
            # only a result that says so is a success.
            log.exception("the runner failed unexpectedly")
            what = "the run ended early" if isinstance(exc, SystemExit) else "runner error"
            result = RunnerResult(Reason.MIGRATION_FAILED, message=f"{what}: {describe(exc)}")
        result = replace(
            result,
            message=redactor.redact(result.message),
            duration_seconds=time.monotonic() - started,
        )
        report(
            result,
            settings=settings,
            redactor=redactor,
            fallback_path=termination_path(args, env),
        )
    return int(result.exit_code)


def run(settings: RunnerSettings) -> RunnerResult:
    try:
        url = usable_url(settings.database_url)
    except RunnerFailure as failure:
        return RunnerResult(failure.reason, mode=settings.mode, message=failure.message)
    settings = replace(settings, database_url=url)
    if settings.workdir:
        try:
            os.chdir(settings.workdir)
        except OSError as exc:
            return RunnerResult(
                Reason.INVALID_CONFIGURATION,
                message=f"cannot enter the working directory {settings.workdir!r}: {exc}",
            )
    configure_session_environment(
        settings.database_url,
        connect_timeout=settings.connect_timeout_seconds,
        lock_timeout=settings.pg_lock_timeout,
        statement_timeout=settings.pg_statement_timeout,
        lock_wait_seconds=settings.lock_timeout_seconds,
    )
    engine = create_engine(settings.database_url, connect_timeout=settings.connect_timeout_seconds)
    lock = DatabaseLock(
        engine, name=settings.lock_name, timeout_seconds=settings.lock_timeout_seconds
    )
    if settings.lock == "advisory":
        lock.open_session_early()  # connects while the config and the scripts load
    try:
        return _run_locked(settings, lock)
    except RunnerFailure as failure:
        return RunnerResult(
            failure.reason,
            mode=settings.mode,
            target_revision=settings.revision,
            message=failure.message,
        )
    finally:
        lock.release()
        engine.dispose()


def _run_locked(settings: RunnerSettings, lock: DatabaseLock) -> RunnerResult:
    buffer = io.StringIO() if settings.mode == "plan" else None
    cfg = load_config(
        config_path=settings.config,
        section=settings.section,
        url=settings.database_url,
        x_args=settings.x_args,
        output_buffer=buffer,
    )
    scripts = load_scripts(cfg)
    try:
        graph = revision_graph(scripts)
    except Exception as exc:
        raise RunnerFailure(
            Reason.MIGRATION_FAILED, f"cannot load the migration scripts: {describe(exc)}"
        ) from None
    target = resolve_target(scripts, settings.revision)
    if settings.lock == "advisory":
        lock.acquire()
    if settings.mode != "plan":
        if settings.expect_sql_sha256 is not None or settings.expect_plan_revisions is not None:
            refused = _differs_from_approved_plan(
                settings, scripts=scripts, graph=graph, target=target
            )
            if refused is not None:
                return refused
        # One env.py run reads the current revision (under the lock), classifies, and applies.
        return _apply(settings, cfg=cfg, scripts=scripts, graph=graph, target=target, lock=lock)
    current = _read_current(cfg, scripts)
    classified = _classify(settings, graph=graph, target=target, current=current)
    if classified.assessment is None or not classified.proceed:
        return classified.result
    return _plan(
        settings, cfg=cfg, assessment=classified.assessment, current=current, base=classified.result
    )


@dataclass(frozen=True)
class Classified:
    """The classification of a run: a final result, or the base of one that goes on."""

    result: RunnerResult
    assessment: Assessment | None = None
    proceed: bool = False  # render the plan / run the migrations


def _differs_from_approved_plan(
    settings: RunnerSettings, *, scripts: ScriptDirectory, graph: RevisionGraph, target: Target
) -> RunnerResult | None:
    """Before any DDL: render the plan as the plan Job did (same steps, same settings) and
    refuse (PlanOutdated) unless its revisions and SQL hash are the approved plan's."""
    cfg = load_config(
        config_path=settings.config,
        section=settings.section,
        url=settings.database_url,
        x_args=settings.x_args,
        output_buffer=io.StringIO(),
    )
    current = _read_current(cfg, scripts)
    classified = _classify(settings, graph=graph, target=target, current=current)
    if classified.assessment is None or not classified.proceed:
        return classified.result  # a moved database, a refusal, nothing to do
    assessment = classified.assessment
    revisions = assessment.to_undo if assessment.direction == DOWNGRADE else assessment.to_apply
    problems = []
    approved = settings.expect_plan_revisions
    if approved is not None and tuple(revisions) != approved:
        unseen = [r for r in revisions if r not in approved]
        problems.append(
            f"it would run {len(revisions)} revision(s) ({', '.join(revisions) or 'none'}), "
            f"the approved plan {len(approved)}"
            + (f"; not in the approved plan: {', '.join(unseen)}" if unseen else "")
        )
    if settings.expect_sql_sha256 is not None:
        sql = ""
        if revisions:
            sql = offline_sql(
                cfg, direction=assessment.direction, current=current, target=settings.revision
            )
        digest = hashlib.sha256(sql.encode("utf-8")).hexdigest()
        if digest != settings.expect_sql_sha256:
            approved_sql = settings.expect_sql_sha256
            problems.append(f"its SQL has sha256 {digest[:16]}, the approved {approved_sql[:16]}")
    if not problems:
        return None
    return replace(
        classified.result,
        reason=Reason.PLAN_OUTDATED,
        message=(
            "the migration differs from the approved plan: "
            + "; ".join(problems)
            + ". Nothing was changed: the image is not the one the plan was rendered from "
            "(was its tag pushed again?); render and approve a new plan"
        ),
    )


def _classify(
    settings: RunnerSettings, *, graph: RevisionGraph, target: Target, current: tuple[str, ...]
) -> Classified:
    if settings.expect_revisions is not None and set(current) != set(settings.expect_revisions):
        expected = ", ".join(settings.expect_revisions) or "base"
        return Classified(
            RunnerResult(
                Reason.PLAN_OUTDATED,
                mode=settings.mode,
                target_revision=settings.revision,
                from_revisions=current,
                to_revisions=current,
                message=(
                    f"the approved plan started from {expected}, but the database is at "
                    f"{', '.join(current) or 'base'}: the plan is outdated and nothing was changed"
                ),
            )
        )
    assessment = assess(
        graph, current=current, target=target, allow_downgrade=settings.allow_downgrade
    )
    base = RunnerResult(
        assessment.reason,
        mode=settings.mode,
        target_revision=settings.revision,
        from_revisions=current,
        to_revisions=current,
        direction=assessment.direction,
        message=assessment.message,
    )
    log.info("database at %s; %s", ", ".join(current) or "base", assessment.message)
    proceed = not assessment.is_refusal and (
        settings.mode == "plan" or assessment.reason is not Reason.UP_TO_DATE
    )
    return Classified(base, assessment, proceed=proceed)


def _read_current(cfg: Config, scripts: ScriptDirectory) -> tuple[str, ...]:
    try:
        return current_revisions(cfg, scripts)
    except RunnerFailure:
        raise
    except Exception as exc:
        raise _read_failure(exc) from None


def _read_failure(exc: BaseException) -> RunnerFailure:
    if isinstance(exc, RunnerFailure):
        return exc
    reason = classify_error(exc, connecting=True)
    if reason is Reason.MIGRATION_FAILED:
        reason = Reason.INVALID_CONFIGURATION
    return RunnerFailure(reason, f"cannot read the database's current revision: {describe(exc)}")


def _plan(
    settings: RunnerSettings,
    *,
    cfg: Config,
    assessment: Assessment,
    current: tuple[str, ...],
    base: RunnerResult,
) -> RunnerResult:
    revisions = assessment.to_undo if assessment.direction == DOWNGRADE else assessment.to_apply
    sql = ""
    if revisions:
        sql = offline_sql(
            cfg,
            direction=assessment.direction,
            current=current,
            target=settings.revision,
        )
    write_sql(sql, settings.sql_file)
    summary = PlanSummary(
        direction=assessment.direction,
        revisions=revisions,
        destructive=assessment.direction == DOWNGRADE,
        sql_sha256=hashlib.sha256(sql.encode("utf-8")).hexdigest(),
        sql_bytes=len(sql.encode("utf-8")),
    )
    return replace(base, reason=Reason.PLANNED, plan=summary, message=f"plan: {assessment.message}")


def _run_failure(
    result: RunnerResult,
    error: BaseException,
    *,
    first_missing: str | None,
    after: tuple[str, ...],
) -> RunnerResult:
    """The result of a run that raised: which revision failed and where the database is."""
    where = "the migration failed"
    reason = classify_error(error, connecting=False)
    if isinstance(error, RunnerFailure):  # the lock check stopped it
        reason = error.reason
        where = f"stopped before revision {first_missing}" if first_missing else where
    elif first_missing:
        where = f"revision {first_missing} failed"
    return replace(
        result,
        reason=reason,
        failed_revision=first_missing,
        message=f"{where}; database left at {', '.join(after) or 'base'}: {describe(error)}",
    )


def _apply(
    settings: RunnerSettings,
    *,
    cfg: Config,
    scripts: ScriptDirectory,
    graph: RevisionGraph,
    target: Target,
    lock: DatabaseLock,
) -> RunnerResult:
    classified: list[Classified] = []

    def decide(current: tuple[str, ...]) -> str | None:
        """Called by Alembic before any DDL: the direction to run, or None for nothing."""
        classified.append(_classify(settings, graph=graph, target=target, current=current))
        done = classified[-1]
        return done.assessment.direction if done.proceed and done.assessment else None

    locked = settings.lock == "advisory"
    run = migrate_online(
        cfg,
        scripts,
        destination=target.spec,
        decide=decide,
        guard=lock.guard_statements if locked else None,
        before_step=lock.check if locked else None,
    )
    if run.direction is None:  # nothing ran: a failure was a failure to read the revision
        if run.error is not None:
            raise _read_failure(run.error)
        if not classified:  # env.py never ran the migrations: the database reads as base
            decide(())
        if not classified[0].proceed:
            return classified[0].result
    base, assessment = classified[0].result, classified[0].assessment
    assert assessment is not None
    error = run.error
    if error is not None:
        log.error("migration failed: %s", describe(error))
    after = run.after if error is None and run.after is not None else _read_current(cfg, scripts)
    done, first_missing = progress(assessment, graph, after=after)
    result = replace(base, to_revisions=after, applied_revisions=done)
    if error is not None:
        return _run_failure(result, error, first_missing=first_missing, after=after)
    if not is_at_target(assessment, graph, after=after, target=target):
        return replace(
            result,
            reason=Reason.MIGRATION_FAILED,
            failed_revision=first_missing,
            message=(
                f"Alembic finished but the database is at {', '.join(after) or 'base'}, "
                f"not at the target {target.spec}"
            ),
        )
    return replace(result, message=f"{assessment.message}: {len(done)} revision(s)")
