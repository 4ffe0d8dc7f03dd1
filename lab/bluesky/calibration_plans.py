"""The bench's calibrations as bluesky plans: the LUT sweep and the alignment
(``optgen.bluesky.calibration_plans``).

    lut_sweep(devices, slm="encoding_slm", levels=32)   one SLM's phase response (``optgen calibrate lut``'s
                                                        measurement of that SLM, the other SLM as the lens)
    alignment(devices, grid=3)                          the sensor's registration in the output plane, then
                                                        SLM2's shift and rotation in SLM1's beam

Each is one run. The measurement is optgen's own (``calibration.response.measure_response``,
``calibration.alignment``), unchanged, driven pattern by pattern through the bluesky devices
(:mod:`optgen.lab.bluesky.calibration_bridge`): stream ``primary`` holds one event per frame - the
camera frame (StreamDatum into HDF5), both SLMs' pattern ids (``array:sha=...``, with ``ref``,
``test``, ``period_px`` for the gray gratings and ``gray`` for uniform patterns), the laser's
read-backs (``emission`` False for the dark frames) - and stream ``fit`` one event of what the
calibration fitted from those frames. The plan returns the measurement
(``calibration.response.ResponseMeasurement``; ``(SensorRegistration, DecoderPlacement)``): ``yield from``
it in a larger plan, or ``RunEngine(call_returns_result=True)`` and ``RE(plan).plan_result``.

The result is recorded, not put in force: the plan neither loads the LUT into the SLM nor writes
the calibration store. To keep it as ``optgen calibrate`` does::

    from optgen.calibration.procedure import lut_record, bench_alignment_record
    from optgen.calibration.store import CalibrationStore
    CalibrationStore(folder).save(lut_record(bench.devices, "encoding_slm", m))

The laser is staged for the whole run but emits only when the calibration lights it (its
``session.light()``), and is off (verified) and unstaged when the plan ends, however.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import Msg

from optgen.drivers.errors import OptgenError
from optgen.lab.bluesky.calibration_bridge import armed, drive
from optgen.lab.bluesky.metadata import bench_metadata

__all__ = ["alignment", "lut_sweep"]

Plan = Generator[Msg, Any, Any]

ROLES = ("encoding_slm", "decoding_slm")


class FitResult:
    """A readable of computed values (the calibration's fit), read once into stream ``fit``."""

    def __init__(self, name: str, values: dict[str, Any]):
        self.name, self.parent = name, None
        self._values = {f"{name}-{key}": value for key, value in values.items()}
        self._t = time.time()

    def read(self) -> dict:
        return {key: {"value": _plain(v), "timestamp": self._t} for key, v in self._values.items()}

    def describe(self) -> dict:
        out = {}
        for key, value in self._values.items():
            array = np.asarray(value)
            if array.ndim:
                out[key] = {"source": "calibration fit", "dtype": "array", "shape": list(array.shape),
                            "dtype_numpy": array.dtype.str}
            elif isinstance(value, bool):
                out[key] = {"source": "calibration fit", "dtype": "boolean", "shape": []}
            else:
                out[key] = {"source": "calibration fit", "dtype": "number", "shape": []}
        return out


def _plain(value):
    array = np.asarray(value)
    return array.tolist() if array.ndim else value


def _session(plan_bench, power_w: float):
    from optgen.calibration.session import CalibrationSession

    return CalibrationSession(plan_bench, power_w=power_w, pipelined=False)


def lut_sweep(devices, slm: str = "encoding_slm", *, levels: int = 32, period_px: int = 16, frames: int = 1,
              power_w: float | None = None, md: dict | None = None) -> Plan:
    """Measure ``slm``'s phase-vs-gray response as ``optgen calibrate lut`` does, as one bluesky run.

    The other SLM shows the helping lens (through its LUT in force); ``slm`` shows the uniform
    pattern (the exposure search, the zero order), the gratings that find the +-1 orders, then
    ``levels`` gray levels per reference as binary gratings of period ``period_px`` and
    ``period_px / 2``, each plain and swapped (about 140 patterns for 32 levels). The fit
    (``calibration.response_fit``) runs on the captured frames; stream ``fit`` holds the response
    per gray level (``phase_rad``), the crosstalk, the residual. Returns the
    ``ResponseMeasurement``. The LUT is not applied nor stored (module docstring).
    """
    if slm not in ROLES:
        raise OptgenError(f"lut_sweep: slm {slm!r}: expected one of {', '.join(ROLES)}")
    for name, value, minimum in (("levels", levels, 8), ("period_px", period_px, 8), ("frames", frames, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise OptgenError(f"lut_sweep: {name} = {value!r}: expected a whole number >= {minimum}")
    if period_px % 4:
        raise OptgenError(f"lut_sweep: period_px = {period_px}: expected a multiple of 4 (P/2 is used too)")
    power = devices.laser.driver.check_power(devices.config.laser.power_w if power_w is None else power_w)
    plan_md = {"plan_name": "lut_sweep", "calibration": "lut",
               "plan_args": {"slm": slm, "levels": levels, "period_px": period_px, "frames": frames, "power_w": power},
               **(md or {})}

    def work(plan_bench):
        from optgen.calibration.response import measure_response

        return measure_response(_session(plan_bench, power), slm, levels=levels, period_px=period_px, frames=frames)

    def run() -> Plan:
        m = yield from armed(devices, drive(devices, work))
        fit = FitResult(f"{slm}_lut", {
            "phase_rad": np.asarray(m.phase_rad, dtype=float), "crosstalk_sigma_px": float(m.crosstalk_sigma_px),
            "residual_rms": float(m.residual_rms), "order_balance": float(m.order_balance),
            "resample_shift_px": float(m.resample_shift_px), "lut_range_rad": float(m.lut_range_rad())})
        yield from bps.trigger_and_read([fit], name="fit")
        return m

    return (yield from _one_run(run(), {**bench_metadata(devices), **plan_md}))


def alignment(devices, *, grid: int = 3, power_w: float | None = None, md: dict | None = None) -> Plan:
    """Measure the bench's alignment as ``optgen calibrate alignment`` does, as one bluesky run.

    First the sensor's registration (SLM2 uniform, SLM1 showing ``grid`` x ``grid`` lenses that
    focus spots over the output window), then SLM2's placement (SLM1 uniform, SLM2 showing lenses
    centred on a grid of its pixels, the spots read through the registration). Stream ``fit``
    holds the map output plane -> sensor pixels, its offset, rotation, pitch ratio and residual,
    and SLM2's shift and rotation. Returns ``(SensorRegistration, DecoderPlacement)``; nothing is
    stored (module docstring).
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise OptgenError(f"alignment: grid = {grid!r}: expected a whole number >= 2")
    power = devices.laser.driver.check_power(devices.config.laser.power_w if power_w is None else power_w)
    plan_md = {"plan_name": "alignment", "calibration": "alignment",
               "plan_args": {"grid": grid, "power_w": power}, **(md or {})}

    def work(plan_bench):
        from optgen.calibration.alignment import measure_decoder_placement, measure_sensor_registration

        session = _session(plan_bench, power)
        sensor = measure_sensor_registration(session, grid=grid)
        return sensor, measure_decoder_placement(session, sensor, grid=grid)

    def run() -> Plan:
        sensor, placement = yield from armed(devices, drive(devices, work))
        fit = FitResult("alignment", {
            "output_to_sensor": np.asarray(sensor.output_to_sensor, dtype=float),
            "sensor_offset_m": np.asarray(sensor.offset_m, dtype=float),
            "sensor_rotation_deg": float(sensor.rotation_deg), "sensor_pitch_ratio": float(sensor.pitch_ratio),
            "sensor_residual_px": float(sensor.residual_px),
            "decoder_shift_m": np.asarray(placement.shift_m, dtype=float),
            "decoder_rotation_deg": float(placement.rotation_deg), "decoder_residual_m": float(placement.residual_m)})
        yield from bps.trigger_and_read([fit], name="fit")
        return sensor, placement

    return (yield from _one_run(run(), {**bench_metadata(devices), **plan_md}))


def _one_run(plan, md: dict) -> Plan:
    """``plan`` as one run; returns what ``plan`` returned (``run_wrapper`` returns the run's uid)."""
    result: dict = {}

    def keep() -> Plan:
        result["value"] = yield from plan

    yield from bpp.run_wrapper(keep(), md=md)
    return result["value"]
