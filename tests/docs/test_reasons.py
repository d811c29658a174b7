"""Every reason the product emits is documented, and the troubleshooting page quotes real text.

A new ``Reason`` (a condition or an Event reason: one enum) fails this test until
docs/troubleshooting.md or docs/operator.md explains it. The quoted messages are checked against
the source that emits them, so the page cannot drift from what users actually see.
"""

from __future__ import annotations

import re

import pytest

from alembic_operator.model.reasons import Reason
from tests.docs.conftest import DOCS, REPO

PACKAGE = REPO / "operator" / "alembic_operator"
DOCUMENTED = "\n".join(
    (DOCS / name).read_text(encoding="utf-8") for name in ("troubleshooting.md", "operator.md")
)
TROUBLESHOOTING = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("reason", [r.value for r in Reason])
def test_reason_is_documented(reason: str) -> None:
    assert re.search(rf"\b{re.escape(reason)}\b", DOCUMENTED), (
        f"{reason} is neither in docs/troubleshooting.md nor in docs/operator.md: document it"
    )


_ORDER = list(Reason)
# The enum lists progress, success and gate reasons first, then the failures (new ones go last).
FAILURES = [r.value for r in _ORDER[_ORDER.index(Reason.MIGRATION_FAILED) :]]
GATE = [Reason.AWAITING_MIGRATION.value, Reason.IMAGE_MISMATCH.value, Reason.ROLLOUT_ALLOWED.value]


@pytest.mark.parametrize("reason", FAILURES + GATE)
def test_troubleshooting_has_a_section_per_reason(reason: str) -> None:
    """Each failure and gate reason is a heading (an anchor the runbook and alerts can link to)."""
    assert re.search(rf"^#+ .*\b{re.escape(reason)}\b", TROUBLESHOOTING, re.MULTILINE), reason


CRD = "../../crds/databasemigrations.yaml"  # relative to the package: the apiserver emits these

# (literal text quoted in docs/troubleshooting.md, source file that emits it)
QUOTED = [
    ("another migration holds the lock", "runner/locking.py"),
    ("could not take the migration lock", "runner/locking.py"),
    ("cannot connect to the database", "runner/database.py"),
    ("set allowDowngrade to permit it", "core/revisions.py"),
    ("which this image's migrations do", "core/revisions.py"),
    ("not contain (the database is ahead of the image)", "core/revisions.py"),
    ("'heads', a 'branch@head' or a merge revision instead of 'head'", "runner/scripts.py"),
    ("not found in", "runner/scripts.py"),
    ("DATABASE_URL is not set: the runner reads the database URL from it", "runner/settings.py"),
    ("cannot enter the working directory", "runner/main.py"),
    ("cannot read the database's current revision", "runner/main.py"),
    ("offline SQL cannot start from several current revisions", "runner/scripts.py"),
    ("was deleted before it finished; the migration is not", "core/decisions.py"),
    ("exists and is not owned by this DatabaseMigration", "core/launches.py"),
    ("no Job is started until it exists (retrying with backoff)", "core/launches.py"),
    ("reached: the Job is failing", "core/decisions.py"),
    ("the Job retries (backoffLimit", "core/decisions.py"),
    ("without a runner result", "core/outcomes.py"),
    ("spec.suspend is true: no new migration Job is started", "core/launches.py"),
    ("(the plan's SQL) cannot be read", "core/approvals.py"),
    ("retrying for up to", "core/approvals.py"),
    ("database left at", "runner/main.py"),
    ("Alembic finished but the database is at", "runner/main.py"),
    ("database.urlSecretRef is immutable", CRD),
    ("must be greater than database.lockTimeoutSeconds", CRD),
    ("is reserved: the operator sets it for the runner", CRD),
    ("looks like a credential", CRD),
    (
        "gate needs deployments or a selector when mode is pause",
        CRD,
    ),
    ("gate.selector must not be empty", CRD),
]


@pytest.mark.parametrize(("text", "source"), QUOTED, ids=[q[0][:40] for q in QUOTED])
def test_quoted_message_is_real(text: str, source: str) -> None:
    assert text in TROUBLESHOOTING, f"docs/troubleshooting.md no longer quotes {text!r}"
    emitted = (PACKAGE / source).resolve().read_text(encoding="utf-8")
    assert text in " ".join(emitted.split()) or text in emitted, (
        f"{source} no longer emits {text!r}: update docs/troubleshooting.md"
    )
