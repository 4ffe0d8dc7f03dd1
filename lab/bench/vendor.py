"""The vendor's wavefront correction files a bench file names, as the SLM drivers add them.

The drivers load them through slmsuite (``PhaseSLM.load_vendor_correction``); the prediction of a
frame and the training optics need the same map without opening a device: (levels - 1 - gray) x
2 pi / levels radians (slmsuite's reading of a correction image, its sign convention), the SLM's
shape. A test compares it with what a driver loads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optgen.drivers.errors import PhaseInputError
from optgen.lab.bench.config import BenchConfig

__all__ = ["vendor_correction_rad"]


def vendor_correction_rad(config: BenchConfig, key: str) -> np.ndarray | None:
    """The correction (radians, the SLM's shape, float32) the driver of SLM ``key`` adds to every phase
    from the bench file's ``[key] wavefront_correction``; None where it names none. PhaseInputError
    naming the file for one that is not an 8-bit grayscale image of the panel's size."""
    from PIL import Image, UnidentifiedImageError

    slm = config.encoding_slm if key == "encoding_slm" else config.decoding_slm
    if not slm.wavefront_correction:
        return None
    path = Path(slm.wavefront_correction)
    if not path.is_absolute() and Path(config.source).is_file():
        path = Path(config.source).parent / path
    try:
        with Image.open(path) as image:
            mode, data = image.mode, np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise PhaseInputError(key, f"wavefront correction {path}: cannot read it as an image ({exc})") from None
    if mode not in ("L", "P") or data.dtype != np.uint8 or data.shape != tuple(slm.shape):
        raise PhaseInputError(key, f"wavefront correction {path}: {mode} image of {data.shape[::-1]} pixels; expected "
                                   f"8-bit grayscale of the panel's {slm.shape[1]} x {slm.shape[0]}")
    levels = 2 ** int(slm.bitdepth)
    return ((levels - 1 - data.astype(np.float64)) * (2 * np.pi / levels)).astype(np.float32)
