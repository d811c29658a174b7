"""Reaching the cluster: client from kubeconfig/context, the calls the commands make, errors.

Every failure leaves this module as a :class:`CommandError` carrying the exit code documented
in docs/cli.md: 4 a missing resource, 5 no cluster access, 6 an RBAC denial (1 anything else).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

GROUP = "alembic-operator.dev"
VERSION = "v1alpha1"
PLURAL = "databasemigrations"
MERGE_PATCH = "application/merge-patch+json"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

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
    """The few API calls the commands make, on the synchronous official client."""

    def __init__(self, client: kubernetes.client.ApiClient, namespace: str, timeout: float) -> None:
        self.namespace = namespace
        self.server = str(client.configuration.host)
        self._timeout = timeout
        self._custom = kubernetes.client.CustomObjectsApi(client)
        self._core = kubernetes.client.CoreV1Api(client)

    # --- DatabaseMigrations -------------------------------------------------------------------

    def get_migration(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        return self._json(
            self._custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            ns,
            PLURAL,
            name,
            missing=f"databasemigration {name} not found in namespace {ns}",
        )

    def list_migrations(self, *, all_namespaces: bool = False) -> list[dict[str, Any]]:
        if all_namespaces:
            listed = self._json(self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        else:
            listed = self._json(
                self._custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL
            )
        return [dict(item) for item in listed.get("items", [])]

    def annotate_migration(
        self, name: str, annotations: dict[str, str], namespace: str | None = None
    ) -> dict[str, Any]:
        ns = namespace or self.namespace
        body = {"metadata": {"annotations": annotations}}
        return self._json(
            self._custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            ns,
            PLURAL,
            name,
            body,
            _content_type=MERGE_PATCH,
            missing=f"databasemigration {name} not found in namespace {ns}",
        )

    # --- ConfigMaps and pods ------------------------------------------------------------------

    def get_configmap(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        return self._json(
            self._core.read_namespaced_config_map,
            name,
            ns,
            missing=f"configmap {name} not found in namespace {ns}",
        )

    def list_pods(self, selector: str, namespace: str | None = None) -> list[dict[str, Any]]:
        ns = namespace or self.namespace
        listed = self._json(self._core.list_namespaced_pod, ns, label_selector=selector)
        return [dict(item) for item in listed.get("items", [])]

    def read_log(self, pod: str, container: str, namespace: str | None = None) -> str:
        ns = namespace or self.namespace
        response = self._call(
            self._core.read_namespaced_pod_log,
            pod,
            ns,
            container=container,
            _preload_content=False,
            missing=f"pod {pod} not found in namespace {ns}",
        )
        return bytes(response.data).decode("utf-8", errors="replace")

    def follow_log(self, pod: str, container: str, namespace: str | None = None) -> Iterator[str]:
        """The log as it is written, until the container ends (no read timeout)."""
        ns = namespace or self.namespace
        response = self._call(
            self._core.read_namespaced_pod_log,
            pod,
            ns,
            container=container,
            follow=True,
            _preload_content=False,
            _request_timeout=None,
            missing=f"pod {pod} not found in namespace {ns}",
        )
        try:
            for chunk in response.stream(1024, decode_content=True):
                yield bytes(chunk).decode("utf-8", errors="replace")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(exc) from None
        finally:
            response.release_conn()

    # --- plumbing -----------------------------------------------------------------------------

    def _json(self, fn: Any, *args: Any, missing: str = "", **kwargs: Any) -> dict[str, Any]:
        response = self._call(fn, *args, _preload_content=False, missing=missing, **kwargs)
        return dict(json.loads(response.data))

    def _call(self, fn: Any, *args: Any, missing: str = "", **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise api_error(exc, missing=missing) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: BaseException) -> CommandError:
        return CommandError(
            f"cannot reach the cluster at {self.server}: {connection_reason(exc)}", EXIT_UNREACHABLE
        )


def api_error(exc: ApiException, *, missing: str = "") -> CommandError:
    """An ``ApiException`` as a :class:`CommandError` with the documented exit code."""
    message = _status_message(exc)
    if exc.status == 404 and missing:
        return CommandError(missing, EXIT_NOT_FOUND)
    if exc.status == 404:
        return CommandError(f"not found: {message}", EXIT_NOT_FOUND)
    if exc.status == 403:
        return CommandError(f"forbidden: {message}", EXIT_FORBIDDEN)
    if exc.status == 401:
        return CommandError(f"unauthorized: {message}", EXIT_FORBIDDEN)
    return CommandError(f"the API answered {exc.status} {exc.reason}: {message}", EXIT_ERROR)


def _status_message(exc: ApiException) -> str:
    """The apiserver's Status message when the body is one, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or exc.status)


_NEW_CONNECTION = "Failed to establish a new connection: "
_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>:\s*")


def connection_reason(exc: BaseException) -> str:
    """A connection failure's cause in words, without urllib3's object reprs."""
    reason: object = getattr(exc, "reason", None) or exc
    text = _OBJECT_REPR.sub("", str(reason))
    _before, marker, after = text.rpartition(_NEW_CONNECTION)
    return (after if marker else text) or type(exc).__name__


# --- loading the client ----------------------------------------------------------------------


def connect(access: Access) -> Cluster:
    """A :class:`Cluster` for the kubeconfig/context (or in-cluster credentials), like kubectl."""
    config = kubernetes.client.Configuration()
    path = access.kubeconfig or os.environ.get("KUBECONFIG") or None
    default = Path.home() / ".kube" / "config"
    try:
        if path is None and not default.exists() and _in_cluster(config):
            namespace = access.namespace or _service_account_namespace()
        else:
            files = path or str(default)
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=files, context=access.context, client_configuration=config
            )
            namespace = access.namespace or _context_namespace(files, access.context)
    except (kubernetes.config.ConfigException, OSError, ValueError) as exc:
        raise CommandError(
            f"cannot load the cluster configuration ({path or default}): {exc}", EXIT_UNREACHABLE
        ) from None
    config.retries = 1
    return Cluster(kubernetes.client.ApiClient(config), namespace, access.request_timeout)


def _in_cluster(config: kubernetes.client.Configuration) -> bool:
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        return False
    return True


def _service_account_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def _context_namespace(files: str, context: str | None) -> str:
    contexts, active = kubernetes.config.list_kube_config_contexts(config_file=files)  # type: ignore[no-untyped-call]
    chosen = active
    if context is not None:
        chosen = next((c for c in contexts if c.get("name") == context), None)
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"
