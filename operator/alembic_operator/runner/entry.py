"""The embedded runner's entry point: the ``__main__`` of the zipapp runs :func:`run`.

A one-shot process: Alembic, SQLAlchemy and the runner's modules are imported without the cyclic
garbage collector and then frozen, so no later collection (nor the one at exit) walks that heap
again; the collector is on again for the migrations' own garbage (as ``alembic-operator migrate``
does, see :mod:`alembic_operator.cli`). Importing this module imports nothing but the standard
library and must not: the point is to run before the heavy imports.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import NoReturn


def run() -> NoReturn:
    """Import the runner with the collector off, freeze that heap, run, exit with its code."""
    gc.disable()
    try:
        runner = importlib.import_module("alembic_operator.runner.main")
    finally:
        gc.freeze()
        gc.enable()
    sys.exit(runner.main(sys.argv[1:]))
