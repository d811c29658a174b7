"""The cluster credentials the operator runs with, loaded by lightkube, and the same identity
for kopf's own client.

In a pod: the ServiceAccount's token file (re-read by lightkube on a 401) and CA; elsewhere the
kubeconfig (``$KUBECONFIG``, read at each call, or ~/.kube/config). Blocking file reads and exec
plugins run here: call from a thread or from kopf's login handler. Must not talk to the API.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from typing import Any

from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.config.models import User
from lightkube.core.exceptions import ConfigError

from alembic_operator.errors import ConfigurationError

# The cluster configuration (one context of a kubeconfig, or the in-cluster one), as lightkube
# holds it: the other modules name it through this alias, never lightkube itself.
Config = SingleConfig


def load_config() -> SingleConfig:
    """In-cluster credentials when in a pod, else ``$KUBECONFIG`` (read now) or ~/.kube/config.

    Reading ``$KUBECONFIG`` at each call lets one process (the sandbox, the tests) point the
    operator at a cluster chosen after start-up. Blocking (file reads): call it from a thread
    inside the event loop.
    """
    try:
        config = KubeConfig.from_env().get()
    except KeyError as exc:  # a section or a name the kubeconfig lacks
        raise ConfigurationError(f"no cluster credentials: the kubeconfig has no {exc}") from None
    except (ConfigError, OSError, ValueError) as exc:
        raise ConfigurationError(f"no cluster credentials: {exc}") from None
    if config is None:
        raise ConfigurationError("no cluster credentials: the kubeconfig has no current context")
    return config if config.user is not None else config._replace(user=User())


def bearer_token(config: SingleConfig) -> str | None:
    """The bearer token the configuration authenticates with, if it is a static or file token."""
    user = config.user
    if user is None:
        return None
    if user.token_file:
        try:
            with open(user.token_file, encoding="utf-8") as file:
                return file.read().strip() or None
        except OSError:
            return user.token
    return user.token


def login_fields(config: SingleConfig) -> dict[str, Any]:
    """The configuration as ``kopf.ConnectionInfo``'s fields: kopf watches as the same identity.

    Blocking (a kubeconfig's exec plugin runs here): call it from a thread or kopf's login.
    """
    cluster, user = config.cluster, config.user or User()
    token = bearer_token(config) or (_exec_token(config) if user.exec else None)
    return {
        "server": cluster.server,
        "ca_path": _path(config, cluster.certificate_auth),
        "ca_data": _data(cluster.certificate_auth_data),
        "insecure": cluster.insecure,
        "username": user.username,
        "password": user.password,
        "scheme": "Bearer" if token else None,
        "token": token,
        "certificate_path": _path(config, user.client_cert),
        "certificate_data": _data(user.client_cert_data),
        "private_key_path": _path(config, user.client_key),
        "private_key_data": _data(user.client_key_data),
        "default_namespace": config.namespace,
    }


def _path(config: SingleConfig, name: str | None) -> str | None:
    return str(config.abs_file(name)) if name else None


def _data(encoded: str | None) -> bytes | None:
    return base64.b64decode(encoded) if encoded else None


def _exec_token(config: SingleConfig) -> str | None:
    """A kubeconfig exec plugin's token (a cloud's IAM helper), run as kubectl runs it."""
    plugin = (config.user or User()).exec
    if plugin is None:
        return None
    env = {**os.environ, **{pair.name: pair.value for pair in plugin.env or ()}}
    try:
        done = subprocess.run(  # the kubeconfig names the program, as for kubectl
            [plugin.command, *(plugin.args or ())],
            env=env, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        return str(json.loads(done.stdout)["status"]["token"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"the kubeconfig's exec plugin failed: {exc}") from None


def token_subject(token: str | None) -> str | None:
    """The username a ServiceAccount token authenticates as (its JWT ``sub``), if it is one.

    Read without verifying the signature: only to recognise the operator's own requests at
    admission (the apiserver did the authentication). ``None`` for other credentials.
    """
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return str(subject) if subject else None
