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
