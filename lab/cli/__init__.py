"""The ``optgen`` command line, a thin layer over the public API (``optgen``)."""

from optgen.lab.cli.main import main

__all__ = ["main"]
