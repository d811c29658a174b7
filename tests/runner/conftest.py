"""Fixtures shared by the runner tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.databases import Database, fresh_mariadb, fresh_postgresql


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def server_database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A fresh database on a server with advisory locks (PostgreSQL, MariaDB)."""
    fresh = fresh_postgresql if request.param == "postgresql" else fresh_mariadb
    with fresh() as db:
        yield db
