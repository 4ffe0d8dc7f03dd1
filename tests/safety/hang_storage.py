"""`optgen ARGS` with a disk that hangs on the Nth frame written (a stalled network share): the
write never returns. Used by test_hung_storage as ``python -m tests.safety.hang_storage N ARGS``."""

from __future__ import annotations

import sys
import threading

from optgen.lab.cli import main
from optgen.lab.runfile import storage


def hang_from(n: int) -> None:
    real = storage.RunWriter.write
    calls = {"n": 0}
    never = threading.Event()

    def write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= n:
            with self._lock:            # as a write stuck in the kernel would: holding the file's lock
                never.wait()
        return real(self, *args, **kwargs)

    storage.RunWriter.write = write


if __name__ == "__main__":
    hang_from(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
