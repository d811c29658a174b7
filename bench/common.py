"""Shared pieces of the benchmarks: statistics, machine info, the results file, the cluster
(the real local control plane of tests/cluster: etcd, kube-apiserver, kube-controller-manager).

Method (docs/benchmarks.md): every figure is a ratio against a baseline measured in the same run,
interleaved (A B A B ...), and reported as the median of several rounds with its spread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = REPO / "docs" / "benchmarks.md"
GOAL_MISSED = 3  # exit status of a benchmark that ran fine but missed its goal (1: it crashed)
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- statistics -----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """min-max of the rounds, as text."""
    if not values:
        return "-"
    return f"{min(values):.4g}-{max(values):.4g}"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, int(-(-p * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(ours: float, base: float) -> float:
    return ours / base if base else float("nan")


def ratios(ours: Sequence[float], base: Sequence[float]) -> list[float]:
    """Per-round ratios (rounds are interleaved, so round i of each was measured side by side)."""
    return [ratio(a, b) for a, b in zip(ours, base, strict=False)]


def verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


# --- machine info and the results file ----------------------------------------------------------


def machine_info() -> dict[str, str]:
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg = "?"
    with contextlib.suppress(Exception):
        pg = psql(PG_ADMIN_URL, "SHOW server_version").strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "postgresql": pg,
        "kernel": platform.release(),
    }


def machine_line() -> str:
    m = machine_info()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']}, Linux {m['kernel']}; load average (1/5/15 min) at the "
        f"end: {load}"
    )


def command_line() -> str:
    rel = os.path.relpath(sys.argv[0], REPO)
    return " ".join([".venv/bin/python", shlex.quote(rel), *map(shlex.quote, sys.argv[1:])])


def record(name: str, title: str, body: str, *, out: Path | None) -> None:
    """Print a benchmark's section and replace it in the results file (between markers)."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    notes = "".join(f"\nNote: {n}\n" for n in sorted(NOTES))
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Command: `{command_line()}`  \n"
        f"Run: {stamp} on {machine_line()}\n\n{body.strip()}\n{notes}<!-- /bench:{name} -->\n"
    )
    print(section)
    if out is None:
        return
    text = out.read_text() if out.exists() else _HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n", re.S
    )
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else text + "\n" + section
    out.write_text(text)


_HEADER = """# Benchmarks

Written by the benchmarks in `bench/` (`make bench` runs them all; each section names the exact
command that produced it). Method: every figure is a ratio against a baseline measured in the
same run, interleaved (A B A B ...), medians of several rounds, with the spread (min-max) of the
rounds. The machines are noisy: read ratios, not absolute times. See bench/README.md.
"""


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def common_args(parser: Any, *, rounds: int) -> None:
    parser.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="results file to update (default docs/benchmarks.md)",
    )
    parser.add_argument("--no-record", action="store_true", help="print only")


# --- PostgreSQL ---------------------------------------------------------------------------------


def psql(url: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", url, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def db_url(name: str) -> str:
    """libpq URL of database ``name`` (for psql)."""
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def sa_url(name: str) -> str:
    """SQLAlchemy URL of database ``name`` (psycopg2: SQLAlchemy 2.1 defaults to psycopg 3)."""
    return db_url(name).replace("postgresql://", "postgresql+psycopg2://", 1)


_db_counter = 0


def create_database() -> str:
    """A fresh empty database; returns its name."""
    global _db_counter  # noqa: PLW0603 - a per-process counter
    _db_counter += 1
    name = f"bench_{os.getpid()}_{_db_counter}"
    psql(PG_ADMIN_URL, f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    psql(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed_run(argv: Sequence[str], *, env: dict[str, str], cwd: Path | None = None) -> float:
    """Wall time of one subprocess run (output discarded); fails loudly on a non-zero exit."""
    started = time.perf_counter()
    done = subprocess.run(  # noqa: PLW1510 - the exit status is checked below
        list(argv), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return elapsed


# --- processes ---------------------------------------------------------------------------------


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A /proc/PID/status memory field in KiB (VmRSS now, VmHWM the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


# --- the cluster admin's requests, and the apiserver's own webhook counts -----------------------

_CONTENT_TYPES = {"PATCH": "application/merge-patch+json"}


class Api:
    """The cluster admin's requests over one aiohttp session (base URL: the apiserver), at most
    ``concurrency`` at once: the benchmarks create hundreds of objects, and kubectl would fork a
    process for each."""

    def __init__(self, http: Any, concurrency: int = 32) -> None:
        self.http = http  # aiohttp.ClientSession
        self.gate = asyncio.Semaphore(concurrency)

    async def call(
        self, method: str, path: str, body: Any = None, *, allow: Sequence[int] = (), **params: str
    ) -> Any:
        """The answer's JSON; a status >= 300 not in ``allow`` raises with the apiserver's message.

        PATCH bodies are JSON merge patches; ``params`` become the query string.
        """
        headers = {"Content-Type": _CONTENT_TYPES[method]} if method in _CONTENT_TYPES else {}
        async with (
            self.gate,
            self.http.request(method, path, json=body, params=params or None, headers=headers) as r,
        ):
            answer = await r.json()
            if r.status >= 300 and r.status not in allow:
                raise RuntimeError(f"{method} {path}: {r.status} {answer.get('message')}")
            return answer


WEBHOOK_METRIC = "apiserver_admission_webhook_request_total"
DURATION_METRIC = "apiserver_admission_webhook_admission_duration_seconds_bucket"


async def scrape_webhook_series(http: Any) -> dict[str, float]:
    """The apiserver's webhook series (request counts, duration buckets) by full series text."""
    async with http.get("/metrics") as r:
        text = await r.text()
    series: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith((WEBHOOK_METRIC, DURATION_METRIC)):
            name, _, value = line.rpartition(" ")
            series[name] = float(value)
    return series


def webhook_calls(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Requests the apiserver sent to each admission webhook (by name) between two scrapes."""
    calls: dict[str, float] = {}
    for key, value in after.items():
        if key.startswith(WEBHOOK_METRIC + "{"):
            name = re.search(r'name="([^"]+)"', key)
            webhook = name.group(1) if name else "?"
            calls[webhook] = calls.get(webhook, 0.0) + value - before.get(key, 0.0)
    return {k: v for k, v in calls.items() if v}


# --- the real local cluster (tests/cluster) --------------------------------------------------

NOTES: set[str] = set()  # caveats of this run, appended to every recorded section

OPERATORS = ("ours", "noop")
# The no-op operator's styles (bench/noop_operator.py): "noop" is the default everywhere.
NOOP_STYLES = {"noop": "events", "noop-handlers": "handlers"}
RUNNER_IMAGE = "ghcr.io/alembic-operator/alembic-operator:bench"


def free_port() -> int:
    import socket  # noqa: PLC0415 - only the cluster benchmarks need it

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def operator_argv(which: str) -> list[str]:
    """The operator's command line: ours (`alembic-operator run`) or the no-op kopf operator.

    Ours serves its metrics (the default) on a free port, so parallel runs never collide.
    """
    if which == "ours":
        port = str(free_port())
        return [str(BIN / "alembic-operator"), "run", "--standalone", "-A", "--metrics-port", port]
    return [str(BIN / "kopf"), "run", "--standalone", "-A", "-m", "bench.noop_operator"]


@dataclass
class Cluster:
    """A real control plane (tests/cluster) with the CRD and the chart's operator identity."""

    plane: Any  # tests.cluster.controlplane.ControlPlane
    identity: Any  # tests.cluster.fixtures.OperatorIdentity


@contextlib.contextmanager
def cluster(workdir: Path) -> Iterator[Cluster]:
    """etcd + kube-apiserver + kube-controller-manager on loopback, the CRD installed, the chart's
    ServiceAccount and cluster-wide RBAC applied (rendered by the real ``helm template``).

    One per benchmark process (a cold start costs 6-25 s); rounds share it.
    """
    from tests.cluster.controlplane import ControlPlane  # noqa: PLC0415 - cluster benchmarks only
    from tests.cluster.fixtures import install_operator_identity, load_crds  # noqa: PLC0415

    plane = ControlPlane(folder=workdir / "cluster")
    plane.folder.mkdir(parents=True, exist_ok=True)
    plane.start(crds=load_crds())
    try:
        identity = install_operator_identity(plane, "--set", "clusterWide=true")
        yield Cluster(plane=plane, identity=identity)
    finally:
        plane.stop()


@dataclass
class Operator:
    which: str
    process: asyncio.subprocess.Process
    started: float  # time.monotonic() just before the exec
    log: Path
    proxy: Any  # tests.cluster.faults.FaultProxy: every request of this operator, and only its

    @property
    def pid(self) -> int:
        return self.process.pid

    def first_list(self, plural: str) -> float | None:
        """When the apiserver answered this operator's first list of ``plural`` (at the proxy)."""
        for call in self.proxy.calls:
            if call.verb == "list" and call.plural == plural:
                return float(call.at)
        return None


async def start_operator(
    which: str, c: Cluster, workdir: Path, *, extra_env: dict[str, str] | None = None
) -> Operator:
    """Start an operator subprocess as the chart's ServiceAccount, through its own FaultProxy
    (which counts its requests), and wait until it has listed DatabaseMigrations."""
    from tests.cluster.faults import FaultProxy  # noqa: PLC0415 - cluster benchmarks only

    proxy = await FaultProxy(c.plane.server, c.plane.ca).start()
    stamp = time.monotonic_ns()
    kubeconfig = c.identity.kubeconfig(
        c.plane, workdir / f"{which}-{stamp}.kubeconfig", "default", server=proxy.url
    )
    log = workdir / f"{which}-{stamp}.log"
    env = clean_env(
        KUBECONFIG=str(kubeconfig), ALEMBIC_OPERATOR_RUNNER_IMAGE=RUNNER_IMAGE, **(extra_env or {})
    )
    if which in NOOP_STYLES:
        env["BENCH_NOOP_STYLE"] = NOOP_STYLES[which]
    started = time.monotonic()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *operator_argv(which), env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    op = Operator(which, process, started, log, proxy)
    deadline = time.monotonic() + 60
    while op.first_list("databasemigrations") is None:
        if process.returncode is not None or time.monotonic() > deadline:
            await stop_operator(op, quiet=True)
            raise RuntimeError(f"{which} operator did not start: {log.read_text()[-3000:]}")
        await asyncio.sleep(0.01)
    return op


async def stop_operator(op: Operator, *, quiet: bool = False) -> None:
    if op.process.returncode is None:
        op.process.terminate()
        try:
            await asyncio.wait_for(op.process.wait(), timeout=10)
        except TimeoutError:
            op.process.kill()
            await op.process.wait()
    await op.proxy.stop()
    text = op.log.read_text(errors="replace")
    if "Traceback" in text and not quiet:
        print(f"--- {op.which} operator log (traceback) ---\n{text[-3000:]}", file=sys.stderr)
    refused = [c for c in op.proxy.calls if c.status == 403]
    if refused:
        raise RuntimeError(f"{op.which} operator: the chart's RBAC refused {refused[:3]}")
