"""optgen's key figures for airspeed velocity (asv), per commit (docs/decisions/0026-regression-tracking.md).

The workloads are benchmarks/_figures.py's, the same that benchmarks/foundation.py prints. This
suite runs against whichever optgen the environment holds: a name that commit lacks makes the
benchmarks needing it skip (NotImplementedError in setup, asv's way), not fail.
"""
