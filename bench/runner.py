"""Benchmark 1: the runner (`alembic-operator migrate`) vs bare Alembic vs psql on the offline SQL.

For each chain size (generated Alembic projects of N trivial revisions, env.py as in
migrations/env.py), each round runs, interleaved and each on a fresh PostgreSQL database:

- ``alembic-operator migrate`` (subprocess, DATABASE_URL in the environment),
- ``alembic upgrade head`` (subprocess, same virtualenv),
- ``psql -1 -f`` on the offline SQL (``alembic upgrade head --sql``, one transaction: the
  physical limit).

Then the no-op case on a database already at head: the runner vs ``alembic current``.
Goals: runner <= 1.05x bare Alembic at every size; no-op runner <= 1.1x ``alembic current``.

    .venv/bin/python bench/runner.py                 # sizes 10 100 1000
    .venv/bin/python bench/runner.py --sizes 3 --rounds 1 --no-record   # smoke
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BIN,
    GOAL_MISSED,
    REPO,
    clean_env,
    common_args,
    create_database,
    db_url,
    drop_database,
    median,
    ratios,
    record,
    sa_url,
    spread,
    table,
    timed_run,
    verdict,
)

GOAL_APPLY = 1.05
GOAL_NOOP = 1.10


def revision_source(index: int) -> str:
    """Odd revisions create a small table, even ones add a column to the previous table."""
    rev = f"r{index:04d}"
    down = f"r{index - 1:04d}" if index > 1 else None
    if index % 2:
        body = (
            f"    op.create_table('t{index:04d}', sa.Column('id', sa.Integer, primary_key=True),"
            " sa.Column('name', sa.String(50)))"
        )
    else:
        body = f"    op.add_column('t{index - 1:04d}', sa.Column('c{index:04d}', sa.Integer))"
    return (
        f'"""generated revision {rev}"""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {rev!r}\ndown_revision = {down!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade():\n{body}\n\n\ndef downgrade():\n    pass\n"
    )


def generate_project(root: Path, size: int) -> Path:
    """An Alembic project with ``size`` revisions; alembic.ini, env.py as in migrations/."""
    project = root / f"chain{size}"
    (project / "versions").mkdir(parents=True)
    for name in ("alembic.ini", "env.py", "script.py.mako"):
        shutil.copy(REPO / "migrations" / name, project / name)
    for i in range(1, size + 1):
        (project / "versions" / f"r{i:04d}_generated.py").write_text(revision_source(i))
    return project


def offline_sql(project: Path, url: str) -> Path:
    """`alembic upgrade head --sql` without the per-revision BEGIN/COMMIT (psql -1 wraps it)."""
    done = subprocess.run(
        [str(BIN / "alembic"), "upgrade", "head", "--sql"],
        cwd=project,
        env=clean_env(DATABASE_URL=url),
        capture_output=True,
        text=True,
        check=True,
    )
    sql = re.sub(r"^(BEGIN|COMMIT);\n", "", done.stdout, flags=re.M)
    path = project / "upgrade.sql"
    path.write_text(sql)
    return path


def run_size(project: Path, size: int, rounds: int) -> dict[str, list[float]]:
    # Also the warm-up: compiles every revision's .pyc, so no measured command pays for that.
    sql = offline_sql(project, sa_url("unused"))
    times: dict[str, list[float]] = {
        "runner": [],
        "alembic": [],
        "psql": [],
        "runner_noop": [],
        "alembic_current": [],
    }
    for r in range(rounds):
        # Alternate the order inside a round too, so neither side always runs first.
        order = ["runner", "alembic", "psql"] if r % 2 == 0 else ["psql", "alembic", "runner"]
        at_head: list[str] = []
        for kind in order:
            name = create_database()
            url = db_url(name)
            env = clean_env(DATABASE_URL=sa_url(name))
            if kind == "runner":
                argv = [str(BIN / "alembic-operator"), "migrate", "--workdir", str(project)]
            elif kind == "alembic":
                argv = [str(BIN / "alembic"), "upgrade", "head"]
            else:
                argv = ["psql", url, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", str(sql)]
            times[kind].append(timed_run(argv, env=env, cwd=project))
            if kind == "psql":
                drop_database(name)
            else:
                at_head.append(name)
        # No-op at head, interleaved: runner vs `alembic current` on the same database.
        env = clean_env(DATABASE_URL=sa_url(at_head[0]))
        pair = [
            ("runner_noop", [str(BIN / "alembic-operator"), "migrate", "--workdir", str(project)]),
            ("alembic_current", [str(BIN / "alembic"), "current"]),
        ]
        for kind, argv in pair if r % 2 == 0 else reversed(pair):
            times[kind].append(timed_run(argv, env=env, cwd=project))
        for name in at_head:
            drop_database(name)
        print(
            f"  size {size} round {r + 1}/{rounds}: "
            + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()),
            flush=True,
        )
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    common_args(parser, rounds=5)
    args = parser.parse_args()
    # Apples to apples: pip compiled Alembic's bytecode when it installed it; our package is an
    # editable install from the source tree, so compile it the same way. Without this (and with
    # PYTHONDONTWRITEBYTECODE=1, as on these machines) every runner start recompiles our modules.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "operator" / "alembic_operator")],
        check=True,
    )
    apply_rows, noop_rows = [], []
    all_met = True
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        for size in args.sizes:
            project = generate_project(Path(tmp), size)
            t = run_size(project, size, args.rounds)
            r_alembic = ratios(t["runner"], t["alembic"])
            r_psql = ratios(t["runner"], t["psql"])
            r_noop = ratios(t["runner_noop"], t["alembic_current"])
            apply_ratio = median(t["runner"]) / median(t["alembic"])
            noop_ratio = median(t["runner_noop"]) / median(t["alembic_current"])
            met_apply, met_noop = apply_ratio <= GOAL_APPLY, noop_ratio <= GOAL_NOOP
            all_met = all_met and met_apply and met_noop
            apply_rows.append(
                [
                    size,
                    f"{median(t['runner']):.3f} ({spread(t['runner'])})",
                    f"{median(t['alembic']):.3f} ({spread(t['alembic'])})",
                    f"{median(t['psql']):.3f} ({spread(t['psql'])})",
                    f"**{apply_ratio:.3f}x** (per round {spread(r_alembic)})",
                    f"{median(t['runner']) / median(t['psql']):.2f}x (per round {spread(r_psql)})",
                    f"<= {GOAL_APPLY}x: {verdict(met_apply)}",
                ]
            )
            noop_rows.append(
                [
                    size,
                    f"{median(t['runner_noop']):.3f} ({spread(t['runner_noop'])})",
                    f"{median(t['alembic_current']):.3f} ({spread(t['alembic_current'])})",
                    f"**{noop_ratio:.3f}x** (per round {spread(r_noop)})",
                    f"<= {GOAL_NOOP}x: {verdict(met_noop)}",
                ]
            )
    body = (
        f"{args.rounds} interleaved rounds per size, each command on a fresh database; medians "
        "in seconds with (min-max); ratio = median / median, per-round ratios in brackets.\n\n"
        "Upgrade from an empty database to head:\n\n"
        + table(
            [
                "revisions",
                "runner s",
                "`alembic upgrade head` s",
                "`psql -1 -f` offline SQL s",
                "runner / alembic",
                "runner / psql",
                "goal",
            ],
            apply_rows,
        )
        + "\n\nNo-op (database already at head):\n\n"
        + table(
            ["revisions", "runner s", "`alembic current` s", "runner / current", "goal"],
            noop_rows,
        )
    )
    record("runner", "1. Runner vs bare Alembic", body, out=None if args.no_record else args.out)
    return 0 if all_met else GOAL_MISSED


if __name__ == "__main__":
    sys.exit(main())
