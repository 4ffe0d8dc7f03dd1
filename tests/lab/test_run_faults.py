"""The run loop under faults on the twin: stop, resume, laser faults, lost links, camera
timeouts, a full disk. Every case: no frame lost or doubled, the laser off, the reason recorded."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from optgen.drivers.errors import CaptureTimeout, LaserSafetyError
from optgen.drivers.stop import StopControl
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import parse_bench
from optgen.lab.run.capture_loop import RunFault
from optgen.lab.run.decoder import load_decoder_phase
from optgen.lab.run.folder import RunFolderError
from optgen.lab.run.generate import run_generation
from optgen.lab.run.laser_guard import LaserFault
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder
from optgen.lab.runfile.layout import DiskFullError
from optgen.lab.runfile.reader import read_run_status
from tests.conftest import small_bench_text


def seeds_for(cfg, random_seed=0):
    n = cfg.geometry.seed_superpixels
    return EncoderSeedSource(PlaceholderEncoder(n * n), n, random_seed)


def run(bench, out, count, **kwargs):
    phase, decoder_id = load_decoder_phase("flat", bench.config.geometry.decoder_px)
    return run_generation(bench, seeds_for(bench.config), phase, decoder_id, out, count, **kwargs)


def stored(folder):
    with h5py.File(folder / "run.h5", "r") as f:
        written = f["meta/written"][:]
        return (written, f["seed/index"][:], f["frames"][...], f["seed/phase"][...], f.attrs["status"],
                f.attrs["stop_reason"])


def assert_each_frame_once_and_its_own_seed(folder, count):
    written, index, frames, seed_phase, status, _ = stored(folder)
    assert written.all() and status == "complete"
    assert list(index) == list(range(count))                     # each seed exactly once, at its place
    cfg = parse_bench(small_bench_text(), "check")
    expected = np.stack([seeds_for(cfg).seed(i).phase for i in range(count)])
    np.testing.assert_array_equal(seed_phase, expected)
    return frames


@pytest.mark.parametrize("sync", ["pipelined", "wait", "trigger"])
def test_each_sync_mode_stores_every_frame_once_with_its_own_light(sync, tmp_path):
    counts = {}
    for name, mode in (("ref", "wait"), ("run", sync)):
        cfg = parse_bench(small_bench_text(), name)
        with build_bench(cfg) as bench:
            result = run(bench, tmp_path / name, 6, sync=mode)
            assert result.status == "complete" and bench.world.laser_emission is False
            counts[name] = stored(tmp_path / name)[2].astype(np.float64)
    assert_each_frame_once_and_its_own_seed(tmp_path / "run", 6)
    ref, got = counts["ref"], counts["run"]
    for i in range(6):
        r = [np.corrcoef(got[i].ravel(), ref[j].ravel())[0, 1] for j in range(6)]
        assert int(np.argmax(r)) == i and r[i] > 0.95


def test_a_stop_request_finishes_the_frames_in_flight_then_resume_completes(small_bench, tmp_path):
    stop = StopControl()

    def progress(done, total):
        if done == 3:
            stop.request("interrupted (Ctrl-C): stopped after the frames in flight")

    result = run(small_bench, tmp_path / "run", 12, progress=progress, stop=stop)
    assert result.status == "stopped" and "Ctrl-C" in result.summary["stop_reason"]
    assert small_bench.world.laser_emission is False
    written, index, *_ = stored(tmp_path / "run")
    assert 3 <= written.sum() < 12 and list(np.flatnonzero(written)) == list(range(int(written.sum())))
    status = read_run_status(tmp_path / "run" / "run.h5")
    assert status["status"] == "stopped" and status["first_missing"] == int(written.sum())

    again = run(small_bench, tmp_path / "run", 12, resume=True)
    assert again.status == "complete" and again.summary["frames_this_session"] == 12 - int(written.sum())
    assert_each_frame_once_and_its_own_seed(tmp_path / "run", 12)
    log = (tmp_path / "run" / "run.log").read_text()
    assert "resuming" in log and "complete" in log
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:   # the resumed session's own dark frame
        assert "dark" in f and "dark_1" in f


def test_a_stop_during_set_up_never_turns_the_light_on(small_bench, tmp_path, mocker):
    stop = StopControl()
    stop.request("interrupted (Ctrl-C) during set-up")
    emission = mocker.spy(small_bench.laser, "set_emission")
    result = run(small_bench, tmp_path / "run", 4, stop=stop)
    assert result.status == "stopped" and result.frames_written == 0
    assert all(call.args[0] is False for call in emission.call_args_list)
    assert small_bench.world.laser_emission is False


def test_resume_refuses_a_finished_run_another_bench_and_another_count(small_bench, tmp_path):
    run(small_bench, tmp_path / "run", 3)
    before = (tmp_path / "run" / "run.h5").read_bytes()
    with pytest.raises(Exception, match="nothing to resume"):
        run(small_bench, tmp_path / "run", 3, resume=True)
    other = parse_bench(small_bench_text({("laser", "power_mw"): "0.5"}), "another bench")
    with build_bench(other) as bench:
        stop = StopControl()
        stop.request("test stop")
        run(bench, tmp_path / "other", 4, stop=stop)            # stopped before any frame: resumable
    with pytest.raises(RunFolderError, match="bench file"):
        run(small_bench, tmp_path / "other", 4, resume=True)
    with pytest.raises(RunFolderError, match="frame count"):
        with build_bench(other) as bench:
            run(bench, tmp_path / "other", 5, resume=True)
    assert (tmp_path / "run" / "run.h5").read_bytes() == before
    with pytest.raises(RunFolderError, match="no run.h5"):
        run(small_bench, tmp_path / "nothing", 3, resume=True)


def test_a_laser_fault_stops_the_run_with_the_reason_and_keeps_only_lit_frames(small_bench, tmp_path):
    def progress(done, total):
        if done == 2:
            small_bench.laser.trip("interlock open")

    with pytest.raises(LaserFault, match="interlock open"):
        run(small_bench, tmp_path / "run", 10, progress=progress)
    assert small_bench.world.laser_emission is False
    written, _, frames, _, status, reason = stored(tmp_path / "run")
    assert status == "failed" and "interlock open" in reason
    dark = frames[~written].max() if (~written).any() else 0
    lit = frames[written]
    assert written.sum() >= 2 and all(f.mean() > 150 for f in lit)          # no dark frame kept as a frame
    assert dark == 0                                                        # unwritten slots hold nothing
    events = read_run_status(tmp_path / "run" / "run.h5")["events"]
    assert any("interlock open" in str(e) for e in events)

    small_bench.world.laser_faults.clear()                                  # the operator fixed it
    assert run(small_bench, tmp_path / "run", 10, resume=True).status == "complete"
    assert_each_frame_once_and_its_own_seed(tmp_path / "run", 10)


def test_a_lost_serial_link_is_reconnected_once_and_the_run_goes_on(small_bench, tmp_path):
    def progress(done, total):
        if done == 2:
            small_bench.laser.link_down = True

    result = run(small_bench, tmp_path / "run", 6, progress=progress)
    assert result.status == "complete" and small_bench.laser.reconnects == 1
    assert small_bench.world.laser_emission is False
    events = read_run_status(tmp_path / "run" / "run.h5")["events"]
    assert any("reconnected" in str(e) for e in events)


def test_a_link_that_stays_lost_stops_the_run_and_says_the_laser_could_not_be_switched_off(small_bench, tmp_path):
    def progress(done, total):
        if done == 2:
            small_bench.laser.link_down = small_bench.laser.link_dead = True

    with pytest.raises((LaserFault, LaserSafetyError)):
        run(small_bench, tmp_path / "run", 6, progress=progress)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "reconnecting failed" in summary["stop_reason"]
    assert summary["laser_verified_off"] is False          # honest: the software could not switch it off
    small_bench.laser.link_dead = small_bench.laser.link_down = False
    small_bench.laser.safe_off()


def test_a_camera_timeout_is_retried_and_a_dead_camera_stops_after_the_retries(small_bench, tmp_path, mocker):
    real = small_bench.camera._get_image_hw
    calls = {"n": 0}

    def flaky(timeout_s):
        calls["n"] += 1
        if calls["n"] == 4:
            raise CaptureTimeout(small_bench.camera.name, "no frame within 1 s")
        return real(timeout_s)

    mocker.patch.object(small_bench.camera, "_get_image_hw", side_effect=flaky)
    result = run(small_bench, tmp_path / "run", 6)
    assert result.status == "complete" and result.summary["capture_timeouts"] == 1
    assert_each_frame_once_and_its_own_seed(tmp_path / "run", 6)

    calls["n"] = 0

    def dead_after_two(timeout_s):
        calls["n"] += 1
        if calls["n"] > 3:                                 # dark frame + 2 frames
            raise CaptureTimeout(small_bench.camera.name, "no frame within 1 s")
        return real(timeout_s)

    mocker.patch.object(small_bench.camera, "_get_image_hw", side_effect=dead_after_two)
    with pytest.raises(RunFault, match="attempts"):
        run(small_bench, tmp_path / "run2", 6, max_retries=2)
    written, *_ , status, reason = stored(tmp_path / "run2")
    assert status == "failed" and int(written.sum()) == 2 and small_bench.world.laser_emission is False


def test_a_full_disk_stops_the_run_keeping_every_stored_frame(small_bench, tmp_path, mocker):
    from optgen.lab.runfile import storage

    real_write = storage.RunWriter.write
    calls = {"n": 0}

    def write(self, index, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise DiskFullError(f"{self.path}: the disk is full (test)")
        return real_write(self, index, *args, **kwargs)

    mocker.patch.object(storage.RunWriter, "write", write)
    with pytest.raises(DiskFullError):
        run(small_bench, tmp_path / "run", 8)
    assert small_bench.world.laser_emission is False
    written, index, frames, _, status, reason = stored(tmp_path / "run")
    assert status == "failed" and "disk is full" in reason and int(written.sum()) == 3
    assert all(frames[i].mean() > 150 for i in np.flatnonzero(written))


@pytest.mark.parametrize("sync", ["pipelined", "trigger"])
@pytest.mark.parametrize("stage", __import__("optgen.lab.run.faults", fromlist=["STAGES"]).STAGES)
def test_reduced_fault_matrix_a_fault_at_each_stage_then_resume_loses_and_doubles_nothing(stage, sync, tmp_path):
    from optgen.lab.run import faults

    count = 10
    cfg = parse_bench(small_bench_text({("twin.camera", "trigger_overlap"): '"readout"'}), "fault matrix")
    with build_bench(cfg) as bench:
        faults.plant(bench, stage, at=4)
        try:
            run(bench, tmp_path / "run", count, sync=sync)
        except Exception as exc:        # upload, store and laser faults stop the run, with the reason recorded
            assert stage in ("upload", "store", "laser"), exc
            assert read_run_status(tmp_path / "run" / "run.h5")["stop_reason"]
        finally:
            faults.clear(bench)
        assert bench.world.laser_emission is False
    for _ in range(2):
        if read_run_status(tmp_path / "run" / "run.h5")["status"] == "complete":
            break
        with build_bench(cfg) as bench:
            run(bench, tmp_path / "run", count, resume=True, sync=sync)
            assert bench.world.laser_emission is False
    assert_each_frame_once_and_its_own_seed(tmp_path / "run", count)
    with build_bench(cfg) as bench:                     # the same seeds without a fault
        run(bench, tmp_path / "ref", count)
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f, h5py.File(tmp_path / "ref" / "run.h5", "r") as g:
        got, ref = f["images"][...].reshape(count, -1), g["images"][...].reshape(count, -1)
    for i in range(count):                              # each frame holds its own seed's light
        r = [np.corrcoef(got[i], ref[j])[0, 1] for j in range(count)]
        assert int(np.argmax(r)) == i and r[i] > 0.95


def test_a_ctrl_c_during_the_cleanup_does_not_cut_it_short(small_bench, tmp_path, mocker):
    """Ctrl-C pressed again while the run is ending: laser off, run file closed, summary written."""
    import signal as sig

    stop = StopControl()
    real_off = small_bench.laser.safe_off

    def off_with_a_press():
        sig.raise_signal(sig.SIGINT)                   # as if the user pressed Ctrl-C once more now
        real_off()

    mocker.patch.object(small_bench.laser, "safe_off", side_effect=off_with_a_press)

    def progress(done, total):
        if done == 2:
            stop.request("interrupted (Ctrl-C): stopped after the frames in flight")

    result = run(small_bench, tmp_path / "run", 8, progress=progress, stop=stop)
    assert result.status == "stopped" and small_bench.world.laser_emission is False
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["laser_verified_off"] is True and summary["status"] == "stopped"
    assert read_run_status(tmp_path / "run" / "run.h5")["status"] == "stopped"


def test_a_refused_resume_leaves_the_run_file_as_it_was(small_bench, tmp_path):
    stop = StopControl()

    def progress(done, total):
        if done == 2:
            stop.request("test stop")

    run(small_bench, tmp_path / "run", 8, progress=progress, stop=stop)
    before = (tmp_path / "run" / "run.h5").read_bytes()
    other = parse_bench(small_bench_text({("laser", "power_mw"): "0.5"}), "another bench")
    with build_bench(other) as bench, pytest.raises(RunFolderError, match="bench file"):
        run(bench, tmp_path / "run", 8, resume=True)
    assert (tmp_path / "run" / "run.h5").read_bytes() == before
    assert read_run_status(tmp_path / "run" / "run.h5")["status"] == "stopped"


def test_trigger_sync_on_a_camera_without_a_trigger_input_is_refused_before_any_device(small_bench, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.delattr(type(small_bench.camera), "trigger_from")
    with pytest.raises(Exception, match="trigger input"):
        run(small_bench, tmp_path / "run", 3, sync="trigger")
    assert not (tmp_path / "run").exists() and small_bench.world.laser_emission is False
    with pytest.raises(ValueError, match="sync"):
        run(small_bench, tmp_path / "run", 3, sync="fast")


def test_a_hung_display_driver_stops_the_run_with_the_laser_off(tmp_path, monkeypatch):
    import threading

    from optgen.lab.run import capture_parts

    monkeypatch.setattr(capture_parts, "THREAD_TIMEOUT_S", 0.3)
    cfg = parse_bench(small_bench_text({("run", "timing"): '"wall"'}), "wall")
    release = threading.Event()
    with build_bench(cfg) as bench:
        real = bench.encoding_slm._set_phase_hw
        calls = {"n": 0}

        def hangs_on_the_third(display):
            calls["n"] += 1
            if calls["n"] == 3:
                release.wait(10.0)
            return real(display)

        monkeypatch.setattr(bench.encoding_slm, "_set_phase_hw", hangs_on_the_third)
        try:
            with pytest.raises(RunFault, match="did not return"):
                run(bench, tmp_path / "run", 10)
            assert bench.world.laser_emission is False
        finally:
            release.set()
    assert read_run_status(tmp_path / "run" / "run.h5")["stop_reason"]


def test_a_storage_worker_that_takes_no_frame_stops_the_loop_instead_of_waiting_forever():
    import threading

    from optgen.lab.run.frame_store import CapturedFrame, StorageStalled, StoreWorker

    release = threading.Event()

    class HungGuard:
        def confirm(self, t_s):
            release.wait(10.0)                      # a laser query or a disk that never answers
            return 0.0

    worker = StoreWorker(writer=None, registration=None, guard=HungGuard(), saturation_dn=4095, dark_level_dn=0,
                         depth=1, stall_s=0.2)
    item = CapturedFrame(0, np.zeros((2, 2), np.uint16), np.zeros((1, 1)), np.zeros((1, 1)), 0, "0", 0.0, 0.0, 0.0)
    try:
        with pytest.raises(StorageStalled, match="storage stalled: one frame has not been written"):
            for _ in range(3):
                worker.put(item)
        assert worker.stalled
        with pytest.raises(StorageStalled):        # and nothing waits on it again
            worker.finish()
    finally:
        release.set()
