"""Phase SLMs: slmsuite's ``SLM`` with optgen's input validation, identity and timing.

``set_phase`` checks the pattern (shape, dtype, NaN/inf) before anything reaches the
device, then lets slmsuite apply the phase->gray LUT (``set_gamma``) and call the driver's
``_set_phase_hw(display)``. slmsuite conventions kept: ``resolution`` is (width, height),
``shape`` is (height, width); a higher gray level means less phase delay.
"""

from __future__ import annotations

import time
from abc import abstractmethod

import cv2
import numpy as np

from optgen.drivers._slmsuite import SlmsuiteSLM
from optgen.drivers.errors import PhaseInputError
from optgen.drivers.identity import DeviceIdentity, SLMTiming
from optgen.drivers.io_log import log_upload, log_upload_failed, slm_debug

__all__ = ["PhaseSLM", "check_phase", "same_conversion"]


def check_phase(device: str, phase, shape: tuple[int, int], int_dtype: np.dtype,
                bitresolution: int) -> np.ndarray:
    """Return ``phase`` as an array if an SLM of ``shape`` can show it, else raise PhaseInputError."""
    if not isinstance(phase, np.ndarray):
        raise PhaseInputError(device, f"phase must be a numpy array, got {type(phase).__name__}")
    if phase.ndim != 2 or phase.shape != tuple(shape):
        raise PhaseInputError(device, f"phase has shape {phase.shape}; expected {tuple(shape)} (height, width)")
    if np.issubdtype(phase.dtype, np.integer):
        if phase.dtype != int_dtype:
            raise PhaseInputError(
                device, f"integer gray levels must be {np.dtype(int_dtype).name}, got {phase.dtype.name}"
            )
        if phase.size and int(phase.max()) >= bitresolution:
            raise PhaseInputError(device, f"gray level {int(phase.max())} exceeds {bitresolution - 1}")
        return phase
    if phase.dtype not in (np.float32, np.float64):
        raise PhaseInputError(device, f"phase dtype {phase.dtype.name}: expected float32/float64 radians "
                                      f"or {np.dtype(int_dtype).name} gray levels")
    if not np.isfinite(phase).all():
        bad = int(np.size(phase) - np.count_nonzero(np.isfinite(phase)))
        raise PhaseInputError(device, f"phase contains {bad} NaN or infinite values")
    return phase


def same_conversion(a: tuple, b: tuple) -> bool:
    """Whether two :meth:`PhaseSLM.conversion_state` tuples are the same conversion: arrays, tables
    and apertures by identity (a new LUT or correction is a new object), numbers by value."""
    return len(a) == len(b) and all(x is y or (isinstance(x, (int, float)) and isinstance(y, (int, float)) and x == y)
                                    for x, y in zip(a, b, strict=True))


class PhaseSLM(SlmsuiteSLM):
    """Base class of optgen's SLM drivers (encoding and decoding SLM alike).

    A wavefront correction (radians, the SLM's shape) is added to every phase it shows, as
    slmsuite's source phase: the vendor's correction file (:meth:`load_vendor_correction`) plus
    what optgen measured (:meth:`set_wavefront_correction`). Gray levels are shown as they are.
    """

    def __init__(self, resolution: tuple[int, int], *, timing: SLMTiming, bitdepth: int = 8,
                 pitch_um: float = 8.0, wav_um: float = 0.52, name: str = "slm"):
        self.timing = timing
        self.vendor_correction_rad: np.ndarray | None = None
        self.measured_correction_rad: np.ndarray | None = None
        super().__init__(resolution, bitdepth=bitdepth, name=name, wav_um=wav_um,
                         pitch_um=(pitch_um, pitch_um), settle_time_s=timing.wait_s, gpu=False)

    def load_vendor_correction(self, path) -> np.ndarray:
        """Read the vendor's wavefront correction file (an 8-bit grayscale BMP or PNG of the panel's
        resolution, gray levels to add to every hologram's, as Holoeye, Meadowlark and Hamamatsu ship
        them; read by slmsuite) and add it to every phase from now on. PhaseInputError naming the
        file and what was expected, checked before slmsuite reads it."""
        from optgen.drivers.common.vendor_correction import read_vendor_image

        read_vendor_image(path, self.shape, self.name)          # refused here, before slmsuite reads it
        self.source.pop("phase", None)
        loaded = self.load_vendor_phase_correction(str(path))   # slmsuite's reading: its sign convention
        self.vendor_correction_rad = np.array(loaded, dtype=self.phase.dtype)
        self._apply_corrections()
        return self.vendor_correction_rad

    def set_wavefront_correction(self, correction_rad: np.ndarray | None) -> None:
        """Add ``correction_rad`` (radians, the SLM's shape; None: none) to every phase from now on,
        on top of the vendor's correction."""
        if correction_rad is not None:
            correction_rad = check_phase(self.name, np.asarray(correction_rad, dtype=np.float32), self.shape,
                                         self.dtype, self.bitresolution).astype(self.phase.dtype)
        self.measured_correction_rad = correction_rad
        self._apply_corrections()

    def _apply_corrections(self) -> None:
        parts = [c for c in (self.vendor_correction_rad, self.measured_correction_rad) if c is not None]
        if parts:
            self.source["phase"] = parts[0] + parts[1] if len(parts) == 2 else parts[0].copy()
        else:
            self.source.pop("phase", None)

    @property
    @abstractmethod
    def identity(self) -> DeviceIdentity:
        """Vendor, model, serial and firmware."""

    def set_phase(self, phase, phase_correct=None, settle=None, execute=None, block=None, **kwargs):
        """Validate ``phase`` (radians, or gray levels of the SLM's dtype), then show it.

        ``None`` shows zero phase. Returns the gray levels sent to the device. Each upload is
        logged at DEBUG (:mod:`optgen.drivers.io_log`), a failed one with its error.
        """
        if not slm_debug():
            return self._set_phase(phase, phase_correct, settle, execute, block, **kwargs)
        t0 = time.perf_counter()
        try:
            gray = self._set_phase(phase, phase_correct, settle, execute, block, **kwargs)
        except Exception as exc:
            log_upload_failed(self.name, exc, time.perf_counter() - t0)
            raise
        log_upload(self.name, gray, time.perf_counter() - t0)
        return gray

    def _set_phase(self, phase, phase_correct, settle, execute, block, **kwargs):
        if phase is not None:
            phase = check_phase(self.name, phase, self.shape, self.dtype, self.bitresolution)
            plain = execute is None and block is None and not kwargs and self.viewer is None
            if plain and np.issubdtype(phase.dtype, np.integer) and not (self.settle if settle is None else settle):
                return self._show_gray_levels(phase)
        return super().set_phase(phase, phase_correct=phase_correct, settle=settle,
                                 execute=execute, block=block, **kwargs)

    def phase_to_gray(self, phase: np.ndarray) -> np.ndarray:
        """The gray levels ``set_phase(phase)`` would send (LUT and source correction applied),
        as a new array; nothing is shown. Safe to call from another thread while the SLM shows
        something else, so a run can prepare its next patterns ahead."""
        phase = check_phase(self.name, phase, self.shape, self.dtype, self.bitresolution)
        if np.issubdtype(phase.dtype, np.integer):
            return phase.copy()
        return self._converted(phase, (slice(None), slice(None)))

    def phase_to_gray_window(self, block: np.ndarray, top_left: tuple[int, int]) -> np.ndarray:
        """The gray levels ``phase_to_gray`` gives the pixels of ``block`` (radians) in a pattern
        that holds it with its first pixel at ``top_left`` (row, column), as a new array of the
        block's shape; nothing is shown. The conversion goes pixel by pixel (the LUT and the
        wavefront correction at each pixel), so patterns that differ only in a window (a seed
        on the encoding SLM: 5 % of a 1080 x 1920 panel) need only the window converted. Where
        slmsuite's conversion depends on the whole pattern (a phase scaling other than 1 with no
        LUT) the window is converted inside a pattern of zero phase."""
        if not isinstance(block, np.ndarray) or block.ndim != 2:
            raise PhaseInputError(self.name, "a phase window must be a 2-D numpy array")
        (r0, c0), (h, w), (rows, cols) = map(int, top_left), block.shape, self.shape
        if r0 < 0 or c0 < 0 or r0 + h > rows or c0 + w > cols:
            raise PhaseInputError(self.name, f"a {h}x{w} phase window at row {r0}, column {c0} does not fit on "
                                             f"the {rows}x{cols} panel")
        block = check_phase(self.name, block, (h, w), self.dtype, self.bitresolution)
        if np.issubdtype(block.dtype, np.integer):
            return block.copy()
        window = (slice(r0, r0 + h), slice(c0, c0 + w))
        if self.lut is None and self.phase_scaling != 1:
            full = np.zeros(self.shape, dtype=self.phase.dtype)
            full[window] = block
            return self._converted(full, (slice(None), slice(None)))[window].copy()
        return self._converted(block, window)

    def _converted(self, phase: np.ndarray, window: tuple[slice, slice]) -> np.ndarray:
        """Gray levels of a checked float ``phase`` that covers ``window`` of the panel: the
        wavefront correction there added (slmsuite's effective source phase, ``_get_source_phase``:
        the source phase masked by the aperture), then slmsuite's conversion. A new array."""
        work = np.array(phase, dtype=self.phase.dtype, copy=True)
        if self.phase_correct and "phase" in self.source:
            source = np.asarray(self.source["phase"])[window]
            work += source * np.asarray(self.aperture_mask)[window] if self.aperture.crops else source
        return self._phase2gray(work, out=np.empty(work.shape, dtype=self.dtype))

    def conversion_state(self) -> tuple:
        """What ``phase_to_gray`` depends on besides the phase (compare with :func:`same_conversion`):
        the LUT, gamma sign, phase scaling, source phase, correction switch and aperture."""
        return (self.lut, self._gamma_sign, self.phase_scaling, self.source.get("phase"), self.phase_correct,
                self.aperture)

    def _show_gray_levels(self, gray: np.ndarray) -> np.ndarray:
        """slmsuite's integer-data path of ``set_phase``, with the realized phase looked up in a
        table of 2**bitdepth entries instead of float64 arithmetic over the frame (20 ms less
        per 1920 x 1080 upload: calibrations upload hundreds of gray-level patterns)."""
        self.display = self._gray2display(gray)
        table = self.gray_phase_table()
        if gray.dtype == np.uint8 and table.size == 256 and self.phase.shape == gray.shape:
            looked_up = cv2.LUT(gray, table, dst=self.phase)   # the same look-up, 5x faster than np.take
            if looked_up is not self.phase:                     # (OpenCV made a new array: another dtype)
                self.phase[...] = looked_up
        else:
            np.take(table, gray, out=self.phase)
        self._set_phase_hw(self.display)
        return self.display

    def gray_phase_table(self) -> np.ndarray:
        """Phase (radians in [0, 2 pi), float32) that slmsuite records for each gray level."""
        levels = np.arange(self.bitresolution)
        if self.gamma is None:
            realized = levels * (self._gamma_sign * 2 * np.pi / self.phase_scaling / self.bitresolution)
        else:
            realized = self._gamma_sign * 2 * np.pi * np.asarray(self.gamma)[levels]
        return np.mod(realized, 2 * np.pi).astype(self.phase.dtype)

    def describe(self) -> dict:
        """Settings snapshot for run metadata."""
        return {
            "name": self.name,
            "identity": self.identity.as_dict(),
            "resolution": list(map(int, (self.shape[1], self.shape[0]))),
            "bitdepth": int(self.bitdepth),
            "pitch_um": float(self.pitch_um[0]),
            "wavelength_um": float(self.wav_um),
            "timing": self.timing.as_dict(),
            "lut": "measured" if self.lut is not None else "linear",
            "wavefront_correction": {"vendor": self.vendor_correction_rad is not None,
                                     "measured": self.measured_correction_rad is not None},
        }
