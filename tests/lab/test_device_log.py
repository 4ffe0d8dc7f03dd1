"""run.log keeps each device operation of a run at DEBUG (lab.run.device_log): a line per SLM upload
and per capture with the device's name, the timeout and its retry, the link's reconnect, the
calibrations used, a serial laser's commands and replies; the drivers' log level is back where it was
after the run."""

from __future__ import annotations

import logging
import re

import pytest

from optgen.drivers.io_log import checksum
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import parse_bench
from optgen.lab.run import faults
from optgen.lab.run.device_log import DEVICE_LOGGER, DeviceLogTap
from optgen.lab.run.patterns import seed_to_slm_phase
from tests.conftest import small_bench_text
from tests.lab.test_run_faults import run, seeds_for

COUNT = 6


def debug_lines(log: str, pattern: str) -> list[str]:
    return [line for line in log.splitlines() if " DEBUG " in line and re.search(pattern, line)]


def test_run_log_has_a_line_per_upload_and_capture_the_timeout_its_retry_and_the_reconnect(tmp_path):
    cfg = parse_bench(small_bench_text(), "device log")
    level_before = logging.getLogger(DEVICE_LOGGER).level
    with build_bench(cfg) as bench:
        faults.plant(bench, "capture", at=4)           # the 4th capture (dark frame first) times out once
        faults.plant(bench, "link", at=6)              # the laser's link drops before the 6th capture
        try:
            result = run(bench, tmp_path / "run", COUNT, sync="wait")
        finally:
            faults.clear(bench)
        expected_crcs = {checksum(bench.encoding_slm.phase_to_gray(
            seed_to_slm_phase(seeds_for(cfg).seed(i).phase, cfg.geometry.superpixel_px, bench.encoding_slm.shape)))
            for i in range(COUNT)}
    assert result.status == "complete"
    log = (tmp_path / "run" / "run.log").read_text()

    retries = [line for line in log.splitlines() if " WARNING retry: " in line]
    assert len(retries) == 1 and "camera timeout" in retries[0]
    timeouts = debug_lines(log, r"DEBUG camera: capture TIMEOUT after [\d.]+ ms .*timeout [\d.]+ s\)")
    assert len(timeouts) == 1
    captures = debug_lines(log, r"DEBUG camera: capture at [\d.]+ ms exposure: \d+x\d+ uint16 min \d+ max \d+ in ")
    assert len(captures) == 1 + COUNT                 # the dark frame, then one per frame kept
    uploads = debug_lines(log, r"DEBUG encoding_slm: upload \d+x\d+ uint8 crc [0-9a-f]{8} in [\d.]+ ms")
    assert len(uploads) == COUNT + 1                  # each seed, and the timed-out one again
    crcs = [re.search(r"crc ([0-9a-f]{8})", line).group(1) for line in uploads]
    assert set(crcs) == expected_crcs                 # the checksum is of the gray levels each seed sent
    assert len(debug_lines(log, r"DEBUG decoding_slm: upload ")) == 1
    # the timed-out pattern was shown again: its checksum twice, one after the other
    assert any(a == b for a, b in zip(crcs, crcs[1:]))
    assert re.search(r"WARNING link: laser: link lost .*reconnecting once", log)
    assert re.search(r"WARNING link: laser: reconnected; read back emission on", log)
    assert re.search(r"INFO calibration: UNCALIBRATED: no calibration for this bench", log)
    assert log.index("INFO start:") < log.index("DEBUG camera: capture") < log.index("INFO end: complete")
    assert len(log.encode()) / COUNT < 800            # a line per operation: ~1 kB a frame at most
    assert logging.getLogger(DEVICE_LOGGER).level == level_before


def test_a_second_run_log_gets_nothing_of_the_first_run(small_bench, tmp_path):
    run(small_bench, tmp_path / "one", 2, sync="wait")
    small_bench.camera.capture()                      # between the runs: in neither log
    run(small_bench, tmp_path / "two", 2, sync="wait")
    for name in ("one", "two"):
        log = (tmp_path / name / "run.log").read_text()
        assert len(debug_lines(log, r"DEBUG camera: capture at ")) == 3


def test_taps_nest_and_the_last_to_close_restores_the_level():
    logger = logging.getLogger(DEVICE_LOGGER)
    before = logger.level
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    first, second = DeviceLogTap(Keep()), DeviceLogTap(Keep())
    try:
        logging.getLogger("optgen.drivers.cameras.io").debug("camera: capture")
        assert len(records) == 2 and logger.level == logging.DEBUG
        first.close()
        assert logger.level == logging.DEBUG            # the second run is still open
        logging.getLogger("optgen.drivers.slms.io").debug("slm: upload")
        assert len(records) == 3
    finally:
        first.close()
        second.close()
    assert logger.level == before
    logging.getLogger("optgen.drivers.slms.io").debug("slm: upload")
    assert len(records) == 3


def test_a_serial_lasers_commands_and_replies_reach_run_log_too(tmp_path):
    pytest.importorskip("serial")
    text = small_bench_text({("laser", "driver"): '"cobolt"', ("laser", "power_mw"): "0.5",
                             ("camera", "exposure_ms"): "0.001"}).replace(
        "[laser.connection]", '[laser.connection]\nport = "twin"')
    with build_bench(parse_bench(text, "cobolt twin")) as bench:
        assert run(bench, tmp_path / "run", 2, sync="wait").status == "complete"
    log = (tmp_path / "run" / "run.log").read_text()
    assert debug_lines(log, r"DEBUG laser \S+ > 'l0'")             # emission off, as sent
    assert debug_lines(log, r"DEBUG laser \S+ < 'OK'")             # and its reply
    assert len(debug_lines(log, r"DEBUG camera: capture at ")) == 3
