"""The runner's JSON result and its 4 KiB termination-message budget."""

from __future__ import annotations

import json

import pytest

from alembic_operator.model.reasons import (
    PERMANENT_EXIT_CODES,
    RETRYABLE_EXIT_CODES,
    ExitCode,
    Reason,
    exit_code_for,
)
from alembic_operator.model.results import PlanSummary, RunnerResult, decode_result, encode_result


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        pytest.param(Reason.APPLIED, 0, id="applied"),
        pytest.param(Reason.UP_TO_DATE, 0, id="up-to-date"),
        pytest.param(Reason.MIGRATION_FAILED, 10, id="migration-failed"),
        pytest.param(Reason.SCHEMA_AHEAD, 11, id="schema-ahead"),
        pytest.param(Reason.MULTIPLE_HEADS, 12, id="multiple-heads"),
        pytest.param(Reason.REVISION_NOT_FOUND, 13, id="revision-not-found"),
        pytest.param(Reason.DOWNGRADE_REFUSED, 14, id="downgrade-refused"),
        pytest.param(Reason.INVALID_CONFIGURATION, 15, id="invalid-configuration"),
        pytest.param(Reason.DATABASE_UNREACHABLE, 20, id="unreachable"),
        pytest.param(Reason.LOCK_TIMEOUT, 21, id="lock-timeout"),
    ],
)
def test_exit_codes_separate_permanent_from_retryable(reason: Reason, code: int) -> None:
    assert exit_code_for(reason) == code
    if code:
        assert (code in PERMANENT_EXIT_CODES) != (code in RETRYABLE_EXIT_CODES)


def test_operator_only_reasons_have_no_exit_code() -> None:
    with pytest.raises(ValueError, match="JobDeleted"):
        exit_code_for(Reason.JOB_DELETED)


def test_round_trip() -> None:
    result = RunnerResult(
        Reason.PLANNED,
        mode="plan",
        target_revision="head",
        from_revisions=("a", "b"),
        to_revisions=("a", "b"),
        direction="upgrade",
        duration_seconds=1.23456,
        message="m",
        plan=PlanSummary("upgrade", ("c",), False, "ab" * 32, 10),
    )
    decoded = decode_result(encode_result(result))
    assert decoded.plan == result.plan
    assert decoded.from_revisions == ("a", "b")
    assert decoded.duration_seconds == 1.235
    assert decoded.exit_code is ExitCode.OK


@pytest.mark.parametrize(
    ("message", "applied"),
    [
        pytest.param("x" * 10_000, (), id="long-message"),
        pytest.param("é" * 5_000, (), id="multibyte-message"),
        pytest.param("short", tuple(f"rev_{i:05d}" for i in range(2_000)), id="many-revisions"),
        pytest.param("y" * 9_000, tuple(f"r{i}" for i in range(900)), id="both"),
        pytest.param(
            "revision 0010_x failed; database left at 0009_y: " + "E" * 10_000 + " the end",
            (),
            id="summary-then-a-huge-error",
        ),
    ],
)
def test_encoded_result_fits_the_termination_message(
    message: str, applied: tuple[str, ...]
) -> None:
    result = RunnerResult(Reason.MIGRATION_FAILED, message=message, applied_revisions=applied)
    text = encode_result(result)
    assert len(text.encode("utf-8")) <= 4000
    body = json.loads(text)
    assert body["reason"] == "MigrationFailed"
    if len(applied) > 20:
        kept = len(body["appliedRevisions"])
        assert body["truncated"]["appliedRevisions"] == len(applied) - kept
        assert body["appliedRevisions"] == list(applied[len(applied) - kept :])
    if len(message) > 4000:  # the start (what happened) and the end (the error's last words)
        kept = min(300, len(body["message"]) // 2 - 3)
        assert body["message"].startswith(message[:kept])
        assert " … " in body["message"]
        assert body["message"].endswith(message[-50:])


@pytest.mark.parametrize("text", ["", "not json", '{"reason": "Nope"}', "[]"])
def test_decode_rejects_what_is_not_a_result(text: str) -> None:
    with pytest.raises(ValueError, match="not a runner result"):
        decode_result(text)
