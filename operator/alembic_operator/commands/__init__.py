"""The on-call commands: ``status``, ``plan``, ``approve``, ``reject``, ``retry``, ``logs``.

A separate process from the operator: it reads DatabaseMigrations with the synchronous
``kubernetes`` client (the user's kubeconfig and context, like kubectl) and writes only
annotations. ``tables`` formats (pure); ``clusters`` talks to the API and turns its failures into
:class:`clusters.CommandError` with an exit code scripts can rely on (docs/cli.md).
"""
