"""Reaching the cluster: client from kubeconfig/context, the calls the commands make, errors.

Every failure leaves this module as a :class:`CommandError` carrying the exit code documented
in docs/cli.md: 4 a missing resource, 5 no cluster access, 6 an RBAC denial (1 anything else).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import lightkube
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import User
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.generic_resource import create_namespaced_resource, get_generic_resource
from lightkube.types import PatchType

GROUP = "alembic-operator.dev"
VERSION = "v1alpha1"
PLURAL = "databasemigrations"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
ALL_NAMESPACES = "*"  # lightkube's "every namespace"
T = TypeVar("T")


# lightkube's generic resources: the objects stay plain JSON (dicts), no generated models.
def _resource(group: str, version: str, kind: str, plural: str) -> Any:
    # Once per process (the operator's adapter may have defined it): lightkube's own lookup of a
    # core group resource misses its registration, so a second definition would be refused.
    found = get_generic_resource(f"{group}/{version}" if group else version, kind)  # type: ignore[no-untyped-call]
    return found or create_namespaced_resource(group, version, kind, plural)


MIGRATIONS = _resource(GROUP, VERSION, "DatabaseMigration", PLURAL)
CONFIG_MAPS = _resource("", "v1", "ConfigMap", "configmaps")
PODS = _resource("", "v1", "Pod", "pods")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5
EXIT_FORBIDDEN = 6


class CommandError(Exception):
    """A command cannot do what was asked: ``message`` for stderr, ``exit_code`` for scripts."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Access:
    """How to reach the cluster: the kubectl-like flags every command takes."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float = 30.0


class Cluster:
    """The few API calls the commands make, on lightkube's synchronous client."""

    def __init__(self, client: lightkube.Client, namespace: str, *, server: str) -> None:
        self.namespace = namespace
        self.server = server
        self._client = client

    # --- DatabaseMigrations -------------------------------------------------------------------

    def get_migration(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        missing = f"databasemigration {name} not found in namespace {ns}"
        return dict(self._call(lambda: self._client.get(MIGRATIONS, name, namespace=ns), missing))

    def list_migrations(self, *, all_namespaces: bool = False) -> list[dict[str, Any]]:
        ns = ALL_NAMESPACES if all_namespaces else self.namespace
        return self._call(lambda: [dict(m) for m in self._client.list(MIGRATIONS, namespace=ns)])

    def annotate_migration(
        self, name: str, annotations: dict[str, str], namespace: str | None = None
    ) -> dict[str, Any]:
        ns = namespace or self.namespace
        body = {"metadata": {"annotations": annotations}}
        patched = self._call(
            lambda: self._client.patch(
                MIGRATIONS, name, body, namespace=ns, patch_type=PatchType.MERGE
            ),
            f"databasemigration {name} not found in namespace {ns}",
        )
        return dict(patched)

    # --- ConfigMaps and pods ------------------------------------------------------------------

    def get_configmap(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        missing = f"configmap {name} not found in namespace {ns}"
        return dict(self._call(lambda: self._client.get(CONFIG_MAPS, name, namespace=ns), missing))

    def list_job_pods(self, job: str, namespace: str | None = None) -> list[dict[str, Any]]:
        ns = namespace or self.namespace
        labels: dict[str, Any] = {"job-name": job}
        return self._call(
            lambda: [dict(p) for p in self._client.list(PODS, namespace=ns, labels=labels)]
        )

    def read_log(self, pod: str, container: str, namespace: str | None = None) -> str:
        ns = namespace or self.namespace
        return self._call(
            lambda: "".join(self._client.log(pod, namespace=ns, container=container)),
            f"pod {pod} not found in namespace {ns}",
        )

    def follow_log(self, pod: str, container: str, namespace: str | None = None) -> Iterator[str]:
        """The log as it is written, until the container ends (no read timeout)."""
        ns = namespace or self.namespace
        lines = self._call(
            lambda: iter(self._client.log(pod, namespace=ns, container=container, follow=True))
        )
        while True:  # errors surface while reading, not when the stream is asked for
            line = self._call(lambda: next(lines, None), f"pod {pod} not found in namespace {ns}")
            if line is None:
                return
            yield line

    # --- plumbing -----------------------------------------------------------------------------

    def _call(self, request: Callable[[], T], missing: str = "") -> T:
        try:
            return request()
        except httpx2.HTTPStatusError as exc:  # lightkube's ApiError is one too
            raise api_error(exc, missing=missing) from None
        except (httpx2.HTTPError, OSError) as exc:
            raise CommandError(
                f"cannot reach the cluster at {self.server}: {connection_reason(exc)}",
                EXIT_UNREACHABLE,
            ) from None


def api_error(exc: httpx2.HTTPStatusError, *, missing: str = "") -> CommandError:
    """An answer the API refused, as a :class:`CommandError` with the documented exit code."""
    status = exc.response.status_code
    message = _status_message(exc)
    if status == 404 and missing:
        return CommandError(missing, EXIT_NOT_FOUND)
    if status == 404:
        return CommandError(f"not found: {message}", EXIT_NOT_FOUND)
    if status == 403:
        return CommandError(f"forbidden: {message}", EXIT_FORBIDDEN)
    if status == 401:
        return CommandError(f"unauthorized: {message}", EXIT_FORBIDDEN)
    reason = exc.response.reason_phrase
    return CommandError(f"the API answered {status} {reason}: {message}", EXIT_ERROR)


def _status_message(exc: httpx2.HTTPStatusError) -> str:
    """The apiserver's Status message when the body is one, else the HTTP reason."""
    if isinstance(exc, ApiError) and exc.status.message:
        return str(exc.status.message)
    return str(exc.response.reason_phrase or exc.response.status_code)


def connection_reason(exc: BaseException) -> str:
    """A connection failure's cause in words."""
    return str(exc) or type(exc).__name__


# --- loading the client ----------------------------------------------------------------------


def connect(access: Access) -> Cluster:
    """A :class:`Cluster` for the kubeconfig/context (or in-cluster credentials), like kubectl."""
    path = access.kubeconfig or os.environ.get("KUBECONFIG") or None
    default = Path.home() / ".kube" / "config"
    try:
        if path is None and not default.exists() and SERVICE_ACCOUNT.exists():
            config = KubeConfig.from_service_account().get()
        else:
            config = KubeConfig.from_file(path or default).get(context_name=access.context)
        if config is None:
            raise ConfigError("the kubeconfig has no current context")
        if config.user is None:
            config = config._replace(user=User())
        timeout = httpx2.Timeout(access.request_timeout)
        client = lightkube.Client(config=config, timeout=timeout, trust_env=False)
    except (ConfigError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CommandError(
            f"cannot load the cluster configuration ({path or default}): {_config_reason(exc)}",
            EXIT_UNREACHABLE,
        ) from None
    return Cluster(client, access.namespace or config.namespace, server=config.cluster.server)


def _config_reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):  # an unknown context, user or cluster name
        return f"no {exc} in the kubeconfig"
    return str(exc) or type(exc).__name__
