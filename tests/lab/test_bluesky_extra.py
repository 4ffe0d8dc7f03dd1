"""optgen without the extra 'bluesky': importing optgen works; optgen.bluesky says what to install."""

from __future__ import annotations

import subprocess
import sys

BLOCK = "import sys; sys.modules['bluesky'] = None; sys.modules['ophyd_async'] = None\n"


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_optgen_imports_without_the_extra_and_optgen_bluesky_names_it():
    done = run(BLOCK + "import optgen\n"
                       "optgen.load_bench(); optgen.open_bench; optgen.OptgenError\n"
                       "try:\n"
                       "    import optgen.bluesky\n"
                       "except optgen.OptgenError as exc:\n"
                       "    assert isinstance(exc, ImportError)\n"
                       "    print('refused:', exc)\n")
    assert done.returncode == 0, done.stderr
    assert "refused: optgen.bluesky needs bluesky and ophyd-async" in done.stdout
    assert "pip install -e '.[bluesky]'" in done.stdout


def test_importing_optgen_loads_no_bluesky():
    done = run("import sys, optgen\noptgen.load_bench(); optgen.Bench\n"
               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bluesky', 'ophyd_async')))\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
