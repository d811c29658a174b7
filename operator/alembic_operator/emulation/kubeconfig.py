"""A kubeconfig for the emulator: plain HTTP, an empty user, one context.

``kubectl --kubeconfig PATH ...``, the ``kubernetes`` client and kopf's kubeconfig login all
accept it. Kubernetes clients read ``$KUBECONFIG`` when they load their configuration, so point
the variable at the file before starting them.
"""

from __future__ import annotations

import json
from pathlib import Path

CONTEXT = "alembic-operator-emulator"


def kubeconfig_text(server: str, *, namespace: str = "default", name: str = CONTEXT) -> str:
    """The kubeconfig document (YAML) for an emulator at ``server`` (``http://127.0.0.1:PORT``)."""
    q = json.dumps  # JSON strings are valid YAML scalars
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: {q(name)}\n"
        "  cluster:\n"
        f"    server: {q(server)}\n"
        "contexts:\n"
        f"- name: {q(name)}\n"
        "  context:\n"
        f"    cluster: {q(name)}\n"
        f"    user: {q(name)}\n"
        f"    namespace: {q(namespace)}\n"
        f"current-context: {q(name)}\n"
        "users:\n"
        f"- name: {q(name)}\n"
        "  user: {}\n"
        "preferences: {}\n"
    )


def write_kubeconfig(
    path: str | Path, server: str, *, namespace: str = "default", name: str = CONTEXT
) -> Path:
    """Write the kubeconfig to ``path`` (parents created, mode 0600) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(kubeconfig_text(server, namespace=namespace, name=name), encoding="utf-8")
    target.chmod(0o600)
    return target
