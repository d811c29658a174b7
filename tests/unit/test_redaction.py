"""The one redactor."""

from __future__ import annotations

import pytest
import sqlalchemy

from alembic_operator.redaction import MASK, Redactor, truncate_middle_utf8, truncate_utf8

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


QUOTY = "it's\\a\"pw€x"  # a quote of each kind, a backslash and a non-ASCII character
QUOTY_URL = "postgresql://app:" + __import__("urllib.parse").parse.quote(QUOTY, safe="") + "@h/db"


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(QUOTY, id="raw"),
        pytest.param(repr(QUOTY), id="repr"),
        pytest.param(repr(QUOTY)[1:-1], id="repr-inside"),
        pytest.param(QUOTY.replace("\\", "\\\\").replace("'", "\\'"), id="single-quote-escaped"),
        pytest.param(QUOTY.replace("\\", "\\\\").replace('"', '\\"'), id="double-quote-escaped"),
        pytest.param(__import__("json").dumps(QUOTY), id="json-ascii"),
        pytest.param(__import__("json").dumps(QUOTY, ensure_ascii=False), id="json-unicode"),
        pytest.param(repr(QUOTY.encode("utf-8")), id="bytes-repr"),
        pytest.param(__import__("urllib.parse").parse.quote(QUOTY, safe=""), id="url-encoded"),
        pytest.param(__import__("urllib.parse").parse.quote_plus(QUOTY), id="url-encoded-plus"),
        pytest.param(
            sqlalchemy.engine.make_url(QUOTY_URL).render_as_string(hide_password=False),
            id="sqlalchemy-rendered",
        ),
    ],
)
def test_every_form_of_the_password_is_masked(form: str) -> None:
    out = Redactor.for_url(QUOTY_URL).redact(f"error: {form} (in a message)")
    assert "pw" not in out, out
    assert MASK in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Access denied for user 'app'@'10.0.0.2' (using password: YES)",
            "Access denied for user 'app'@'10.0.0.2' (using password: YES)",
            id="mysql-using-password-yes",
        ),
        pytest.param(
            "Access denied for user 'app'@'h' (using password: NO)",
            "Access denied for user 'app'@'h' (using password: NO)",
            id="mysql-using-password-no",
        ),
        pytest.param("password: YESSIR", f"password: {MASK}", id="a-password-that-starts-yes"),
    ],
)
def test_what_is_not_a_secret_stays(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize("limit", [100, 200, 4000])
def test_truncate_middle_keeps_the_start_and_the_end(limit: int) -> None:
    text = "revision 0010 failed; database left at 0009: " + "ü" * 5000 + " the error"
    cut = truncate_middle_utf8(text, limit)
    assert len(cut.encode("utf-8")) <= limit
    head, _, tail = cut.partition(" … ")
    assert text.startswith(head) and text.endswith(tail)
    assert len(head) >= min(40, limit // 2 - 10)
    assert cut.endswith("the error")
