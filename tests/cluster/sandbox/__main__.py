"""``python -m tests.cluster.sandbox`` (``make sandbox``): the whole product on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.cluster.sandbox.main import run_sandbox

DESCRIPTION = (
    "the whole product on this machine: a real local control plane (etcd, kube-apiserver, "
    "kube-controller-manager), a test kubelet, the operator, the example migrations"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster.sandbox", description=DESCRIPTION
    )
    parser.add_argument(
        "--database-url",
        help="a SQLAlchemy URL instead of the default SQLite file (PostgreSQL or MariaDB; the "
        "database is created when missing); it travels only in the sandbox's Secret",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".sandbox"),
        help="where the cluster, the kubeconfig, the operator log and SQLite live",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the cluster running afterwards (kubectl works against it) until Ctrl-C",
    )
    parser.add_argument(
        "--runtime",
        choices=("processes", "podman"),
        default="processes",
        help="how the test kubelet runs pods: local processes (default), or real containers "
        "with podman from the images `make image` builds (needs a PostgreSQL --database-url)",
    )
    args = parser.parse_args(argv)
    return run_sandbox(
        workdir=args.workdir.resolve(),
        database_url=args.database_url,
        keep=args.keep,
        runtime=args.runtime,
    )


if __name__ == "__main__":
    sys.exit(main())
