"""The Argo CD health check (integrations/argocd/health.lua), run by a real Lua interpreter."""

from __future__ import annotations

from typing import Any

import lupa
import pytest

from tests.conftest import REPO

SCRIPT = (REPO / "integrations" / "argocd" / "health.lua").read_text()


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT)
    return str(result["status"]), str(result["message"] or "")


def dbm(generation: int = 2, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "shop", "generation": generation}}
    if status:
        body["status"] = status
    return body


def ready(value: str, generation: int = 2, reason: str = "Applied") -> list[dict[str, Any]]:
    return [
        {"type": "Ready", "status": value, "reason": reason, "observedGeneration": generation},
        {"type": "Stalled", "status": "False", "reason": reason},
    ]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(dbm(), "Progressing", id="no-status-yet"),
        pytest.param(
            dbm(observedGeneration=1, phase="Succeeded", conditions=ready("True", 1)),
            "Progressing",
            id="previous-generation-succeeded",
        ),
        pytest.param(
            dbm(observedGeneration=2, phase="Running", conditions=ready("False")),
            "Progressing",
            id="running",
        ),
        pytest.param(
            dbm(observedGeneration=2, phase="Succeeded", conditions=ready("True")),
            "Healthy",
            id="succeeded",
        ),
        pytest.param(
            dbm(observedGeneration=2, phase="Succeeded", conditions=ready("True", 1)),
            "Progressing",
            id="ready-condition-is-stale",
        ),
        pytest.param(
            dbm(
                observedGeneration=2,
                phase="Failed",
                message="LockTimeout",
                conditions=[{"type": "Stalled", "status": "True"}],
            ),
            "Degraded",
            id="failed",
        ),
        pytest.param(
            dbm(observedGeneration=2, phase="AwaitingApproval", conditions=ready("False")),
            "Suspended",
            id="awaiting-approval",
        ),
    ],
)
def test_health(obj: dict[str, Any], expected: str) -> None:
    assert health(obj)[0] == expected
