"""The chart's RBAC against the code: every call the operator makes is granted, nothing more.

The required permissions are derived from the source, not from a hand-kept list:
- ``controller/kubeapi.py`` and its base ``controller/workloadapi.py``: every
  ``self._call(verb, RESOURCE, ..., subresource=...)`` of the adapter (``"get", JOBS`` -> batch
  jobs get, ``"get", PODS, subresource="log"`` -> pods/log get);
- ``controller/handlers.py``: every resource a kopf handler watches (list + watch);
- ``controller/ownapi.py``: the calls on the operator's own objects (its Lease, its certificate
  Secret, its MutatingWebhookConfiguration), granted by name in the release namespace only.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from alembic_operator.controller import kubeapi, ownapi, transport, workloadapi
from tests.delivery.conftest import VALUE_SETS
from tests.delivery.tools import REPO, render

CONTROLLER = REPO / "operator" / "alembic_operator" / "controller"
# kopf handlers that watch their resource (admission handlers, on.mutate/on.validate, do not).
WATCHING = {"event", "create", "update", "delete", "resume", "field", "timer", "daemon", "index"}
# Rules the chart adds for kopf itself, checked separately (peering, cluster observation).
KOPF_GROUPS = {"kopf.dev", "apiextensions.k8s.io"}

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)


def call_permission(verb: str, resource: transport.Resource, subresource: str | None) -> Permission:
    assert verb in transport.VERBS, f"kubeapi.py uses verb {verb!r}: not one it can send"
    return (resource.group, resource.plural + (f"/{subresource}" if subresource else ""), verb)


def kubeapi_permissions(
    path: Path = CONTROLLER / "kubeapi.py", module: Any = kubeapi
) -> set[Permission]:
    """Every ``self._call("<verb>", <RESOURCE>, ..., subresource=...)`` of the adapter.

    Each argument that decides the permission must be a literal (or a module-level
    :class:`~alembic_operator.controller.kubeapi.Resource`), so the derivation cannot miss one;
    and only ``_send`` (below ``_call``) may touch the client.
    """
    tree = ast.parse(path.read_text())
    found: set[Permission] = set()
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "_client"
                and function.name not in ("__init__", "open", "close", "_send")
            ):
                raise AssertionError(f"kubeapi.py: {function.name} uses the client directly")
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and ast.unparse(node.func) == "self._call"
            ):
                continue
            verb, resource = node.args[0], node.args[1]
            assert isinstance(verb, ast.Constant), ast.unparse(node)
            assert isinstance(resource, ast.Name), ast.unparse(node)
            value = getattr(module, resource.id)
            assert isinstance(value, transport.Resource), ast.unparse(node)
            sub = next((k.value for k in node.keywords if k.arg == "subresource"), None)
            assert sub is None or isinstance(sub, ast.Constant), ast.unparse(node)
            found.add(call_permission(verb.value, value, sub.value if sub else None))
    assert not any(isinstance(n, ast.keyword) and n.arg is None for n in ast.walk(tree)), (
        f"{path.name} passes **kwargs somewhere: the derivation cannot see through it"
    )
    return found


def test_only_the_transport_touches_the_client() -> None:
    """Everything reaches the API through ``Transport._call``: nothing bypasses the derivation."""
    for module in ("kubeapi.py", "workloadapi.py", "ownapi.py", "transport.py"):
        tree = ast.parse((CONTROLLER / module).read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            uses = any(
                isinstance(n, ast.Attribute) and n.attr == "_client" for n in ast.walk(function)
            )
            allowed = module == "transport.py" and function.name in (
                "__init__",
                "open",
                "close",
                "_send",
                "_refresh_credentials",
            )
            assert not uses or allowed, f"{module}: {function.name} uses the client directly"


def kopf_watch_permissions(path: Path = CONTROLLER / "handlers.py") -> set[Permission]:
    module = importlib.import_module("alembic_operator.controller.handlers")
    tree = ast.parse(path.read_text())
    found: set[Permission] = set()

    def value(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return getattr(module, node.id)
        raise AssertionError(f"handlers.py: cannot resolve {ast.dump(node)}")

    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            if not (
                isinstance(decorator, ast.Call)
                and isinstance(decorator.func, ast.Attribute)
                and ast.unparse(decorator.func.value) == "kopf.on"
                and decorator.func.attr in WATCHING
            ):
                continue
            args = [value(a) for a in decorator.args]
            if len(args) == 3:
                group, _version, resource = args
            elif len(args) == 2 and re.fullmatch(r"v\d+\w*", args[0]):
                group, resource = "", args[1]
            else:
                raise AssertionError(f"handlers.py: unexpected resource spec {args}")
            found |= {(group, resource, "list"), (group, resource, "watch")}
    return found


def required() -> set[Permission]:
    workloads = kubeapi_permissions(CONTROLLER / "workloadapi.py", workloadapi)
    return kubeapi_permissions() | workloads | kopf_watch_permissions()


def own_permissions() -> set[Permission]:
    return kubeapi_permissions(CONTROLLER / "ownapi.py", ownapi)


# Cluster-scoped among the operator's own objects: granted by a ClusterRole, by name.
OWN_CLUSTER_SCOPED = {"mutatingwebhookconfigurations"}


def rules_of(documents: Iterable[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [r for d in documents if d["kind"] in kinds for r in d.get("rules", [])]


def granted(rules: Iterable[dict[str, Any]]) -> set[Permission]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def operator_rules(documents: list[dict[str, Any]], kind: str) -> set[Permission]:
    return {p for p in granted(rules_of(documents, kind)) if p[0] not in KOPF_GROUPS}


# --- the derivation itself ----------------------------------------------------------------------


def test_derivation_reads_the_calls_it_should() -> None:
    """Guards against a derivation that silently finds nothing."""
    perms = required()
    for expected in [
        ("alembic-operator.dev", "databasemigrations", "get"),
        ("alembic-operator.dev", "databasemigrations/status", "patch"),
        ("alembic-operator.dev", "databasemigrations", "watch"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "delete"),
        ("", "pods", "list"),
        ("", "pods/log", "get"),
        ("", "secrets", "get"),
        ("", "events", "create"),
    ]:
        assert expected in perms


@pytest.mark.parametrize(("module", "cls"), [("kubeapi.py", "KubeApi"), ("ownapi.py", "OwnApi")])
def test_every_request_goes_through_a_derivable_call(module: str, cls: str) -> None:
    """The derivation sees every request: one ``_call`` per method, each literal."""
    tree = ast.parse((CONTROLLER / module).read_text())
    (api,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    public = [
        f for f in api.body if isinstance(f, ast.AsyncFunctionDef) and not f.name.startswith("_")
    ]
    calling = {
        f.name
        for f in public
        for n in ast.walk(f)
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "self._call"
    }
    assert {f.name for f in public} - {"open", "close"} == calling


@pytest.mark.parametrize(
    ("verb", "resource", "subresource", "permission"),
    [
        ("get", kubeapi.PODS, "log", ("", "pods/log", "get")),
        ("list", kubeapi.PODS, None, ("", "pods", "list")),
        ("patch", kubeapi.MIGRATIONS, "status", (kubeapi.GROUP, "databasemigrations/status", "patch")),  # noqa: E501
        ("create", kubeapi.EVENTS, None, ("", "events", "create")),
        ("patch", workloadapi.DEPLOYMENTS, None, ("apps", "deployments", "patch")),
    ],
)  # fmt: skip
def test_calls_map_to_permissions(
    verb: str, resource: kubeapi.Resource, subresource: str | None, permission: Permission
) -> None:
    assert call_permission(verb, resource, subresource) == permission


# --- the rendered rules -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_no_wildcards_and_no_secret_list_or_watch(rendered: dict[str, str], name: str) -> None:
    documents = [d for d in yaml.safe_load_all(rendered[name]) if d]
    rules = rules_of(documents, "Role", "ClusterRole")
    assert rules
    for rule in rules:
        assert "nonResourceURLs" not in rule
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert not any("*" in item for item in rule.get(field, [])), rule
        if "secrets" in rule["resources"]:
            # Read one by one; the operator's own certificate Secret is also created and
            # updated, by name (create cannot be limited to a name).
            assert set(rule["verbs"]) in ({"get"}, {"create"}, {"get", "update"}), rule
            if "update" in rule["verbs"]:
                assert rule.get("resourceNames"), rule


@pytest.mark.parametrize(("name", "kind"), [("defaults", "Role"), ("namespaced", "Role"),
                                            ("cluster-wide", "ClusterRole")])  # fmt: skip
def test_rules_are_exactly_what_the_code_calls(
    rendered: dict[str, str], name: str, kind: str
) -> None:
    documents = [d for d in yaml.safe_load_all(rendered[name]) if d and not is_own(d)]
    per_role = [operator_rules([d], kind) for d in documents if d["kind"] == kind]
    assert per_role
    for perms in per_role:
        missing = required() - perms
        extra = perms - required()
        assert not missing, f"the operator calls these, the chart does not grant them: {missing}"
        assert not extra, f"granted but never used by the operator: {extra}"


def is_own(document: dict[str, Any]) -> bool:
    """The Role/ClusterRole (and bindings) for the operator's own objects."""
    return str(document["metadata"]["name"]).endswith(("-self", "-webhook"))


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_own_objects_are_granted_by_name_in_the_release_namespace(
    rendered: dict[str, str], name: str
) -> None:
    """Lease and certificate Secret: get/update by name, in the release namespace; the
    MutatingWebhookConfiguration: get/patch by name. Exactly what controller/ownapi.py calls."""
    documents = [d for d in yaml.safe_load_all(rendered[name]) if d]
    own = [d for d in documents if d["kind"] in ("Role", "ClusterRole") and is_own(d)]
    roles = [d for d in own if d["kind"] == "Role"]
    assert all(d["metadata"]["namespace"] == "ops" for d in roles)
    rules = [r for d in own for r in d["rules"]]
    for rule in rules:
        assert rule["verbs"] == ["create"] or rule.get("resourceNames"), rule
    config = [d for d in documents if d["kind"] == "MutatingWebhookConfiguration"]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    managed = any(e["name"] == "ALEMBIC_OPERATOR_WEBHOOK_SECRET" for e in container["env"])
    expected = {p for p in own_permissions() if p[1] not in ("secrets", *OWN_CLUSTER_SCOPED)}
    if managed:
        expected = own_permissions()
    assert granted(rules) == expected
    names = {n for r in rules for n in r.get("resourceNames", [])}
    if managed:
        secret = "aop-alembic-operator-webhook-tls"
        assert names == {"aop-alembic-operator", secret, config[0]["metadata"]["name"]}
    assert "--lease-name=aop-alembic-operator" in container["args"]


def test_no_own_objects_rbac_without_leader_election_or_managed_certificate() -> None:
    documents = render(
        {"replicaCount": 1, "leaderElection": {"enabled": False}, "webhook": {"enabled": False}}
    )
    assert not any(is_own(d) for d in documents if d["kind"].endswith(("Role", "RoleBinding")))


def test_namespaced_rbac_is_one_role_per_watched_namespace() -> None:
    documents = [d for d in render({"watchNamespaces": ["a", "b"]}) if not is_own(d)]
    roles = {d["metadata"]["namespace"] for d in documents if d["kind"] == "Role"}
    bindings = [d for d in documents if d["kind"] == "RoleBinding"]
    assert roles == {"a", "b"}
    assert {b["metadata"]["namespace"] for b in bindings} == {"a", "b"}
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "aop-alembic-operator", "namespace": "ops"}
        ]
    # The only cluster-wide grant: kopf's read-only observation of CRDs and namespaces.
    (cluster_role,) = [d for d in documents if d["kind"] == "ClusterRole"]
    assert granted(cluster_role["rules"]) == {
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
    }
    no_scanning = render({"watchNamespaces": ["a"], "rbac": {"kopfScanning": False}})
    assert not any(d["kind"].startswith("Cluster") and not is_own(d) for d in no_scanning)


def test_cluster_wide_rbac() -> None:
    documents = [d for d in render({"clusterWide": True}) if not is_own(d)]
    assert not any(d["kind"] in ("Role", "RoleBinding") for d in documents)
    (role,) = [d for d in documents if d["kind"] == "ClusterRole"]
    (binding,) = [d for d in documents if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    kopf = granted(rules_of([role], "ClusterRole")) - operator_rules([role], "ClusterRole")
    assert kopf == {
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    }


@pytest.mark.parametrize(
    ("values", "kind", "resource"),
    [
        ({"watchNamespaces": ["a"]}, "Role", "kopfpeerings"),
        ({"clusterWide": True}, "ClusterRole", "clusterkopfpeerings"),
    ],
)
def test_peering_rules_only_with_peering(values: dict[str, Any], kind: str, resource: str) -> None:
    off = granted(rules_of([d for d in render(values) if not is_own(d)], kind))
    assert not any(p[0] == "kopf.dev" for p in off)
    on = granted(rules_of(render({**values, "peering": {"enabled": True}}), kind))
    assert {p for p in on if p[0] == "kopf.dev"} == {
        ("kopf.dev", resource, verb) for verb in ("get", "list", "watch", "patch")
    }


def test_rbac_create_false_renders_no_rbac() -> None:
    documents = render({"rbac": {"create": False}})
    assert not any(d["kind"].endswith(("Role", "RoleBinding")) for d in documents)


def test_cluster_scoped_names_stay_apart_in_a_long_namespace() -> None:
    """<fullname>-<namespace>-scanning used to be cut to 63 characters, the same cut as
    <fullname>-<namespace>: in a namespace of 43+ characters both ClusterRoles got one name and
    `helm install` failed. Past 63 characters a name ends with a hash of the whole name."""
    namespace = "payments-platform-production-eu-west-1-blue-green"  # 49 characters
    docs = render({"clusterWide": True}, namespace=namespace)
    cluster_scoped = [
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration")
    ]
    names = [name for _, name in cluster_scoped]
    assert all(len(name) <= 63 for name in names), names
    assert len(set(cluster_scoped)) == len(cluster_scoped), cluster_scoped
    roles = [name for kind, name in cluster_scoped if kind == "ClusterRole"]
    assert len(set(roles)) == len(roles) >= 2, roles
    # The operator is told the webhook configuration's name: the one the chart renders.
    env = {
        e["name"]: e.get("value")
        for d in docs
        if d["kind"] == "Deployment"
        for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])
    }
    webhooks = [name for kind, name in cluster_scoped if kind == "MutatingWebhookConfiguration"]
    assert webhooks == [env["ALEMBIC_OPERATOR_WEBHOOK_CONFIGURATION"]], (webhooks, env)
