"""``alembic-operator sandbox``: the whole product working on one machine, without a cluster.

The apiserver emulator and the local kubelet from :mod:`alembic_operator.emulation`, the real
operator as a process, the example migrations against SQLite (or a given database), and a
timeline of what happens. Needs the ``sandbox`` extra (kmock, cel-python).
"""
