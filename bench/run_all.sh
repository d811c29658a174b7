#!/usr/bin/env bash
# `make bench`: every benchmark in turn (the issue's six: runner; footprint; rollout, which also
# counts the API requests per lifecycle; admission; throughput), each updating its section of
# docs/benchmarks.md. Arguments are passed to every one (e.g. `--no-record`, `--rounds 1`).
# Exit status: non-zero if any goal was missed or any benchmark crashed (every one still runs).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
status=0
for bench in runner operator_footprint rollout admission throughput; do
    echo "=== bench/$bench.py ($(date -u +%H:%M:%S))"
    started=$SECONDS
    "$PY" "bench/$bench.py" "$@" || status=1
    echo "=== bench/$bench.py: $((SECONDS - started)) s"
done
exit $status
