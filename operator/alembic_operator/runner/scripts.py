"""The runner's Alembic adapter: config, the revision graph, current revisions, upgrade/downgrade.

Uses Alembic's Python command API only (never its CLI output) and works with Alembic 1.7+.
Classification lives in :mod:`alembic_operator.core.revisions`; this module only translates.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from alembic_operator.core.revisions import RevisionGraph, Target
from alembic_operator.model.reasons import Reason
from alembic_operator.runner.database import RunnerFailure


def load_config(
    *,
    config_path: str,
    section: str,
    url: str,
    x_args: Sequence[tuple[str, str]],
    output_buffer: io.StringIO | None = None,
) -> Config:
    """An Alembic Config for ``config_path`` with the URL set (``%`` escaped for configparser)."""
    if not os.path.isfile(config_path):
        raise RunnerFailure(
            Reason.INVALID_CONFIGURATION,
            f"Alembic config {config_path!r} not found in {os.getcwd()!r}",
        )
    cmd_opts = argparse.Namespace(x=[f"{k}={v}" for k, v in x_args])
    cfg = Config(config_path, ini_section=section, output_buffer=output_buffer, cmd_opts=cmd_opts)
    if not cfg.file_config.has_section(section):
        raise RunnerFailure(
            Reason.INVALID_CONFIGURATION, f"section [{section}] not found in {config_path!r}"
        )
    cfg.set_section_option(section, "sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def load_scripts(cfg: Config) -> ScriptDirectory:
    """The script directory, its revision map built; a broken graph is a clear failure.

    Alembic only warns about a revision id defined by two files (and keeps one of them), and
    raises a bare ``KeyError`` for a ``down_revision`` no file defines: both are refused here
    with the files named.
    """
    try:
        scripts = ScriptDirectory.from_config(cfg)
    except CommandError as exc:
        raise RunnerFailure(Reason.INVALID_CONFIGURATION, str(exc)) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            scripts.get_heads()  # builds the revision map
        except KeyError as exc:
            raise RunnerFailure(Reason.MIGRATION_FAILED, _missing(scripts, exc)) from None
    duplicated = sorted(
        {m.group(1) for w in caught for m in [_DUPLICATE.match(str(w.message))] if m}
    )
    if duplicated:
        raise RunnerFailure(Reason.MIGRATION_FAILED, _duplicates(scripts, duplicated))
    return scripts


_DUPLICATE = re.compile(r"Revision (\S+) is present more than once")


def _files(scripts: ScriptDirectory) -> list[tuple[str, Any]]:
    found = [(os.path.relpath(s.path, scripts.dir), s) for s in scripts._load_revisions()]
    return sorted(found, key=lambda pair: pair[0])


def _duplicates(scripts: ScriptDirectory, revisions: list[str]) -> str:
    parts = []
    for revision in revisions:
        paths = [path for path, script in _files(scripts) if script.revision == revision]
        parts.append(f"revision id {revision!r} is defined by {' and '.join(paths)}")
    return (
        "; ".join(parts) + ": each migration file needs its own revision id (give one of "
        "them a new id and point its down_revision chain at the right parent)"
    )


def _missing(scripts: ScriptDirectory, exc: KeyError) -> str:
    missing = str(exc.args[0]) if exc.args else "?"
    referrers = []
    for path, script in _files(scripts):
        links = [script.down_revision, getattr(script, "dependencies", None)]
        names = [n for link in links for n in ((link,) if isinstance(link, str) else link or ())]
        if missing in names:
            referrers.append(f"{path} ({script.revision})")
    where = " and ".join(referrers) or "a migration file"
    return (
        f"{where} names {missing!r} as its down_revision or dependency, but no migration "
        "file defines that revision (a missing or renamed file?)"
    )


def revision_graph(scripts: ScriptDirectory) -> RevisionGraph:
    """The script directory as a plain graph of down revisions.

    ``depends_on`` links are left out on purpose: the version table records only the heads of
    the down-revision graph, and dependencies change the order Alembic applies, not ancestry.
    """
    parents: dict[str, tuple[str, ...]] = {}
    newest_first = list(scripts.walk_revisions())
    for script in newest_first:
        down = script.down_revision
        if down is None:
            downs: tuple[str, ...] = ()
        elif isinstance(down, str):
            downs = (down,)
        else:
            downs = tuple(down)
        parents[script.revision] = downs
    order = tuple(s.revision for s in reversed(newest_first))
    return RevisionGraph(parents=parents, order=order, heads=tuple(scripts.get_heads()))


def resolve_target(scripts: ScriptDirectory, spec: str) -> Target:
    """Resolve ``spec`` to revision ids, or say why not (MultipleHeads, RevisionNotFound)."""
    heads = tuple(scripts.get_heads())
    if spec == "head" and len(heads) > 1:
        return Target(
            spec,
            problem=Reason.MULTIPLE_HEADS,
            detail=(
                f"the migrations have {len(heads)} heads ({', '.join(sorted(heads))}); target "
                "'heads', a 'branch@head' or a merge revision instead of 'head'"
            ),
        )
    if spec == "base":
        return Target(spec, revisions=())
    try:
        found = scripts.get_revisions(spec)
    except CommandError as exc:  # alembic.util.CommandError covers ResolutionError too
        return Target(
            spec,
            problem=Reason.REVISION_NOT_FOUND,
            detail=f"target revision {spec!r} not found: {exc}",
        )
    revisions = tuple(r.revision for r in found if r is not None)
    if not revisions:
        return Target(
            spec, problem=Reason.REVISION_NOT_FOUND, detail=f"target revision {spec!r} not found"
        )
    return Target(spec, revisions=revisions)


def current_revisions(cfg: Config, scripts: ScriptDirectory) -> tuple[str, ...]:
    """The database's current revisions, read through the application's own env.py."""
    heads: list[str] = []

    def read(rev: object, context: object) -> list[object]:
        heads.extend(context.get_current_heads())  # type: ignore[attr-defined]
        return []

    with EnvironmentContext(cfg, scripts, fn=read, dont_mutate=True):
        scripts.run_env()
    return tuple(sorted(heads))


@dataclass
class OnlineRun:
    """What one run of env.py did (:func:`migrate_online`)."""

    # The database's revisions, read under the lock before anything ran; None when env.py
    # never ran the migrations.
    current: tuple[str, ...] | None = None
    # The direction ``decide`` chose: None when nothing was run (no-op, refusal).
    direction: str | None = None
    # The revisions read after the last step, on the same connection; None when not read.
    after: tuple[str, ...] | None = None
    # What env.py raised, if anything (SystemExit too: a script calling sys.exit()).
    error: BaseException | None = None


def migrate_online(
    cfg: Config,
    scripts: ScriptDirectory,
    *,
    destination: str,
    decide: Callable[[tuple[str, ...]], str | None],
    guard: Callable[[Any], None] | None = None,
    before_step: Callable[[], None] | None = None,
) -> OnlineRun:
    """Read the current revisions, let ``decide`` classify them, and run what it chose.

    One run of the application's env.py does it all, as ``alembic.command.upgrade`` /
    ``downgrade`` would with the already loaded script directory: the migration function
    receives the current heads, calls ``decide`` (before any DDL, the version table included)
    and returns no steps for a no-op or a refusal, otherwise Alembic's own steps towards
    ``destination`` ("upgrade" or "downgrade"). After the last step the heads are read again
    on the same connection when it is outside a transaction (every step committed); otherwise
    ``after`` stays None and the caller reads them separately. Exceptions from ``decide`` are
    raised once env.py has finished.

    ``guard`` gets the migration's connection before the heads are classified (the statement
    lock, :mod:`alembic_operator.runner.locking`); the heads are read again after it, so a
    statement that ended while it waited is seen. ``before_step`` runs before each revision
    (the lock check) and stops the migration by raising.
    """
    run = OnlineRun()
    internal: list[BaseException] = []

    def migrations(heads: tuple[str, ...], context: Any) -> Any:
        if run.current is not None:  # env.py runs the migrations again: follow the decision
            return _steps(scripts, run.direction, destination, heads)
        run.current = tuple(sorted(heads))
        try:
            if guard is not None and context.connection is not None:
                guard(context.connection)
                _same_heads(run.current, tuple(sorted(context.get_current_heads())))
            run.direction = decide(run.current)
        except BaseException as exc:  # a refusal or our own bug: raised again after env.py
            internal.append(exc)
            return []
        if run.direction is None:
            return []
        if not heads:  # what run_migrations does itself without dont_mutate
            context._ensure_version_table()
        steps = _steps(scripts, run.direction, destination, heads)
        return _then_read_heads(steps, context, run, before_step)

    run.error = _run_env(cfg, scripts, destination=destination, fn=migrations)
    if internal:
        raise internal[0]
    return run


def _run_env(
    cfg: Config, scripts: ScriptDirectory, *, destination: str, fn: Callable[..., Any]
) -> BaseException | None:
    """Run the application's env.py once with ``fn`` as its migration function; its error."""
    try:
        with EnvironmentContext(
            cfg,
            scripts,
            fn=fn,
            as_sql=False,
            starting_rev=None,
            destination_rev=destination,
            tag=None,
            dont_mutate=True,
        ):
            scripts.run_env()
    except (Exception, SystemExit) as exc:  # sys.exit() in a revision is a failure, not an end
        return exc
    return None


def _steps(
    scripts: ScriptDirectory, direction: str | None, destination: str, heads: tuple[str, ...]
) -> list[Any]:
    if direction == "upgrade":
        return scripts._upgrade_revs(destination, heads)  # type: ignore[arg-type]
    if direction == "downgrade":
        return scripts._downgrade_revs(destination, heads)  # type: ignore[arg-type]
    return []


def _same_heads(before: tuple[str, ...], now: tuple[str, ...]) -> None:
    if before != now:
        raise RunnerFailure(
            Reason.LOCK_TIMEOUT,
            f"the database moved from {', '.join(before) or 'base'} to {', '.join(now) or 'base'} "
            "while the runner waited for a previous migration's statement to end; "
            "nothing was changed (the Job tries again)",
        )


def _then_read_heads(
    steps: list[Any], context: Any, run: OnlineRun, before_step: Callable[[], None] | None
) -> Iterator[Any]:
    for step in steps:
        if before_step is not None:
            before_step()
        yield step
    # Alembic asks for the next step after the last one committed: read where the database is.
    # Inside a transaction (no transaction_per_migration, or an external one) a failed read
    # would abort the migrations' own transaction: leave it to the caller then.
    connection = context.connection
    if connection is None or connection.in_transaction():
        return
    try:
        run.after = tuple(sorted(context.get_current_heads()))
    except Exception:  # the caller reads again, and reports that read's failure
        run.after = None


def offline_sql(cfg: Config, *, direction: str, current: tuple[str, ...], target: str) -> str:
    """The SQL Alembic would run (offline mode), rendered into the config's output buffer."""
    buffer = cfg.output_buffer
    if not isinstance(buffer, io.StringIO):  # pragma: no cover - load_config sets it
        raise TypeError("offline SQL needs a Config with an output buffer")
    if len(current) > 1:
        raise RunnerFailure(
            Reason.INVALID_CONFIGURATION,
            "offline SQL cannot start from several current revisions "
            f"({', '.join(current)}); plan each branch separately",
        )
    start = current[0] if current else "base"
    if direction == "downgrade":
        command.downgrade(cfg, f"{start}:{target}", sql=True)
    else:
        command.upgrade(cfg, target if not current else f"{start}:{target}", sql=True)
    return buffer.getvalue()
