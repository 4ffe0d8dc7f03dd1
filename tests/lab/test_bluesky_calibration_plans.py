"""The LUT sweep and the alignment as bluesky plans, on the small twin, against the truths it planted.

The tolerances are the calibration tests' own (tests/calibration/test_response.py: 30 mrad RMS over
0..2pi; tests/calibration/test_alignment.py: the sensor map within 0.2 px over the output window,
SLM2's shift within 2 um and rotation within 0.05 deg). The twin keeps its 1 % laser power noise
here, as in those tests.
"""
# ruff: noqa: F811 - the fixtures RE and docs come from tests.lab.bluesky_twin

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("bluesky", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")
pytest.importorskip("ophyd_async", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")

import optgen  # noqa: E402
import optgen.bluesky  # noqa: E402
from optgen.drivers.errors import DeviceError, OptgenError, PowerCeilingError  # noqa: E402
from optgen.lab.bluesky.calibration_plans import alignment, lut_sweep  # noqa: E402
from optgen.lab.bluesky.patterns import parse_pattern_id  # noqa: E402
from tests.lab.bluesky_twin import RE, Documents, bench_config, docs  # noqa: E402,F401

# the misalignment tests/calibration/test_alignment.py plants
PLANT = {("twin.camera", "offset_um"): "[23.0, -17.0]", ("twin.camera", "rotation_deg"): "0.7",
         ("twin.camera", "pitch_um"): "4.7",             # the bench file says 4.8: a pitch ratio of 0.979
         ("twin.decoding_slm", "shift_um"): "[9.0, -6.0]", ("twin.decoding_slm", "rotation_deg"): "0.1"}
WORKER = "optgen-calibration-plan"


def open_twin(RE, extra=None):
    bench = optgen.open_bench(bench_config(extra))
    return bench, optgen.bluesky.devices(bench, "frames")


@pytest.fixture
def noisy_twin(RE, tmp_path, monkeypatch):
    yield from _twin(RE, tmp_path, monkeypatch, None)


@pytest.fixture
def planted_twin(RE, tmp_path, monkeypatch):
    yield from _twin(RE, tmp_path, monkeypatch, PLANT)


def _twin(RE, tmp_path, monkeypatch, extra):
    monkeypatch.chdir(tmp_path)
    bench, devices = open_twin(RE, extra)
    yield bench, devices
    try:
        if RE.state != "idle":
            RE.abort()
        devices.close()
    finally:
        bench.close()


def run(RE, plan):
    """RE(plan), returning what the plan returned."""
    out = {}

    def keep():
        out["value"] = yield from plan

    RE(keep())
    return out.get("value")


def laser_off(bench) -> bool:
    return not bench.devices.laser.emission and not bench.devices.world.laser_emission


def no_worker_left(timeout_s: float = 10.0) -> bool:
    for thread in threading.enumerate():
        if thread.name == WORKER:
            thread.join(timeout_s)
    return not any(t.name == WORKER and t.is_alive() for t in threading.enumerate())


def rms_error_0_2pi(measured: np.ndarray, truth: np.ndarray) -> float:
    truth = truth - truth[0]
    use = truth <= 2 * np.pi
    return float(np.sqrt(np.mean((measured[use] - truth[use]) ** 2)))


@pytest.mark.parametrize("slm", ["encoding_slm", "decoding_slm"])
def test_lut_sweep_recovers_the_planted_response_within_30_mrad(RE, noisy_twin, docs, slm):
    bench, devices = noisy_twin
    m = run(RE, lut_sweep(devices, slm))
    assert docs.exit_status() == "success"
    truth = bench.devices.truths.response_rad[slm]
    err = rms_error_0_2pi(m.phase_rad, truth)
    assert err < 0.03, f"{slm}: {err:.4f} rad RMS"
    assert m.phase_rad.shape == (256,) and m.phase_rad[0] == 0.0 and np.all(np.diff(m.phase_rad) >= 0)
    assert m.residual_rms < 0.01 and not m.warnings
    # the fit is recorded in the run: stream "fit", one event
    (fit,) = docs.events("fit")
    assert np.allclose(fit["data"][f"{slm}_lut-phase_rad"], m.phase_rad)
    assert fit["data"][f"{slm}_lut-crosstalk_sigma_px"] == pytest.approx(m.crosstalk_sigma_px)
    # every frame the calibration took is an event of the run, its frame in the HDF5 file
    events = docs.events()
    assert len(events) == m.counters["frames_captured"] >= 4 * 32
    frames = docs.frames()
    assert frames.shape == (len(events), *bench.devices.camera.shape)
    lit = np.array([e["data"]["bench-laser-emission"] for e in events])
    assert lit.sum() >= 4 * 32 and (~lit).sum() >= 1                 # the dark frames: laser off
    assert frames[~lit].mean() < frames[lit].mean()
    # the gratings shown on the SLM under test, by their parameters: two references, periods P and P/2
    gratings = set()
    for e in events:
        kind, params = parse_pattern_id(e["data"][f"bench-{slm}-pattern"])
        assert kind == "array" and "sha" in params
        if "period_px" in params:
            gratings.add((int(params["ref"]), int(params["test"]), int(params["period_px"])))
    assert {p for _, _, p in gratings} == {16, 8}
    assert len({min(r, t) for r, t, _ in gratings if min(r, t) > 0}) >= 1     # the second reference (~pi/2)
    assert len(gratings) >= 4 * 16
    start = docs.of("start")[0]
    assert start["plan_name"] == "lut_sweep" and start["plan_args"]["slm"] == slm
    assert laser_off(bench) and no_worker_left()
    assert not devices.patterns._arrays                                 # the registered arrays are dropped


def test_alignment_matches_the_planted_sensor_and_slm2_placement(RE, planted_twin, docs):
    bench, devices = planted_twin
    sensor, placement = run(RE, alignment(devices))
    truths = bench.devices.truths
    assert docs.exit_status() == "success"
    n, pitch = bench.config.geometry.output_window_px, bench.config.encoding_slm.pitch_um * 1e-6
    v = (np.arange(n + 1) - n / 2.0) * pitch
    x, y = np.meshgrid(v, v)
    pts = np.c_[x.ravel(), y.ravel()]

    def apply(affine, p):
        return p @ np.asarray(affine)[:, :2].T + np.asarray(affine)[:, 2]

    deviation = np.hypot(*(apply(sensor.output_to_sensor, pts) - apply(truths.output_to_sensor, pts)).T)
    assert deviation.max() < 0.2
    assert sensor.offset_m == pytest.approx((23e-6, -17e-6), abs=0.5e-6)
    assert sensor.rotation_deg == pytest.approx(0.7, abs=0.02)
    assert sensor.pitch_ratio == pytest.approx(4.7 / 4.8, abs=2e-3)
    assert not sensor.mirrored and sensor.residual_px < 0.1
    assert np.abs(np.array(placement.shift_m) - np.array(truths.decoder_shift_m)).max() < 2e-6
    assert placement.rotation_deg == pytest.approx(truths.decoder_rotation_deg, abs=0.05)
    assert placement.residual_m < 1e-6
    (fit,) = docs.events("fit")
    assert np.allclose(fit["data"]["alignment-output_to_sensor"], sensor.output_to_sensor)
    assert np.allclose(fit["data"]["alignment-decoder_shift_m"], placement.shift_m)
    events = docs.events()
    assert 2 * 9 <= len(events) < 120
    assert docs.frames().shape[0] == len(events)
    assert laser_off(bench) and no_worker_left()


def test_bad_arguments_are_refused_when_the_plan_is_made(RE, noisy_twin, docs):
    bench, devices = noisy_twin
    with pytest.raises(OptgenError, match="slm"):
        next(lut_sweep(devices, "camera"))
    with pytest.raises(OptgenError, match="levels"):
        next(lut_sweep(devices, levels=4))
    with pytest.raises(OptgenError, match="period_px"):
        next(lut_sweep(devices, period_px=18))
    with pytest.raises(OptgenError, match="grid"):
        next(alignment(devices, grid=1))
    with pytest.raises(PowerCeilingError):
        next(lut_sweep(devices, power_w=1e3))
    assert docs.all == [] and laser_off(bench)


def test_a_calibration_that_fails_in_its_fit_ends_the_run_failed_with_the_laser_off(RE, noisy_twin, docs,
                                                                                        monkeypatch):
    bench, devices = noisy_twin
    import optgen.calibration.response as response

    def broken_fit(*args, **kwargs):
        raise RuntimeError("fit broke")

    monkeypatch.setattr(response, "fit_response", broken_fit)
    with pytest.raises(RuntimeError, match="fit broke"):
        RE(lut_sweep(devices, "encoding_slm"))
    assert docs.exit_status() == "fail" and len(docs.events()) >= 4 * 32
    assert docs.events("fit") == []
    assert laser_off(bench) and no_worker_left()


def test_a_camera_that_fails_mid_sweep_fails_the_run_and_ends_the_calibration(RE, noisy_twin, docs, monkeypatch):
    bench, devices = noisy_twin
    camera = bench.devices.camera
    real_capture, taken = camera.capture, []

    def capture(*args, **kwargs):
        taken.append(1)
        if len(taken) > 40:
            raise DeviceError(camera.name, "capture timed out (test)")
        return real_capture(*args, **kwargs)

    monkeypatch.setattr(camera, "capture", capture)
    with pytest.raises(Exception, match="timed out"):
        RE(lut_sweep(devices, "encoding_slm"))
    assert docs.exit_status() == "fail" and 20 < len(docs.events()) <= 40
    assert laser_off(bench) and no_worker_left()


class PauseAt:
    """Asks the RunEngine to pause (from a thread of its own) while the camera's ``at``-th capture is
    in flight; the capture is held until the request was made (bounded)."""

    def __init__(self, RE, camera, monkeypatch, at: int):
        self.captures, self.requested = 0, threading.Event()
        real = camera.capture

        def capture(*args, **kwargs):
            self.captures += 1
            if self.captures == at:
                threading.Thread(target=self._pause, args=(RE,), daemon=True).start()
                self.requested.wait(10.0)
            return real(*args, **kwargs)

        monkeypatch.setattr(camera, "capture", capture)

    def _pause(self, RE) -> None:
        RE.request_pause()
        self.requested.set()


def test_a_pause_mid_sweep_then_resume_retakes_the_frame_and_the_fit_still_holds(RE, noisy_twin, docs, monkeypatch):
    from bluesky.utils import RunEngineInterrupted

    bench, devices = noisy_twin
    pause = PauseAt(RE, bench.devices.camera, monkeypatch, at=60)
    out = {}

    def keep():
        out["m"] = yield from lut_sweep(devices, "encoding_slm")

    with pytest.raises(RunEngineInterrupted):
        RE(keep())
    assert pause.requested.is_set() and RE.state == "paused"
    assert laser_off(bench)
    RE.resume()
    assert docs.exit_status() == "success"
    m = out["m"]
    assert rms_error_0_2pi(m.phase_rad, bench.devices.truths.response_rad["encoding_slm"]) < 0.03
    events = docs.events()
    assert len(events) == m.counters["frames_captured"] == len(docs.frames())   # rows of the file = events
    assert pause.captures == len(events) + 1                                      # the interrupted one taken again
    assert laser_off(bench) and no_worker_left()


def test_a_pause_mid_sweep_then_abort_leaves_the_laser_off_and_ends_the_calibration(RE, noisy_twin, docs,
                                                                                    monkeypatch):
    from bluesky.utils import RunEngineInterrupted

    bench, devices = noisy_twin
    PauseAt(RE, bench.devices.camera, monkeypatch, at=30)
    with pytest.raises(RunEngineInterrupted):
        RE(lut_sweep(devices, "decoding_slm"))
    assert RE.state == "paused" and laser_off(bench)
    RE.abort()
    assert RE.state == "idle" and docs.exit_status() == "abort"
    assert docs.events("fit") == [] and 20 < len(docs.events()) < 30
    assert laser_off(bench) and no_worker_left()


def test_every_driver_call_of_a_calibration_plan_runs_on_the_device_thread(RE, planted_twin, docs):
    """The calibration computes on a worker thread of its own; the devices are driven from the plan only."""
    bench, devices = planted_twin
    seen: list[tuple[str, int]] = []
    drivers = bench.devices
    methods = ((drivers.laser, "_set_emission_hw"), (drivers.laser, "_get_emission_hw"),
               (drivers.laser, "_set_power_hw"), (drivers.camera, "_get_image_hw"),
               (drivers.camera, "_set_exposure_hw"), (drivers.encoding_slm, "_set_phase_hw"),
               (drivers.decoding_slm, "_set_phase_hw"))
    for obj, method in methods:
        real = getattr(obj, method)

        def wrapper(*args, _real=real, _method=method, **kwargs):
            seen.append((_method, threading.get_ident()))
            return _real(*args, **kwargs)
        setattr(obj, method, wrapper)
    run(RE, alignment(devices))
    assert docs.exit_status() == "success"
    assert {m for m, _ in seen} == {m for _, m in methods}
    assert {ident for _, ident in seen} == {devices.thread.ident}
