"""The run file: round trip, kill -9 at any moment, resume, refusals, a full disk, the run log."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import h5py
import numpy as np
import pytest

from optgen.lab.runfile import storage
from optgen.lab.runfile.layout import FORMAT_VERSION, DiskFullError, RunFileError
from optgen.lab.runfile.reader import read_run_attrs, read_run_status
from optgen.lab.runfile.storage import RunWriter

REPO = Path(__file__).resolve().parents[2]
SHAPE = (1080, 1920)
Usage = namedtuple("Usage", "total used free")


def meta(i: int) -> dict:
    return {"timestamp_s": 1000.0 + i, "exposure_s": 1e-3, "laser_power_w": 2e-3, "saturated_pixels": i}


def put(writer: RunWriter, i: int, shape=SHAPE) -> None:
    """Frame ``i``, every part of it filled with values that name it."""
    writer.write(i, np.full(shape, i + 1, np.uint16), np.full((4, 4), i, np.float32), np.full((3, 3), i, np.float32),
                 np.full((3, 3), i, np.uint16), i, f"seed/rs0/i{i}", meta(i))


def new_writer(path: Path, count: int, shape=SHAPE, **kwargs) -> RunWriter:
    return RunWriter(path, count, shape, (4, 4), (3, 3),
                     {"bench_file": "[laser]\n", "count": count, "devices": {"camera": {"serial": "7"}}}, **kwargs)


def assert_frames_intact(path: Path, shape=SHAPE) -> np.ndarray:
    """Every frame marked written holds exactly what was written for it; returns the marks."""
    with h5py.File(path, "r", locking=False) as f:
        marks = f["meta/written"][:]
        for i in np.flatnonzero(marks):
            np.testing.assert_array_equal(f["frames"][i], np.full(shape, i + 1, np.uint16))
            np.testing.assert_array_equal(f["images"][i], np.full((4, 4), i, np.float32))
            assert f["seed/index"][i] == i and f["seed/id"].asstr()[i] == f"seed/rs0/i{i}"
            assert f["meta/saturated_pixels"][i] == i
    return marks


def test_a_run_file_round_trips_through_plain_h5py(tmp_path):
    path = tmp_path / "run.h5"
    writer = new_writer(path, 4, (8, 6))
    writer.write_dark(np.full((8, 6), 3))
    writer.write_decoder_phase(np.ones((5, 5)))
    for i in (0, 2, 1):
        put(writer, i, (8, 6))
    assert list(writer.missing()) == [3] and writer.n_written == 3
    writer.close("stopped", "test", {"summary": {"frames": 3}})
    writer.close("stopped")                                   # a second close does nothing
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "stopped" and f.attrs["stop_reason"] == "test"
        assert f.attrs["frames_written"] == 3 and f.attrs["format_version"] == FORMAT_VERSION
        assert list(f["meta/written"][:]) == [True, True, True, False]
        assert f["frames"].chunks == (1, 8, 6) and f["frames"].compression is None
        assert f["frames"][2].dtype == np.uint16 and (f["frames"][2] == 3).all()
        assert list(f["seed/id"].asstr()[:3]) == ["seed/rs0/i0", "seed/rs0/i1", "seed/rs0/i2"]
        assert list(f["meta/timestamp_s"][:3]) == [1000.0, 1001.0, 1002.0]
        assert (f["dark"][:] == 3).all() and f["decoder_phase"].shape == (5, 5)
    assert_frames_intact(path, (8, 6))
    attrs = read_run_attrs(path)
    assert attrs["devices"] == {"camera": {"serial": "7"}} and attrs["summary"] == {"frames": 3}
    assert attrs["bench_file"] == "[laser]\n" and attrs["count"] == 4


def test_every_dataset_of_a_run_file_says_its_units_and_what_it_holds(tmp_path):
    path = tmp_path / "run.h5"
    writer = new_writer(path, 2, (8, 6))
    writer.write_dark(np.full((8, 6), 3))
    writer.write_dark(np.full((8, 6), 4))                     # a resumed run's second dark: dark_1
    writer.write_decoder_phase(np.ones((5, 5)))
    put(writer, 0, (8, 6))
    writer.close("stopped", "test")
    datasets = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: datasets.append(name) if isinstance(item, h5py.Dataset) else None)
        for name in datasets:
            units, description = f[name].attrs.get("units"), f[name].attrs.get("description")
            assert isinstance(units, str) and units and isinstance(description, str) and len(description) > 10, name
        assert f["seed/phase"].attrs["units"] == "rad" and f["meta/laser_power_w"].attrs["units"] == "W"
        assert f["dark_1"].attrs["description"] == f["dark"].attrs["description"]
    assert {"frames", "images", "dark", "dark_1", "decoder_phase", "meta/exposure_s", "log/events"} <= set(datasets)


def test_storing_a_frame_changes_no_hdf5_metadata(tmp_path):
    """The basis of the kill -9 safety: after creation only preallocated raw bytes change."""
    path = tmp_path / "run.h5"
    writer = new_writer(path, 5, (16, 8))
    spans = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            if obj.chunks:
                spans.extend((c.byte_offset, c.size) for c in map(obj.id.get_chunk_info, range(obj.id.get_num_chunks())))
            else:
                spans.append((obj.id.get_offset(), obj.id.get_storage_size()))

    writer.file.visititems(visit)
    before = np.frombuffer(path.read_bytes(), np.uint8)
    for i in range(3):
        put(writer, i, (16, 8))
    writer.record_event("retry", "camera timeout")
    writer.mark_stopped("stopped", "test")
    after = np.frombuffer(path.read_bytes(), np.uint8)
    metadata = np.ones(before.size, bool)
    for offset, size in spans:
        metadata[offset:offset + size] = False
    assert after.size == before.size and metadata.sum() > 1000
    assert np.array_equal(before[metadata], after[metadata])
    assert not np.array_equal(before[~metadata], after[~metadata])
    writer.close("stopped")


CHILD = r"""
import os, signal, sys, time
import numpy as np
from optgen.lab.runfile.storage import RunWriter
path, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class KillOn:
    '''Stands in for a dataset's row writer: SIGKILLs this process when row ``at`` is written.'''
    def __init__(self, rows, at): self.rows, self.at = rows, at
    def put(self, i, v):
        if i == self.at: os.kill(os.getpid(), signal.SIGKILL)
        self.rows.put(i, v)

w = RunWriter(path, count, (1080, 1920), (4, 4), (3, 3), {"count": count})
print("created", flush=True)
if mode.startswith("self:"):                       # self:<dataset>:<frame>
    _, name, at = mode.split(":")
    w._rows[name] = KillOn(w._rows[name], int(at))
for i in range(count):
    if mode == "mark-then-die" and i == 3:
        w.mark_stopped("stopped", "operator pressed stop")
        os.kill(os.getpid(), signal.SIGKILL)
    w.write(i, np.full((1080, 1920), i + 1, np.uint16), np.full((4, 4), i, np.float32),
            np.full((3, 3), i, np.float32), np.full((3, 3), i, np.uint16), i, f"seed/rs0/i{i}",
            {"timestamp_s": 1000.0 + i, "exposure_s": 1e-3, "laser_power_w": 2e-3, "saturated_pixels": i})
    print(i, flush=True)                           # after write() returned
    if mode == "hold" and i == 1:
        time.sleep(60)                             # the parent looks at the file, then kills
    if mode == "camera":
        time.sleep(0.002)                          # the next frame comes 2 ms later
w.close("complete")
print("closed", flush=True)
"""


def start_child(path: Path, count: int, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(count), mode], stdout=subprocess.PIPE,
                            text=True)


def check_after_kill(path: Path, returned: list[int], count: int) -> dict:
    """The killed run: status readable, returned frames kept, marked frames exact; resume completes it."""
    status = read_run_status(path)
    assert status["frames_requested"] == count
    marks = assert_frames_intact(path)
    assert all(marks[i] for i in returned), f"write() returned for {returned}, marked {np.flatnonzero(marks)}"
    assert status["frames_written"] == marks.sum()
    if status["status"] == "complete":
        return status
    assert status["status"] == "killed or still running"
    assert status["first_missing"] == int(np.flatnonzero(~marks)[0])
    writer = RunWriter.resume(path)
    assert list(writer.missing()) == list(np.flatnonzero(~marks))
    for i in writer.missing():
        put(writer, int(i))
    writer.close("complete")
    final = read_run_status(path)
    assert final["status"] == "complete" and final["frames_written"] == count and final["first_missing"] is None
    assert assert_frames_intact(path).all()
    assert [e.kind for e in final["events"]].count("resumed") == 1
    return status


def test_kill_9_at_random_moments_keeps_every_returned_frame_and_resume_completes_the_run(tmp_path):
    rng = random.Random(6)
    killed_mid_run = 0
    for trial in range(4):
        path, count = tmp_path / f"run{trial}.h5", 12
        child = start_child(path, count, "camera")
        assert child.stdout.readline().strip() == "created"
        lines = [child.stdout.readline() for _ in range(rng.randrange(8))]
        time.sleep(rng.uniform(0, 0.004))         # a random moment in the next write (1-3 ms) or the 2 ms wait
        child.send_signal(signal.SIGKILL)
        child.wait()
        returned = [int(x) for x in "".join(lines).split() + child.stdout.read().split() if x.isdigit()]
        status = check_after_kill(path, returned, count)
        killed_mid_run += status["status"] != "complete"
    assert killed_mid_run >= 3


def test_a_run_being_written_reads_but_cannot_be_resumed_twice(tmp_path):
    path = tmp_path / "run.h5"
    child = start_child(path, 6, "hold")
    try:
        assert [child.stdout.readline().strip() for _ in range(3)] == ["created", "0", "1"]
        status = read_run_status(path)              # the writer holds HDF5's lock: readers do not take it
        assert status["status"] == "killed or still running" and status["frames_written"] == 2
        assert read_run_attrs(path)["count"] == 6
        with pytest.raises(RunFileError, match="open for writing in another process"):
            RunWriter.resume(path)
    finally:
        child.kill()
        child.wait()
    check_after_kill(path, [0, 1], 6)


@pytest.mark.parametrize("dataset", ["images", "meta/written"])
def test_kill_9_inside_write_leaves_the_frame_unmarked(tmp_path, dataset):
    """Killed after the frame's pixels (images) or after all its data (meta/written) reached the file."""
    path = tmp_path / "run.h5"
    child = start_child(path, 6, f"self:{dataset}:2")
    out = child.communicate()[0].split()
    assert child.returncode == -signal.SIGKILL and out == ["created", "0", "1"]
    with h5py.File(path, "r", locking=False) as f:
        assert list(f["meta/written"][:]) == [True, True, False, False, False, False]
        assert (f["frames"][2] == 3).all()         # the data is there, but not marked: it does not count
    status = check_after_kill(path, [0, 1], 6)
    assert status["frames_written"] == 2 and status["first_missing"] == 2


def test_a_run_that_recorded_why_it_stops_and_then_died_says_so(tmp_path):
    path = tmp_path / "run.h5"
    child = start_child(path, 6, "mark-then-die")
    child.communicate()
    status = read_run_status(path)
    assert status["status"] == "killed or still running"
    assert status["stop_reason"] == "stopped: operator pressed stop"
    assert status["frames_written"] == 3 and status["last_write_utc"] and status["created_utc"]
    assert [e.kind for e in status["events"]] == ["created", "status"]


def test_an_interrupted_creation_never_leaves_a_run_h5(tmp_path, mocker):
    path = tmp_path / "run.h5"
    mocker.patch.object(RunWriter, "_reserve", side_effect=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        new_writer(path, 3)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "run.h5.part").write_bytes(b"\x89HDF\r\n")  # what a kill -9 during creation leaves
    with pytest.raises(RunFileError, match="creation that was interrupted"):
        RunWriter.resume(path)


def test_a_new_run_never_overwrites_a_file(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"precious")
    with pytest.raises(RunFileError, match="never overwrites"):
        new_writer(path, 3)
    assert path.read_bytes() == b"precious"


def _corrupt(path: Path, how: str) -> None:
    if how == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
    elif how == "garbage":
        path.write_bytes(os.urandom(4096))
    elif how == "format":
        with h5py.File(path, "r+") as f:
            f.attrs["format_version"] = 1
    elif how == "missing-dataset":
        with h5py.File(path, "r+") as f:
            del f["meta/written"]


@pytest.mark.parametrize("how, match", [
    ("complete", "the run is complete; nothing to resume"),
    ("truncated", "not a readable HDF5 run file .*truncated"),
    ("garbage", "not a readable HDF5 run file"),
    ("format", "format_version 1; this optgen reads format_version 2"),
    ("missing-dataset", "/meta/written is missing"),
    ("absent", "no such run file"),
])
def test_resume_refuses_with_the_reason(tmp_path, how, match):
    path = tmp_path / "run.h5"
    writer = new_writer(path, 3, (8, 6))
    for i in range(3 if how == "complete" else 1):
        put(writer, i, (8, 6))
    writer.close("complete" if how == "complete" else "failed", "camera lost")
    if how == "absent":
        path.unlink()
    else:
        _corrupt(path, how)
    with pytest.raises(RunFileError, match=match):
        RunWriter.resume(path)
    if how not in ("complete", "absent"):
        with pytest.raises(RunFileError, match=match):
            read_run_status(path)


def test_a_frame_is_written_once_also_across_a_resume(tmp_path):
    path = tmp_path / "run.h5"
    writer = new_writer(path, 3, (8, 6))
    put(writer, 1, (8, 6))
    with pytest.raises(ValueError, match="frame 1 is already stored"):
        put(writer, 1, (8, 6))
    writer.close("stopped", "Ctrl-C")
    writer = RunWriter.resume(path)
    assert writer.attrs["status"] == "stopped" and writer.n_written == 1 and list(writer.missing()) == [0, 2]
    with pytest.raises(ValueError, match="frame 1 is already stored"):
        put(writer, 1, (8, 6))
    with pytest.raises(ValueError, match="decoder phase differs"):
        writer.write_decoder_phase(np.ones((2, 2)))
        writer.write_decoder_phase(np.zeros((2, 2)))
    writer.close("stopped")
    assert assert_frames_intact(path, (8, 6)).sum() == 1


def test_a_disk_too_small_for_the_run_is_refused_before_the_file_is_made(tmp_path, mocker):
    mocker.patch.object(storage.shutil, "disk_usage", return_value=Usage(10**10, 10**10 - 10**8, 10**8))
    path = tmp_path / "run.h5"
    with pytest.raises(DiskFullError) as info:
        new_writer(path, 100)                      # 100 x 4.1 MB frames
    message = str(info.value)
    needed = 100 * (2 * 1080 * 1920 + 4 * 16 + 6 * 9 + 8 + 128 + 40 + 1) + 1124 * 513
    assert str(path) in message and f"{needed} bytes" in message and f"{10**8} bytes" in message
    assert list(tmp_path.iterdir()) == []


def test_a_failed_reservation_is_a_full_disk(tmp_path, mocker):
    mocker.patch.object(storage.os, "posix_fallocate", side_effect=OSError(errno.ENOSPC, "No space left"))
    with pytest.raises(DiskFullError, match="reserving .* bytes .* failed"):
        new_writer(tmp_path / "run.h5", 3)
    assert list(tmp_path.iterdir()) == []


def test_without_a_reservation_a_full_disk_stops_before_a_frame_is_lost(tmp_path, mocker):
    mocker.patch.object(storage.os, "posix_fallocate", side_effect=OSError(errno.EOPNOTSUPP, "not supported"))
    path = tmp_path / "run.h5"
    writer = new_writer(path, 4)
    assert writer.reserved is False
    put(writer, 0)
    put(writer, 1)
    mocker.patch.object(storage.shutil, "disk_usage", return_value=Usage(10**10, 10**10 - 10**6, 10**6))
    with pytest.raises(DiskFullError) as info:
        put(writer, 2)
    assert str(path) in str(info.value) and "the next frame" in str(info.value)
    assert f"{2 * 1080 * 1920} bytes" in str(info.value) and f"{10**6} bytes" in str(info.value)
    mocker.stopall()
    writer.close("failed", str(info.value))
    assert list(assert_frames_intact(path)) == [True, True, False, False]


def test_with_a_reservation_the_disk_is_not_queried_for_every_frame(tmp_path, mocker):
    writer = new_writer(tmp_path / "run.h5", 3, (8, 6))
    assert writer.reserved is True
    assert os.stat(writer.path).st_blocks * 512 >= writer.path.stat().st_size   # blocks on disk, not sparse
    usage = mocker.spy(storage.shutil, "disk_usage")
    for i in range(3):
        put(writer, i, (8, 6))
    assert usage.call_count == 0
    writer.close("complete")


def test_a_read_only_folder_is_refused_with_a_clear_error(tmp_path, mocker):
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
    else:   # root writes through permission bits, not into sysfs (the tests run as root in CI)
        folder = Path("/sys")
        mocker.patch.object(storage.shutil, "disk_usage", return_value=Usage(10**10, 0, 10**10))
    if os.access(folder, os.W_OK) and os.geteuid() != 0:
        pytest.skip(f"{folder} is writable here")
    with pytest.raises(RunFileError, match=rf"{folder}/run.h5: cannot create the run file .*Permission denied"):
        new_writer(folder / "run.h5", 2, (8, 6))
    assert not (folder / "run.h5").exists() and not (folder / "run.h5.part").exists()


def test_events_are_stored_durably_and_a_full_log_says_so(tmp_path, mocker):
    mocker.patch.object(RunWriter, "_event_rows", return_value=4)
    writer = new_writer(tmp_path / "run.h5", 2, (8, 6))
    assert writer.record_event("retry", "camera timeout on frame 0")
    assert writer.record_event("link", "laser reconnected " + "é" * 400)   # cut to 480 bytes, whole characters
    assert not writer.record_event("retry", "dropped")
    events = writer.events()
    assert [e.kind for e in events] == ["created", "retry", "link", "log"]
    assert "the run log is full" in events[-1].text and len(events[2].text.encode()) <= 480
    assert str(events[1]).endswith("retry: camera timeout on frame 0") and events[1].time_s > 0
    writer.close("stopped", "test")
    assert [str(e) for e in read_run_status(writer.path)["events"]] == [str(e) for e in events]


def test_an_event_waits_a_bounded_time_for_a_file_a_hung_write_holds(tmp_path):
    import threading

    from optgen.lab.runfile.storage import RunFileBusy

    writer = new_writer(tmp_path / "run.h5", 2, (8, 6))
    held, release = threading.Event(), threading.Event()

    def hung_write():
        with writer._lock:                       # as a write stuck in the kernel holds the file
            held.set()
            release.wait(30.0)

    thread = threading.Thread(target=hung_write)
    thread.start()
    try:
        assert held.wait(10.0)
        with pytest.raises(RunFileBusy, match="stayed busy for 0.2 s.*retry: frame 3"):
            writer.record_event("retry", "frame 3", timeout_s=0.2)
    finally:
        release.set()
        thread.join(10.0)
    assert writer.record_event("retry", "frame 3", timeout_s=0.2) is True     # free again: stored
    assert [e.kind for e in writer.events()][-1] == "retry"
    writer.close("complete")


HDF5_DENIED = ("Unable to synchronously create file (unable to open file: name = '{name}', errno = 13, "
               "error message = 'Permission denied', flags = 13, o_flags = 242)")


def test_a_run_file_that_cannot_be_created_says_why_in_words_not_hdf5s(tmp_path, monkeypatch, capsys):
    """A read-only output folder (as root every folder is writable, so HDF5's refusal is planted):
    the one-line error names the file and the reason, not HDF5's name/flags/o_flags text."""
    from optgen.lab.cli import main
    from optgen.lab.runfile import layout

    real = h5py.File

    def refuse(name, mode="r", *args, **kwargs):
        if mode == "w":
            raise OSError(HDF5_DENIED.format(name=name))
        return real(name, mode, *args, **kwargs)

    monkeypatch.setattr(layout.h5py, "File", refuse)
    code = main(["run", "--count", "2", "--out", str(tmp_path / "ro"), "--no-progress", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error" in line]
    assert "cannot create the run file (Permission denied)" in line and str(tmp_path / "ro") in line
    assert "o_flags" not in line and "errno" not in line


def test_a_run_file_that_cannot_be_opened_for_writing_says_permission_denied(tmp_path, monkeypatch):
    from optgen.lab.runfile import layout

    def refuse(name, mode="r", *args, **kwargs):
        raise OSError(HDF5_DENIED.format(name=name).replace("create", "open"))

    path = tmp_path / "run.h5"
    path.write_bytes(b"")
    monkeypatch.setattr(layout.h5py, "File", refuse)
    with pytest.raises(RunFileError, match="cannot open the run file for writing \\(permission denied"):
        layout.open_run_file(path, "r+")
