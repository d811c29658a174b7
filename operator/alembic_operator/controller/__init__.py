"""The operator process: kopf handlers, the Kubernetes adapter, observe/execute, reconciling.

Never imports Alembic or SQLAlchemy (import-linter enforces it): migrations run only in Jobs.
"""
