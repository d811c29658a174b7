#!/usr/bin/env bash
# The main job without a cluster: the runner takes the example "shop" migrations to head on a
# throw-away SQLite database, then runs again (a no-op) and prints both JSON results.
set -euo pipefail
cd "$(dirname "$0")/.."
db="$(mktemp -d)/shop.sqlite"
export DATABASE_URL="sqlite:///$db"
echo "== alembic-operator migrate (fresh database -> head)"
.venv/bin/alembic-operator migrate --workdir migrations
echo "== alembic-operator migrate again (already at head: a no-op)"
.venv/bin/alembic-operator migrate --workdir migrations 2>/dev/null
echo "== plan a downgrade to 0004_seed_data (nothing changes)"
.venv/bin/alembic-operator migrate --workdir migrations --plan --revision 0004_seed_data \
    --allow-downgrade --sql-file "$(dirname "$db")/plan.sql" 2>/dev/null
echo "database: $db"
