"""Seed patterns computed ahead, on a thread of their own, while the device thread exposes a frame.

A generate plan shows seed 0, 1, 2 ... of one seed source in turn. Turning a seed into the gray
levels an SLM is sent (the encoder, the superpixels, the SLM's LUT and wavefront correction) takes a
good part of a frame; ``optgen run`` does it ahead on a preparer thread (``lab.run.capture_parts
.PatternPreparer``) and so does this: when seed ``i`` of a source is shown, seeds ``i + 1 .. i +
ahead`` are prepared, and showing one of them later takes the prepared gray levels.

The gray levels are those the device thread would compute (the same functions on the same inputs).
A prepared pattern is used only if the SLM still converts phase to gray the same way (the same LUT
table and wavefront correction by identity; the gamma sign, phase scaling and correction switch by
value), else it is computed again. What preparing raised is raised again where the pattern is shown.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from optgen.drivers.slm import same_conversion
from optgen.lab.run.patterns import SeedGrayLevels

__all__ = ["SeedsAhead"]

AHEAD = 2
PREPARE_TIMEOUT_S = 30.0     # the longest a shown seed waits for its preparation before it is computed here


class SeedsAhead:
    """Prepares the next ``ahead`` seeds of the source last shown, one thread, in order."""

    def __init__(self, ahead: int = AHEAD, name: str = "optgen-seeds-ahead"):
        self.ahead = int(ahead)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: dict[tuple, tuple[tuple, Future]] = {}     # (slm name, source, index) -> (state, future)
        self.taken = 0             # shown seeds that came prepared (for tests and benchmarks)
        self._converters: dict[tuple, SeedGrayLevels] = {}          # (id(slm), superpixel) -> converter
        self.closed = False

    def gray(self, slm, seeds, index: int, superpixel_px: int) -> np.ndarray:
        """The gray levels of seed ``index``: prepared ahead if it was (and still valid), else computed
        now; then the following seeds are set to be prepared."""
        key = (slm.name, id(seeds), int(index))
        state = slm.conversion_state()
        entry = self._pending.pop(key, None)
        gray = None
        if entry is not None and same_conversion(entry[0], state):
            try:
                gray = entry[1].result(PREPARE_TIMEOUT_S)
                self.taken += 1
            except FutureTimeout:
                entry[1].cancel()
            except Exception:            # noqa: BLE001 - computed again below: its own error is raised there
                gray = None
        if gray is None:
            gray = self._converter(slm, superpixel_px)(seeds.seed(index).phase)
        self._prepare_next(slm, seeds, int(index), superpixel_px, state)
        return gray

    def _prepare_next(self, slm, seeds, index: int, superpixel_px: int, state: tuple) -> None:
        wanted = {(slm.name, id(seeds), i) for i in range(index + 1, min(index + 1 + self.ahead, len(seeds)))}
        for key in [k for k in self._pending if k not in wanted]:     # another source, or skipped seeds
            self._pending.pop(key)[1].cancel()
        if self.closed:
            return
        for key in sorted(wanted - set(self._pending), key=lambda k: k[2]):
            convert = self._converter(slm, superpixel_px)
            self._pending[key] = (state, self._executor.submit(lambda i=key[2]: convert(seeds.seed(i).phase)))

    def _converter(self, slm, superpixel_px: int) -> SeedGrayLevels:
        key = (id(slm), int(superpixel_px))
        if key not in self._converters:
            self._converters[key] = SeedGrayLevels(slm, superpixel_px)
        return self._converters[key]

    def forget(self) -> None:
        """Drop every prepared seed (one being computed finishes and is dropped)."""
        for _, future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def close(self) -> None:
        """Drop what is prepared and end the thread (a seed being computed finishes first)."""
        self.closed = True
        self.forget()
        self._executor.shutdown(wait=True, cancel_futures=True)
