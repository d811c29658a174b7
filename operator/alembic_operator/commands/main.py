"""Argument parsing and dispatch of the on-call commands (also the ``kubectl-dbm`` plugin).

Exit codes (docs/cli.md): 0 done, 1 other error, 2 bad usage, 3 refused (the migration is not
in the state the command needs), 4 not found, 5 no cluster access, 6 forbidden.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from alembic_operator.commands.approvals import run_decision, run_retry
from alembic_operator.commands.clusters import Access, CommandError, connect
from alembic_operator.commands.logs import run_logs
from alembic_operator.commands.plans import run_plan
from alembic_operator.commands.status import run_status

COMMANDS = {
    "status": "show migrations like `kubectl get`: phase, revisions, held Deployments, failure",
    "plan": "show a migration's stored plan: revisions, direction and the SQL",
    "approve": "approve the pending plan (annotates it with the plan's hash)",
    "reject": "reject the pending plan",
    "retry": "retry a Failed migration (sets the retry annotation)",
    "logs": "the migration pod's live log while it runs, else the log tail in status",
}


def _parser(prog: str, command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{prog} {command}", description=COMMANDS[command])
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current context)")
    parser.add_argument(
        "-n", "--namespace", help="namespace (default: the context's namespace, else default)"
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up on an API request after this long (default 30)",
    )
    if command == "status":
        parser.add_argument("name", nargs="?", metavar="NAME")
        parser.add_argument("-A", "--all-namespaces", action="store_true")
        parser.add_argument("-o", "--output", choices=("json", "yaml"))
    else:
        parser.add_argument("name", metavar="NAME")
    if command == "plan":
        parser.add_argument("--sql-only", action="store_true", help="print only the SQL")
    if command in ("approve", "reject"):
        parser.add_argument(
            "--plan-hash", metavar="HASH", help="refuse unless the pending plan has this hash"
        )
    if command == "logs":
        parser.add_argument("-f", "--follow", action="store_true", help="stream the live log")
    return parser


def run(
    command: str,
    argv: Sequence[str],
    *,
    prog: str = "alembic-operator",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one on-call command; argparse exits 2 on bad usage."""
    out, err = out or sys.stdout, err or sys.stderr
    args = _parser(prog, command).parse_args(list(argv))
    access = Access(args.kubeconfig, args.context, args.namespace, args.request_timeout)
    try:
        return _dispatch(command, args, access, out, err)
    except CommandError as exc:
        out.flush()
        err.write(f"error: {exc.message}\n")
        return exc.exit_code


def _dispatch(
    command: str, args: argparse.Namespace, access: Access, out: TextIO, err: TextIO
) -> int:
    cluster = connect(access)
    if command == "status":
        return run_status(
            cluster,
            out,
            err,
            name=args.name,
            all_namespaces=args.all_namespaces,
            output=args.output,
        )
    if command == "plan":
        return run_plan(cluster, out, err, name=args.name, sql_only=args.sql_only)
    if command in ("approve", "reject"):
        return run_decision(
            cluster,
            out,
            name=args.name,
            approve=command == "approve",
            expected_hash=args.plan_hash,
        )
    if command == "retry":
        return run_retry(cluster, out, name=args.name)
    return run_logs(cluster, out, err, name=args.name, follow=args.follow)


def usage(prog: str) -> str:
    lines = [f"usage: {prog} COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines) + "\n"


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """``kubectl dbm ...``: the on-call commands as a kubectl plugin (``kubectl-dbm``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(usage("kubectl dbm"))
        return 0
    if args[0] not in COMMANDS:
        sys.stderr.write(f"kubectl dbm: unknown command {args[0]!r}\n" + usage("kubectl dbm"))
        return 2
    return run(args[0], args[1:], prog="kubectl dbm")
