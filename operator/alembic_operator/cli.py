"""The ``alembic-operator`` command: dispatches subcommands, importing each one only when used.

``migrate`` loads the runner (Alembic, SQLAlchemy); the operator's subcommands never do.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

SUBCOMMANDS = {
    "sandbox": "the whole product on this machine: emulated cluster, operator, example migrations",
    "run": "run the operator (kopf) against the current cluster (in-cluster or $KUBECONFIG)",
    "migrate": "run Alembic to a target revision (the Job's payload) and print one JSON result",
    "write-runner": "write the self-contained embedded runner file (the Job's init container)",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        _usage(sys.stdout)
        return 0
    command, rest = args[0], args[1:]
    if command == "migrate":
        # Imported by name so the operator's import graph never contains Alembic.
        runner = importlib.import_module("alembic_operator.runner.main")
        return int(runner.main(rest))
    if command == "write-runner":
        return _write_runner(rest)
    if command == "run":
        return _run(rest)
    if command == "sandbox":
        return _sandbox(rest)
    print(f"alembic-operator: unknown command {command!r}", file=sys.stderr)
    _usage(sys.stderr)
    return 2


def _write_runner(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="alembic-operator write-runner", description=SUBCOMMANDS["write-runner"]
    )
    parser.add_argument("path", type=Path, help="file or directory to write runner.py into")
    args = parser.parse_args(list(argv))
    from alembic_operator.bundling import write_runner

    print(write_runner(args.path))
    return 0


def _run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="alembic-operator run", description=SUBCOMMANDS["run"])
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable; kopf globs allowed)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default when no --namespace is given)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: do not coordinate with other operator instances",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="kopf's liveness endpoint, e.g. http://0.0.0.0:8081/healthz",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(list(argv))
    import kopf

    import alembic_operator.controller.handlers  # noqa: F401 - registers the handlers

    kopf.configure(verbose=args.verbose)
    kopf.run(
        standalone=args.standalone,
        namespaces=args.namespace,
        clusterwide=not args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0


def _sandbox(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="alembic-operator sandbox", description=SUBCOMMANDS["sandbox"]
    )
    parser.add_argument(
        "--database-url",
        help="a SQLAlchemy URL instead of the default SQLite "
        "file (PostgreSQL or MariaDB); it travels only in the sandbox's Secret",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".sandbox"),
        help="where the kubeconfig, the operator log and SQLite live",
    )
    parser.add_argument("--port", type=int, default=0, help="the emulator's port (default: any)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the emulator running afterwards (kubectl works against it)",
    )
    args = parser.parse_args(list(argv))
    try:
        from alembic_operator.sandbox.main import run_sandbox
    except ImportError as exc:
        print(
            f"alembic-operator sandbox needs the sandbox extra: pip install "
            f"'alembic-operator[sandbox]' ({exc})",
            file=sys.stderr,
        )
        return 2
    return run_sandbox(
        workdir=args.workdir.resolve(),
        database_url=args.database_url,
        port=args.port,
        keep=args.keep,
    )


def _usage(stream: object) -> None:
    lines = ["usage: alembic-operator COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14} {text}" for name, text in SUBCOMMANDS.items()]
    print("\n".join(lines), file=stream)  # type: ignore[call-overload]
