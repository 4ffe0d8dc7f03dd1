"""An SLM as an ophyd-async device: the pattern it shows (by id), its LUT and calibration ids.

Setting ``pattern`` resolves the id (:mod:`optgen.lab.bluesky.patterns`), uploads it and waits the
SLM's latency and settle time on the bench's clock (the twin's virtual clock, or the wall clock),
so a ``set`` completes when the pattern is on the liquid crystal, as a motor's when it has arrived.
"""

from __future__ import annotations

import json

from ophyd_async.core import StandardReadable, StandardReadableFormat, soft_signal_rw
from ophyd_async.core import soft_signal_r_and_setter as soft_signal_r

from optgen.lab.bluesky.device_thread import DeviceThread
from optgen.lab.bluesky.patterns import PatternLibrary

__all__ = ["OptgenSLM"]


class OptgenSLM(StandardReadable):
    """One SLM of an open bench (``role``: ``"encoding_slm"`` or ``"decoding_slm"``).

    - ``pattern``: the id of the pattern shown (``""`` until a plan shows one);
    - ``lut``: the id of the phase-gray LUT in force;
    - ``calibrations``: the ids of this SLM's calibrations in force (JSON, ``{name: id}``);
    - ``settle_s``: latency plus settle time waited after each upload (configuration).
    """

    def __init__(self, bench, role: str, thread: DeviceThread, library: PatternLibrary, name: str = ""):
        self._bench, self.role, self._thread, self._library = bench, role, thread, library
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.pattern = soft_signal_rw(str, "", setter=self._show)
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.lut, _ = soft_signal_r(str, getter=self._lut_id)
            self.calibrations, _ = soft_signal_r(str, getter=self._calibration_ids)
            self.settle_s, _ = soft_signal_r(float, self.driver.timing.wait_s, units="s")
        super().__init__(name=name)

    @property
    def driver(self):
        """The SLM driver (``optgen.drivers.slm.PhaseSLM``)."""
        return getattr(self._bench.devices, self.role)

    async def _show(self, pattern_id: str) -> str:
        return await self._thread.call(self._show_now, pattern_id)

    def _show_now(self, pattern_id: str) -> str:
        """Device thread: resolve, upload, wait latency + settle; returns the canonical id."""
        slm, devices = self.driver, self._bench.devices
        upload = self._library.resolve(slm, pattern_id)
        slm.set_phase(upload.data)
        devices.clock.sleep(slm.timing.wait_s)
        return upload.pattern_id

    def _lut_id(self) -> str:
        lut = self._bench.devices.luts.get(self.driver.name)
        return lut.id if lut is not None else "linear"

    def _calibration_ids(self) -> str:
        ids = self._bench.devices.calibration_ids()
        return json.dumps({k: v for k, v in ids.items() if k.startswith(self.driver.name + ".")}, sort_keys=True)
