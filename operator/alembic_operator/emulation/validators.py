"""The custom-resource validation hook: which validator checks a custom object, and its 422.

For every create, update, patch and ``/status`` write of a custom resource the registry calls a
validator ``(new_obj, old_obj | None) -> admitted_obj`` that may prune and default and raises to
refuse. By default validators come from ``alembic_operator.emulation.admission.validator_for(crd,
version)``, imported lazily (the emulator works without that module: then nothing is validated);
tests inject their own through :attr:`ValidationHook.overrides` or another factory. A refusal is
any exception with ``message`` and ``causes`` (like ``admission.SchemaViolation``): it becomes a
422 Invalid Status with that message and ``details.causes`` (or its own ``code``/``reason``).
A CRD whose schema the factory cannot compile (``ValueError``) is itself refused with a 422.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from alembic_operator.emulation import errors
from alembic_operator.emulation.catalog import CRD_TYPE, ResourceType
from alembic_operator.emulation.jsontree import clone

Validator = Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]]
ValidatorFactory = Callable[[dict[str, Any], str], Validator | None]


def admission_validator_factory(crd: dict[str, Any], version: str) -> Validator | None:
    """``alembic_operator.emulation.admission.validator_for``, imported lazily (None if absent)."""
    try:
        module = importlib.import_module("alembic_operator.emulation.admission")
    except ImportError:
        return None
    factory: ValidatorFactory = module.validator_for
    return factory(crd, version)


def violation_error(rtype: ResourceType, name: str, exc: Exception) -> errors.ApiError:
    """The API error for a validator's refusal (a duck-typed ``SchemaViolation``)."""
    message = str(getattr(exc, "message", "") or exc)
    code = int(getattr(exc, "code", 422))
    if code != 422:
        return errors.ApiError(code, str(getattr(exc, "reason", "BadRequest")), message, {})
    causes = list(getattr(exc, "causes", []))
    return errors.invalid_raw(rtype.kind, rtype.group, name, message, causes)


class ValidationHook:
    """Finds, caches and runs the validators of custom resources."""

    def __init__(self, factory: ValidatorFactory | None = admission_validator_factory) -> None:
        self.factory = factory
        self.overrides: dict[tuple[str, str, str], Validator] = {}  # (group, version, plural)
        self._cache: dict[tuple[str, str, str], Validator | None] = {}

    def validator(self, rtype: ResourceType, crd: dict[str, Any] | None) -> Validator | None:
        """The validator of a resource type (``crd`` is its stored CRD), if any."""
        override = self.overrides.get((rtype.group, rtype.version, rtype.plural))
        if override is not None or not rtype.is_custom or self.factory is None or crd is None:
            return override
        key = (crd["metadata"]["uid"], crd["metadata"]["resourceVersion"], rtype.version)
        if key not in self._cache:
            self._cache[key] = self.factory(clone(crd), rtype.version)
        return self._cache[key]

    def admit(
        self,
        rtype: ResourceType,
        crd: dict[str, Any] | None,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> None:
        """Validate ``obj`` in place: take the validator's pruned and defaulted result."""
        validator = self.validator(rtype, crd)
        if validator is None:
            return
        try:
            result = validator(clone(obj), clone(old) if old is not None else None)
        except errors.ApiError:
            raise
        except Exception as exc:
            if getattr(exc, "causes", None) is None:
                raise  # a bug in the validator: let it surface as a 500
            raise violation_error(rtype, obj["metadata"].get("name", ""), exc) from exc
        meta = obj["metadata"]  # keep the system metadata and the dict's identity
        merged = {**(result.get("metadata") or {}), **meta}
        api_version, kind = obj["apiVersion"], obj["kind"]
        obj.clear()
        obj.update(result, apiVersion=api_version, kind=kind)
        meta.clear()
        meta.update(merged)
        obj["metadata"] = meta

    def check_crd(self, crd: dict[str, Any]) -> None:
        """Refuse a CRD whose schemas the factory cannot compile (e.g. not structural)."""
        if self.factory is None:
            return
        for i, version in enumerate((crd.get("spec") or {}).get("versions") or []):
            try:
                self.factory(clone(crd), str(version.get("name")))
            except (ValueError, KeyError, TypeError) as exc:
                field = f"spec.versions[{i}].schema.openAPIV3Schema"
                error = errors.FieldError(field, "Invalid value", str(exc), "...")
                raise errors.invalid(
                    CRD_TYPE.kind, CRD_TYPE.group, crd["metadata"]["name"], [error]
                ) from exc
