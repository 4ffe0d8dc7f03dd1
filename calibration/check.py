"""``optgen calibrate check``: re-measure a few points and report the drift against the stored calibrations.

Quicker than a calibration: a LUT is re-measured at 16 gray levels per reference, the sensor
and SLM2 with a 2 x 2 spot grid, the camera's dark level from four frames. Nothing is stored;
the result says, per item, the drift and whether it is within tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optgen.calibration.compare import affine_distance_px, response_error_rad
from optgen.calibration.session import CalibrationSession
from optgen.drivers.common.roles import SLM_ROLES

__all__ = ["DriftCheck", "TOLERANCES", "check_drift", "affine_distance_px"]

TOLERANCES = {"lut_rad": 0.05, "sensor_px": 0.3, "decoder_px": 0.5, "decoder_deg": 0.05, "dark_dn": 2.0}


@dataclass
class DriftCheck:
    items: dict[str, dict] = field(default_factory=dict)   # name -> {drift, tolerance, unit, ok}
    missing: list[str] = field(default_factory=list)
    counters: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(item["ok"] for item in self.items.values())

    def add(self, name: str, drift: float, tolerance: float, unit: str) -> None:
        self.items[name] = {"drift": float(drift), "tolerance": tolerance, "unit": unit,
                            "ok": bool(abs(drift) <= tolerance)}

    def lines(self) -> list[str]:
        out = [f"  {name:<28} drift {v['drift']:+.4g} {v['unit']} (tolerance {v['tolerance']:g}) "
               f"{'ok' if v['ok'] else 'RE-CALIBRATE'}" for name, v in self.items.items()]
        out += [f"  {name:<28} no stored calibration to check against" for name in self.missing]
        verdict = "within tolerance" if self.ok else "drifted: run optgen calibrate for the items marked"
        return [f"optgen calibrate check: {verdict}"] + out

    def as_dict(self) -> dict:
        return {"ok": self.ok, "items": self.items, "missing": self.missing, "counters": self.counters}


def check_drift(bench, session: CalibrationSession | None = None) -> DriftCheck:
    """Compare quick re-measurements with the calibrations ``bench`` opened with."""
    from optgen.calibration.alignment import (
        measure_decoder_placement,
        measure_sensor_registration,
    )
    from optgen.calibration.response import measure_response

    session = session or CalibrationSession(bench)
    cals = bench.calibrations
    result = DriftCheck()
    try:
        if cals.camera is not None:
            session.set_exposure(float(cals.camera.results["exposure_s"]))
            bench.laser.set_emission(False)
            level = float(np.median(np.mean([session.capture_raw() for _ in range(4)], axis=0)))
            result.add("camera dark level", level - float(cals.camera.results["dark_level_dn"]),
                       TOLERANCES["dark_dn"], "DN")
            session.set_exposure(bench.config.camera.exposure_s)
        else:
            result.missing.append("camera")
        for key in SLM_ROLES:
            record = cals.lut_records.get(key)
            if record is None:
                result.missing.append(f"{key} LUT")
                continue
            m = measure_response(session, key, levels=16)
            stored = np.asarray(record.results["phase_rad"], dtype=float)
            result.add(f"{key} response", response_error_rad(m.phase_rad, stored), TOLERANCES["lut_rad"], "rad RMS")
        if cals.alignment is not None:
            sensor = measure_sensor_registration(session, grid=2)
            window_m = bench.config.light_path.window_m
            result.add("sensor registration", affine_distance_px(sensor.output_to_sensor, cals.output_to_sensor(),
                                                                  window_m), TOLERANCES["sensor_px"], "camera px")
            placement = measure_decoder_placement(session, sensor, grid=2)
            stored = cals.decoder_placement()
            pitch = bench.config.decoding_slm.pitch_um * 1e-6
            shift = np.hypot(*(np.subtract(placement.shift_m, stored.shift_m))) / pitch
            result.add("decoding SLM shift", shift, TOLERANCES["decoder_px"], "SLM px")
            result.add("decoding SLM rotation", placement.rotation_deg - stored.rotation_deg,
                       TOLERANCES["decoder_deg"], "deg")
        else:
            result.missing.append("alignment")
    finally:
        bench.laser.safe_off()
        result.counters = session.counters.as_dict()
    return result
