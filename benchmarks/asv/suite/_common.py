"""What the suite's modules share: the project's benchmarks/ folder on sys.path (for _figures),
names a commit may lack turned into asv's skip, and the sizes the figures are measured at."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2]          # benchmarks/ of the checkout running asv
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


def need(module: str, *names: str):
    """``module`` (or its ``names``), or NotImplementedError (asv skips the benchmark) where this
    commit, or this environment, lacks it."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise NotImplementedError(f"{module} cannot be imported here: {exc}") from exc
    missing = [name for name in names if not hasattr(mod, name)]
    if missing:
        raise NotImplementedError(f"{module} has no {', '.join(missing)} in this commit")
    return [getattr(mod, name) for name in names] if names else mod


def figures():
    """benchmarks/_figures.py, its optgen imports checked: NotImplementedError where this commit
    lacks one of the names it uses."""
    return need("_figures")


def skip_missing(call, *args, **kwargs):
    """``call(*args, **kwargs)`` with an ImportError (a name this commit lacks) made asv's skip."""
    try:
        return call(*args, **kwargs)
    except ImportError as exc:
        raise NotImplementedError(f"this commit lacks a name the figure needs: {exc}") from exc
