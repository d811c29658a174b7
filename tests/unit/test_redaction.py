"""The one redactor."""

from __future__ import annotations

import pytest

from alembic_operator.redaction import MASK, Redactor, truncate_utf8

URL = "postgresql://app:p%40ss%25w%3Ard%2Fx@db.internal:5432/shop"
PASSWORD = "p@ss%w:rd/x"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"connecting to {URL}", id="the-url"),
        pytest.param(f"auth failed with {PASSWORD}!", id="the-raw-password"),
        pytest.param("sqlalchemy.url = p%%40ss%%25w%%3Ard%%2Fx", id="configparser-escaped"),
        pytest.param("p%40ss%25w%3Ard%2Fx", id="url-quoted"),
        pytest.param("mysql://other:hunter22@h/db", id="another-url-in-an-app-log"),
        pytest.param("mysql://other:hun@ter22@h/db", id="unescaped-at-in-password"),
        pytest.param("PGPASSWORD=hunter22 psql", id="pgpassword-env"),
        pytest.param('{"password": "hunter22"}', id="json-key"),
        pytest.param("password='hunter22'", id="quoted-kv"),
    ],
)
def test_secrets_are_masked(text: str) -> None:
    out = Redactor.for_url(URL).redact(text)
    for secret in (PASSWORD, "p%40ss%25w%3Ard%2Fx", "hunter22", "ter22"):
        assert secret not in out
    assert MASK in out


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("password authentication failed for user app", id="pg-auth-message"),
        pytest.param("Running upgrade 0001 -> 0002", id="alembic-log"),
        pytest.param("https://docs.example/runbook#failed", id="url-without-credentials"),
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor.for_url(URL).redact(text) == text


def test_short_secrets_are_only_masked_by_pattern() -> None:
    redactor = Redactor.for_url("postgresql://u:ab@h/db")
    assert redactor.redact("about a cab") == "about a cab"
    assert redactor.redact("postgresql://u:ab@h/db") == MASK  # the whole known URL
    assert redactor.redact("mysql://u:ab@x/y") == f"mysql://u:{MASK}@x/y"


@pytest.mark.parametrize("limit", [10, 100, 4096])
def test_truncate_keeps_the_end_within_the_byte_limit(limit: int) -> None:
    text = "start " + "ü" * 3000 + " the error"
    cut = truncate_utf8(text, limit)
    assert len(cut.encode("utf-8")) <= limit
    assert text.endswith(cut.removeprefix("…"))
