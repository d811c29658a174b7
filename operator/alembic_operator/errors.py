"""The one error hierarchy of the operator process.

Adapters translate library exceptions (lightkube's and httpx's errors, connection failures)
into these; the core never raises them and kopf's own error types appear only in the handlers.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error the operator raises on purpose."""


class ApiError(OperatorError):
    """The Kubernetes API refused a request or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(ApiError):
    """404: the object does not exist."""


class AlreadyExists(ApiError):
    """409 AlreadyExists on create."""


class Conflict(ApiError):
    """409 Conflict: the resourceVersion the write was based on is stale."""


class Forbidden(ApiError):
    """403: RBAC denies the request (a deployment problem, not a transient one)."""


class ApiUnavailable(ApiError):
    """429, 5xx, timeouts, refused connections: worth retrying."""


class ConfigurationError(OperatorError):
    """No usable cluster credentials (in-cluster or kubeconfig)."""


class JobConflict(OperatorError):
    """A Job with the migration's deterministic name exists and belongs to someone else."""
