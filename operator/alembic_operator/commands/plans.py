"""``plan NAME``: the stored plan (``status.plan``) and its SQL from the plan's ConfigMap."""

from __future__ import annotations

from typing import TextIO

from alembic_operator.commands.clusters import (
    EXIT_ERROR,
    EXIT_REFUSED,
    Cluster,
    CommandError,
)
from alembic_operator.commands.tables import (
    configmap_problems,
    plan_lines,
    plan_sql,
    sql_lines,
)


def run_plan(cluster: Cluster, out: TextIO, err: TextIO, *, name: str, sql_only: bool) -> int:
    obj = cluster.get_migration(name)
    status = obj.get("status") or {}
    plan = status.get("plan") or {}
    if not plan.get("hash"):
        raise CommandError(
            f"databasemigration {name} has no stored plan (it is "
            f"{status.get('phase') or 'Pending'}; plans are rendered when "
            "spec.approval.required or spec.dryRun is true)",
            EXIT_REFUSED,
        )
    if not sql_only:
        out.write("\n".join(plan_lines(obj)) + "\n")
    configmap = plan.get("sqlConfigMap")
    if not configmap:
        raise CommandError(f"status.plan of {name} names no sqlConfigMap: the SQL is not shown")
    data = {str(k): str(v) for k, v in (cluster.get_configmap(configmap).get("data") or {}).items()}
    sql = plan_sql(data)
    problems = configmap_problems(plan, data)
    if sql_only:
        if sql.text is not None:
            out.write(sql.text)
    else:
        out.write("\n".join(sql_lines(data, sql)) + "\n")
    for problem in problems:
        err.write(f"warning: {problem}\n")
    if sql.omitted is not None and sql_only:
        err.write(f"the plan's SQL was not stored: {sql.omitted}\n")
    if sql.problems or problems:
        raise CommandError(
            "the stored plan is incomplete or inconsistent: "
            + "; ".join([*sql.problems, *problems]),
            EXIT_ERROR,
        )
    return 0
