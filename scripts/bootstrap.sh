#!/usr/bin/env bash
# Creates the project's virtualenv and installs the package with its development tools.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e '.[dev]'

# A package half-installed from a corrupt cache entry fails later in confusing ways (seen once:
# a package without one of its files). Check the imports now; reinstall without the cache if needed.
check='import alembic, sqlalchemy, psycopg2, pymysql, kopf, aiohttp, yaml, cryptography, re2, pytest_asyncio, xdist, lupa'
if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "bootstrap: an installed package does not import; reinstalling without the pip cache" >&2
    "$venv/bin/python" -m pip install --quiet --no-cache-dir --force-reinstall -e '.[dev]'
    "$venv/bin/python" -c "$check"
fi
