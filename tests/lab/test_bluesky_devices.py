"""The ophyd-async devices over the twin's drivers: laser, SLMs, camera, one device thread."""
# ruff: noqa: F811 - the fixtures RE, docs and twin come from tests.lab.bluesky_twin

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("bluesky", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")
pytest.importorskip("ophyd_async", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")

import bluesky.plan_stubs as bps  # noqa: E402
import bluesky.plans as bp  # noqa: E402
from bluesky.run_engine import call_in_bluesky_event_loop  # noqa: E402
from bluesky.utils import FailedStatus  # noqa: E402

from optgen.drivers.errors import OptgenError, PowerCeilingError  # noqa: E402
from optgen.lab.bluesky.laser import EmissionRefused, fault_list, fault_text  # noqa: E402
from optgen.lab.bluesky.patterns import PatternError  # noqa: E402
from optgen.lab.live.patterns import make_pattern  # noqa: E402
from tests.lab.bluesky_twin import RE, docs, twin  # noqa: E402,F401 - fixtures


def get(signal):
    return call_in_bluesky_event_loop(signal.get_value(), timeout=10)


def test_laser_signals_read_the_driver_and_power_reads_back(RE, twin):
    bench, devices = twin
    laser = devices.laser
    ceiling = bench.devices.laser.ceiling_w
    assert get(laser.ceiling) == ceiling and get(laser.wavelength_nm) == 520.0
    assert get(laser.emission) is False and get(laser.faults) == ""
    RE(bps.mv(laser.power, ceiling / 2))
    assert bench.devices.laser.power_setpoint() == pytest.approx(ceiling / 2)
    assert get(laser.power) == pytest.approx(ceiling / 2)
    bench.devices.laser.trip("interlock open")
    assert get(laser.faults) == "interlock open"
    bench.devices.laser.trip("diode over temperature")
    assert get(laser.faults) == "interlock open; diode over temperature"
    assert fault_list(get(laser.faults)) == ["interlock open", "diode over temperature"]


def test_the_fault_text_splits_back_into_the_driver_s_list():
    for faults in ([], ["interlock open"], ["interlock open", "key switch off", "diode over temperature"]):
        assert fault_list(fault_text(faults)) == faults
    assert fault_text([]) == "" and fault_list("") == []
    assert fault_list(fault_text([" "])) == ["fault (no description)"]        # a blank fault is still a fault


def test_a_laser_read_takes_every_read_back_in_one_device_thread_call(RE, twin, mocker):
    bench, devices = twin
    laser, driver = devices.laser, bench.devices.laser
    RE(bps.mv(laser.power, driver.ceiling_w / 4))
    driver.trip("interlock open")
    calls = mocker.spy(devices.thread, "call")
    reading = call_in_bluesky_event_loop(laser.read(), timeout=10)
    assert calls.call_count == 1
    assert reading[laser.faults.name]["value"] == "interlock open"
    assert reading[laser.power.name]["value"] == pytest.approx(driver.ceiling_w / 4)
    assert reading[laser.emission.name]["value"] is False and reading[laser.measured_power.name]["value"] == 0.0
    described = call_in_bluesky_event_loop(laser.describe(), timeout=10)
    assert set(reading) == set(described)                  # the keys the event descriptor announces
    for name, value in reading.items():                    # each as the signal's own getter reads it
        own = call_in_bluesky_event_loop(getattr(laser, name.removeprefix(laser.name + "-")).read(), timeout=10)
        assert list(np.atleast_1d(own[name]["value"])) == list(np.atleast_1d(value["value"]))


def test_power_above_the_ceiling_is_refused_before_any_byte_reaches_the_laser(RE, twin, mocker):
    bench, devices = twin
    spy = mocker.spy(bench.devices.laser, "_set_power_hw")
    with pytest.raises(FailedStatus) as info:
        RE(bps.mv(devices.laser.power, bench.devices.laser.ceiling_w * 1.01))
    assert isinstance(info.value.__cause__, PowerCeilingError), info.value
    spy.assert_not_called()
    assert bench.devices.laser.power_setpoint() == 0.0


def test_emission_is_refused_outside_a_plan_that_captures(RE, twin):
    bench, devices = twin
    with pytest.raises(FailedStatus) as info:
        RE(bps.mv(devices.laser.emission, True))
    assert isinstance(info.value.__cause__, EmissionRefused), info.value
    assert bench.devices.laser.emission is False


def test_slm_shows_a_pattern_by_id_and_names_its_lut_and_calibrations(RE, twin, mocker):
    bench, devices = twin
    slm = bench.devices.decoding_slm
    RE(bps.mv(devices.decoding_slm.pattern, "lens:focal_mm=200"))
    expected = make_pattern("lens", {"focal_mm": "200"}, slm_name=slm.name, shape=tuple(slm.shape),
                            pitch_m=float(slm.pitch_um[0]) * 1e-6, wavelength_m=520e-9, superpixel_px=6,
                            seed_phase=None, seed_count=0, decoder=None)
    assert np.array_equal(slm.display, slm.phase_to_gray(expected))
    assert get(devices.decoding_slm.pattern) == "lens:focal_mm=200"
    assert get(devices.decoding_slm.lut) == bench.devices.luts["decoding_slm"].id
    assert "decoding_slm.lut" in get(devices.decoding_slm.calibrations)
    assert "encoding_slm" not in get(devices.decoding_slm.calibrations)
    # the settle wait is on the bench's (virtual) clock
    t0 = bench.devices.clock.now()
    RE(bps.mv(devices.encoding_slm.pattern, "seed:seed=1,index=2"))
    assert bench.devices.clock.now() - t0 >= bench.devices.encoding_slm.timing.wait_s
    upload = mocker.spy(bench.devices.encoding_slm, "_set_phase_hw")
    for bad in ("spiral", "lens:focal_mm=0.1", "seed:seed=1", "grating:period_px", "decoder:x=1"):
        with pytest.raises(FailedStatus) as info:
            RE(bps.mv(devices.encoding_slm.pattern, bad))
        assert isinstance(info.value.__cause__, OptgenError), info.value     # PatternError, or the live view's
    upload.assert_not_called()
    assert get(devices.encoding_slm.pattern) == "seed:seed=1,index=2"
    with pytest.raises(PatternError):
        devices.patterns.resolve(bench.devices.encoding_slm, "seed:seed=1,index=x")


def test_camera_writes_hdf5_frames_with_stream_resources(RE, twin, docs):
    bench, devices = twin
    RE(bps.mv(devices.camera.exposure, 2e-4))
    assert bench.devices.camera.exposure_s == pytest.approx(2e-4)
    RE(bp.count([devices.camera], 3))
    assert docs.exit_status() == "success"
    (resource,) = docs.of("stream_resource")
    assert resource["mimetype"] == "application/x-hdf5" and resource["data_key"] == "bench-camera"
    assert resource["parameters"]["chunk_shape"] == (1, 256, 320)
    assert [d["indices"] for d in docs.of("stream_datum")] == [{"start": i, "stop": i + 1} for i in range(3)]
    (descriptor,) = docs.of("descriptor")
    key = descriptor["data_keys"]["bench-camera"]
    assert key["external"] == "STREAM:" and key["shape"] == [1, 256, 320] and key["dtype_numpy"] == "<u2"
    frames = docs.frames()
    assert frames.shape == (3, 256, 320) and frames.dtype == np.uint16 and frames.min() > 0   # dark offset
    exposure = descriptor["configuration"]["bench-camera"]["data"]["bench-camera-exposure"]
    assert exposure == pytest.approx(2e-4)
    with pytest.raises(FailedStatus) as info:
        RE(bps.mv(devices.camera.exposure, 20.0))     # beyond the camera's bounds
    assert "bounds" in str(info.value.__cause__)
    assert bench.devices.camera.exposure_s == pytest.approx(2e-4)


def test_every_driver_call_runs_on_the_device_thread(RE, twin, docs):
    bench, devices = twin
    seen: list[tuple[str, int]] = []

    def record(obj, method):
        real = getattr(obj, method)

        def wrapper(*args, **kwargs):
            seen.append((method, threading.get_ident()))
            return real(*args, **kwargs)
        setattr(obj, method, wrapper)

    drivers = bench.devices
    for obj, method in ((drivers.laser, "_set_emission_hw"), (drivers.laser, "_get_emission_hw"),
                        (drivers.laser, "_set_power_hw"), (drivers.laser, "_get_faults_hw"),
                        (drivers.camera, "_get_image_hw"), (drivers.encoding_slm, "_set_phase_hw"),
                        (drivers.decoding_slm, "_set_phase_hw")):
        record(obj, method)
    import optgen.bluesky

    RE(optgen.bluesky.plans.generate(devices, 2, seed=0))
    assert docs.exit_status() == "success"
    methods = {m for m, _ in seen}
    assert methods == {"_set_emission_hw", "_get_emission_hw", "_set_power_hw", "_get_faults_hw", "_get_image_hw",
                       "_set_phase_hw"}
    assert {ident for _, ident in seen} == {devices.thread.ident}
    assert devices.thread.ident != threading.get_ident()
