"""alembic-operator: Alembic migrations as a Kubernetes resource, run by a kopf operator."""

__version__ = "0.1.0"
