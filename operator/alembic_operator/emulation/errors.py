"""API errors of the emulated apiserver, rendered as ``metav1.Status`` bodies.

Every failure the emulator reports goes through :class:`ApiError`, built by the helpers below so
that codes, reasons, messages and ``details`` look like the real apiserver's (the strings follow
``k8s.io/apimachinery/pkg/api/errors``). :class:`FieldError` mirrors ``field.Error``: a list of
them becomes one 422 ``Invalid`` Status with ``details.causes``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

_CAUSE_REASONS = {
    "Invalid value": "FieldValueInvalid",
    "Required value": "FieldValueRequired",
    "Forbidden": "FieldValueForbidden",
    "Too long": "FieldValueTooLong",
    "Unsupported value": "FieldValueNotSupported",
    "Duplicate value": "FieldValueDuplicate",
}

_NO_VALUE = object()


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One validation failure on one field (``field.Error``): ``spec.x: Invalid value: 1: why``."""

    field: str
    type: str  # one of the keys of _CAUSE_REASONS
    detail: str = ""
    value: Any = _NO_VALUE

    @property
    def message(self) -> str:
        """The message without the field path, as in ``details.causes[].message``."""
        parts = [self.type]
        if self.value is not _NO_VALUE:
            parts.append(
                json.dumps(self.value) if isinstance(self.value, str) else repr(self.value)
            )
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def cause(self) -> dict[str, str]:
        """The ``StatusCause`` of this error."""
        return {
            "reason": _CAUSE_REASONS.get(self.type, "FieldValueInvalid"),
            "message": self.message,
            "field": self.field,
        }


class ApiError(Exception):
    """An error answered to the client as a ``Status`` with an HTTP code."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        """The ``metav1.Status`` body."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(name: str | None, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    details.update(extra)
    return details


def qualified(plural: str, group: str) -> str:
    """``jobs.batch``, ``pods``: how the apiserver names a resource in its messages."""
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    """404 NotFound for one object."""
    return ApiError(
        404,
        "NotFound",
        f'{qualified(plural, group)} "{name}" not found',
        _details(name, group, plural),
    )


def resource_not_found(path: str) -> ApiError:
    """404 NotFound for a URL that names no served resource."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(plural: str, group: str, name: str) -> ApiError:
    """409 AlreadyExists on a create."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(plural, group)} "{name}" already exists',
        _details(name, group, plural),
    )


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    """409 Conflict: a failed precondition or a stale resourceVersion."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
        _details(name, group, plural),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid built from field errors, with the apiserver's message format."""
    group_kind = f"{kind}.{group}" if group else kind
    listed = (
        "; ".join(str(e) for e in errors)
        if len(errors) == 1
        else f"[{', '.join(map(str, errors))}]"
    )
    return ApiError(
        422,
        "Invalid",
        f'{group_kind} "{name}" is invalid: {listed}',
        _details(name, group, kind, causes=[e.cause() for e in errors]),
    )


def invalid_raw(
    kind: str, group: str, name: str, message: str, causes: list[dict[str, Any]]
) -> ApiError:
    """422 Invalid with a message and causes given verbatim (from a schema validator)."""
    return ApiError(422, "Invalid", message, _details(name, group, kind, causes=list(causes)))


def patch_failed(message: str) -> ApiError:
    """422 for a JSON patch that does not apply (a failed ``test`` op, a missing path)."""
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]},
    )


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message, {})


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    """415 UnsupportedMediaType, listing the accepted content types."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
        {},
    )


def method_not_allowed(verb: str, plural: str, group: str) -> ApiError:
    """405 MethodNotAllowed."""
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({verb} "
        f"{qualified(plural, group)})",
        {},
    )


def forbidden(plural: str, group: str, name: str, why: str) -> ApiError:
    """403 Forbidden (used for writes into a terminating namespace)."""
    return ApiError(
        403,
        "Forbidden",
        f'{qualified(plural, group)} "{name}" is forbidden: {why}',
        _details(name, group, plural),
    )


def gone(requested: int, oldest: int) -> ApiError:
    """410 Expired: a watch from a resourceVersion older than the retained event log."""
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})", {})


def internal(message: str) -> ApiError:
    """500 InternalError."""
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {})
