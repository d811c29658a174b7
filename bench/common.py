"""Shared pieces of the benchmarks: statistics, machine info, the results file, the cluster.

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
from collections.abc import AsyncIterator, Callable, Sequence
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
    return (
        f"{m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']}, Linux {m['kernel']}"
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


# --- the emulated cluster -------------------------------------------------------------------

NOTES: set[str] = set()  # caveats of this run, appended to every recorded section

NS = "default"
DBM = f"/apis/alembic-operator.dev/v1alpha1/namespaces/{NS}/databasemigrations"
OPERATORS = ("ours", "noop")
# The no-op operator's styles (bench/noop_operator.py): "noop" is the default everywhere.
NOOP_STYLES = {"noop": "events", "noop-handlers": "handlers"}
# Benchmarks that compare against both no-ops: the goal is judged against the kopf-style one
# (kopf's usual handlers and persistence); the on.event one, which writes nothing, is the floor.
WITH_BOTH_NOOPS = ("ours", *NOOP_STYLES)
GOAL_BASELINE = "noop-handlers"
BASELINES = (GOAL_BASELINE, "noop")  # in the order their rows are recorded
NOOP_LABELS = {"noop-handlers": "no-op, kopf's usual handlers", "noop": "no-op, on.event only"}


def baseline_role(which: str) -> str:
    """The note after a verdict against the no-op ``which``."""
    return " (the goal's reference)" if which == GOAL_BASELINE else " (floor)"


RUNNER_IMAGE = "ghcr.io/alembic-operator/alembic-operator:bench"
KUBELET_AGENT = "alembic-operator-local-kubelet"
BENCH_AGENT = "alembic-operator-bench"


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


APP_IMAGE = "registry.example.com/shop/app:1.0"
HELD_BY = "alembic-operator.dev/held-by"
# kopf's diff-base: written once a change's handlers succeeded (kopf's default persistence).
KOPF_HANDLED = "kopf.zalando.org/last-handled-configuration"


def migration(name: str, *, gate: str | None = None) -> dict[str, Any]:
    """A DatabaseMigration; with ``gate`` it holds the Deployment of that name."""
    spec: dict[str, Any] = {
        "image": APP_IMAGE,
        "database": {"urlSecretRef": {"name": "shop-db", "key": "url"}},
    }
    if gate:
        spec["gate"] = {"deployments": [gate]}
    return {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": APP_IMAGE}]},
            },
        },
    }


def succeeded_result() -> Any:
    """The simulated kubelet's container result: a runner that applied one revision at once."""
    import json  # noqa: PLC0415 - only the cluster benchmarks need it

    from alembic_operator.emulation.kubelet import SimulatedResult  # noqa: PLC0415 - only the cluster benchmarks need it

    def simulate(container: Any) -> Any:
        if container.container != "migrate":
            return SimulatedResult()
        result = {
            "outcome": "Succeeded",
            "reason": "Applied",
            "exitCode": 0,
            "mode": "apply",
            "targetRevision": "head",
            "fromRevision": None,
            "toRevision": "0001",
            "appliedRevisions": ["0001"],
            "direction": "upgrade",
            "durationSeconds": 0.01,
            "message": "upgrade to head: 1 revision(s)",
        }
        return SimulatedResult(exit_code=0, message=json.dumps(result))

    return simulate


@dataclass
class Cluster:
    api: Any
    kubelet: Any
    session: Any
    kubeconfig: Path

    async def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        headers = {"User-Agent": BENCH_AGENT}
        if method == "PATCH":
            headers["Content-Type"] = "application/merge-patch+json"
        async with self.session.request(method, path, json=body, headers=headers, **kw) as resp:
            data = await resp.json()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return data

    async def create_secret(self) -> None:
        import base64  # noqa: PLC0415 - only the cluster benchmarks need it

        url = base64.b64encode(b"postgresql://app:secret@db/shop").decode()
        await self.request(
            "POST",
            f"/api/v1/namespaces/{NS}/secrets",
            {"metadata": {"name": "shop-db"}, "data": {"url": url}},
        )

    def operator_writes(self, since: int = 0) -> list[Any]:
        return [
            c
            for c in self.api.calls[since:]
            if c.is_write and not c.user_agent.startswith((KUBELET_AGENT, BENCH_AGENT))
        ]

    def first_list(self, plural: str, after: float) -> float | None:
        for c in self.api.calls:
            if (
                c.verb == "list"
                and c.plural == plural
                and c.started >= after
                and c.user_agent.startswith("kopf")
            ):
                return c.started + c.duration
        return None


@contextlib.asynccontextmanager
async def cluster(
    workdir: Path, *, simulate: Callable[..., Any] | None = None
) -> AsyncIterator[Cluster]:
    """The apiserver emulator with the CRD, a simulating local kubelet and a client session."""
    import aiohttp  # noqa: PLC0415 - only the cluster benchmarks need it
    import yaml  # noqa: PLC0415 - only the cluster benchmarks need it

    from alembic_operator.emulation.apiserver import ApiServer  # noqa: PLC0415 - only the cluster benchmarks need it
    from alembic_operator.emulation.kubelet import LocalKubelet  # noqa: PLC0415 - only the cluster benchmarks need it

    crd = yaml.safe_load((REPO / "crds" / "databasemigrations.yaml").read_text())
    async with ApiServer() as api:
        api.install_crd(crd)
        kubeconfig = api.write_kubeconfig(workdir / "kubeconfig")
        async with (
            LocalKubelet(
                api.base_url,
                images={},
                log_sink=api.set_pod_log,
                simulate=simulate or succeeded_result(),
                workdir=workdir / "kubelet",
            ) as kubelet,
            aiohttp.ClientSession(api.base_url) as session,
        ):
            c = Cluster(api=api, kubelet=kubelet, session=session, kubeconfig=kubeconfig)
            await c.create_secret()
            yield c


@dataclass
class Operator:
    which: str
    process: asyncio.subprocess.Process
    started: float  # time.monotonic() just before the exec
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


_webhook_workaround = False


def _self_signed(workdir: Path) -> Path:
    certs = workdir / "webhook-certs"
    certs.mkdir(exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(certs / "tls.key"),
            "-out",
            str(certs / "tls.crt"),
        ],
        check=True,
        capture_output=True,
    )
    return certs


async def start_operator(
    which: str, c: Cluster, workdir: Path, *, extra_env: dict[str, str] | None = None
) -> Operator:
    """Start an operator subprocess and wait until it has listed DatabaseMigrations.

    Workaround: if ours stops at once because its admission-webhook stand-in ends ("Admission
    webhook server has finished unexpectedly", webhook off), it is started with the webhook on
    (self-signed certificate, 127.0.0.1) for the rest of the run, and the results say so.
    """
    global _webhook_workaround  # noqa: PLW0603 - decided once per run
    env = dict(extra_env or {})
    if which == "ours" and _webhook_workaround:
        env.update(
            ALEMBIC_OPERATOR_WEBHOOK_PORT=str(free_port()),
            ALEMBIC_OPERATOR_WEBHOOK_ADDR="127.0.0.1",
            ALEMBIC_OPERATOR_WEBHOOK_CERT_DIR=str(_self_signed(workdir)),
        )
    try:
        return await _start(which, c, workdir, env)
    except RuntimeError as exc:
        if which != "ours" or _webhook_workaround or "webhook server has finished" not in str(exc):
            raise
        _webhook_workaround = True
        NOTES.add(
            "alembic-operator ran with its admission webhook ON (self-signed certificate): with "
            "the webhook off (the default) this version exits at start-up "
            '(`webhooks.no_server` returns, kopf reports "Admission webhook server has '
            'finished unexpectedly" and stops).'
        )
        print("  (ours exits with the webhook off: retrying with the webhook on)", flush=True)
        return await start_operator(which, c, workdir, extra_env=extra_env)


async def _start(which: str, c: Cluster, workdir: Path, extra_env: dict[str, str]) -> Operator:
    log = workdir / f"{which}-{time.monotonic_ns()}.log"
    env = clean_env(
        KUBECONFIG=str(c.kubeconfig), ALEMBIC_OPERATOR_RUNNER_IMAGE=RUNNER_IMAGE, **extra_env
    )
    if which in NOOP_STYLES:
        env["BENCH_NOOP_STYLE"] = NOOP_STYLES[which]
    started = time.monotonic()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *operator_argv(which), env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    op = Operator(which, process, started, log)
    deadline = time.monotonic() + 60
    while c.first_list("databasemigrations", started) is None:
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
    text = op.log.read_text(errors="replace")
    if "Traceback" in text and not quiet:
        print(f"--- {op.which} operator log (traceback) ---\n{text[-3000:]}", file=sys.stderr)


async def wait_until(
    probe: Callable[[], Any], *, within: float, what: str, interval: float = 0.01
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


class Tracker:
    """Follows migrations, Jobs and pods in-process and timestamps the moments that matter.

    ``ready[name]``: status condition Ready turned True; ``terminal[name]``: phase Succeeded or
    Failed; ``job_seen[name]``: the migration's first Job exists; ``job_complete[name]``: its Job
    has the Complete condition; ``pod_done[name]``: its pod reached Succeeded/Failed.
    All times are ``time.monotonic()`` on the emulator's event loop, as the write is committed.
    """

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.ready: dict[str, float] = {}
        self.terminal: dict[str, float] = {}
        self.job_seen: dict[str, float] = {}
        self.job_complete: dict[str, float] = {}
        self.pod_done: dict[str, float] = {}
        self.handled: dict[str, float] = {}  # kopf persisted its handling (the no-op's "done")
        self.held: dict[str, float] = {}  # Deployment name -> held (paused + held-by)
        self.released: dict[str, float] = {}  # Deployment name -> released after being held
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> Tracker:
        for plural, api_version, fn in (
            ("databasemigrations", "alembic-operator.dev/v1alpha1", self._on_migration),
            ("jobs", "batch/v1", self._on_job),
            ("pods", "v1", self._on_pod),
            ("deployments", "apps/v1", self._on_deployment),
        ):
            self._tasks.append(asyncio.create_task(self._follow(plural, api_version, fn)))
        return self

    async def stop(self) -> None:
        self._stop.set()
        self.c.api.registry.store.wake()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self, plural: str, api_version: str, fn: Callable[[Any], None]) -> None:
        from alembic_operator.emulation.watching import follow  # noqa: PLC0415 - only the cluster benchmarks need it

        rtype = self.c.api.resource_type(plural, api_version)
        async for event in follow(self.c.api.registry, rtype, stop=self._stop):
            if event.get("type") in ("ADDED", "MODIFIED"):
                fn(event["object"])

    def _on_migration(self, obj: Any) -> None:
        name, status, now = obj["metadata"]["name"], obj.get("status") or {}, time.monotonic()
        if KOPF_HANDLED in (obj["metadata"].get("annotations") or {}):
            self.handled.setdefault(name, now)
        if status.get("phase") in ("Succeeded", "Failed"):
            self.terminal.setdefault(name, now)
        for cond in status.get("conditions") or ():
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                self.ready.setdefault(name, now)

    def _on_job(self, obj: Any) -> None:
        name = (obj["metadata"].get("labels") or {}).get("alembic-operator.dev/migration")
        if not name:
            return
        now = time.monotonic()
        self.job_seen.setdefault(name, now)
        for cond in (obj.get("status") or {}).get("conditions") or ():
            if cond.get("type") == "Complete" and cond.get("status") == "True":
                self.job_complete.setdefault(name, now)

    def _on_pod(self, obj: Any) -> None:
        name = (obj["metadata"].get("labels") or {}).get("alembic-operator.dev/migration")
        if name and (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            self.pod_done.setdefault(name, time.monotonic())

    def _on_deployment(self, obj: Any) -> None:
        name, now = obj["metadata"]["name"], time.monotonic()
        held = bool((obj["metadata"].get("annotations") or {}).get(HELD_BY))
        paused = bool((obj.get("spec") or {}).get("paused"))
        if held and paused:
            self.held.setdefault(name, now)
        elif name in self.held and not held and not paused:
            self.released.setdefault(name, now)


def create_migrations(c: Cluster, names: Sequence[str], *, gate: bool = False) -> None:
    """Create migrations in-process (same admission and watch events as over HTTP), at once.

    With ``gate`` each migration ``NAME`` first gets a Deployment ``NAME-app`` that it gates.
    """
    rtype = c.api.resource_type("databasemigrations", "alembic-operator.dev/v1alpha1")
    deployments = c.api.resource_type("deployments", "apps/v1")
    for name in names:
        if gate:
            c.api.registry.create(deployments, NS, deployment(f"{name}-app"))
        c.api.registry.create(rtype, NS, migration(name, gate=f"{name}-app" if gate else None))


def noop_seen_at(op: Operator) -> float | None:
    """When the no-op operator printed ``SEEN N t`` (its handler saw every migration)."""
    for line in op.log.read_text(errors="replace").splitlines():
        if line.startswith("SEEN "):
            return float(line.split()[2])
    return None
