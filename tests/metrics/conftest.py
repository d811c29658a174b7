"""Fixtures: the operator's emulated cluster (tests/operator), with metrics on a free port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg2
import pytest

from alembic_operator.controller.metrics import METRICS_PORT_ENV
from tests.databases import PG_ADMIN, Database
from tests.metrics.helpers import free_port
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
    user = f"aom_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(**{**PG_ADMIN, "dbname": pg_database.name})
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {user} LOGIN PASSWORD %s", (PASSWORD,))
        cur.execute(f"GRANT ALL ON SCHEMA public TO {user}")
    yield f"postgresql+psycopg2://{user}:{quote(PASSWORD, safe='')}@127.0.0.1/{pg_database.name}"
    with admin.cursor() as cur:
        cur.execute(f"DROP OWNED BY {user}; DROP ROLE {user}")
    admin.close()
