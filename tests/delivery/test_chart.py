"""The Helm chart, with the real helm v3 and kubernetes-validate (from scripts/tools.sh)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from alembic_operator.controller.handlers import DEFAULT_RUNNER_IMAGE
from alembic_operator.controller.webhooks import (
    POD_WEBHOOK_ID,
    WEBHOOK_CERT_DIR_ENV,
    WEBHOOK_ID,
    WEBHOOK_PORT_ENV,
)
from tests.delivery.conftest import VALUE_SETS
from tests.delivery.tools import (
    CHART,
    KUBERNETES_VERSIONS,
    REPO,
    helm_template,
    render,
    run,
    tool,
)

# Kinds kubernetes-validate has no schema for (CRDs of other projects): it may only warn about
# these, and test_custom_kinds_structure checks them instead.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "Certificate", "Issuer"}


def docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def one(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in documents
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def kinds(documents: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in documents}


def operator_container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(documents, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


# --- helm lint and kubernetes-validate --------------------------------------------------------


@pytest.mark.parametrize("name", ["defaults", "webhook", "monitoring"])
def test_helm_lint_strict(name: str) -> None:
    result = run(
        tool("helm"), "lint", "--strict", CHART, "--values", "-",
        stdin=yaml.safe_dump(VALUE_SETS[name]),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_manifests_validate_strictly(rendered: dict[str, str], name: str, version: str) -> None:
    result = run(tool("kubernetes-validate"), "--strict", "-k", version, "-", stdin=rendered[name])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERROR" not in output, output
    for line in output.splitlines():
        if line.startswith("WARN"):
            match = re.search(r"schema for kind (\w+)", line)
            assert match and match.group(1) in CUSTOM_KINDS, line
    passed = len(re.findall(r"^INFO .* passed for resource", output, re.M))
    builtin = [d for d in docs(rendered[name]) if d["kind"] not in CUSTOM_KINDS]
    assert passed == len(builtin), output


def test_custom_kinds_structure(rendered: dict[str, str]) -> None:
    """The objects kubernetes-validate cannot check, checked against what they must reference."""
    monitoring = docs(rendered["monitoring"])
    monitor = one(monitoring, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    service = one(monitoring, "Service", "aop-alembic-operator-metrics")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}

    webhook = docs(rendered["webhook"])
    certificate = one(webhook, "Certificate")
    issuer = one(webhook, "Issuer")
    assert certificate["apiVersion"] == issuer["apiVersion"] == "cert-manager.io/v1"
    assert issuer["spec"] == {"selfSigned": {}}
    assert certificate["spec"]["issuerRef"] == {
        "name": issuer["metadata"]["name"],
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    deployment = one(webhook, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert "aop-alembic-operator-webhook.ops.svc" in certificate["spec"]["dnsNames"]
    configuration = one(webhook, "MutatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"ops/{certificate['metadata']['name']}"
    )


# --- values.schema.json -----------------------------------------------------------------------

SCHEMA_REJECTS = [
    ({"replicaCount": 0}, "minimum"),
    ({"podAntiAffinity": "hard"}, "value must be one of"),
    ({"leaderElection": {"leaseName": "Not_A_Name"}}, "does not match pattern"),
    ({"webhook": {"managedCertificate": {"validityDays": 0}}}, "minimum"),
    ({"bogus": 1}, "additional properties 'bogus' not allowed"),
    ({"image": {"tagg": "x"}}, "additional properties 'tagg' not allowed"),
    ({"webhook": {"certManager": {"issuer": "x"}}}, "additional properties 'issuer'"),
    ({"metrics": {"port": "8080"}}, "got string, want integer"),
    ({"clusterWide": "yes"}, "got string, want boolean"),
    ({"watchNamespaces": "shop"}, "got string, want array"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "does not match pattern"),
    ({"image": {"digest": "latest"}}, "does not match pattern"),
    ({"webhook": {"failurePolicy": "Sometimes"}}, "value must be one of"),
    ({"webhook": {"timeoutSeconds": 60}}, "maximum"),
    ({"podLabels": {"team": 1}}, "got number, want string"),
    ({"extraEnv": [{"value": "x"}]}, "missing property 'name'"),
]


@pytest.mark.parametrize(("values", "message"), SCHEMA_REJECTS, ids=json.dumps)
def test_schema_rejects(values: dict[str, Any], message: str) -> None:
    result = helm_template(values)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def _object_nodes(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            found.append((path, node))
        for key, value in node.items():
            found += _object_nodes(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _object_nodes(value, f"{path}[{index}]")
    return found


def test_schema_closes_every_object() -> None:
    """Every object with named properties refuses others; maps type their values."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    for path, node in _object_nodes(schema):
        if path == "$.definitions.anyObject":
            continue  # Kubernetes objects passed through (affinity parts): the apiserver checks
        extra = node.get("additionalProperties")
        if "properties" in node:
            assert extra is False, f"{path} accepts unknown keys"
        else:
            assert isinstance(extra, dict) and "type" in extra, f"{path} is an untyped map"


def test_values_reference_is_generated_and_complete() -> None:
    """docs/helm.md's table is current; every value has a comment and a schema entry."""
    result = run(tool("python"), REPO / "scripts" / "helm-values-doc.py", "--check")
    assert result.returncode == 0, result.stderr


# --- conflicting options ----------------------------------------------------------------------

CONFLICTS = [
    (
        {"webhook": {"enabled": True, "existingSecret": "x", "certManager": {"enabled": True}}},
        "choose at most one TLS source (none means the operator's own managedCertificate), "
        "got webhook.existingSecret and webhook.certManager.enabled",
    ),
    (
        {
            "webhook": {
                "enabled": True,
                "selfSigned": {"enabled": True},
                "certManager": {"enabled": True},
            }
        },
        "choose at most one TLS source",
    ),
    ({"webhook": {"caBundle": "Y2E="}}, "webhook.caBundle is only used with"),
    (
        {"replicaCount": 2, "leaderElection": {"enabled": False}},
        "replicaCount=2 needs leaderElection.enabled=true",
    ),
    (
        {"webhook": {"enabled": True, "existingSecret": "x"}},
        "webhook.existingSecret needs webhook.caBundle",
    ),
    (
        {"webhook": {"enabled": True, "selfSigned": {"enabled": True}, "caBundle": "Y2E="}},
        "webhook.caBundle is only used with webhook.existingSecret",
    ),
    (
        {"clusterWide": True, "watchNamespaces": ["a"]},
        "clusterWide=true conflicts with watchNamespaces",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("values", "message"), CONFLICTS, ids=json.dumps)
def test_conflicting_options_fail_with_a_message(values: dict[str, Any], message: str) -> None:
    result = helm_template(values)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_existing_secret_with_ca_injection_annotation_renders() -> None:
    annotation = {"cert-manager.io/inject-ca-from": "ops/my-cert"}
    documents = render(
        {"webhook": {"enabled": True, "existingSecret": "x", "annotations": annotation}}
    )
    configuration = one(documents, "MutatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"] == annotation
    assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]


# --- the operator Deployment ------------------------------------------------------------------

ARGS = {
    "defaults": ["--standalone", "--namespace=ops"],
    "namespaced": ["--standalone", "--namespace=a", "--namespace=b"],
    "cluster-wide": ["--all-namespaces"],  # peering on: no --standalone
    "monitoring": ["--standalone", "--all-namespaces"],
}


@pytest.mark.parametrize("name", list(ARGS))
def test_operator_command_line(rendered: dict[str, str], name: str) -> None:
    documents = docs(rendered[name])
    container = operator_container(documents)
    args = container["args"]
    assert args[0] == "run"
    scope = [a for a in args if a.startswith(("--namespace", "--all-namespaces", "--standalone"))]
    assert scope == ARGS[name]
    assert "--liveness=http://0.0.0.0:8081/healthz" in args
    assert "--metrics-port=8080" in args
    assert "--leader-election" in args
    env = {e["name"] for e in container["env"]}
    # The webhook is on by default, with the operator's own certificate (no mounted directory).
    assert WEBHOOK_PORT_ENV in env
    assert WEBHOOK_CERT_DIR_ENV not in env
    assert {"POD_NAME", "POD_NAMESPACE"} <= env


def test_operator_deployment_shape(rendered: dict[str, str]) -> None:
    documents = docs(rendered["defaults"])
    deployment = one(documents, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(documents)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081, "webhook": 9443}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["serviceAccountName"] == one(documents, "ServiceAccount")["metadata"]["name"]


@pytest.mark.parametrize(
    ("values", "image"),
    [
        ({}, "ghcr.io/alembic-operator/alembic-operator:0.1.0"),
        ({"image": {"tag": "1.2.3"}}, "ghcr.io/alembic-operator/alembic-operator:1.2.3"),
        (
            {"image": {"repository": "reg.io/aop", "tag": "1", "digest": "sha256:" + "0" * 64}},
            "reg.io/aop@sha256:" + "0" * 64,
        ),
    ],
)  # fmt: skip
def test_image_by_tag_or_digest_is_also_the_runner_image(
    values: dict[str, Any], image: str
) -> None:
    documents = render(values)
    container = operator_container(documents)
    assert container["image"] == image
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ALEMBIC_OPERATOR_RUNNER_IMAGE"] == image
    test_pod = one(documents, "Pod")
    assert test_pod["spec"]["containers"][0]["image"] == image


def test_versions_agree() -> None:
    """Chart appVersion = the package version = the operator's default runner image tag."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert DEFAULT_RUNNER_IMAGE.endswith(f":{chart['appVersion']}")


def test_metrics_service(rendered: dict[str, str]) -> None:
    documents = render({"metrics": {"port": 9100}})
    service = one(documents, "Service", "aop-alembic-operator-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    deployment = one(documents, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert "--metrics-port=9100" in operator_container(documents)["args"]


def test_helm_test_hook(rendered: dict[str, str]) -> None:
    documents = docs(rendered["defaults"])
    pod = one(documents, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"]
    assert script[:2] == ["python", "-c"]
    compile(script[2], "helm-test", "exec")
    assert "http://aop-alembic-operator-metrics.ops.svc:8080/metrics" in script[2]
    # Neither the operator's ReplicaSet nor its Services may select the test pod.
    deployment = one(documents, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
    assert not any(d["kind"] == "Pod" for d in render({"test": {"enabled": False}}))


# --- the webhook --------------------------------------------------------------------------------


def test_webhook_wiring(rendered: dict[str, str]) -> None:
    documents = docs(rendered["webhook"])
    container = operator_container(documents)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[WEBHOOK_PORT_ENV] == "9443"
    assert env[WEBHOOK_CERT_DIR_ENV] == "/etc/alembic-operator/webhook"
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in container["ports"]
    mount = {m["name"]: m for m in container["volumeMounts"]}["webhook-tls"]
    assert mount == {
        "name": "webhook-tls",
        "mountPath": "/etc/alembic-operator/webhook",
        "readOnly": True,
    }
    service = one(documents, "Service", "aop-alembic-operator-webhook")
    assert service["spec"]["ports"][0]["port"] == 443
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
    hook, pods, unlabelled = one(documents, "MutatingWebhookConfiguration")["webhooks"]
    # The pod webhook: pod CREATE at /gate-pods, never the operator's or its migration pods.
    assert pods["clientConfig"]["service"]["path"] == f"/{POD_WEBHOOK_ID}"
    assert [r["resources"] for r in pods["rules"]] == [["pods"]]
    assert pods["rules"][0]["operations"] == ["CREATE"]
    assert {"key": "alembic-operator.dev/migration-uid", "operator": "DoesNotExist"} in pods[
        "objectSelector"
    ]["matchExpressions"]
    assert hook["failurePolicy"] == pods["failurePolicy"] == "Fail"
    # Pods that declare no migration: the same handler, never blocked while the operator is down.
    assert unlabelled["clientConfig"]["service"]["path"] == f"/{POD_WEBHOOK_ID}"
    assert unlabelled["failurePolicy"] == "Ignore"
    assert {"key": "alembic-operator.dev/migration", "operator": "DoesNotExist"} in unlabelled[
        "objectSelector"
    ]["matchExpressions"]
    assert hook["sideEffects"] == "None"
    assert hook["clientConfig"]["service"] == {
        "name": "aop-alembic-operator-webhook",
        "namespace": "ops",
        "path": f"/{WEBHOOK_ID}",  # kopf serves each admission handler at /<its id>
        "port": 443,
    }
    assert hook["rules"] == [
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "resources": ["deployments"],
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        }
    ]
    expressions = hook["namespaceSelector"]["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop"]} in (
        expressions
    )
    assert {"key": "app.kubernetes.io/instance", "operator": "NotIn", "values": ["aop"]} in hook[
        "objectSelector"
    ]["matchExpressions"]
    off = render({"webhook": {"enabled": False}})
    assert not any(d["kind"] == "MutatingWebhookConfiguration" for d in off)
    assert WEBHOOK_PORT_ENV not in {e["name"] for e in operator_container(off)["env"]}


def test_webhook_managed_certificate_by_default(rendered: dict[str, str]) -> None:
    """No Secret rendered (the operator creates it), no caBundle (the operator writes it)."""
    documents = docs(rendered["defaults"])
    assert not any(d["kind"] in ("Secret", "Certificate", "Issuer") for d in documents)
    configuration = one(documents, "MutatingWebhookConfiguration")
    for hook in configuration["webhooks"]:  # Deployments and pods
        assert "caBundle" not in hook["clientConfig"]
    container = operator_container(documents)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ALEMBIC_OPERATOR_WEBHOOK_SECRET"] == "aop-alembic-operator-webhook-tls"
    assert env["ALEMBIC_OPERATOR_WEBHOOK_SERVICE"] == "aop-alembic-operator-webhook"
    assert env["ALEMBIC_OPERATOR_WEBHOOK_CONFIGURATION"] == configuration["metadata"]["name"]
    assert env["ALEMBIC_OPERATOR_WEBHOOK_CERT_VALIDITY"] == str(365 * 86400)
    assert "webhook-tls" not in {m["name"] for m in container["volumeMounts"]}
    short = operator_container(render({"webhook": {"managedCertificate": {"validityDays": 7}}}))
    assert {"name": "ALEMBIC_OPERATOR_WEBHOOK_CERT_VALIDITY", "value": "604800"} in short["env"]


@pytest.mark.parametrize(
    ("values", "excluded"),
    [
        ({}, ["kube-system"]),  # the release namespace is the watched one
        ({"watchNamespaces": ["shop"]}, ["kube-system", "ops"]),
        ({"clusterWide": True}, ["kube-system", "ops"]),
    ],
)
def test_webhook_never_selects_kube_system_or_the_operator(
    values: dict[str, Any], excluded: list[str]
) -> None:
    hooks = one(render(values), "MutatingWebhookConfiguration")["webhooks"]
    assert len(hooks) == 3
    for hook in hooks:
        expressions = hook["namespaceSelector"]["matchExpressions"]
        assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded} in (
            expressions
        )
        own = {"key": "app.kubernetes.io/instance", "operator": "NotIn", "values": ["aop"]}
        assert own in hook["objectSelector"]["matchExpressions"]
    # Pods: only those declaring a migration reach the webhook (failurePolicy Fail is narrow).
    labelled = {"key": "alembic-operator.dev/migration", "operator": "Exists"}
    assert labelled in hooks[1]["objectSelector"]["matchExpressions"]


def test_two_replicas_spread_with_a_disruption_budget(rendered: dict[str, str]) -> None:
    documents = docs(rendered["defaults"])
    deployment = one(documents, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    pdb = one(documents, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    affinity = deployment["spec"]["template"]["spec"]["affinity"]
    (term,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    single = render({"replicaCount": 1, "leaderElection": {"enabled": False}})
    assert "PodDisruptionBudget" not in kinds(single)
    assert one(single, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert "--leader-election" not in operator_container(single)["args"]
    custom = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}
    pod = one(render({"affinity": custom}), "Deployment")["spec"]["template"]["spec"]
    assert pod["affinity"] == custom
    pod = one(render({"podAntiAffinity": "none"}), "Deployment")["spec"]["template"]["spec"]
    assert "affinity" not in pod


def test_webhook_self_signed_certificate(rendered: dict[str, str]) -> None:
    documents = docs(rendered["webhook-self-signed"])
    secret = one(documents, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    hooks = one(documents, "MutatingWebhookConfiguration")["webhooks"]  # Deployments, pods
    for hook in hooks:
        assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    # The values' failurePolicy, except for pods that declare no migration (never blocked).
    assert [h["failurePolicy"] for h in hooks] == ["Fail", "Fail", "Ignore"]
    assert base64.b64decode(secret["data"]["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE")


def test_webhook_existing_secret(rendered: dict[str, str]) -> None:
    documents = docs(rendered["webhook-existing-secret"])
    assert not any(d["kind"] in ("Secret", "Certificate") for d in documents)
    for hook in one(documents, "MutatingWebhookConfiguration")["webhooks"]:  # Deployments, pods
        assert hook["clientConfig"]["caBundle"] == "Y2E="
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["webhook-tls"]["secret"]["secretName"] == "my-tls"


# --- CRDs ---------------------------------------------------------------------------------------


def test_chart_crds_do_not_drift_from_crds_folder() -> None:
    """The chart's files/crds/ is a byte-for-byte copy of crds/ (scripts/sync-crds.sh)."""
    source = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    copy = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert source, "crds/ holds no CRD"
    assert sorted(copy) == sorted(source), "run scripts/sync-crds.sh"
    for name, content in source.items():
        assert copy[name] == content, f"{name} drifted from crds/: run scripts/sync-crds.sh"


@pytest.mark.parametrize("name", ["alerts.yaml", "dashboard.json"])
def test_chart_monitoring_files_do_not_drift(name: str) -> None:
    source = REPO / "monitoring" / name
    copy = CHART / "files" / name
    if source.exists():
        assert copy.exists(), f"the chart lacks {name}: run scripts/sync-crds.sh"
        assert copy.read_bytes() == source.read_bytes(), f"{name} drifted: run scripts/sync-crds.sh"
    else:
        assert not copy.exists(), f"files/{name} has no source monitoring/{name}"


def test_rendered_crd_is_the_canonical_crd(rendered: dict[str, str]) -> None:
    canonical = yaml.safe_load((REPO / "crds" / "databasemigrations.yaml").read_text())
    crd = one(docs(rendered["defaults"]), "CustomResourceDefinition")
    metadata = crd.pop("metadata")
    expected_metadata = canonical.pop("metadata")
    assert crd == canonical
    assert metadata["name"] == expected_metadata["name"]
    assert expected_metadata["labels"].items() <= metadata["labels"].items()
    assert metadata["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_crds_enabled_and_keep_toggles() -> None:
    disabled = render({"crds": {"enabled": False}})
    assert not any(d["kind"] == "CustomResourceDefinition" for d in disabled)
    crd = one(render({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


# --- monitoring (PrometheusRule and dashboard from the synced files) ----------------------------

ALERTS = {
    "groups": [
        {
            "name": "alembic-operator",
            "rules": [
                {"alert": "MigrationFailed", "expr": "increase(x[5m]) > 0", "for": "1m"},
                {"alert": "OperatorDown", "expr": "up == 0"},
            ],
        }
    ]
}


@pytest.fixture
def chart_with_monitoring(tmp_path: Path) -> Path:
    """A copy of the chart carrying an alerts file and a dashboard (whatever monitoring/ holds)."""
    chart = tmp_path / "alembic-operator"
    shutil.copytree(CHART, chart)
    (chart / "files" / "alerts.yaml").write_text(yaml.safe_dump(ALERTS))
    (chart / "files" / "dashboard.json").write_text(json.dumps({"title": "alembic-operator"}))
    return chart


@pytest.mark.parametrize("shape", ["rules-file", "prometheusrule"])
def test_prometheus_rule_from_alerts_file(chart_with_monitoring: Path, shape: str) -> None:
    if shape == "prometheusrule":
        wrapped = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule"}
        wrapped["spec"] = ALERTS  # type: ignore[assignment]
        (chart_with_monitoring / "files" / "alerts.yaml").write_text(yaml.safe_dump(wrapped))
    documents = render(VALUE_SETS["monitoring"], chart=chart_with_monitoring)
    rule = one(documents, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == ALERTS["groups"]
    for group in rule["spec"]["groups"]:
        assert group["name"] and group["rules"]
        for item in group["rules"]:
            assert ("alert" in item or "record" in item) and item["expr"]
    dashboard = one(documents, "ConfigMap")
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["alembic-operator.json"]) == {"title": "alembic-operator"}
    assert not any(
        d["kind"] in ("PrometheusRule", "ConfigMap")
        for d in render({}, chart=chart_with_monitoring)
    )


def test_repository_alerts_render_when_present(rendered: dict[str, str]) -> None:
    """With the repo's own monitoring/alerts.yaml synced, the PrometheusRule carries its groups."""
    documents = docs(rendered["monitoring"])
    if not (CHART / "files" / "alerts.yaml").exists():
        assert "PrometheusRule" not in kinds(documents)
        return
    rule = one(documents, "PrometheusRule")
    alerts = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"MigrationFailed", "OperatorDown"} <= alerts


# --- NOTES.txt ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["defaults", "namespaced", "webhook-self-signed", "monitoring"])
def test_notes_render(tmp_path: Path, name: str) -> None:
    """NOTES.txt renders (helm only shows it on install: render it through a template here)."""
    chart = tmp_path / "alembic-operator"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_under_test.tpl").write_text(
        '{{- define "notes-under-test" -}}\n' + notes + "\n{{- end }}\n"
    )
    (chart / "templates" / "notes-under-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\ndata:\n"
        '  notes: {{ include "notes-under-test" . | toJson }}\n'
    )
    documents = render(VALUE_SETS[name], chart=chart)
    text = one(documents, "ConfigMap", "notes-under-test")["data"]["notes"]
    assert "kubectl -n ops rollout status deployment/aop-alembic-operator" in text
    assert "helm test aop -n ops" in text
    assert "kubectl wait --for=condition=Ready dbm/shop-schema" in text or "wait --for" in text
    if name == "monitoring" and not (CHART / "files" / "alerts.yaml").exists():
        assert "WARNING: prometheusRule.enabled" in text
