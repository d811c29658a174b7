#!/usr/bin/env bash
# `make bench`: every benchmark in turn, each updating its section of docs/benchmarks.md.
# Exit status: non-zero if any goal was missed (every benchmark still runs).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
status=0
for bench in runner operator_footprint; do  # api_writes, latency, burst: removed (bench/README.md)
    echo "=== bench/$bench.py"
    "$PY" "bench/$bench.py" "$@" || status=1
done
exit $status
