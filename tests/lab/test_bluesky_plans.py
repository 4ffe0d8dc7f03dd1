"""The bluesky plans on the twin: generate gives Bench.generate's frames, scans, bad input refused."""
# ruff: noqa: F811 - the fixtures RE, docs and twin come from tests.lab.bluesky_twin

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bluesky", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")
pytest.importorskip("ophyd_async", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")

import optgen  # noqa: E402
import optgen.bluesky  # noqa: E402
from optgen.drivers.errors import OptgenError, PowerCeilingError  # noqa: E402
from optgen.lab.bluesky import plans  # noqa: E402
from tests.lab.bluesky_twin import RE, Documents, bench_config, docs, twin  # noqa: E402,F401


def test_generate_gives_the_frames_of_bench_generate_bit_for_bit(RE, twin, docs):
    bench, devices = twin
    with optgen.open_bench(bench_config()) as reference:
        run = reference.generate(5, seed=2, out="reference")
    expected = np.stack([optgen.open_run("reference").frame(i) for i in range(5)])
    assert run.status["status"] == "complete" and expected.std() > 0
    RE(plans.generate(devices, 5, seed=2))
    assert docs.exit_status() == "success"
    frames = docs.frames()
    assert frames.shape == expected.shape and frames.dtype == expected.dtype
    assert np.array_equal(frames, expected)
    events = docs.events()
    assert [e["data"]["bench-encoding_slm-pattern"] for e in events] == \
        [f"seed:seed=2,index={i}" for i in range(5)]
    assert all(e["data"]["bench-laser-emission"] and e["data"]["bench-laser-faults"] == "" for e in events)
    (dark_event,) = docs.events("dark")
    assert dark_event["data"]["bench-laser-emission"] is False
    assert docs.frames("dark").mean() < frames.mean()
    start = docs.of("start")[0]
    assert start["plan_name"] == "generate" and start["plan_args"]["count"] == 5
    assert start["optgen"]["bench_file"] == bench.config.text
    assert start["optgen"]["calibrations"]["encoding_slm:lut"] == bench.devices.calibration_ids()["encoding_slm.lut"]
    assert start["optgen"]["devices"]["camera"]["resolution"] == [320, 256]
    assert start["decoder_phase"] == bench._sources.decoder_id and bench.devices.laser.emission is False


def test_generate_is_reproducible_with_laser_power_noise(RE):
    """With the twin's power noise on, the plan gives the same frames twice, and the laser's
    read-backs carry the noise."""
    frames = []
    for _ in range(2):
        log = Documents()
        token = RE.subscribe(log)
        with optgen.open_bench(bench_config()) as bench:
            devices = optgen.bluesky.devices(bench, "frames")
            try:
                RE(plans.generate(devices, 4, seed=7))
            finally:
                devices.close()
        RE.unsubscribe(token)
        frames.append(log.frames())
        assert len({e["data"]["bench-laser-measured_power"] for e in log.events()}) == 4   # the noise is there
    assert np.array_equal(frames[0], frames[1])


def test_the_laser_emits_only_during_the_capture(RE, twin, docs):
    bench, devices = twin
    changes: list[tuple[bool, int]] = []
    bench.devices.laser.observers.append(
        lambda emission=None, setpoint_w=None: emission is None or changes.append((emission, len(docs.of("event")))))
    RE(plans.generate(devices, 3, seed=0))
    on = [n for state, n in changes if state]
    assert on == [1]                          # lit once, after the dark frame's event, before the first frame's
    assert changes[-1] == (False, 4)          # off after the last frame
    assert bench.devices.laser.verified_off and bench.devices.laser.emission is False


def test_bad_arguments_are_refused_before_anything_reaches_a_device(RE, twin, docs, mocker):
    bench, devices = twin
    power = mocker.spy(bench.devices.laser, "_set_power_hw")
    upload = mocker.spy(bench.devices.encoding_slm, "_set_phase_hw")
    ceiling = bench.devices.laser.ceiling_w
    with pytest.raises(PowerCeilingError):
        RE(plans.generate(devices, 3, power_w=ceiling * 2))
    with pytest.raises(PowerCeilingError):
        RE(plans.scan(devices, devices.laser.power, [ceiling / 2, ceiling * 1.5]))
    for bad in (dict(count=0), dict(count=2.5), dict(count=3, seed=-1)):
        with pytest.raises(OptgenError):
            plans.generate(devices, **bad)
    with pytest.raises(OptgenError):
        plans.scan(devices, devices.camera.exposure, [1e-4, 50.0])
    with pytest.raises(OptgenError):
        plans.scan(devices, devices.encoding_slm.pattern, ["flat", "spiral"])
    with pytest.raises(OptgenError):
        plans.scan(devices, devices.laser.emission, [True])
    assert docs.all == []
    power.assert_not_called()
    upload.assert_not_called()


def test_scans_of_exposure_power_and_a_pattern(RE, twin, docs):
    bench, devices = twin
    RE(plans.scan(devices, devices.camera.exposure, [5e-5, 1e-4, 2e-4]))
    frames = docs.frames()
    events = docs.events()
    assert [e["data"]["bench-camera-exposure"] for e in events] == pytest.approx([5e-5, 1e-4, 2e-4])
    dark = 100.0       # the twin's dark offset (counts); the light above it grows with the exposure
    light = [float(f.astype(float).mean()) - dark for f in frames]
    assert light[0] < light[1] < light[2] and light[2] / light[0] == pytest.approx(4.0, rel=0.15)
    ceiling = bench.devices.laser.ceiling_w
    RE(plans.scan(devices, devices.laser.power, [ceiling * 0.05, ceiling * 0.1]))
    events = docs.events()[3:]
    assert [e["data"]["bench-laser-power"] for e in events] == pytest.approx([ceiling * 0.05, ceiling * 0.1])
    RE(plans.scan(devices, devices.decoding_slm.pattern, ["lens:focal_mm=100", "lens:focal_mm=200"],
                  frames_per_point=2))
    events = docs.events()[5:]
    assert [e["data"]["bench-decoding_slm-pattern"] for e in events] == ["lens:focal_mm=100"] * 2 + \
        ["lens:focal_mm=200"] * 2
    assert [d["exit_status"] for d in docs.of("stop")] == ["success"] * 3
    assert bench.devices.laser.emission is False
