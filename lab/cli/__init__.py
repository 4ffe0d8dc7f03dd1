"""The ``optgen`` command line, a thin layer over the public API (``optgen``).

This package's own import is kept light: ``main`` imports the command line itself, so a Ctrl-C
while Python loads it ends in one line and exit code 130 instead of a traceback."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``optgen`` command (``argv``: the arguments, default the process's)."""
    try:
        from optgen.lab.cli.command_line import main as run_command_line
    except KeyboardInterrupt:
        print("optgen: interrupted while starting; nothing was started", file=sys.stderr)
        return 130
    return run_command_line(argv)
