"""drivers.io_log: every SLM upload and camera capture at DEBUG, one line each, nothing computed when
DEBUG is off."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from optgen.drivers import io_log
from optgen.drivers.errors import CaptureTimeout, DeviceError


@pytest.fixture
def debug_caplog(caplog):
    caplog.set_level(logging.DEBUG, logger="optgen.drivers")
    return caplog


def lines(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.DEBUG]


def test_each_upload_is_one_line_with_the_device_shape_and_the_gray_levels_checksum(small_bench, debug_caplog, rng):
    slm = small_bench.encoding_slm
    phase = rng.uniform(0, 2 * np.pi, slm.shape).astype(np.float32)
    gray = slm.set_phase(phase).copy()                             # (the SLM reuses its display array)
    slm.set_phase(gray.copy())                                     # the gray-level path: same levels, same sum
    slm.set_phase(None)
    got = lines(debug_caplog, "optgen.drivers.slms.io")
    assert len(got) == 3
    shape = f"{slm.shape[0]}x{slm.shape[1]} {np.dtype(slm.dtype).name}"
    crc = io_log.checksum(gray)
    assert got[0].startswith(f"encoding_slm: upload {shape} crc {crc} in ") and got[0].endswith(" ms")
    assert f"crc {crc}" in got[1] and f"crc {crc}" not in got[2]


def test_a_failed_upload_is_logged_with_its_error(small_bench, debug_caplog, monkeypatch):
    slm = small_bench.decoding_slm

    def broken(display):
        raise DeviceError(slm.name, "display driver error")

    monkeypatch.setattr(slm, "_set_phase_hw", broken)
    with pytest.raises(DeviceError):
        slm.set_phase(np.zeros(slm.shape, np.float32))
    got = lines(debug_caplog, "optgen.drivers.slms.io")
    assert len(got) == 1 and "decoding_slm: upload FAILED" in got[0] and "display driver error" in got[0]


def test_each_capture_is_one_line_with_exposure_shape_range_and_duration(small_bench, debug_caplog):
    camera = small_bench.camera
    frame = camera.capture()
    got = lines(debug_caplog, "optgen.drivers.cameras.io")
    assert len(got) == 1
    exposure_ms = camera.exposure_s * 1e3
    assert got[0].startswith(f"camera: capture at {exposure_ms:.4g} ms exposure: "
                             f"{frame.shape[0]}x{frame.shape[1]} {frame.dtype.name} "
                             f"min {int(frame.min())} max {int(frame.max())} in ")


def test_a_capture_timeout_is_logged_with_its_bound(small_bench, debug_caplog):
    camera = small_bench.camera
    camera.stall = True                                            # the twin's camera delivers nothing
    try:
        with pytest.raises(CaptureTimeout):
            camera.capture(timeout_s=0.05)
    finally:
        camera.stall = False
    got = lines(debug_caplog, "optgen.drivers.cameras.io")
    assert len(got) == 1 and got[0].startswith("camera: capture TIMEOUT after ") and "timeout 0.05 s" in got[0]


def test_with_debug_off_nothing_is_described(small_bench, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="optgen.drivers")

    def must_not_run(*args, **kwargs):
        raise AssertionError("described an operation with DEBUG off")

    for name in ("log_upload", "log_capture", "checksum"):
        monkeypatch.setattr(io_log, name, must_not_run)
    monkeypatch.setattr("optgen.drivers.slm.log_upload", must_not_run)
    monkeypatch.setattr("optgen.drivers.camera.log_capture", must_not_run)
    small_bench.encoding_slm.set_phase(np.zeros(small_bench.encoding_slm.shape, np.float32))
    small_bench.camera.capture()
    assert not [r for r in caplog.records if r.name.startswith("optgen.drivers")]
