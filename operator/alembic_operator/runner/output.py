"""The runner's output: every byte passes the redactor; the result is the last line of stdout.

Stdout and stderr are wrapped before anything else runs (so Alembic's logging, warnings,
tracebacks and the ``print``s of migration scripts pass the redactor too). The result goes to
stdout, on a line of its own, and to the termination-message file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from alembic_operator.model.results import RunnerResult, encode_result
from alembic_operator.redaction import Redactor
from alembic_operator.runner.database import log
from alembic_operator.runner.settings import DEFAULT_TERMINATION_MESSAGE_PATH, RunnerSettings


class RedactingStream(io.TextIOBase):
    """A text stream that redacts everything written through it."""

    def __init__(self, inner: TextIO, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor
        self.ends_line = True  # whether the last text written ended a line

    def write(self, text: str) -> int:
        self._inner.write(self._redactor.redact(text))
        if text:
            self.ends_line = text.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")


@contextlib.contextmanager
def redacted_output(redactor: Redactor) -> Iterator[None]:
    """Wrap stdout/stderr and route logging through them for the duration of a run."""
    saved = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(saved[0], redactor)
    sys.stderr = RedactingStream(saved[1], redactor)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = saved


SQL_LINE_PREFIX = "SQL| "


def write_sql(sql: str, path: str | None) -> None:
    """The offline SQL to ``path``; ``-prefixed`` writes each line to stdout behind a prefix.

    Pod logs interleave stdout and stderr line by line; the prefix lets the operator take the
    SQL back out of a plan Job's log without the log lines that surround it.
    """
    if path == "-prefixed":
        for line in sql.splitlines():
            sys.stdout.write(f"{SQL_LINE_PREFIX}{line}\n")
        return
    if path:
        with open(path, "w", encoding="utf-8") as out:
            out.write(sql)
    else:
        sys.stdout.write(sql)
        if sql and not sql.endswith("\n"):
            sys.stdout.write("\n")


def report(
    result: RunnerResult,
    *,
    settings: RunnerSettings | None,
    redactor: Redactor,
    fallback_path: tuple[str, bool] = (DEFAULT_TERMINATION_MESSAGE_PATH, False),
) -> None:
    """Write the result to stdout (last line) and to the termination-message file."""
    text = redactor.redact(encode_result(result))
    log.info(
        "%s: %s (%s) in %.2fs",
        "succeeded" if result.succeeded else "failed",
        result.reason.value,
        result.message,
        result.duration_seconds,
    )
    # The result is a line of its own, even after a script's print(..., end="").
    start = "" if getattr(sys.stdout, "ends_line", True) else "\n"
    sys.stdout.write(start + text + "\n")
    sys.stdout.flush()
    if settings is not None:
        path = settings.termination_message_path
        explicit = settings.termination_message_path_explicit
    else:
        path, explicit = fallback_path
    # Kubernetes creates the file in a pod; on a workstation the default path is left alone.
    if explicit or os.path.exists(path):
        try:
            with open(path, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            log.warning("cannot write the termination message to %s: %s", path, exc)
