"""The ``optgen`` command line, a thin layer over the public API (``optgen``).

This package's own import is kept light: ``main`` imports the command line itself, so a Ctrl-C
while Python loads it ends in one line and exit code 130 instead of a traceback."""

from __future__ import annotations

import signal
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``optgen`` command (``argv``: the arguments, default the process's).

    While the command line loads, a Ctrl-C is only recorded (a KeyboardInterrupt raised inside
    numpy's import comes out as an ImportError with numpy's install advice) and acted on once the
    import is done; the command then installs its own handlers.
    """
    requested: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: requested.append(signum))
    except ValueError:            # not the main thread (an embedding program): leave its handler alone
        previous = None
    try:
        # the command line, and what every command loads before its own handlers are in place
        import numpy  # noqa: F401

        import optgen.drivers.stop  # noqa: F401
        from optgen.lab.cli.command_line import main as run_command_line
    except KeyboardInterrupt:
        requested.append(signal.SIGINT)
    finally:
        if previous is not None:
            # Python's own handler where the process started with Ctrl-C ignored (a background job of a
            # script): the command's handlers take it as a stop, so none may be lost before they are in
            signal.signal(signal.SIGINT, previous if callable(previous) else signal.default_int_handler)
    if requested:
        print("optgen: interrupted while starting; nothing was started", file=sys.stderr)
        return 130
    return run_command_line(argv)
