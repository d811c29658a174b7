"""What the commands print, as pure functions of the objects read (and a given "now").

No I/O and no clock here: ``now`` is a parameter so output is testable (tests/commands).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NONE = "<none>"
MIN_COLUMN = 6  # kubectl's tabwriter: minimum cell width, and 3 spaces of padding
PADDING = 3
STATUS_HEADERS = ("NAME", "PHASE", "TARGET", "CURRENT", "HELD", "LAST FAILURE", "AGE")
_CHUNK = re.compile(r"^sql\.(\d+)$")


# --- tables ------------------------------------------------------------------------------------


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns like ``kubectl get``: left-aligned, 3 spaces apart, the last one unpadded."""
    table = [list(headers), *[list(r) for r in rows]]
    widths = [
        max(MIN_COLUMN, max(len(line[i]) for line in table) + PADDING)
        for i in range(len(headers) - 1)
    ]
    lines = []
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        lines.append(("".join(cells) + line[-1]).rstrip())
    return "\n".join(lines) + "\n"


def human_duration(seconds: float) -> str:
    """kubectl's AGE format (apimachinery ``duration.HumanDuration``)."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        return _two(minutes, "m", total % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return _two(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _two(hours // 24, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        return _two(hours // 24 // 365, "y", hours // 24 % 365, "d")
    return f"{hours // 24 // 365}y"


def _two(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}" if small == 0 else f"{big}{big_unit}{small}{small_unit}"


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (None when absent or malformed)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(created: object, now: datetime) -> str:
    when = parse_time(created)
    return NONE if when is None else human_duration((now - when).total_seconds())


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for item in status.get("conditions") or []:
        if isinstance(item, Mapping) and item.get("type") == kind:
            return item
    return None


def last_failure(status: Mapping[str, Any]) -> str:
    """The reason of a Failed migration: the Stalled condition's, else the Ready condition's."""
    if status.get("phase") != "Failed":
        return NONE
    stalled = condition(status, "Stalled")
    if stalled is not None and stalled.get("status") == "True" and stalled.get("reason"):
        return str(stalled["reason"])
    ready = condition(status, "Ready")
    if ready is not None and ready.get("reason"):
        return str(ready["reason"])
    return "Unknown"


def held(status: Mapping[str, Any]) -> str:
    gate = status.get("gate")
    if not isinstance(gate, Mapping):
        return NONE
    deployments = [str(d) for d in gate.get("deployments") or []]
    return ",".join(deployments) if deployments else NONE


def status_row(obj: Mapping[str, Any], now: datetime, *, with_namespace: bool) -> list[str]:
    meta = obj.get("metadata") or {}
    status = _status(obj)
    spec = obj.get("spec") or {}
    row = [
        str(meta.get("name", "")),
        str(status.get("phase") or "Pending"),
        str(status.get("targetRevision") or spec.get("revision") or NONE),
        str(status.get("currentRevision") or NONE),
        held(status),
        last_failure(status),
        age(meta.get("creationTimestamp"), now),
    ]
    return [str(meta.get("namespace", "")), *row] if with_namespace else row


def status_table(
    objects: Sequence[Mapping[str, Any]], now: datetime, *, with_namespace: bool = False
) -> str:
    def key(obj: Mapping[str, Any]) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return (str(meta.get("namespace", "")), str(meta.get("name", "")))

    rows = [status_row(o, now, with_namespace=with_namespace) for o in sorted(objects, key=key)]
    headers = ("NAMESPACE", *STATUS_HEADERS) if with_namespace else STATUS_HEADERS
    return render_table(headers, rows)


def without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as ``kubectl get -o`` shows it by default (no ``metadata.managedFields``)."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


# --- plans -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSql:
    """The SQL stored in a plan's ConfigMap, with everything that makes it incomplete."""

    text: str | None
    omitted: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.text is not None and not self.problems


def plan_sql(data: Mapping[str, str]) -> PlanSql:
    """Assemble ``sql`` (or ``sql.000``, ``sql.001``, ...); check it against size and hash."""
    if "sqlOmitted" in data:
        return PlanSql(None, omitted=data["sqlOmitted"])
    problems: list[str] = []
    if "sql" in data:
        text = data["sql"]
    else:
        chunks = sorted((int(m.group(1)), k) for k in data if (m := _CHUNK.match(k)))
        if not chunks:
            return PlanSql(None, problems=("the ConfigMap holds no SQL (no sql or sql.NNN key)",))
        missing = sorted(set(range(chunks[-1][0] + 1)) - {n for n, _ in chunks})
        if missing:
            names = ", ".join(f"sql.{n:03d}" for n in missing)
            problems.append(f"chunk(s) {names} missing")
        text = "".join(data[k] for _, k in chunks)
    raw = text.encode("utf-8")
    expected_bytes = data.get("sqlBytes")
    if expected_bytes is not None and expected_bytes.strip() != str(len(raw)):
        problems.append(f"{len(raw)} bytes read, the ConfigMap says sqlBytes={expected_bytes}")
    expected_hash = data.get("sqlSha256")
    if expected_hash is not None and expected_hash.strip() != hashlib.sha256(raw).hexdigest():
        problems.append("its sha256 does not match sqlSha256")
    return PlanSql(text, problems=tuple(problems))


def _yes_no(value: object) -> str:
    return "yes" if value is True or str(value).lower() == "true" else "no"


def plan_lines(obj: Mapping[str, Any]) -> list[str]:
    """The plan of ``status.plan`` as ``key: value`` lines."""
    plan = _status(obj).get("plan") or {}
    meta = obj.get("metadata") or {}
    revisions = [str(r) for r in plan.get("revisions") or []]
    lines = [
        f"migration:    {meta.get('namespace', '')}/{meta.get('name', '')}",
        f"phase:        {_status(obj).get('phase') or 'Pending'}",
        f"plan hash:    {plan.get('hash', NONE)}",
        f"direction:    {plan.get('direction', NONE)}",
        f"destructive:  {_yes_no(plan.get('destructive'))}",
        f"generation:   {plan.get('generation', NONE)}",
        f"revisions:    {len(revisions)}",
    ]
    lines += [f"  {r}" for r in revisions]
    lines.append(f"configmap:    {plan.get('sqlConfigMap') or NONE}")
    return lines


def configmap_problems(plan: Mapping[str, Any], data: Mapping[str, str]) -> list[str]:
    """Where the ConfigMap disagrees with ``status.plan`` (a stale or foreign ConfigMap)."""
    problems = []
    if "hash" in data and data["hash"] != plan.get("hash"):
        problems.append(
            f"the ConfigMap holds plan {data['hash']}, status.plan.hash is {plan.get('hash')}"
        )
    if "revisions" in data:
        stored = [r for r in data["revisions"].splitlines() if r.strip()]
        if stored != [str(r) for r in plan.get("revisions") or []]:
            problems.append("the ConfigMap's revisions differ from status.plan.revisions")
    return problems


def sql_lines(data: Mapping[str, str], sql: PlanSql) -> list[str]:
    """The ``sql:`` summary line(s) and then the SQL itself (or why it is not there)."""
    if sql.omitted is not None:
        return [f"sql:          OMITTED: {sql.omitted}"]
    size = data.get("sqlBytes") or (str(len(sql.text.encode())) if sql.text is not None else "?")
    digest = data.get("sqlSha256", NONE)
    lines = [f"sql:          {size} bytes, sha256 {digest}"]
    lines += [f"WARNING: the SQL is incomplete: {p}" for p in sql.problems]
    if sql.text is not None:
        lines += ["", sql.text.rstrip("\n")]
    return lines


def plan_decision(verb: str, obj: Mapping[str, Any]) -> str:
    """What ``approve``/``reject`` did, in one sentence plus the revisions."""
    meta = obj.get("metadata") or {}
    plan = _status(obj).get("plan") or {}
    revisions = [str(r) for r in plan.get("revisions") or []]
    destructive = " (DESTRUCTIVE)" if _yes_no(plan.get("destructive")) == "yes" else ""
    listed = ", ".join(revisions) if revisions else "no revisions"
    return (
        f"{verb} plan {plan.get('hash')} of databasemigration "
        f"{meta.get('namespace')}/{meta.get('name')}: {plan.get('direction', 'upgrade')}"
        f"{destructive}, {len(revisions)} revision(s): {listed}\n"
    )
