"""A DatabaseMigration as one typed value: identity, spec, status, annotations.

Role: :func:`parse_migration` is where the raw object the apiserver (or kopf) hands over stops
being a dict. Must not: do I/O, read the clock, or import Kubernetes, kopf or databases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alembic_operator.model.spec import (
    KIND,
    FieldReader,
    InvalidMigration,
    MigrationSpec,
    RawObject,
    empty_mapping,
    parse_spec,
)
from alembic_operator.model.status import MigrationStatus, parse_status


@dataclass(frozen=True)
class MigrationRef:
    """Identity of one incarnation of a DatabaseMigration (a recreated namesake has a new uid)."""

    namespace: str
    name: str
    uid: str
    generation: int


@dataclass(frozen=True)
class Migration:
    ref: MigrationRef
    spec: MigrationSpec
    status: MigrationStatus = field(default_factory=MigrationStatus)
    annotations: Mapping[str, str] = field(default_factory=empty_mapping)
    deleting: bool = False


def parse_migration(body: RawObject) -> Migration:
    """The typed migration from a raw DatabaseMigration; raises :class:`InvalidMigration`."""
    if body.get("kind", KIND) != KIND:
        raise InvalidMigration(f"not a {KIND}: kind is {body.get('kind')!r}")
    top = FieldReader(body, "")
    meta = top.sub("metadata", required=True)
    return Migration(
        ref=MigrationRef(
            namespace=meta.text("namespace"),
            name=meta.text("name"),
            uid=meta.text("uid"),
            generation=meta.integer("generation", 1),
        ),
        spec=parse_spec(top.sub("spec", required=True).raw),
        status=parse_status(top.sub("status").raw),
        annotations=meta.str_map("annotations"),
        deleting=meta.has("deletionTimestamp"),
    )
