"""skaffold.yaml and the example app it deploys (no skaffold binary here: structure, validity)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.delivery.pss import pod_specs, violations
from tests.delivery.test_real_apiserver import apply_dry_run
from tests.delivery.tools import KUBERNETES_VERSIONS, REPO, run, tool

APP = REPO / "examples" / "app"


@pytest.fixture(scope="module")
def skaffold() -> dict[str, Any]:
    return yaml.safe_load((REPO / "skaffold.yaml").read_text())


def manifests(skaffold: dict[str, Any]) -> list[Path]:
    return [REPO / path for path in skaffold["manifests"]["rawYaml"]]


def test_skaffold_structure(skaffold: dict[str, Any]) -> None:
    assert skaffold["apiVersion"].startswith("skaffold/v4beta")
    assert skaffold["kind"] == "Config"
    artifacts = {a["image"]: a for a in skaffold["build"]["artifacts"]}
    assert set(artifacts) == {"alembic-operator", "shop-app"}
    for artifact in artifacts.values():
        assert (REPO / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()
    (release,) = skaffold["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"] / "Chart.yaml").is_file()
    templates = release["setValueTemplates"]
    assert templates["image.repository"] == "{{.IMAGE_REPO_alembic_operator}}"
    assert templates["image.tag"].startswith("{{.IMAGE_TAG_alembic_operator}}")
    assert release["setValues"]["clusterWide"] is True
    assert "kubectl" in skaffold["deploy"]
    (allowed,) = skaffold["resourceSelector"]["allow"]
    assert allowed["groupKind"] == "DatabaseMigration.alembic-operator.dev"
    for path in manifests(skaffold):
        assert path.is_file(), path


def app_documents() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted((APP / "manifests").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_example_app_manifests_validate(skaffold: dict[str, Any], version: str) -> None:
    result = run(tool("kubernetes-validate"), "--strict", "-k", version, *manifests(skaffold))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("WARN")]
    assert len(warnings) == 1 and "DatabaseMigration" in warnings[0], output


def test_example_app_is_accepted_by_the_apiserver(
    skaffold: dict[str, Any], control_plane: ControlPlane, namespace: str
) -> None:
    documents = app_documents()
    out = apply_dry_run(control_plane, documents, namespace)
    assert out.count("serverside-applied (server dry run)") == len(documents), out
    (migration,) = [d for d in documents if d["kind"] == "DatabaseMigration"]
    # The migration gates the example Deployment and runs the image skaffold builds for it.
    deployments = {d["metadata"]["name"]: d for d in app_documents() if d["kind"] == "Deployment"}
    assert migration["spec"]["gate"]["deployments"] == ["shop-web"]
    web = deployments["shop-web"]["spec"]["template"]["spec"]["containers"][0]
    assert migration["spec"]["image"] == web["image"] == "shop-app"
    # The URL only ever comes from the Secret the manifests create.
    secret = next(d for d in app_documents() if d["kind"] == "Secret")
    ref = migration["spec"]["database"]["urlSecretRef"]
    assert secret["metadata"]["name"] == ref["name"] and ref["key"] in secret["stringData"]


def test_example_app_image_carries_the_migrations() -> None:
    text = (APP / "Dockerfile").read_text()
    assert "COPY migrations/versions/ /app/migrations/versions/" in text
    assert "migrations/alembic.ini" in text and "migrations/env.py" in text
    (migration,) = [d for d in app_documents() if d["kind"] == "DatabaseMigration"]
    assert migration["spec"]["alembic"]["workingDir"] == "/app/migrations"


def test_example_app_pod_is_restricted() -> None:
    (web,) = [p for w, p in pod_specs(app_documents()) if w == "Deployment/shop-web"]
    assert violations(web) == []


YAMLLINT = (
    "{extends: default, rules: {line-length: {max: 110}, document-start: disable,"
    " comments: {min-spaces-from-content: 1}, indentation: {indent-sequences: consistent}}}"
)


def test_yamllint() -> None:
    """The hand-written YAML (not the templates, which are not YAML before rendering)."""
    paths = [
        REPO / "skaffold.yaml",
        APP / "manifests",
        REPO / "charts" / "alembic-operator" / "values.yaml",
        REPO / "charts" / "alembic-operator" / "Chart.yaml",
    ]
    result = run(tool("yamllint"), "--strict", "-d", YAMLLINT, *paths)
    assert result.returncode == 0, result.stdout + result.stderr
