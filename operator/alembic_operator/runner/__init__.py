"""The migration runner: what the Job runs (``alembic-operator migrate``, or the embedded file).

Only this package imports Alembic and SQLAlchemy; the operator process never imports it.
:mod:`alembic_operator.bundling` packs its modules, unchanged, with the few package modules they
import into one zipapp; whatever they import of ours must be listed there (a test checks it).
"""
