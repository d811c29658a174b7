"""The ``alembic-operator`` command: dispatches subcommands, importing each one only when used.

``migrate`` loads the runner (Alembic, SQLAlchemy); the operator's subcommands never do.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SUBCOMMANDS = {
    "run": "run the operator (kopf) against the current cluster (in-cluster or $KUBECONFIG)",
    "migrate": "run Alembic to a target revision (the Job's payload) and print one JSON result",
    "write-runner": "write the self-contained embedded runner file (the Job's init container)",
}
# The on-call commands (alembic_operator.commands; also `kubectl dbm ...`), loaded only when used.
ON_CALL = ("status", "plan", "approve", "reject", "retry", "logs")


def _import_runner() -> Any:
    """Import the runner (by name, so the operator's import graph never contains Alembic).

    The runner is a one-shot process: its imports (SQLAlchemy, Alembic: most of its objects)
    run without the cyclic garbage collector and are then frozen, so no later collection, and
    not the one at exit, walks them again. Garbage the migrations make is collected as usual.
    """
    gc.disable()
    try:
        return importlib.import_module("alembic_operator.runner.main")
    finally:
        gc.freeze()
        gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        _usage(sys.stdout)
        return 0
    command, rest = args[0], args[1:]
    if command == "migrate":
        return int(_import_runner().main(rest))
    if command == "write-runner":
        return _write_runner(rest)
    if command == "run":
        return _run(rest)
    if command in ON_CALL:
        on_call = importlib.import_module("alembic_operator.commands.main")
        return int(on_call.run(command, rest))
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


def _run_parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        metavar="PORT",
        help="serve Prometheus metrics on :PORT/metrics (default 8080; 0 disables)",
    )
    parser.add_argument(
        "--webhook-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve the rollout gate's mutating admission webhook (HTTPS) on PORT (default: off)",
    )
    parser.add_argument(
        "--webhook-cert-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the webhook's tls.crt and tls.key (cert-manager, or a Secret you manage); "
        "default: a CA and certificate the operator creates, rotates and stores in a Secret",
    )
    parser.add_argument("--resync-seconds", type=float, metavar="SEC", help="the cache policy's "
                        "period: cached objects nothing confirmed for SEC are read or listed "
                        "again, a deletion the watch missed ends (default 60)")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true")
    _webhook_arguments(parser)
    _election_arguments(parser)
    return parser


def _webhook_arguments(parser: argparse.ArgumentParser) -> None:
    webhook = parser.add_argument_group("the webhook: its timeout, its certificate")
    webhook.add_argument("--webhook-timeout", type=float, metavar="SEC", help="the webhook "
                         "configuration's timeoutSeconds (default 5): a Deployment request whose "
                         "migrations cannot be read 1 s before it is refused")  # fmt: skip
    webhook.add_argument("--webhook-secret", metavar="NAME", help="its Secret (default "
                         "alembic-operator-webhook-tls, in the operator's namespace)")  # fmt: skip
    webhook.add_argument("--webhook-service", metavar="NAME", help="the webhook Service whose "
                         "DNS names it carries (default alembic-operator-webhook)")  # fmt: skip
    webhook.add_argument("--webhook-configuration", metavar="NAME", help="the "
                         "MutatingWebhookConfiguration whose caBundle it writes")  # fmt: skip
    webhook.add_argument("--webhook-host", action="append", default=[], metavar="HOST",
                         help="another DNS name or IP address for it (repeatable)")  # fmt: skip
    webhook.add_argument("--webhook-cert-validity", type=float, metavar="SEC",
                         help="default 1 year; renewed when a third is left")  # fmt: skip


def _election_arguments(parser: argparse.ArgumentParser) -> None:
    election = parser.add_argument_group("leader election (a coordination.k8s.io Lease)")
    election.add_argument("--leader-election", action="store_true", help="only the Lease "
                          "holder reconciles; every replica serves the webhook")  # fmt: skip
    election.add_argument("--lease-name", metavar="NAME", help="default alembic-operator")
    election.add_argument("--operator-namespace", metavar="NS", help="where the Lease and the "
                          "certificate Secret live (default $POD_NAMESPACE)")  # fmt: skip
    election.add_argument("--identity", metavar="NAME", help="this replica's name in the "
                          "Lease (default $POD_NAME, else host name and process id)")  # fmt: skip


def _run(argv: Sequence[str]) -> int:
    parser = _run_parser()
    args = parser.parse_args(list(argv))
    if args.resync_seconds is not None and not 0 < args.resync_seconds < float("inf"):
        parser.error(f"--resync-seconds {args.resync_seconds}: a positive number of seconds")
    if not 0 <= args.metrics_port <= 65535:
        parser.error(f"--metrics-port {args.metrics_port}: not a port number")
    if args.webhook_port is not None and not 0 < args.webhook_port <= 65535:
        parser.error(f"--webhook-port {args.webhook_port}: not a port number")
    if args.webhook_cert_dir is not None and args.webhook_port is None:
        parser.error("--webhook-cert-dir needs --webhook-port")
    if args.webhook_cert_validity is not None and args.webhook_cert_validity < 2:
        parser.error("--webhook-cert-validity: at least 2 seconds")
    import kopf

    import alembic_operator.controller.handlers  # noqa: F401 - registers the handlers
    from alembic_operator.controller import serving

    _export(args)
    try:
        serving.Options.from_env()  # incomplete options fail here, before kopf starts
    except serving.OptionsError as exc:
        parser.error(str(exc))

    kopf.configure(verbose=args.verbose)
    if not args.verbose:
        # kopf logs "Handler '...' succeeded." for every watch event (every Deployment of the
        # cluster), httpx2 every API request, aiohttp every admission request: noise that costs
        # CPU (on the admission path too). Failures are warnings and errors: still logged.
        for noisy in ("kopf.objects", "httpx2", "httpcore", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    kopf.run(
        standalone=args.standalone,
        namespaces=args.namespace,
        clusterwide=not args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0


def _export(args: argparse.Namespace) -> None:
    """Hand the options to the startup handler, which reads them from the environment."""
    from alembic_operator.controller import serving
    from alembic_operator.controller.caches import CLUSTERWIDE_ENV, RESYNC_ENV
    from alembic_operator.controller.metrics import METRICS_PORT_ENV

    # The startup handler reads them (also when kopf runs the handlers module directly).
    os.environ[METRICS_PORT_ENV] = str(args.metrics_port)
    values = {
        serving.WEBHOOK_PORT_ENV: args.webhook_port,
        serving.WEBHOOK_CERT_DIR_ENV: args.webhook_cert_dir and args.webhook_cert_dir.resolve(),
        serving.WEBHOOK_SECRET_ENV: args.webhook_secret,
        serving.WEBHOOK_SERVICE_ENV: args.webhook_service,
        serving.WEBHOOK_CONFIGURATION_ENV: args.webhook_configuration,
        serving.WEBHOOK_HOSTS_ENV: ",".join(args.webhook_host) or None,
        serving.WEBHOOK_CERT_VALIDITY_ENV: args.webhook_cert_validity,
        serving.WEBHOOK_TIMEOUT_ENV: args.webhook_timeout,
        serving.LEADER_ELECTION_ENV: "1" if args.leader_election else None,
        serving.LEASE_NAME_ENV: args.lease_name,
        serving.NAMESPACE_ENV: args.operator_namespace,
        serving.IDENTITY_ENV: args.identity,
        RESYNC_ENV: args.resync_seconds,
        CLUSTERWIDE_ENV: None if args.namespace else "1",
    }
    for name, value in values.items():
        if value is not None:
            os.environ[name] = str(value)


def _usage(stream: object) -> None:
    lines = ["usage: alembic-operator COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", f"on call (docs/cli.md; COMMAND --help): {', '.join(ON_CALL)}"]
    print("\n".join(lines), file=stream)  # type: ignore[call-overload]
