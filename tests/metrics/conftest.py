"""Fixtures: the operator on the real control plane (tests/operator), metrics on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alembic_operator.controller.metrics import METRICS_PORT_ENV
from tests.cluster.controlplane import free_port
from tests.databases import Database, user_with_password
from tests.operator.conftest import cluster  # noqa: F401 - the same cluster fixture

PASSWORD = "M3tr1cs@s3cr%t:pw"


@pytest.fixture(autouse=True)
def metrics_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """The port the operator serves /metrics on (autouse: set before the operator starts)."""
    port = free_port()
    monkeypatch.setenv(METRICS_PORT_ENV, str(port))
    return port


@pytest.fixture
def secret_url(pg_database: Database) -> Iterator[str]:
    """A URL with a user name and a password (a role created for the test)."""
    with user_with_password(pg_database, PASSWORD) as url:
        yield url
