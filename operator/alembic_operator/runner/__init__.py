"""The migration runner: what the Job runs (``alembic-operator migrate``, or the embedded file).

Only this package imports Alembic and SQLAlchemy; the operator process never imports it.
Its modules are concatenated into one self-contained file by :mod:`alembic_operator.bundling`,
so they import each other only as ``from alembic_operator.x import name``.
"""
