"""The vendor's wavefront correction files a bench file names, as the SLM drivers add them.

The drivers load them through slmsuite (``PhaseSLM.load_vendor_correction``); the prediction of a
frame and the training optics need the same map without opening a device
(:mod:`optgen.drivers.common.vendor_correction`). A test compares it with what a driver loads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optgen.drivers.common.vendor_correction import read_vendor_image, vendor_phase_rad
from optgen.lab.bench.config import BenchConfig

__all__ = ["vendor_correction_rad"]


def vendor_correction_rad(config: BenchConfig, key: str) -> np.ndarray | None:
    """The correction (radians, the SLM's shape, float32) the driver of SLM ``key`` adds to every phase
    from the bench file's ``[key] wavefront_correction`` (beside the bench file); None where it names
    none. PhaseInputError naming the file as the driver's."""
    slm = config.encoding_slm if key == "encoding_slm" else config.decoding_slm
    if not slm.wavefront_correction:
        return None
    path = Path(slm.wavefront_correction)
    if not path.is_absolute() and Path(config.source).is_file():
        path = Path(config.source).parent / path
    return vendor_phase_rad(read_vendor_image(path, tuple(slm.shape), key), slm.bitdepth)
