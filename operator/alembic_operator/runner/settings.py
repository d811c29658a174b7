"""The runner's inputs: CLI flags, over ``ALEMBIC_OPERATOR_*`` environment variables.

The database URL is read only from ``DATABASE_URL``: never from argv, where ``ps`` and shell
history would show it. Bad values become an ``InvalidConfiguration`` result, not a traceback.

The operator's embedded Jobs pass every setting as a flag together with ``--args-only``: then no
``ALEMBIC_OPERATOR_*`` variable is read at all, so the app's ``env``/``envFrom`` (a ConfigMap
with that prefix) cannot change the lock name, the mode or an approved plan's expectations.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

ENV_PREFIX = "ALEMBIC_OPERATOR_"
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
_PG_DURATION = re.compile(r"^[0-9]+(ms|s|min|h)?$")
_X_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class SettingsError(ValueError):
    """An input the runner cannot work with; the message names the variable or flag."""


@dataclass(frozen=True)
class RunnerSettings:
    database_url: str
    mode: str = "apply"
    revision: str = "head"
    config: str = "alembic.ini"
    section: str = "alembic"
    workdir: str | None = None
    x_args: tuple[tuple[str, str], ...] = ()
    allow_downgrade: bool = False
    lock: str = "advisory"
    lock_name: str = "alembic-operator"
    lock_timeout_seconds: float = 300.0
    connect_timeout_seconds: int = 10
    pg_lock_timeout: str | None = None
    pg_statement_timeout: str | None = None
    termination_message_path: str = DEFAULT_TERMINATION_MESSAGE_PATH
    termination_message_path_explicit: bool = False
    sql_file: str | None = None
    # The revisions an approved plan started from: anything else means the plan is outdated.
    expect_revisions: tuple[str, ...] | None = None
    # What an approved plan applies: its revisions (in order) and its SQL's sha256.
    expect_plan_revisions: tuple[str, ...] | None = None
    expect_sql_sha256: str | None = None


class _Parser(argparse.ArgumentParser):
    """Bad flags are a SettingsError (an InvalidConfiguration result), not argparse's exit 2."""

    def error(self, message: str) -> NoReturn:
        raise SettingsError(f"invalid command line: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="alembic-operator migrate",
        description=(
            "Run Alembic to a target revision under a database lock and report one JSON result. "
            "The database URL is read from the DATABASE_URL environment variable only. Every "
            "flag has an ALEMBIC_OPERATOR_* environment variable (see docs/runner.md)."
        ),
    )
    p.add_argument("--revision", help="target revision (default: head)")
    p.add_argument(
        "--plan",
        action="store_const",
        const="plan",
        dest="mode",
        help="render the offline SQL for the range; change nothing",
    )
    p.add_argument("--mode", choices=("apply", "plan"), dest="mode")
    p.add_argument("--config", help="path of alembic.ini, relative to --workdir")
    p.add_argument("--section", help="ini section (default: alembic)")
    p.add_argument("--workdir", help="directory to run in (where alembic.ini lives)")
    p.add_argument(
        "-x",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="extra argument for env.py (context.get_x_argument), repeatable",
    )
    p.add_argument("--allow-downgrade", action="store_true", default=None)
    _lock_arguments(p)
    _plan_check_arguments(p)
    p.add_argument(
        "--args-only",
        action="store_true",
        help="read no ALEMBIC_OPERATOR_* environment variable: settings come from flags only "
        "(DATABASE_URL is still read from the environment)",
    )
    p.add_argument("--termination-message-path", metavar="PATH")
    p.add_argument(
        "--sql-file", metavar="PATH", help="plan mode: write the offline SQL here instead of stdout"
    )
    return p


def _lock_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock", choices=("advisory", "none"))
    p.add_argument("--lock-name", help="advisory lock name (default: alembic-operator)")
    p.add_argument(
        "--lock-timeout",
        type=float,
        metavar="SECONDS",
        help="how long to wait for the lock (default: 300)",
    )
    p.add_argument("--connect-timeout", type=int, metavar="SECONDS")
    p.add_argument(
        "--pg-lock-timeout",
        metavar="DURATION",
        help="PostgreSQL lock_timeout for the migration's sessions, e.g. 5s",
    )
    p.add_argument(
        "--pg-statement-timeout",
        metavar="DURATION",
        help="PostgreSQL statement_timeout for the migration's sessions",
    )


def _plan_check_arguments(p: argparse.ArgumentParser) -> None:
    """What an approved plan pins: the apply Job refuses to run anything else."""
    p.add_argument(
        "--expect-revisions",
        metavar="REVS",
        help="refuse (PlanOutdated) unless the database is at these revisions "
        "(comma-separated; 'base' for an empty database)",
    )
    p.add_argument(
        "--expect-plan-revisions",
        metavar="REVS",
        help="refuse (PlanOutdated) unless the revisions to run are exactly these, in order "
        "(comma-separated; empty for none)",
    )
    p.add_argument(
        "--expect-sql-sha256",
        metavar="HEX",
        help="refuse (PlanOutdated) unless the offline SQL of the revisions to run has this "
        "sha256 (the approved plan's sqlSha256)",
    )


def parse_settings(argv: Sequence[str], env: Mapping[str, str]) -> RunnerSettings:
    """Settings from ``env`` overridden by ``argv``; raises SettingsError on bad input."""
    args = _parser().parse_args(list(argv))
    if args.args_only:
        env = {"DATABASE_URL": env.get("DATABASE_URL", "")}

    def pick(flag: object, name: str, default: str | None = None) -> str | None:
        if flag is not None:
            return str(flag)
        return env.get(ENV_PREFIX + name, default) or default

    url = env.get("DATABASE_URL", "")
    if not url:
        raise SettingsError("DATABASE_URL is not set: the runner reads the database URL from it")
    _check_url(url)
    mode = pick(args.mode, "MODE", "apply")
    if mode not in ("apply", "plan"):
        raise SettingsError(f"{ENV_PREFIX}MODE must be apply or plan, not {mode!r}")
    lock = pick(args.lock, "LOCK", "advisory")
    if lock not in ("advisory", "none"):
        raise SettingsError(f"{ENV_PREFIX}LOCK must be advisory or none, not {lock!r}")
    termination_path = pick(args.termination_message_path, "TERMINATION_MESSAGE_PATH")
    return RunnerSettings(
        database_url=url,
        mode=mode,
        revision=_revision(pick(args.revision, "REVISION", "head") or "head"),
        config=pick(args.config, "CONFIG", "alembic.ini") or "alembic.ini",
        section=pick(args.section, "SECTION", "alembic") or "alembic",
        workdir=pick(args.workdir, "WORKDIR"),
        x_args=_x_args(args.x, env.get(ENV_PREFIX + "X_ARGS")),
        allow_downgrade=bool(args.allow_downgrade) or _flag(env, "ALLOW_DOWNGRADE"),
        lock=lock,
        lock_name=pick(args.lock_name, "LOCK_NAME", "alembic-operator") or "alembic-operator",
        lock_timeout_seconds=_number(
            pick(args.lock_timeout, "LOCK_TIMEOUT_SECONDS", "300"), "LOCK_TIMEOUT_SECONDS"
        ),
        connect_timeout_seconds=int(
            _number(
                pick(args.connect_timeout, "CONNECT_TIMEOUT_SECONDS", "10"),
                "CONNECT_TIMEOUT_SECONDS",
            )
        ),
        pg_lock_timeout=_duration(pick(args.pg_lock_timeout, "PG_LOCK_TIMEOUT"), "PG_LOCK_TIMEOUT"),
        pg_statement_timeout=_duration(
            pick(args.pg_statement_timeout, "PG_STATEMENT_TIMEOUT"), "PG_STATEMENT_TIMEOUT"
        ),
        termination_message_path=termination_path or DEFAULT_TERMINATION_MESSAGE_PATH,
        termination_message_path_explicit=termination_path is not None,
        sql_file=pick(args.sql_file, "SQL_FILE"),
        expect_revisions=_expected(pick(args.expect_revisions, "EXPECT_REVISIONS")),
        expect_plan_revisions=_plan_revisions(args.expect_plan_revisions),
        expect_sql_sha256=_sha256(args.expect_sql_sha256),
    )


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def _check_url(url: str) -> None:
    """Refuse a URL that cannot be read one way only; the message quotes no part of it."""
    if not _URL_SCHEME.match(url):
        raise SettingsError(
            "DATABASE_URL is not a URL: expected dialect+driver:// followed by the user, "
            "password, host and database"
        )
    authority = url.split("://", 1)[1].split("?", 1)[0]
    if authority.count("@") > 1:
        raise SettingsError(
            "DATABASE_URL cannot be parsed unambiguously: it has more than one '@' before the "
            "host; URL-escape '@' in the user name or password as %40 (and ':' '/' '%' as "
            "%3A %2F %25)"
        )


def termination_path(argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, bool]:
    """Where the result goes when the settings themselves could not be parsed."""
    for index, arg in enumerate(argv):
        if arg.startswith("--termination-message-path="):
            return arg.split("=", 1)[1], True
        if arg == "--termination-message-path" and index + 1 < len(argv):
            return argv[index + 1], True
    path = None if "--args-only" in argv else env.get(ENV_PREFIX + "TERMINATION_MESSAGE_PATH")
    return (path, True) if path else (DEFAULT_TERMINATION_MESSAGE_PATH, False)


def _expected(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    revisions = tuple(sorted(r for r in value.split(",") if r and r != "base"))
    for revision in revisions:
        _revision(revision)
    return revisions


def _plan_revisions(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    revisions = tuple(r for r in value.split(",") if r)
    for revision in revisions:
        _revision(revision)
    return revisions


def _sha256(value: str | None) -> str | None:
    if value is not None and not re.match(r"^[0-9a-f]{64}$", value):
        raise SettingsError(f"--expect-sql-sha256 must be 64 lowercase hex digits, not {value!r}")
    return value


def _revision(value: str) -> str:
    if not re.match(r"^[A-Za-z0-9_@+\-.]{1,128}$", value):
        raise SettingsError(f"{ENV_PREFIX}REVISION {value!r} is not a revision id or symbol")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(ENV_PREFIX + name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{ENV_PREFIX}{name} must be true or false, not {value!r}")


def _number(value: str | None, name: str) -> float:
    try:
        number = float(value or "")
    except ValueError:
        raise SettingsError(f"{ENV_PREFIX}{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise SettingsError(f"{ENV_PREFIX}{name} must be a finite number, not {value!r}")
    if number <= 0:
        raise SettingsError(f"{ENV_PREFIX}{name} must be positive, not {value!r}")
    return number


def _duration(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not _PG_DURATION.match(value):
        raise SettingsError(
            f"{ENV_PREFIX}{name} must be a PostgreSQL duration such as 500ms or 5s, not {value!r}"
        )
    return value


def _x_args(flags: list[str] | None, env_json: str | None) -> tuple[tuple[str, str], ...]:
    pairs: dict[str, str] = {}
    if env_json:
        try:
            loaded = json.loads(env_json)
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            raise SettingsError(f"{ENV_PREFIX}X_ARGS must be a JSON object of strings")
        pairs.update({str(k): str(v) for k, v in loaded.items()})
    for item in flags or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"-x {item!r} must be KEY=VALUE")
        pairs[key] = value
    for key in pairs:
        if not _X_KEY.match(key):
            raise SettingsError(f"-x key {key!r} is not a valid name")
    return tuple(sorted(pairs.items()))
