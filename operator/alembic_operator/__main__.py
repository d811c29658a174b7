"""``python -m alembic_operator`` is the ``alembic-operator`` command."""

from alembic_operator.cli import main

raise SystemExit(main())
