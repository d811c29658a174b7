"""The operator's credentials: one kubeconfig, read by lightkube, gives our client and kopf's
login the same identity (tokens, client certificates, CA data, exec plugins); bad ones are
reported as :class:`ConfigurationError`, never as a library's exception."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from alembic_operator.controller.credentials import (
    bearer_token,
    load_config,
    login_fields,
    token_subject,
)
from alembic_operator.errors import ConfigurationError


def kubeconfig(path: Path, user: dict[str, Any], **cluster: Any) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ops"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_certificates_and_ca_data_reach_kopf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kubeconfig(
        tmp_path / "config",
        {"client-certificate-data": b64(b"CERT"), "client-key-data": b64(b"KEY")},
        **{"certificate-authority-data": b64(b"CA")},
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    fields = login_fields(load_config())
    assert fields["server"] == "https://127.0.0.1:6443"
    assert (fields["ca_data"], fields["certificate_data"], fields["private_key_data"]) == (
        b"CA",
        b"CERT",
        b"KEY",
    )
    assert fields["token"] is None and fields["scheme"] is None
    assert fields["default_namespace"] == "ops"


def test_relative_files_and_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kubeconfig(
        tmp_path / "config",
        {"token": "abc", "client-certificate": "c.crt"},
        **{"certificate-authority": "ca.crt"},
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    config = load_config()
    fields = login_fields(config)
    assert fields["ca_path"] == str(tmp_path / "ca.crt")  # relative to the kubeconfig
    assert fields["certificate_path"] == str(tmp_path / "c.crt")
    assert (fields["scheme"], fields["token"]) == ("Bearer", "abc")
    assert bearer_token(config) == "abc"


def test_an_exec_plugin_is_run_for_kopf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cloud's IAM helper: the program the kubeconfig names prints an ExecCredential."""
    plugin = tmp_path / "token-helper"
    credential = {"kind": "ExecCredential", "status": {"token": "from-plugin"}}
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}' # $EXTRA\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "env": [{"name": "EXTRA", "value": "1"}],
        }
    }
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", exec_user)))
    assert login_fields(load_config())["token"] == "from-plugin"

    plugin.write_text("#!/bin/sh\nexit 3\n")
    with pytest.raises(ConfigurationError, match="exec plugin failed"):
        login_fields(load_config())


@pytest.mark.parametrize(
    ("content", "match"),
    [
        pytest.param(None, "no cluster credentials", id="missing-file"),
        pytest.param(
            "clusters: []\nusers: []\ncontexts: []\n", "No current context", id="no-current-context"
        ),
        pytest.param("clusters: []\n", "the kubeconfig has no 'contexts'", id="no-contexts"),
        pytest.param(
            "clusters: []\nusers: []\ncontexts: []\ncurrent-context: x\n",
            "Context 'x' not found",
            id="unknown-context",
        ),
    ],
)
def test_unusable_kubeconfigs_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, match: str
) -> None:
    path = tmp_path / "config"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(ConfigurationError, match=match):
        load_config()


@pytest.mark.parametrize(
    ("token", "subject"),
    [
        pytest.param(
            "h." + b64(json.dumps({"sub": "system:serviceaccount:ops:op"}).encode()) + ".s",
            "system:serviceaccount:ops:op",
            id="service-account-jwt",
        ),
        pytest.param("opaque-token", None, id="not-a-jwt"),
        pytest.param(None, None, id="no-token"),
    ],
)
def test_token_subject(token: str | None, subject: str | None) -> None:
    assert token_subject(token) == subject
