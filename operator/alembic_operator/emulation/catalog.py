"""What the emulated apiserver serves: resource types, the built-in table, CRD registration.

A :class:`ResourceType` is one served group/version/plural with its kind, scope, short names and
subresources. :data:`BUILTIN_TYPES` lists the built-in resources the emulator serves (the ones an
operator, a kubelet stand-in and ``kubectl`` need); :func:`types_from_crd` turns a
``CustomResourceDefinition`` into the types it serves (one per served version). The
:class:`Catalog` holds the current set and looks types up by URL parts, kind or short name.
Objects are stored per group and plural, so every version of a resource sees the same objects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from alembic_operator.emulation.tables import PrinterColumn, printer_columns

DEFAULT_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """One served resource: ``batch/v1 jobs`` (kind Job, namespaced, with ``status``)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = DEFAULT_VERBS
    crd_name: str | None = None  # set for custom resources
    printer_columns: tuple[PrinterColumn, ...] = ()  # a CRD's additionalPrinterColumns

    @property
    def api_version(self) -> str:
        """``v1``, ``batch/v1``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        """``JobList``."""
        return f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        """Whether ``status`` is a subresource (and so is ignored on the main endpoint)."""
        return "status" in self.subresources

    @property
    def is_custom(self) -> bool:
        """Whether a CustomResourceDefinition defines this resource."""
        return self.crd_name is not None

    @property
    def storage_key(self) -> tuple[str, str]:
        """Objects are stored per group and plural: all versions share them."""
        return (self.group, self.plural)

    def matches_name(self, name: str) -> bool:
        """Whether ``name`` is this resource's plural, singular, kind or a short name."""
        lowered = name.lower()
        return lowered in {self.plural, self.singular, self.kind.lower(), *self.short_names}


def _t(
    api_version: str,
    plural: str,
    kind: str,
    *,
    cluster: bool = False,
    short: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    all_category: bool = False,
) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=not cluster,
        singular=kind.lower(),
        short_names=short,
        categories=("all",) if all_category else (),
        subresources=frozenset(sub),
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _t("v1", "namespaces", "Namespace", cluster=True, short=("ns",), sub=("status", "finalize")),
    _t("v1", "nodes", "Node", cluster=True, short=("no",), sub=("status",)),
    _t("v1", "secrets", "Secret"),
    _t("v1", "configmaps", "ConfigMap", short=("cm",)),
    _t("v1", "pods", "Pod", short=("po",), sub=("status", "log"), all_category=True),
    _t("v1", "services", "Service", short=("svc",), sub=("status",), all_category=True),
    _t("v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _t("v1", "endpoints", "Endpoints", short=("ep",)),
    _t("v1", "events", "Event", short=("ev",)),
    _t("v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), sub=("status",)),
    _t(
        "apps/v1",
        "deployments",
        "Deployment",
        short=("deploy",),
        sub=("status",),
        all_category=True,
    ),
    _t("apps/v1", "replicasets", "ReplicaSet", short=("rs",), sub=("status",), all_category=True),
    _t(
        "apps/v1", "statefulsets", "StatefulSet", short=("sts",), sub=("status",), all_category=True
    ),
    _t("apps/v1", "daemonsets", "DaemonSet", short=("ds",), sub=("status",), all_category=True),
    _t("batch/v1", "jobs", "Job", sub=("status",), all_category=True),
    _t("batch/v1", "cronjobs", "CronJob", short=("cj",), sub=("status",), all_category=True),
    _t("coordination.k8s.io/v1", "leases", "Lease"),
    _t("events.k8s.io/v1", "events", "Event", short=("ev",)),
    _t("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), sub=("status",)),
    _t("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _t("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _t("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", cluster=True),
    _t("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", cluster=True),
    _t(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        cluster=True,
        short=("crd", "crds"),
        sub=("status",),
    ),
)

CRD_TYPE = BUILTIN_TYPES[-1]
NAMESPACE_TYPE = BUILTIN_TYPES[0]


def types_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves: one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    plural = str(names.get("plural", ""))
    kind = str(names.get("kind", ""))
    result: list[ResourceType] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = set((version.get("subresources") or {}).keys())
        result.append(
            ResourceType(
                group=group,
                version=str(version.get("name", "")),
                plural=plural,
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=str(names.get("singular") or kind.lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset(subresources),
                crd_name=str((crd.get("metadata") or {}).get("name", f"{plural}.{group}")),
                printer_columns=printer_columns(version),
            )
        )
    return result


class Catalog:
    """The served resource types, indexed by group/version/plural; notifies on changes."""

    def __init__(self, types: tuple[ResourceType, ...] = BUILTIN_TYPES) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._listeners: list[Callable[[ResourceType, bool], None]] = []
        for rtype in types:
            self.add(rtype)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))

    def subscribe(self, listener: Callable[[ResourceType, bool], None]) -> None:
        """Call ``listener(rtype, added)`` on every addition (True) and removal (False)."""
        self._listeners.append(listener)

    def add(self, rtype: ResourceType) -> None:
        """Serve a resource type (replacing one with the same group/version/plural)."""
        self._types[(rtype.group, rtype.version, rtype.plural)] = rtype
        for listener in self._listeners:
            listener(rtype, True)

    def remove(self, rtype: ResourceType) -> None:
        """Stop serving a resource type."""
        if self._types.pop((rtype.group, rtype.version, rtype.plural), None) is not None:
            for listener in self._listeners:
                listener(rtype, False)

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at ``/apis/{group}/{version}/{plural}``, if any."""
        return self._types.get((group, version, plural))

    def by_crd(self, crd_name: str) -> list[ResourceType]:
        """The types registered from one CRD."""
        return [t for t in self._types.values() if t.crd_name == crd_name]

    def find(self, name: str, api_version: str | None = None) -> ResourceType:
        """Look a type up by plural, singular, kind or short name (optionally within a version).

        Raises :class:`LookupError` if nothing or several groups match.
        """
        candidates = [
            t
            for t in self._types.values()
            if t.matches_name(name) and (api_version is None or t.api_version == api_version)
        ]
        if not candidates:
            raise LookupError(f"no served resource named {name!r}")
        groups = {t.group for t in candidates}
        if len(groups) > 1:
            if "" in groups:  # the core group wins, as kubectl's "events" means v1 events
                candidates = [t for t in candidates if t.group == ""]
            else:
                raise LookupError(f"ambiguous resource name {name!r}: groups {sorted(groups)}")
        return candidates[0]
