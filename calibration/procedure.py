"""``optgen calibrate``: run the calibrations in an order that works for two SLMs in one path, store them.

Order for ``all``:
1. camera  - dark frame at the run's exposure, read noise, saturation, linearity (needs no optics);
2. lut     - each SLM's phase response, the other SLM serving as lens; alternating rounds
             (SLM1 with SLM2's nominal lens, SLM2 with SLM1's measured lens, SLM1 again with
             SLM2's measured lens), see calibration.response;
3. wavefront - each SLM's wavefront error by phase diversity (calibration.wavefront): SLM1 first,
             its correction in force before SLM2 is measured; with the LUTs in force the lenses
             it shows are the lenses it means. Piston and tilt are left to the alignment. Around
             them: d1 and d2 first (calibration.distances: a pair of lenses on SLM2 takes SLM2's
             own power out of d1 and measures it for SLM1's fit), a quick 2 x 2 alignment where none is stored (SLM2's fit needs where SLM2 sits), and
             each SLM's unmodulated fraction (calibration.unmodulated: ratios of one focus, so
             SLM2's correction need not be in force yet). Where runs leave SLM2 uncorrected
             (decision 0013) SLM2's fit is still running when the step returns: it overlaps
             the alignment and is stored after it (dropped if the alignment fails);
4. alignment - with both LUTs and both corrections in force, the lenses and gratings focus well:
             the sensor's placement in the output plane first (spots from SLM1 alone), then SLM2's
             shift and rotation in SLM1's beam (spots from lenses on SLM2, read through the sensor
             registration).
Each step writes its file only when it succeeded; a step that fails leaves the previous
calibration of that kind in force and the laser off. Every file gets a PNG next to it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optgen.calibration.alignment import alignment_record
from optgen.calibration.camera import CameraCalibration, measure_camera
from optgen.calibration.lut import apply_response
from optgen.calibration.record import CalibrationRecord
from optgen.calibration.session import CalibrationSession
from optgen.calibration.store import CalibrationStore
from optgen.drivers.common.threads import single_blas_thread

__all__ = ["CalibrationReport", "STEPS", "bench_alignment_record", "calibrate", "camera_record", "lut_record",
           "record_base", "wavefront_record"]

STEPS = ("camera", "lut", "distances", "wavefront", "alignment")
ALL_STEPS = ("camera", "lut", "wavefront", "alignment")     # the wavefront step measures the distances too


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


def wavefront_record(bench, cal) -> CalibrationRecord:
    slm = bench.encoding_slm if cal.key == "encoding_slm" else bench.decoding_slm
    return cal.to_record(record_base(bench, "wavefront", cal.key, slm.identity.as_dict()))


def bench_alignment_record(bench, sensor, placement) -> CalibrationRecord:
    identity = {role: getattr(bench, role).identity.as_dict() for role in ("encoding_slm", "decoding_slm", "camera")}
    return alignment_record(sensor, placement, record_base(bench, "alignment", "bench", identity))


def _png_path(path: Path) -> Path:
    return path.with_suffix(".png")


def calibrate(bench, what: str, store: CalibrationStore, *, rounds: int = 2,
              session: CalibrationSession | None = None, truths=None,
              show_progress=None) -> CalibrationReport:
    """Run ``what`` (one of STEPS or "all") on ``bench`` and store the results.

    ``truths``: a twin's planted truths (``OpticalWorld.planted_truths()``), drawn in the pictures
    beside what was measured; None on a real bench. ``show_progress``: called with a line of
    progress (the step, the pattern, the time left: ``calibration.progress``) about once a second."""
    from optgen.calibration.progress import CalibrationProgress, StepHistory

    steps = ALL_STEPS if what == "all" else (what,)
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"calibration {what!r}: expected one of {', '.join(STEPS)} or all")
    session = session or CalibrationSession(bench)
    progress = CalibrationProgress(steps, StepHistory(store.folder), show_progress)
    session.progress = progress
    report = CalibrationReport()
    started = time.perf_counter()
    pending: list[_PendingFit] = []
    with single_blas_thread():             # the fits, the pipelines and a twin's threads have the cores
        try:
            for step in steps:
                progress.start_step(step)
                ok = False
                try:
                    later = {"camera": _camera_step, "lut": _lut_step, "distances": _distances_step,
                             "wavefront": _wavefront_step, "alignment": _alignment_step}[step](
                        bench, session, store, report, rounds, truths)
                    ok = True
                finally:
                    progress.end_step(ok)
                if later is not None:
                    pending.append(later)
            bench.laser.safe_off()                 # what is left is computation
            if pending and show_progress is not None:
                show_progress("calibrate: finishing SLM2's wavefront fit (no light needed)")
            while pending:
                pending.pop(0).finish()
        finally:
            for later in pending:                  # a step failed or a stop came: the fits are dropped
                later.abandon()
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


def _distances_step(bench, session, store, report, rounds, truths) -> None:
    from optgen.calibration.distances import measure_distances

    output_to_sensor = bench.calibrations.output_to_sensor() if bench.calibrations is not None else None
    _store_distances(bench, store, report, measure_distances(session, output_to_sensor))


def _crosstalk_sigma_px(bench, report, key: str) -> float:
    """The fringing blur the newest LUT calibration fitted for SLM ``key`` (0 if none)."""
    m = report.measurements.get(f"{key}.lut")
    if m is not None:
        return float(m.crosstalk_sigma_px)
    record = bench.calibrations.lut_records.get(key) if bench.calibrations is not None else None
    return float(record.results["crosstalk_sigma_px"]) if record is not None else 0.0


def _wavefront_step(bench, session, store, report, rounds, truths) -> "_PendingFit | None":
    """Distances, then both wavefronts fitted at those distances (SLM2's own defocus drops out of d1:
    :mod:`calibration.distances` measures it with a pair of lenses on SLM2, so the distances need
    no second measurement once the corrections are in force).

    Where no alignment is stored a quick 2 x 2 alignment comes first: where the light lands on the
    sensor (the pictures are read there) and where SLM2 sits (where its lenses sit on the light).
    SLM2's fit runs on a second thread while the bench measures what does not need it (the
    unmodulated light). Where runs leave SLM2 uncorrected (``correct_decoder_wavefront`` false,
    decision 0013), nothing the bench measures next needs SLM2's fit: it is returned unfinished (a
    :class:`_PendingFit`) and ``calibrate`` stores it after the remaining steps, which it overlaps."""
    from concurrent.futures import ThreadPoolExecutor

    from optgen.calibration.distances import measure_distances
    from optgen.calibration.wavefront import capture_wavefront, fit_wavefront, wavefront_correction_rad
    from optgen.drivers.common.roles import DECODING, ENCODING

    b = bench.config.light_path
    output_to_sensor = bench.calibrations.output_to_sensor() if bench.calibrations is not None else None
    placement = bench.calibrations.decoder_placement() if bench.calibrations is not None else None
    slms = {ENCODING: bench.encoding_slm, DECODING: bench.decoding_slm}
    previous = {key: slm.measured_correction_rad for key, slm in slms.items()}
    corrected_in_runs = bench.config.calibration.correct_decoder_wavefront
    measured = {}
    cancel = threading.Event()

    def apply() -> None:
        for key, cal in measured.items():
            slms[key].set_wavefront_correction(wavefront_correction_rad(cal, slms[key].shape, b.pitch_m))

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optgen-wavefront-fit")
    try:
        for slm in slms.values():
            slm.set_wavefront_correction(None)           # measured from scratch (a vendor file stays)
        if placement is None:
            # where the light lands on the sensor, before any picture is read: the bench file's
            # placement turned SLM1's pictures against the model and moved the beam's fitted centre
            # by a pixel (second realistic twin: 1.23 px with it, 0.07 px with the measured map)
            placement, output_to_sensor = _quick_alignment(session)
        distances = measure_distances(session, output_to_sensor)
        first = (distances.d1_m, distances.d2_m)
        taken = capture_wavefront(session, ENCODING, output_to_sensor, distances_m=first,
                                  slm2_power_per_m=distances.slm2_power_per_m)
        fitting = pool.submit(fit_wavefront, taken, _crosstalk_sigma_px(bench, report, ENCODING), cancel=cancel)
        measured[ENCODING] = _result(fitting)
        apply()
        taken = capture_wavefront(session, DECODING, output_to_sensor, distances_m=first)
        fitting = pool.submit(fit_wavefront, taken, _crosstalk_sigma_px(bench, report, DECODING),
                              beam=measured[ENCODING], decoder_shift_m=tuple(float(v) for v in placement.shift_m),
                              cancel=cancel)
        unmodulated = _measure_unmodulated(session, first)
        if corrected_in_runs:
            measured[DECODING] = _result(fitting)
            apply()
    except BaseException:
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for key, slm in slms.items():                    # the previous corrections stay in force
            slm.set_wavefront_correction(previous[key])
        raise
    def store_decoder() -> None:
        done = {DECODING: _result(fitting)}
        _with_unmodulated(done, unmodulated, report)
        _store_wavefronts(bench, store, report, done, truths)

    pending = None if corrected_in_runs else _PendingFit(store_decoder, cancel, pool)
    if pending is not None:
        slms[DECODING].set_wavefront_correction(None)     # as runs show SLM2 (decision 0013)
    try:
        _with_unmodulated(measured, unmodulated, report)
        _store_distances(bench, store, report, distances)
        _store_wavefronts(bench, store, report, measured, truths)
    except BaseException:
        if pending is not None:
            pending.abandon()
        raise
    if pending is None:
        pool.shutdown(wait=False)
    return pending


@dataclass
class _PendingFit:
    """A fit still running when its step returned: ``finish`` waits for it (in bounded slices) and
    stores it; ``abandon`` stops it at its next evaluation and stores nothing."""

    store: object
    cancel: threading.Event
    pool: object

    def finish(self) -> None:
        try:
            self.store()
        finally:
            self.abandon()

    def abandon(self) -> None:
        self.cancel.set()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _result(future):
    """A background job's result, waited for in bounded slices (a stop request is seen at each)."""
    from concurrent.futures import TimeoutError as FutureTimeout

    from optgen.drivers import stop

    while True:
        try:
            return future.result(timeout=stop.SLICE_S)
        except FutureTimeout:
            stop.check()


def _quick_alignment(session):
    """(SLM2's placement, the sensor's registration) from 2 x 2 spot grids."""
    from optgen.calibration.alignment import measure_decoder_placement, measure_sensor_registration
    from optgen.calibration.session import CalibrationError

    try:
        sensor = measure_sensor_registration(session, grid=2)
        return measure_decoder_placement(session, sensor, grid=2), sensor.output_to_sensor
    except CalibrationError as exc:
        raise CalibrationError(f"{exc}; a panel aberration of several waves also blurs the foci away: load the "
                               f"vendor's correction files ([encoding_slm] and [decoding_slm] wavefront_correction) "
                               f"first. The previous calibration stays in force") from None


def _measure_unmodulated(session, distances_m: tuple[float, float]):
    """Both SLMs' unmodulated fractions (``calibration.unmodulated``), or why this geometry cannot have them."""
    from optgen.calibration.unmodulated import measure_unmodulated, unmodulated_room

    why_not = unmodulated_room(session.config.light_path, distances_m)
    return why_not if why_not is not None else measure_unmodulated(session, distances_m)


def _with_unmodulated(measured: dict, unmodulated, report) -> None:
    """Each wavefront calibration with its SLM's measured unmodulated fraction (or the fit's, and why)."""
    from optgen.calibration.unmodulated import PERIODS_PX

    if isinstance(unmodulated, str):
        for key, cal in measured.items():
            measured[key] = cal.with_unmodulated(cal.unmodulated_fraction, f"the phase-diversity fit ({unmodulated})",
                                                 float("nan"))
        report.figures["unmodulated_measured"] = unmodulated
        return
    how = "measured: the focus with diagonal gratings of " + " and ".join(f"{p} px" for p in PERIODS_PX) + \
          " on the SLM against without"
    for key, cal in measured.items():
        measured[key] = cal.with_unmodulated(unmodulated.fraction[key], how, unmodulated.blur_px[key])
        report.figures[f"{key}_unmodulated_fraction"] = round(unmodulated.fraction[key], 5)
        report.figures[f"{key}_wrap_blur_px"] = round(unmodulated.blur_px[key], 4)
    report.measurements["unmodulated"] = unmodulated


def _store_distances(bench, store, report, d) -> None:
    identity = {role: getattr(bench, role).identity.as_dict() for role in ("encoding_slm", "decoding_slm", "camera")}
    path = store.save(d.to_record(record_base(bench, "distances", "bench", identity)))
    from optgen.calibration.distances import write_distances_png

    write_distances_png(_png_path(path), d, bench.config.light_path.camera_shape)
    report.files["distances"], report.pictures["distances"] = path, _png_path(path)
    report.measurements["distances"] = d
    report.figures.update({"d1_mm": round(d.d1_m * 1e3, 4), "d2_mm": round(d.d2_m * 1e3, 4),
                           "distances_spread_mm": round(d.spread_m * 1e3, 4)})


def _store_wavefronts(bench, store, report, measured: dict, truths) -> None:
    from optgen.calibration.wavefront_picture import write_wavefront_png
    from optgen.drivers.common.roles import ENCODING

    b = bench.config.light_path
    for key, cal in measured.items():
        path = store.save(wavefront_record(bench, cal))
        used = (b.seed_px, b.seed_px) if key == ENCODING else (b.decoder_px, b.decoder_px)
        planted = None
        if truths is not None and truths.wavefront_rad.get(key) is not None:
            planted = _centre_crop(truths.wavefront_rad[key], used) / (2 * np.pi)
        write_wavefront_png(_png_path(path), cal, used, b.pitch_m, planted)
        report.files[f"{key}.wavefront"], report.pictures[f"{key}.wavefront"] = path, _png_path(path)
        report.measurements[f"{key}.wavefront"] = cal
        report.figures[f"{key}_wavefront_misfit"] = round(float(cal.misfit), 5)
        report.figures[f"{key}_wavefront_corrected_waves"] = [round(float(c), 4) for c in cal.corrected_waves()]
    enc = measured.get(ENCODING)
    if enc is None:
        return
    report.figures.update({"beam_waist_mm": round(enc.beam_waist_m * 1e3, 4),
                           "beam_centre_um": [round(v * 1e6, 2) for v in enc.beam_centre_m]})


def _centre_crop(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = a.shape
    r0, c0 = (rows - shape[0]) // 2, (cols - shape[1]) // 2
    return a[r0:r0 + shape[0], c0:c0 + shape[1]]


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
