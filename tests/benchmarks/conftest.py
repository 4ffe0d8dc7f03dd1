"""The benchmark helpers are scripts' modules, not a package: their folders go on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for folder in (ROOT / "benchmarks", ROOT / "benchmarks" / "asv"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
