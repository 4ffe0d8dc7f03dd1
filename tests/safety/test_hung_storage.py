"""Storage that stops taking frames, and a disk that fills at the end: the laser goes off first,
the run says "storage stalled", the process ends by itself, and a summary is always left."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading
from dataclasses import replace

import pytest

from optgen.lab.run import generate as run_module
from optgen.lab.run.frame_store import StorageStalled
from optgen.lab.run.generate import run_generation
from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder
from optgen.lab.runfile import storage

from .conftest import ROOT, external_bench_text


def seeds_for(bench):
    n = bench.config.geometry.seed_superpixels
    return EncoderSeedSource(PlaceholderEncoder(n * n), n, 0)


def test_a_write_that_never_returns_turns_the_laser_off_first_and_leaves_a_summary(small_bench, tmp_path,
                                                                                   monkeypatch):
    release = threading.Event()
    real = storage.RunWriter.write
    order = []
    calls = {"n": 0}

    def hung_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            with self._lock:
                release.wait(60.0)
        return real(self, *args, **kwargs)

    real_off = small_bench.laser.safe_off

    def safe_off():
        order.append(("laser off", calls["n"]))
        real_off()

    monkeypatch.setattr(storage.RunWriter, "write", hung_write)
    monkeypatch.setattr(small_bench.laser, "safe_off", safe_off)
    small_bench.config = replace(small_bench.config, safety=replace(small_bench.config.safety, storage_stall_s=1.0))
    out = tmp_path / "run"
    try:
        with pytest.raises(StorageStalled, match="storage stalled"):
            run_generation(small_bench, seeds_for(small_bench), run_module.np.zeros((128, 128)), "flat", out, 20)
        assert small_bench.world.laser_emission is False
        assert order and order[0][1] == 3                  # the laser went off while the write still hung
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["storage_stalled"] is True
        assert "storage stalled" in summary["stop_reason"] and summary["laser_verified_off"] is True
        assert summary["frames_written"] == 2
        assert "storage stalled" in (out / "run.log").read_text()
    finally:
        release.set()


def test_a_hung_disk_in_optgen_run_ends_the_process_by_itself_with_the_laser_off(external_laser, tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text(external_bench_text(external_laser.port) + "\n[safety]\nstorage_stall_s = 1.0\n")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "tests.safety.hang_storage", "4", "run", "--count", "50", "--out",
                             str(out), "--bench", str(bench), "--no-progress"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=120)                 # ends by itself; a hang fails here
    assert proc.returncode == 2, err
    assert "storage stalled" in err and "storage is hung; exiting" in err
    assert external_laser.emission is False
    summary = json.loads((out / "summary.json").read_text())
    assert summary["storage_stalled"] is True and summary["laser_verified_off"] is True
    assert not (out / "watchdog.json").exists()            # the process turned the laser off itself


def test_a_full_disk_at_the_end_still_leaves_the_summary(small_bench, tmp_path, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_module, "write_contact_sheet", no_space)
    out = tmp_path / "run"
    result = run_generation(small_bench, seeds_for(small_bench), run_module.np.zeros((128, 128)), "flat", out, 4)
    assert result.status == "complete"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["frames_written"] == 4
    assert "contact_sheet" not in summary and not (out / "contact_sheet.png").exists()
