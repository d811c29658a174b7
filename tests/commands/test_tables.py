"""The pure formatting of the on-call commands, table-driven (no cluster)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from alembic_operator.commands.approvals import retry_token
from alembic_operator.commands.clusters import connection_reason
from alembic_operator.commands.logs import newest_pod
from alembic_operator.commands.tables import (
    configmap_problems,
    human_duration,
    last_failure,
    plan_decision,
    plan_sql,
    render_table,
    status_row,
    status_table,
    without_managed_fields,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (9 * 60 + 59, "9m59s"),
        (10 * 60, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_is_kubectls(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def _condition(kind: str, status: str, reason: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "lastTransitionTime": "x"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, "<none>"),
        ({"phase": "Succeeded"}, "<none>"),
        ({"phase": "Running", "conditions": [_condition("Stalled", "True", "X")]}, "<none>"),
        (
            {
                "phase": "Failed",
                "conditions": [
                    _condition("Ready", "False", "MigrationFailed"),
                    _condition("Stalled", "True", "LockTimeout"),
                ],
            },
            "LockTimeout",
        ),
        (
            {
                "phase": "Failed",
                "conditions": [
                    _condition("Ready", "False", "DeadlineExceeded"),
                    _condition("Stalled", "False", "Running"),
                ],
            },
            "DeadlineExceeded",
        ),
        ({"phase": "Failed"}, "Unknown"),
    ],
)
def test_last_failure(status: dict[str, Any], expected: str) -> None:
    assert last_failure(status) == expected


def _migration(name: str, namespace: str = "default", **status: Any) -> dict[str, Any]:
    created = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"revision": "head"},
        "status": status,
    }


@pytest.mark.parametrize(
    ("obj", "row"),
    [
        (
            _migration("fresh"),
            ["fresh", "Pending", "head", "<none>", "<none>", "<none>", "5m"],
        ),
        (
            _migration(
                "shop",
                phase="Succeeded",
                targetRevision="0009",
                currentRevision="0009",
                gate={"held": False, "deployments": []},
            ),
            ["shop", "Succeeded", "0009", "0009", "<none>", "<none>", "5m"],
        ),
        (
            _migration(
                "held",
                phase="Running",
                targetRevision="0010",
                currentRevision="0009",
                gate={"held": True, "deployments": ["web", "worker"]},
            ),
            ["held", "Running", "0010", "0009", "web,worker", "<none>", "5m"],
        ),
        (
            _migration(
                "broken",
                phase="Failed",
                targetRevision="0010",
                currentRevision="0009",
                conditions=[_condition("Stalled", "True", "MigrationFailed")],
            ),
            ["broken", "Failed", "0010", "0009", "<none>", "MigrationFailed", "5m"],
        ),
    ],
)
def test_status_row(obj: dict[str, Any], row: list[str]) -> None:
    assert status_row(obj, NOW, with_namespace=False) == row
    assert status_row(obj, NOW, with_namespace=True) == ["default", *row]


def test_status_table_is_sorted_and_aligned_like_kubectl() -> None:
    objects = [
        _migration("b", "two", phase="Succeeded", targetRevision="r2", currentRevision="r2"),
        _migration("a", "two"),
        _migration("z", "one", phase="Succeeded", targetRevision="r1", currentRevision="r1"),
    ]
    assert status_table(objects, NOW, with_namespace=True) == (
        "NAMESPACE   NAME   PHASE       TARGET   CURRENT   HELD     LAST FAILURE   AGE\n"
        "one         z      Succeeded   r1       r1        <none>   <none>         5m\n"
        "two         a      Pending     head     <none>    <none>   <none>         5m\n"
        "two         b      Succeeded   r2       r2        <none>   <none>         5m\n"
    )


@pytest.mark.parametrize(
    ("headers", "rows", "text"),
    [
        (["A"], [], "A\n"),
        (["A", "B"], [["x", "y"]], "A     B\nx     y\n"),
        (["LONGER", "B"], [["x", ""]], "LONGER   B\nx\n"),
    ],
)
def test_render_table(headers: list[str], rows: list[list[str]], text: str) -> None:
    assert render_table(headers, rows) == text


def _sql_data(sql: str, **extra: str) -> dict[str, str]:
    raw = sql.encode()
    return {"sqlBytes": str(len(raw)), "sqlSha256": hashlib.sha256(raw).hexdigest(), **extra}


SQL = "CREATE TABLE t (id int);\nDROP TABLE u;\n"


@pytest.mark.parametrize(
    ("data", "text", "omitted", "problems"),
    [
        ({**_sql_data(SQL), "sql": SQL}, SQL, None, ()),
        (
            {**_sql_data(SQL), "sql.000": SQL[:10], "sql.001": SQL[10:20], "sql.002": SQL[20:]},
            SQL,
            None,
            (),
        ),
        # Numeric order, not string order (sql.010 after sql.002).
        (
            {
                **_sql_data("abcdefghijk"),
                **{f"sql.{i:03d}": c for i, c in enumerate("abcdefghijk")},
            },
            "abcdefghijk",
            None,
            (),
        ),
        (
            {**_sql_data(SQL), "sql.000": SQL[:10], "sql.002": SQL[20:]},
            SQL[:10] + SQL[20:],
            None,
            (
                "chunk(s) sql.001 missing",
                f"{len(SQL) - 10} bytes read, the ConfigMap says sqlBytes={len(SQL)}",
                "its sha256 does not match sqlSha256",
            ),
        ),
        ({"sqlOmitted": "the SQL is 4 MiB"}, None, "the SQL is 4 MiB", ()),
        ({"hash": "h"}, None, None, ("the ConfigMap holds no SQL (no sql or sql.NNN key)",)),
        ({"sql": "x"}, "x", None, ()),
    ],
)
def test_plan_sql(
    data: dict[str, str], text: str | None, omitted: str | None, problems: tuple[str, ...]
) -> None:
    sql = plan_sql(data)
    assert (sql.text, sql.omitted, sql.problems) == (text, omitted, problems)
    assert sql.complete == (text is not None and not problems)


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        ({"hash": "h1", "revisions": "a\nb\n"}, []),
        ({}, []),
        ({"hash": "h0"}, ["the ConfigMap holds plan h0, status.plan.hash is h1"]),
        ({"revisions": "a"}, ["the ConfigMap's revisions differ from status.plan.revisions"]),
    ],
)
def test_configmap_problems(data: dict[str, str], problems: list[str]) -> None:
    assert configmap_problems({"hash": "h1", "revisions": ["a", "b"]}, data) == problems


@pytest.mark.parametrize(
    ("plan", "text"),
    [
        (
            {"hash": "h1", "direction": "upgrade", "revisions": ["a", "b"]},
            "approved plan h1 of databasemigration ns/shop: upgrade, 2 revision(s): a, b\n",
        ),
        (
            {"hash": "h2", "direction": "downgrade", "destructive": True, "revisions": ["b"]},
            "approved plan h2 of databasemigration ns/shop: downgrade (DESTRUCTIVE), "
            "1 revision(s): b\n",
        ),
        (
            {"hash": "h3", "direction": "none", "revisions": []},
            "approved plan h3 of databasemigration ns/shop: none, 0 revision(s): no revisions\n",
        ),
    ],
)
def test_plan_decision(plan: dict[str, Any], text: str) -> None:
    obj = {"metadata": {"name": "shop", "namespace": "ns"}, "status": {"plan": plan}}
    assert plan_decision("approved", obj) == text


def test_retry_token_is_utc_to_the_microsecond() -> None:
    when = datetime(2025, 3, 1, 13, 0, 0, 123456, tzinfo=UTC)
    assert retry_token(when) == "2025-03-01T13:00:00.123456Z"


def test_newest_pod() -> None:
    pods = [
        {"metadata": {"name": "p1", "creationTimestamp": "2025-03-01T12:00:00Z"}},
        {"metadata": {"name": "p3", "creationTimestamp": "2025-03-01T12:00:05Z"}},
        {"metadata": {"name": "p2", "creationTimestamp": "2025-03-01T12:00:01Z"}},
    ]
    assert newest_pod(pods) == pods[1]
    assert newest_pod([]) is None


def test_managed_fields_are_dropped() -> None:
    obj = {"metadata": {"name": "x", "managedFields": [{}]}, "spec": {}}
    assert without_managed_fields(obj) == {"metadata": {"name": "x"}, "spec": {}}
    assert obj["metadata"]["managedFields"] == [{}]  # the input is not changed


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        pytest.param(
            httpx2.ConnectError("[Errno 111] Connection refused"),
            "[Errno 111] Connection refused",
            id="refused",
        ),
        pytest.param(httpx2.ReadTimeout(""), "ReadTimeout", id="timeout-without-words"),
        pytest.param(TimeoutError("timed out"), "timed out", id="os-timeout"),
    ],
)
def test_connection_reason(exc: BaseException, text: str) -> None:
    assert connection_reason(exc) == text
