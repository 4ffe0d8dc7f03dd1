"""Calibrations of the bench: SLM phase responses (LUTs), alignment, camera; and their store."""

from optgen.calibration.lut import (
    LUTError,
    PhaseResponse,
    apply_response,
    load_response,
)

__all__ = ["LUTError", "PhaseResponse", "apply_response", "load_response"]
