"""``optgen calibrate``: run the calibrations in an order that works for two SLMs in one path, store them.

Order for ``all``:
1. camera  - dark frame at the run's exposure, read noise, saturation, linearity (needs no optics);
2. lut     - each SLM's phase response, the other SLM serving as lens; alternating rounds
             (SLM1 with SLM2's nominal lens, SLM2 with SLM1's measured lens, SLM1 again with
             SLM2's measured lens), see calibration.response;
3. alignment - with both LUTs in force, the lenses and gratings focus well: the sensor's placement
             in the output plane first (spots from SLM1 alone), then SLM2's shift and rotation in
             SLM1's beam (spots from lenses on SLM2, read through the sensor registration).
Each step writes its file only when it succeeded; a step that fails leaves the previous
calibration of that kind in force and the laser off. Every file gets a PNG next to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from optgen.calibration.alignment import alignment_record
from optgen.calibration.camera import CameraCalibration, measure_camera
from optgen.calibration.lut import apply_response
from optgen.calibration.record import CalibrationRecord
from optgen.calibration.session import CalibrationSession
from optgen.calibration.store import CalibrationStore

__all__ = ["CalibrationReport", "STEPS", "bench_alignment_record", "calibrate", "camera_record", "lut_record",
           "record_base"]

STEPS = ("camera", "lut", "alignment")


@dataclass
class CalibrationReport:
    """What one ``optgen calibrate`` did: files written, figures, patterns and time."""

    files: dict[str, Path] = field(default_factory=dict)
    pictures: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, float | str] = field(default_factory=dict)
    measurements: dict[str, object] = field(default_factory=dict)
    counters: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"files": {k: str(v) for k, v in self.files.items()},
                "pictures": {k: str(v) for k, v in self.pictures.items()},
                "figures": self.figures, "counters": self.counters}


def record_base(bench, kind: str, device: str, identity: dict) -> dict:
    """What every calibration record of ``bench`` carries besides its results."""
    cfg = bench.config
    return dict(kind=kind, device=device, wavelength_nm=cfg.wavelength_nm, optical_path=cfg.light_path.digest(),
                bench_name=cfg.name, bench_text=cfg.text, device_identity=identity)


def camera_record(bench, cal: CameraCalibration) -> CalibrationRecord:
    return cal.to_record(record_base(bench, "camera", "camera", bench.camera.identity.as_dict()))


def lut_record(bench, key: str, m) -> CalibrationRecord:
    slm = bench.encoding_slm if key == "encoding_slm" else bench.decoding_slm
    return m.to_record(record_base(bench, "lut", key, slm.identity.as_dict()))


def bench_alignment_record(bench, sensor, placement) -> CalibrationRecord:
    identity = {role: getattr(bench, role).identity.as_dict() for role in ("encoding_slm", "decoding_slm", "camera")}
    return alignment_record(sensor, placement, record_base(bench, "alignment", "bench", identity))


def _png_path(path: Path) -> Path:
    return path.with_suffix(".png")


def calibrate(bench, what: str, store: CalibrationStore, *, rounds: int = 2,
              session: CalibrationSession | None = None, truths=None) -> CalibrationReport:
    """Run ``what`` ("camera", "lut", "alignment" or "all") on ``bench`` and store the results.

    ``truths``: a twin's planted truths (``OpticalWorld.planted_truths()``), drawn in the pictures
    beside what was measured; None on a real bench."""
    steps = STEPS if what == "all" else (what,)
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"calibration {what!r}: expected one of {', '.join(STEPS)} or all")
    session = session or CalibrationSession(bench)
    report = CalibrationReport()
    started = time.perf_counter()
    try:
        for step in steps:
            {"camera": _camera_step, "lut": _lut_step, "alignment": _alignment_step}[step](
                bench, session, store, report, rounds, truths)
    finally:
        bench.laser.safe_off()
        report.counters = session.counters.as_dict()
        report.counters["wall_time_s"] = round(time.perf_counter() - started, 4)
        per_pattern = max(s.timing.wait_s for s in (bench.encoding_slm, bench.decoding_slm))
        report.counters["pattern_time_s"] = round(report.counters["patterns_shown"] * per_pattern, 4)
    return report


def _camera_step(bench, session, store, report, rounds, truths) -> None:
    cal = measure_camera(session)
    path = store.save(camera_record(bench, cal))
    from optgen.calibration.pictures import write_camera_png

    write_camera_png(_png_path(path), cal)
    report.files["camera"], report.pictures["camera"] = path, _png_path(path)
    report.measurements["camera"] = cal
    report.figures.update({"camera_dark_level_dn": cal.dark_level_dn, "camera_read_noise_dn": cal.read_noise_dn,
                           "camera_saturation_dn": cal.saturation_dn, "camera_linearity_rms": cal.linearity_rms})


def _lut_step(bench, session, store, report, rounds, truths) -> None:
    from optgen.calibration.response_picture import write_response_png
    from optgen.calibration.two_slms import calibrate_luts

    previous = dict(bench.luts)
    try:
        measurements = calibrate_luts(session, rounds=rounds)
    except BaseException:
        for slm in (bench.encoding_slm, bench.decoding_slm):   # the previous LUTs stay in force
            apply_response(slm, previous[slm.name])
        raise
    for key, m in measurements.items():
        record = lut_record(bench, key, m)
        path = store.save(record)
        write_response_png(_png_path(path), m, truths.response_rad[key] if truths is not None else None)
        report.files[f"{key}.lut"], report.pictures[f"{key}.lut"] = path, _png_path(path)
        report.measurements[f"{key}.lut"] = m
        bench.luts[key] = m.response(record.id)
        report.figures[f"{key}_fit_rms"] = float(m.residual_rms)
        report.figures[f"{key}_crosstalk_sigma_px"] = float(m.crosstalk_sigma_px)


def _alignment_step(bench, session, store, report, rounds, truths) -> None:
    from optgen.calibration.alignment import measure_decoder_placement, measure_sensor_registration
    from optgen.calibration.alignment_picture import write_alignment_png

    sensor = measure_sensor_registration(session)
    placement = measure_decoder_placement(session, sensor)
    path = store.save(bench_alignment_record(bench, sensor, placement))
    write_alignment_png(_png_path(path), sensor, placement)
    report.files["alignment"], report.pictures["alignment"] = path, _png_path(path)
    report.measurements["alignment"] = (sensor, placement)
    report.figures.update({
        "sensor_residual_px": float(sensor.residual_px),
        "sensor_offset_um": [round(v * 1e6, 3) for v in sensor.offset_m],
        "sensor_rotation_deg": round(float(sensor.rotation_deg), 4),
        "decoder_shift_um": [round(v * 1e6, 3) for v in placement.shift_m],
        "decoder_rotation_deg": round(float(placement.rotation_deg), 4)})
