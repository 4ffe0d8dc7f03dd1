"""lab.triggered_loop: the SLM's frame-shown output triggers the camera; the loop uploads ahead
at the refresh edges that keep every exposure clean, and files each frame under the pattern
whose trigger started it (a missed trigger, a left-over frame)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from optgen.drivers.common.schedule import TriggeredSchedule
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import parse_bench
from optgen.lab.run.capture_parts import FrameHandler, RunFault
from tests.conftest import small_bench_text
from tests.lab.test_run_faults import assert_each_frame_once_and_its_own_seed, run, stored

COUNT = 8


def bench_text(overlap: str = "readout", refresh_hz: float = 500.0) -> str:
    return small_bench_text({("encoding_slm", "refresh_hz"): str(refresh_hz),
                             ("decoding_slm", "refresh_hz"): str(refresh_hz),
                             ("camera", "readout_ms"): "9.9", ("twin.camera", "trigger_overlap"): f'"{overlap}"'})


def reference_images(tmp_path, text: str) -> np.ndarray:
    """The same seeds shown one at a time (sync 'wait'): what each frame must hold."""
    with build_bench(parse_bench(text, "reference")) as bench:
        run(bench, tmp_path / "ref", COUNT, sync="wait")
    with h5py.File(tmp_path / "ref" / "run.h5", "r") as f:
        return f["images"][...].reshape(COUNT, -1)


def assert_each_frame_holds_its_own_seed(tmp_path, text: str) -> None:
    assert_each_frame_once_and_its_own_seed(tmp_path / "run", COUNT)
    ref = reference_images(tmp_path, text)
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        got = f["images"][...].reshape(COUNT, -1)
    for i in range(COUNT):
        r = [np.corrcoef(got[i], ref[j])[0, 1] for j in range(COUNT)]
        assert int(np.argmax(r)) == i and r[i] > 0.95, (i, r)


@pytest.mark.parametrize("overlap", ["readout", "off"])
def test_triggered_frames_follow_each_other_at_the_rate_the_hardware_allows(overlap, tmp_path, monkeypatch):
    text = bench_text(overlap)
    exposure_ends = []
    real_hand_on = FrameHandler.hand_on

    def hand_on(self, p, frame, end_s):
        exposure_ends.append(end_s)          # bench clock
        return real_hand_on(self, p, frame, end_s)

    monkeypatch.setattr(FrameHandler, "hand_on", hand_on)
    with build_bench(parse_bench(text, "trigger")) as bench:
        result = run(bench, tmp_path / "run", COUNT, sync="trigger")
        slm, camera = bench.encoding_slm, bench.camera
        period = TriggeredSchedule(slm.timing, camera.timing, overlap=overlap == "readout").period_s
        one_at_a_time = slm.timing.latency_s + slm.timing.settle_s + camera.timing.frame_s
        assert result.status == "complete" and result.summary["retakes"] == 0
        assert bench.world.laser_emission is False and camera.trigger_mode == "software"   # trigger unwired
    # on the virtual clock the exposures come exactly one period apart: 12 ms at 500 Hz with a
    # camera that overlaps its readout (22 ms without), against 24 ms one pattern at a time
    np.testing.assert_allclose(np.diff(exposure_ends), period, atol=1e-9)
    assert period < one_at_a_time
    assert_each_frame_holds_its_own_seed(tmp_path, text)


def test_a_pattern_whose_trigger_the_camera_missed_is_shown_again(tmp_path, monkeypatch):
    text = bench_text()
    with build_bench(parse_bench(text, "missed")) as bench:
        camera = bench.camera
        real, edges = camera.trigger_input, []

        def loses_the_fourth(t_s):
            edges.append(t_s)
            if len(edges) != 4:
                real(t_s)

        monkeypatch.setattr(camera, "trigger_input", loses_the_fourth)
        result = run(bench, tmp_path / "run", COUNT, sync="trigger")
        assert result.status == "complete" and result.summary["retakes"] == 1
    assert_each_frame_holds_its_own_seed(tmp_path, text)


def test_a_frame_left_over_from_a_camera_timeout_is_dropped_not_filed(tmp_path, monkeypatch):
    from optgen.lab.run import faults, triggered_loop

    text = bench_text()
    with build_bench(parse_bench(text, "timeout")) as bench:
        faults.plant(bench, "capture", at=3)        # its trigger's frame is still in the camera afterwards
        try:
            result = run(bench, tmp_path / "run", COUNT, sync="trigger")
        finally:
            faults.clear(bench)
        assert result.status == "complete" and result.summary["capture_timeouts"] == 1
        # left-over frames are dropped up to a limit (an endless stream of them stops the run)
        monkeypatch.setattr(triggered_loop, "STALE_FRAMES_MAX", 0)
        faults.plant(bench, "capture", at=3)
        try:
            with pytest.raises(RunFault, match="triggers no pattern was waiting for"):
                run(bench, tmp_path / "run2", COUNT, sync="trigger")
        finally:
            faults.clear(bench)
        assert bench.world.laser_emission is False
    assert_each_frame_holds_its_own_seed(tmp_path, text)


def test_triggers_that_match_no_pattern_stop_the_run_after_the_retries_with_the_laser_off(tmp_path, monkeypatch):
    text = bench_text()
    with build_bench(parse_bench(text, "miswired")) as bench:
        camera, frame_s = bench.camera, bench.encoding_slm.timing.frame_s
        real = camera.trigger_input
        # the trigger input wired to another output: edges 0.6 refresh frames after each pattern is shown
        monkeypatch.setattr(camera, "trigger_input", lambda t_s: real(t_s + 0.6 * frame_s))
        with pytest.raises(RunFault, match="missed its trigger"):
            run(bench, tmp_path / "run", COUNT, sync="trigger")
        assert bench.world.laser_emission is False
    assert "missed its trigger" in stored(tmp_path / "run")[5]


def test_a_camera_that_cannot_be_armed_is_refused_before_the_run_folder_or_any_light(tmp_path, monkeypatch):
    from optgen.drivers.errors import DeviceError

    with build_bench(parse_bench(bench_text(), "unarmed")) as bench:
        emissions = []
        monkeypatch.setattr(bench.laser, "set_emission", lambda on: emissions.append(on), raising=False)

        def check_trigger_from(slm, delay_s):
            assert slm is bench.encoding_slm and delay_s == slm.timing.settle_s
            raise DeviceError("camera", "a hardware-triggered run needs trigger = 'hardware'")

        monkeypatch.setattr(bench.camera, "check_trigger_from", check_trigger_from, raising=False)
        with pytest.raises(DeviceError, match="needs trigger = 'hardware'"):
            run(bench, tmp_path / "run", COUNT, sync="trigger")
        assert emissions == [] and bench.world.laser_emission is False
    assert not (tmp_path / "run").exists()
