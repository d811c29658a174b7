"""``status [NAME]``: the migrations as a ``kubectl get``-like table, or as JSON/YAML."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

from alembic_operator.commands.clusters import EXIT_USAGE, Cluster, CommandError
from alembic_operator.commands.tables import status_table, without_managed_fields


def run_status(
    cluster: Cluster,
    out: TextIO,
    err: TextIO,
    *,
    name: str | None,
    all_namespaces: bool,
    output: str | None,
) -> int:
    if name is not None and all_namespaces:
        raise CommandError(
            "a migration cannot be retrieved by name across all namespaces (drop -A or NAME)",
            EXIT_USAGE,
        )
    if name is not None:
        objects = [cluster.get_migration(name)]
    else:
        objects = cluster.list_migrations(all_namespaces=all_namespaces)
    if output is not None:
        out.write(render_objects(objects, output, single=name is not None))
        return 0
    if not objects:
        where = "any namespace" if all_namespaces else f"{cluster.namespace} namespace"
        err.write(f"No databasemigrations found in {where}.\n")
        return 0
    out.write(status_table(objects, datetime.now(UTC), with_namespace=all_namespaces))
    return 0


def render_objects(objects: list[dict[str, Any]], output: str, *, single: bool) -> str:
    """``-o json|yaml``: one object for a NAME, else a ``List`` (as kubectl prints them)."""
    cleaned = [without_managed_fields(o) for o in objects]
    document: dict[str, Any] = (
        cleaned[0]
        if single
        else {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": cleaned}
    )
    if output == "json":
        return json.dumps(document, indent=4) + "\n"
    return str(yaml.safe_dump(document, sort_keys=True, default_flow_style=False))
