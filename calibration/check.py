"""``optgen calibrate check``: re-measure a few points and report the drift against the stored calibrations.

Quicker than a calibration: a LUT is re-measured at 16 gray levels per reference, the sensor
and SLM2 with a 2 x 2 spot grid, the camera's dark level and new hot pixels from four frames, d1
and d2 with their eight gratings, each SLM's wavefront with its four diversity lenses (with the
correction in force: what it leaves; without: how far it moved from the stored one), each SLM's
unmodulated fraction where it was measured (not fitted). Nothing is stored; the result says, per item, the drift and whether it is within tolerance, and how old
each calibration is.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from optgen.calibration.compare import affine_distance_px, response_error_rad
from optgen.calibration.session import CalibrationSession
from optgen.drivers.common.roles import SLM_ROLES

__all__ = ["DriftCheck", "TOLERANCES", "check_drift", "affine_distance_px"]

TOLERANCES = {"lut_rad": 0.05, "sensor_px": 0.3, "decoder_px": 0.5, "decoder_deg": 0.05, "dark_dn": 2.0,
              "new_hot_pixels": 10, "distance_mm": 0.2, "wavefront_waves": 0.05, "unmodulated": 0.01}


@dataclass
class DriftCheck:
    items: dict[str, dict] = field(default_factory=dict)   # name -> {drift, tolerance, unit, ok}
    missing: list[str] = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    ages_h: dict[str, float] = field(default_factory=dict)  # calibration -> hours since it was made

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
        if self.ages_h:
            out.append("  ages: " + ", ".join(f"{name} {age:.1f} h" for name, age in self.ages_h.items()))
        verdict = "within tolerance" if self.ok else "drifted: run optgen calibrate for the items marked"
        return [f"optgen calibrate check: {verdict}"] + out

    def as_dict(self) -> dict:
        return {"ok": self.ok, "items": self.items, "missing": self.missing, "counters": self.counters,
                "ages_h": self.ages_h}


def check_drift(bench, session: CalibrationSession | None = None) -> DriftCheck:
    """Compare quick re-measurements with the calibrations ``bench`` opened with.

    Order: camera, LUTs, distances, wavefronts, alignment (what each later check needs first)."""
    from optgen.calibration.alignment import (
        measure_decoder_placement,
        measure_sensor_registration,
    )
    from optgen.calibration.response import measure_response

    session = session or CalibrationSession(bench)
    cals = bench.calibrations
    result = DriftCheck(ages_h=cals.ages_h())
    try:
        if cals.camera is not None:
            camera = cals.camera_calibration()
            session.set_exposure(camera.exposure_s)
            bench.laser.set_emission(False)
            dark = np.mean([session.capture_raw() for _ in range(4)], axis=0).astype(np.float32)
            result.add("camera dark level", float(np.median(dark)) - camera.dark_level_dn, TOLERANCES["dark_dn"], "DN")
            if camera.hot_map is not None:
                from optgen.calibration.camera_pixels import find_hot_pixels

                new = int(np.count_nonzero(find_hot_pixels(dark)[0] & ~camera.hot_map))
                result.add("camera new hot pixels", new, TOLERANCES["new_hot_pixels"], "px")
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
        _check_distances_and_wavefronts(bench, session, result)
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


def _check_distances_and_wavefronts(bench, session: CalibrationSession, result: DriftCheck) -> None:
    """d1 and d2 against the stored ones; each SLM's wavefront: how far it moved from the stored one,
    each measured as the calibration measured it."""
    from optgen.calibration.distances import Distances, measure_distances
    from optgen.calibration.wavefront import WavefrontCalibration, measure_wavefront

    cals = bench.calibrations
    output_to_sensor = cals.output_to_sensor()
    stored_d = Distances.from_record(cals.distances) if cals.distances is not None else None
    if stored_d is not None:
        # measured as the calibration measured them: no measured wavefront correction in force (a
        # vendor's file stays), whatever runs leave in force
        with _corrections_off(bench.encoding_slm, bench.decoding_slm):
            now = measure_distances(session, output_to_sensor)
        result.add("d1", (now.d1_m - stored_d.d1_m) * 1e3, TOLERANCES["distance_mm"], "mm")
        result.add("d2", (now.d2_m - stored_d.d2_m) * 1e3, TOLERANCES["distance_mm"], "mm")
    else:
        result.missing.append("distances")
    placement = cals.decoder_placement()
    shift = tuple(float(v) for v in placement.shift_m) if placement is not None else (0.0, 0.0)
    distances = (stored_d.d1_m, stored_d.d2_m) if stored_d is not None else None
    beam = None
    for key in SLM_ROLES:
        record = cals.wavefronts.get(key)
        if record is None:
            result.missing.append(f"{key} wavefront")
            continue
        stored = WavefrontCalibration.from_record(record)
        sigma = float(cals.lut_records[key].results["crosstalk_sigma_px"]) if key in cals.lut_records else 0.0
        power = stored_d.slm2_power_per_m if stored_d is not None else 0.0
        # measured as calibrated (the SLM's own correction off; SLM2's too while SLM1's is measured,
        # its own power then accounted for) and compared with the stored one: the method's own bias
        # on a bench drops out
        slms = [bench.encoding_slm, bench.decoding_slm] if key == bench.encoding_slm.name else [bench.decoding_slm]
        with _corrections_off(*slms):
            now = measure_wavefront(session, key, output_to_sensor, sigma, beam=beam, decoder_shift_m=shift,
                                    distances_m=distances, slm2_power_per_m=power)
        beam = beam or stored
        left = now.corrected_waves() - _same_terms(stored, now)
        result.add(f"{key} wavefront", float(np.sqrt(np.sum(left**2))), TOLERANCES["wavefront_waves"], "waves RMS")
    _check_unmodulated(bench, session, result, distances)


@contextmanager
def _corrections_off(*slms):
    """The SLMs' measured wavefront corrections off (a vendor's file stays), put back however it ends."""
    in_force = [slm.measured_correction_rad for slm in slms]
    try:
        for slm in slms:
            slm.set_wavefront_correction(None)
        yield
    finally:
        for slm, correction in zip(slms, in_force):
            slm.set_wavefront_correction(correction)


def _check_unmodulated(bench, session: CalibrationSession, result: DriftCheck, distances) -> None:
    """Each SLM's unmodulated fraction against the stored one, where it was measured."""
    from optgen.calibration.unmodulated import measure_unmodulated, unmodulated_room
    from optgen.calibration.wavefront import WavefrontCalibration

    cals = bench.calibrations
    stored = {key: WavefrontCalibration.from_record(record) for key, record in cals.wavefronts.items()}
    stored = {key: cal for key, cal in stored.items() if cal.unmodulated_from.startswith("measured")}
    b = bench.config.light_path
    distances = distances or (b.d1_m, b.d2_m)
    if not stored or unmodulated_room(b, distances) is not None:
        return
    now = measure_unmodulated(session, distances)
    for key, cal in stored.items():
        result.add(f"{key} unmodulated", now.fraction[key] - cal.unmodulated_fraction, TOLERANCES["unmodulated"],
                   "of the light")


def _same_terms(stored, now) -> np.ndarray:
    """``stored``'s corrected coefficients on ``now``'s Noll indices (0 where it has none)."""
    table = dict(zip(stored.noll, stored.corrected_waves()))
    return np.array([table.get(j, 0.0) for j in now.noll])
