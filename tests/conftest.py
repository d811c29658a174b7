"""Fixtures shared by every test group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import Database, fresh_database, fresh_postgresql

REPO = Path(__file__).resolve().parent.parent
MIGRATIONS = REPO / "migrations"

BACKENDS = [
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    pytest.param("sqlite", id="sqlite"),
]


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh empty database on each backend in turn."""
    with fresh_database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
def pg_database() -> Iterator[Database]:
    """A fresh empty PostgreSQL database."""
    with fresh_postgresql() as db:
        yield db


pytest_plugins = ["tests.cluster.fixtures"]
