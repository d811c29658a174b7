"""An apiserver-faithful Kubernetes API emulator for tests and ``alembic-operator sandbox``.

The entry point is :class:`alembic_operator.emulation.apiserver.ApiServer` (kmock-based, served
over plain HTTP). Its parts: :mod:`.registry` (API semantics, usable in-process), :mod:`.store`
(objects, resourceVersions, event log), :mod:`.watching`, :mod:`.handlers` and :mod:`.routing`
(HTTP), :mod:`.patching`, :mod:`.selectors`, :mod:`.strategies`, :mod:`.metadata`,
:mod:`.validation`, :mod:`.objects` (write rules), :mod:`.validators` (the custom-resource
validation hook over :mod:`.admission`), :mod:`.collector` (garbage collection), :mod:`.catalog`
(served resources), :mod:`.kubeconfig`, :mod:`.peering`. Nothing here imports Alembic or
SQLAlchemy.
"""
