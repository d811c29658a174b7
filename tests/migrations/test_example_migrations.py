"""The example Alembic project in migrations/, driven through Alembic's own command API.

Every online test runs on PostgreSQL, MariaDB and SQLite (the ``database`` fixture); the offline
tests render SQL for each dialect without a database.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pymysql
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.pool import NullPool

from tests.databases import Database

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
HEAD = "0009_widen_product_name"
MERGE = "0006_merge_loyalty_totals"
BRANCH_POINT = "0004_seed_data"
APP_TABLES = {"customers", "products", "orders", "order_items", "categories"}

INTEGRITY_ERRORS = (psycopg2.IntegrityError, pymysql.err.IntegrityError, sqlite3.IntegrityError)


def make_config(url: str | None = None, *, output_buffer: io.StringIO | None = None) -> Config:
    cfg = Config(str(MIGRATIONS / "alembic.ini"), output_buffer=output_buffer)
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def snapshot(url: str) -> dict[str, dict[str, object]]:
    """What a downgrade must restore: per application table its columns, indexes, constraints and
    number of rows."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        inspector = sa.inspect(engine)
        with engine.connect() as connection:
            counts = {
                table: connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar()
                for table in inspector.get_table_names()
            }
        return {
            table: {
                "rows": counts[table],
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
                ],
                "indexes": sorted(str(i["name"]) for i in inspector.get_indexes(table)),
                "unique": sorted(str(u["name"]) for u in inspector.get_unique_constraints(table)),
                "foreign_keys": sorted(str(f["name"]) for f in inspector.get_foreign_keys(table)),
            }
            for table in sorted(inspector.get_table_names())
            if table != "alembic_version"
        }
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """env.py applies alembic.ini's logging config (handlers bound to the current sys.stderr) to
    this process; put the previous configuration back so later tests are not affected."""
    names = ["", "alembic", "sqlalchemy", "sqlalchemy.engine"]
    saved = {
        name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
        for name in names
    }
    yield
    for name, (level, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers


# --- the revision graph -------------------------------------------------------------------------

# Walking the graph one revision at a time: (revision, the heads stamped once it is applied,
# the downgrade target that undoes exactly this revision, the upgrade targets of the state before).
STEPS = [
    pytest.param("0001_customers", {"0001_customers"}, "base", (), id="0001_customers"),
    pytest.param(
        "0002_products",
        {"0002_products"},
        "0001_customers",
        ("0001_customers",),
        id="0002_products",
    ),
    pytest.param(
        "0003_orders", {"0003_orders"}, "0002_products", ("0002_products",), id="0003_orders"
    ),
    pytest.param(
        "0004_seed_data", {"0004_seed_data"}, "0003_orders", ("0003_orders",), id="0004_seed_data"
    ),
    pytest.param(
        "0005a_loyalty_points",
        {"0005a_loyalty_points"},
        "0004_seed_data",
        ("0004_seed_data",),
        id="0005a_loyalty_points-branch",
    ),
    pytest.param(
        "0005b_order_totals",
        {"0005a_loyalty_points", "0005b_order_totals"},
        "0005b_order_totals@-1",  # only this side of the branch
        ("0005a_loyalty_points",),
        id="0005b_order_totals-second-head",
    ),
    pytest.param(
        MERGE,
        {MERGE},
        "0005a_loyalty_points",  # downgrading a merge to one parent "unmerges" to both parents
        ("0005a_loyalty_points", "0005b_order_totals"),
        id="0006_merge_loyalty_totals-merge",
    ),
    pytest.param(
        "0007_orders_created_at_index",
        {"0007_orders_created_at_index"},
        MERGE,
        (MERGE,),
        id="0007_orders_created_at_index",
    ),
    pytest.param(
        "0008_categories",
        {"0008_categories"},
        "0007_orders_created_at_index",
        ("0007_orders_created_at_index",),
        id="0008_categories",
    ),
    pytest.param(
        HEAD, {HEAD}, "0008_categories", ("0008_categories",), id="0009_widen_product_name"
    ),
]


def test_revision_graph_has_one_head_one_merge_and_a_labelled_branch() -> None:
    script = ScriptDirectory.from_config(make_config())
    revisions = {rev.revision: rev for rev in script.walk_revisions()}

    assert script.get_heads() == [HEAD]
    assert len(revisions) >= 9
    assert [rev for rev, r in revisions.items() if r.is_merge_point] == [MERGE]
    assert set(revisions[MERGE].down_revision) == {"0005a_loyalty_points", "0005b_order_totals"}
    assert [rev for rev, r in revisions.items() if r.is_branch_point] == [BRANCH_POINT]
    assert script.get_revision("loyalty@0005a_loyalty_points").revision == "0005a_loyalty_points"
    assert {s.values[0] for s in STEPS} == set(revisions), "STEPS must walk every revision"


@pytest.mark.parametrize(
    "revision_id",
    [
        pytest.param(rev.revision, id=rev.revision)
        for rev in ScriptDirectory.from_config(
            Config(str(MIGRATIONS / "alembic.ini"))
        ).walk_revisions()
    ],
)
def test_every_revision_is_named_documented_and_reversible(revision_id: str) -> None:
    rev = ScriptDirectory.from_config(make_config()).get_revision(revision_id)
    assert rev is not None
    assert re.fullmatch(r"[A-Za-z0-9_]+", rev.revision)
    assert len(rev.revision) <= 32  # alembic_version.version_num is VARCHAR(32)
    assert Path(rev.path).name == f"{rev.revision}.py"
    assert "demonstrates" in (rev.module.__doc__ or "")
    assert callable(rev.module.upgrade)
    assert callable(rev.module.downgrade)


# --- online: upgrade, downgrade, round trips ----------------------------------------------------

HEAD_DATA = [
    pytest.param(
        "SELECT reference, total_cents FROM orders ORDER BY reference",
        [("SO-1001", 2100), ("SO-1002", 900), ("SO-1003", 0)],
        id="order-totals-backfilled-from-lines",
    ),
    pytest.param(
        "SELECT email, loyalty_points FROM customers ORDER BY email",
        [("ada@example.com", 0), ("alan@example.com", 0), ("grace@example.com", 0)],
        id="not-null-column-default-on-old-rows",
    ),
    pytest.param(
        "SELECT o.reference, p.sku, i.quantity, i.unit_price_cents FROM order_items i "
        "JOIN orders o ON o.id = i.order_id JOIN products p ON p.id = i.product_id "
        "ORDER BY o.reference, p.sku",
        [
            ("SO-1001", "MUG-001", 1, 1200),
            ("SO-1001", "TEA-001", 2, 450),
            ("SO-1002", "BIS-001", 3, 300),
        ],
        id="seeded-order-lines-linked-by-foreign-keys",
    ),
]


def test_upgrade_base_to_head_creates_the_shop(database: Database) -> None:
    command.upgrade(make_config(database.url), "head")

    assert database.tables() == APP_TABLES | {"alembic_version"}
    assert database.versions() == {HEAD}
    products = snapshot(database.url)["products"]
    assert "category_id" in [c[0] for c in products["columns"]]
    assert "fk_products_category_id_categories" in products["foreign_keys"]
    assert "ix_orders_created_at" in snapshot(database.url)["orders"]["indexes"]


@pytest.mark.parametrize(("sql", "expected"), HEAD_DATA)
def test_data_at_head(database: Database, sql: str, expected: list[tuple[object, ...]]) -> None:
    command.upgrade(make_config(database.url), "head")

    assert [tuple(row) for row in database.query(sql)] == expected


def test_not_null_column_keeps_its_server_default_for_new_rows(database: Database) -> None:
    command.upgrade(make_config(database.url), "head")

    database.query("INSERT INTO customers (email, name) VALUES ('new@example.com', 'New')")
    assert database.query(
        "SELECT loyalty_points FROM customers WHERE email = 'new@example.com'"
    ) == [(0,)]
    with pytest.raises(INTEGRITY_ERRORS):
        database.query(
            "INSERT INTO customers (email, name, loyalty_points) "
            "VALUES ('null@example.com', 'Null', NULL)"
        )


def test_downgrade_head_to_base_leaves_no_app_tables(database: Database) -> None:
    cfg = make_config(database.url)
    command.upgrade(cfg, "head")

    command.downgrade(cfg, "base")

    assert database.tables() == {"alembic_version"}
    assert database.versions() == set()
    assert database.query("SELECT COUNT(*) FROM alembic_version") == [(0,)]


def test_upgrade_downgrade_upgrade_round_trip(database: Database) -> None:
    cfg = make_config(database.url)
    command.upgrade(cfg, "head")
    first_snapshot = snapshot(database.url)

    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")

    assert database.versions() == {HEAD}
    assert snapshot(database.url) == first_snapshot
    sql, expected = HEAD_DATA[0].values
    assert [tuple(row) for row in database.query(str(sql))] == expected


@pytest.mark.parametrize(("revision", "stamped", "down_to", "state_before"), STEPS)
def test_each_revision_downgrades_to_exactly_the_previous_state(
    database: Database,
    revision: str,
    stamped: set[str],
    down_to: str,
    state_before: tuple[str, ...],
) -> None:
    cfg = make_config(database.url)
    for target in state_before:
        command.upgrade(cfg, target)
    versions_before, before = database.versions(), snapshot(database.url)

    command.upgrade(cfg, revision)
    assert database.versions() == stamped
    after = snapshot(database.url)
    assert after != before or revision == MERGE  # only a merge changes nothing

    command.downgrade(cfg, down_to)
    assert database.versions() == versions_before
    assert snapshot(database.url) == before

    command.upgrade(cfg, revision)
    assert database.versions() == stamped
    assert snapshot(database.url) == after


FAILING_REVISION = '''"""A revision that fails half-way (test only)."""
import sqlalchemy as sa
from alembic import op

revision = "0099_fails"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("doomed", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("SELECT * FROM no_such_table")


def downgrade():
    op.drop_table("doomed")
'''


def test_failed_revision_leaves_the_database_at_the_previous_revision(
    database: Database, tmp_path: Path
) -> None:
    extra = tmp_path / "extra_versions"
    extra.mkdir()
    (extra / "0099_fails.py").write_text(FAILING_REVISION.format(head=HEAD))
    cfg = make_config(database.url)
    cfg.set_main_option("version_locations", f"{MIGRATIONS / 'versions'}{os.pathsep}{extra}")

    with pytest.raises(sa.exc.DBAPIError):
        command.upgrade(cfg, "heads")

    # transaction_per_migration: every revision before the failing one is committed and stamped.
    assert database.versions() == {HEAD}
    # Only PostgreSQL has transactional DDL: there the failed revision's CREATE TABLE is undone.
    assert ("doomed" in database.tables()) == (database.backend != "postgresql")


# --- env.py: where the URL comes from, shared connections, logging -----------------------------

URL_SOURCES = [
    pytest.param(True, False, "option", id="sqlalchemy.url-option"),
    pytest.param(False, True, "env", id="DATABASE_URL-env"),
    pytest.param(True, True, "option", id="option-wins-over-env"),
]


@pytest.mark.parametrize(("set_option", "set_env", "winner"), URL_SOURCES)
def test_database_url_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, set_option: bool, set_env: bool, winner: str
) -> None:
    dbs = {"option": tmp_path / "option.sqlite", "env": tmp_path / "env.sqlite"}
    monkeypatch.delenv("DATABASE_URL", raising=False)
    if set_env:
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{dbs['env']}")
    cfg = make_config(f"sqlite:///{dbs['option']}" if set_option else None)

    command.upgrade(cfg, "head")

    with contextlib.closing(sqlite3.connect(dbs[winner])) as conn:
        stamped = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert stamped == [(HEAD,)]
    loser = dbs["env" if winner == "option" else "option"]
    assert not loser.exists()


@pytest.mark.parametrize(
    "offline", [pytest.param(False, id="online"), pytest.param(True, id="offline")]
)
def test_missing_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, offline: bool) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    cfg = make_config(output_buffer=io.StringIO())

    with pytest.raises(RuntimeError, match=r"set the DATABASE_URL environment variable"):
        command.upgrade(cfg, "head", sql=offline)


def test_url_is_never_printed_and_logs_go_to_stderr(
    pg_database: Database, capfd: pytest.CaptureFixture[str]
) -> None:
    password = "not-a-real-secret-4711"  # trust auth ignores it, so the migration still connects
    url = pg_database.url.replace("postgres@", f"postgres:{password}@", 1)

    command.upgrade(make_config(url), "head")

    captured = capfd.readouterr()
    assert pg_database.versions() == {HEAD}
    assert captured.out == ""
    assert f"Running upgrade 0008_categories -> {HEAD}" in captured.err
    assert password not in captured.out + captured.err
    assert "127.0.0.1" not in captured.out + captured.err


def test_shared_connection_from_config_attributes(database: Database) -> None:
    engine = sa.create_engine(database.url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            cfg = make_config()  # no URL anywhere: the connection is all env.py gets
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

            # Committed per migration, visible from another session while ours is still open.
            assert database.versions() == {HEAD}
            assert not connection.closed
    finally:
        engine.dispose()


def test_shared_connection_must_be_a_connection() -> None:
    cfg = make_config("sqlite://")
    cfg.attributes["connection"] = "sqlite://"

    with pytest.raises(TypeError, match=r"must be a sqlalchemy\.engine\.Connection"):
        command.upgrade(cfg, "head")


# --- offline (--sql) rendering ------------------------------------------------------------------

OFFLINE_DIALECTS = [
    pytest.param("postgresql+psycopg2://", True, id="postgresql"),
    pytest.param("mysql+pymysql://", False, id="mysql"),
    pytest.param("sqlite://", False, id="sqlite"),
]


def render(url: str, direction: str, target: str) -> str:
    buffer = io.StringIO()
    cfg = make_config(url, output_buffer=buffer)
    getattr(command, direction)(cfg, target, sql=True)
    return buffer.getvalue()


@pytest.mark.parametrize(("url", "concurrently"), OFFLINE_DIALECTS)
def test_offline_upgrade_sql(url: str, concurrently: bool) -> None:
    sql = render(url, "upgrade", "head")

    assert "CREATE TABLE customers" in sql
    assert "UPDATE orders SET total_cents=" in sql
    assert f"version_num='{HEAD}'" in sql
    if concurrently:
        assert re.search(
            r"COMMIT;\s+CREATE INDEX CONCURRENTLY ix_orders_created_at ON orders \(created_at\);"
            r"\s+BEGIN;",
            sql,
        )
    else:
        assert "CONCURRENTLY" not in sql
        assert "CREATE INDEX ix_orders_created_at ON orders (created_at)" in sql


@pytest.mark.parametrize(("url", "concurrently"), OFFLINE_DIALECTS)
def test_offline_downgrade_sql(url: str, concurrently: bool) -> None:
    sql = render(url, "downgrade", f"{HEAD}:base")

    assert "DROP TABLE customers" in sql
    assert ("DROP INDEX CONCURRENTLY ix_orders_created_at" in sql) == concurrently
    assert ("CONCURRENTLY" in sql) == concurrently


def test_offline_sqlite_batch_operations_render_without_reflection() -> None:
    sql = render("sqlite://", "upgrade", "head")

    # 0008 and 0009 rebuild products from the table shape given to batch_alter_table(copy_from=).
    assert sql.count("CREATE TABLE _alembic_tmp_products") == 2
    assert "fk_products_category_id_categories" in sql
