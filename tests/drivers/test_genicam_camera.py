"""The GenICam driver against the simulated GenTL producer shipped in the ``genicam`` wheel.

genicam 1.5.0 ships TLSimu.cti (trigger features, 512x512 Mono8 ramp); genicam 1.6.0 ships
viky.cti (no trigger). Neither has ExposureTime, Gain or OffsetX/OffsetY. Tests of features a
producer lacks check the driver's refusal instead, or skip saying which producer has them.
"""

from __future__ import annotations

import importlib.util
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from optgen.drivers.cameras.genicam import GenICamCamera
from optgen.drivers.cameras.gentl import Features, acquire_producer, release_producer
from optgen.drivers.errors import CaptureTimeout, DeviceError

# What each known producer's first device reports (read from the producers themselves).
KNOWN = {
    "TLSimu.cti": {"vendor": "EMVA_D", "model": "TLSimuMono", "serial": "SN_InterfaceA_0", "shape": (512, 512)},
    "viky.cti": {"vendor": "Machine Vision Games Ltd.", "model": "Viky", "serial": "0", "shape": (400, 400)},
}


@pytest.fixture(scope="module")
def cti() -> Path:
    spec = importlib.util.find_spec("genicam")
    if spec is None or importlib.util.find_spec("harvesters") is None:
        pytest.fail("the GenICam tests need harvesters and genicam: pip install harvesters genicam==1.5.0")
    files = sorted(Path(spec.origin).parent.glob("*.cti"))
    if not files:
        pytest.skip(f"this genicam wheel ({spec.origin}) ships no simulated producer (.cti); "
                    "genicam==1.5.0 ships TLSimu.cti, 1.6.0 ships viky.cti")
    try:
        GenICamCamera.devices(files[0])     # loads and unloads the producer once
    except DeviceError as error:
        pytest.skip(f"the simulated GenTL producer cannot load on this platform: {error}")
    path = files[0].resolve()
    acquire_producer(path, "tests")         # keep it loaded for the module: loading takes 0.5 s
    yield files[0]
    release_producer(path)


@pytest.fixture
def camera(cti):
    cam = GenICamCamera(cti, pitch_um=5.0, device=0, name="cam")
    yield cam
    cam.close()


def needs(cam: GenICamCamera, *features: str) -> None:
    missing = [f for f in features if not Features(cam.node_map, "probe").has(f)]
    if missing:
        pytest.skip(f"producer {cam.identity.model} lacks {missing} (TLSimu.cti from genicam==1.5.0 has them)")


def test_identity_comes_from_the_device_info(cti, camera):
    listed = GenICamCamera.devices(cti)
    assert camera.identity.vendor == listed[0].vendor != ""
    assert camera.identity.model == listed[0].model != ""
    assert camera.identity.serial == listed[0].serial != ""
    if cti.name in KNOWN:
        known = KNOWN[cti.name]
        assert (camera.identity.vendor, camera.identity.model, camera.identity.serial) == \
            (known["vendor"], known["model"], known["serial"])


def test_device_is_chosen_by_serial(cti):
    second = GenICamCamera.devices(cti)[1]
    cam = GenICamCamera(cti, pitch_um=5.0, device={"serial_number": second.serial}, pixel_format=None)
    try:
        assert cam.identity.serial == second.serial
    finally:
        cam.close()


def test_no_matching_device_names_those_present(cti):
    with pytest.raises(DeviceError, match=r"no device match .*present: \[0\]") as error:
        GenICamCamera(cti, pitch_um=5.0, device={"serial_number": "no-such-serial"})
    assert GenICamCamera.devices(cti)[0].serial in str(error.value)


def test_missing_producer_file_is_a_clear_error(tmp_path):
    with pytest.raises(DeviceError, match=r"GenTL producer file .*nope\.cti.* does not exist"):
        GenICamCamera(tmp_path / "nope.cti", pitch_um=5.0)


def test_frames_have_the_camera_shape_and_dtype(cti, camera):
    frame = camera.capture(timeout_s=2.0)
    assert frame.shape == camera.shape
    assert frame.dtype == np.uint8 and camera.bitdepth == 8 and camera.pixel_format == "Mono8"
    if cti.name in KNOWN:
        assert frame.shape == KNOWN[cti.name]["shape"]
    assert not np.array_equal(frame, camera.capture(timeout_s=2.0)), "expected a fresh frame each time"


def test_frames_are_copied_out_of_the_gentl_buffer(camera):
    first = camera.capture(timeout_s=2.0)
    kept = first.copy()
    for _ in range(12):                     # more frames than the stream has buffers
        camera.capture(timeout_s=2.0)
    np.testing.assert_array_equal(first, kept)


def test_resolution_is_written_to_width_and_height(cti):
    cam = GenICamCamera(cti, pitch_um=5.0, resolution=(320, 240))
    try:
        assert cam.shape == (240, 320)
        assert cam.capture(timeout_s=2.0).shape == (240, 320)
    finally:
        cam.close()


def test_window_of_interest(cti, camera):
    woi = camera.set_woi((16, 128, 8, 64))
    assert woi == (16, 128, 8, 64)
    frame = camera.capture(timeout_s=2.0)
    assert frame.shape == (64, 128)
    if cti.name == "TLSimu.cti":            # TLSimu draws (x + y + frame number) mod 256
        y, x = np.mgrid[8:72, 16:144]
        np.testing.assert_array_equal(frame, (x + y + (int(frame[0, 0]) - 24)) % 256)
    camera.set_woi(None)
    assert camera.capture(timeout_s=2.0).shape == camera.sensor_shape


def test_hardware_woi_zeroes_offsets_before_resizing():
    writes = []
    ranges = {"OffsetX": (0, 632, 8), "OffsetY": (0, 472, 2), "Width": (16, 640, 16), "Height": (8, 480, 2)}

    class Node:
        def __init__(self, name):
            self.name, (self.min, self.max, self.inc) = name, ranges[name]

        def get_access_mode(self):
            return 4

        value = property(lambda self: 0, lambda self, v: writes.append((self.name, v)))

    cam = GenICamCamera.__new__(GenICamCamera)
    cam._nodes = Features(SimpleNamespace(get_node=Node), "cam")
    cam._ia = SimpleNamespace(is_acquiring=lambda: False)
    cam._set_woi_hw((13, 100, 7, 51))
    assert writes == [("OffsetX", 0), ("OffsetY", 0), ("Width", 96), ("Height", 50),
                      ("OffsetX", 8), ("OffsetY", 6)]


def test_exposure_set_and_read_back_or_refused(camera):
    if camera.exposure_controllable:
        assert camera.set_exposure(2e-3) == pytest.approx(2e-3, rel=0.05)
        assert camera.timing.exposure_s == pytest.approx(2e-3, rel=0.05)
        return
    assert camera.describe()["exposure_control"].startswith("none")
    assert camera.set_exposure(camera.exposure_s) == camera.exposure_s   # the nominal value is accepted
    with pytest.raises(DeviceError, match="no ExposureTime node"):
        camera.set_exposure(camera.exposure_s + 1e-3)


def test_nominal_exposure_feeds_the_timing(cti):
    cam = GenICamCamera(cti, pitch_um=5.0, exposure_s=4e-3, readout_s=1e-3)
    try:
        assert cam.timing.exposure_s == pytest.approx(4e-3, rel=0.05)
        assert cam.timing.frame_s == pytest.approx(5e-3, rel=0.05)
    finally:
        cam.close()


def test_gain_set_and_read_back_or_refused(cti, camera):
    if camera.gain is not None:
        assert camera.set_gain(3.0) == pytest.approx(3.0, abs=0.1)
        return
    with pytest.raises(DeviceError, match="no Gain node"):
        camera.set_gain(3.0)
    with pytest.raises(DeviceError, match="no Gain node"):
        GenICamCamera(cti, pitch_um=5.0, device=2, gain=2.0)


def test_unsupported_pixel_format_is_refused(cti):
    with pytest.raises(DeviceError, match="pixel format 'YUV422Packed' is not supported"):
        GenICamCamera(cti, pitch_um=5.0, pixel_format="YUV422Packed")


def test_a_frame_in_another_format_than_configured_is_an_error(cti):
    if cti.name != "TLSimu.cti":
        pytest.skip("TLSimu accepts PixelFormat = Mono12 but still sends Mono8; other producers honour it")
    cam = GenICamCamera(cti, pitch_um=5.0, pixel_format="Mono12")
    try:
        assert cam.bitdepth == 12 and cam.dtype == np.uint16
        with pytest.raises(DeviceError, match="PixelFormat is Mono12 but the frame arrived as Mono8"):
            cam.capture(timeout_s=2.0)
    finally:
        cam.close()


def test_software_trigger_gives_one_new_frame_per_capture(cti, camera):
    needs(camera, "TriggerMode", "TriggerSoftware")
    cam = GenICamCamera(cti, pitch_um=5.0, device=2, trigger="software")
    try:
        first, second = cam.capture(timeout_s=2.0), cam.capture(timeout_s=2.0)
        assert first.shape == second.shape == cam.shape
        if cti.name == "TLSimu.cti":        # the ramp moves by one per frame: no frame was skipped
            assert np.all((second.astype(int) - first) % 256 == 1)
    finally:
        cam.close()


def test_trigger_on_without_a_trigger_times_out_then_a_trigger_delivers(cti, camera):
    needs(camera, "TriggerMode", "TriggerSoftware")
    # A hardware trigger on the only source TLSimu offers: nobody fires it, so no frame comes.
    cam = GenICamCamera(cti, pitch_um=5.0, device=2, trigger="hardware", trigger_source="Software")
    try:
        start = time.monotonic()
        with pytest.raises(CaptureTimeout, match="no frame within 0.3 s"):
            cam.capture(timeout_s=0.3)
        assert time.monotonic() - start >= 0.3          # it waited its timeout, then gave up
        cam.node_map.TriggerSoftware.execute()   # stands in for the pulse on the trigger line
        assert cam.capture(timeout_s=2.0).shape == cam.shape
    finally:
        cam.close()


def test_hardware_trigger_needs_a_source(cti, camera):
    needs(camera, "TriggerMode")
    with pytest.raises(DeviceError, match=r"needs trigger_source; the camera offers \['Software'"):
        GenICamCamera(cti, pitch_um=5.0, device=1, trigger="hardware")


def test_trigger_refused_where_the_camera_has_none(cti, camera):
    if Features(camera.node_map, "probe").has("TriggerMode"):
        pytest.skip(f"{cti.name} has TriggerMode")
    with pytest.raises(DeviceError, match="needs a TriggerMode node"):
        GenICamCamera(cti, pitch_um=5.0, device=1, trigger="software")


SLM = SimpleNamespace(name="slm1")


def test_slm_trigger_refused_unless_the_camera_is_set_to_hardware_trigger(camera):
    with pytest.raises(DeviceError, match="needs trigger = 'hardware' and trigger_source = the input line wired "
                                          "to slm1's frame-shown"):
        camera.check_trigger_from(SLM, 0.01)


def test_slm_trigger_without_a_delay_node_refuses_a_settle_and_arms_without_one(cti, camera):
    needs(camera, "TriggerMode", "TriggerSoftware")
    cam = GenICamCamera(cti, pitch_um=5.0, device=2, trigger="hardware", trigger_source="Software")
    try:
        with pytest.raises(DeviceError, match="no TriggerDelay node: the camera cannot wait slm1's 10 ms settle"):
            cam.trigger_from(SLM, delay_s=0.01)
        cam.trigger_from(SLM, delay_s=0.0)
        assert cam.trigger_overlap == "off"           # TLSimu has no TriggerOverlap
        cam.node_map.TriggerSoftware.execute()        # stands in for the SLM's edge
        assert cam.capture(timeout_s=2.0).shape == cam.shape
        cam.trigger_off(SLM)
        cam.trigger_off(SLM)
    finally:
        cam.close()


def _triggerable_camera(delay_range_us=(0.0, 1e6), clamp=False):
    """A GenICamCamera over a fake node map with TriggerDelay and TriggerOverlap; returns (camera, writes)."""
    writes, values = [], {"TriggerDelay": 25.0, "TriggerOverlap": "Off"}

    class Node:
        def __init__(self, name):
            if name not in values:
                raise AttributeError(name)
            self.name = name
            self.min, self.max = delay_range_us
            self.symbolics = ("Off", "ReadOut") if name == "TriggerOverlap" else ()

        def get_access_mode(self):
            return 4

        @property
        def value(self):
            return values[self.name]

        @value.setter
        def value(self, v):
            writes.append((self.name, v))
            values[self.name] = min(v, self.max) if clamp and self.name == "TriggerDelay" else v

    cam = GenICamCamera.__new__(GenICamCamera)
    cam.name, cam.trigger, cam._delay_before_us = "cam", "hardware", None
    cam._nodes = Features(SimpleNamespace(get_node=Node), "cam")
    cam._ia = SimpleNamespace(is_acquiring=lambda: False, try_fetch=lambda timeout: None)
    return cam, writes


def test_slm_trigger_writes_the_settle_as_trigger_delay_and_puts_it_back():
    cam, writes = _triggerable_camera()
    assert cam.trigger_overlap == "off"
    cam.trigger_from(SLM, delay_s=0.0104)
    assert writes == [("TriggerDelay", pytest.approx(10400.0)), ("TriggerOverlap", "ReadOut")]
    assert cam.trigger_overlap == "readout"
    cam.trigger_off(SLM)
    cam.trigger_off(SLM)                              # twice: nothing more written
    assert writes[2:] == [("TriggerDelay", 25.0)]


def test_slm_trigger_refuses_a_delay_the_camera_clamps():
    cam, writes = _triggerable_camera(delay_range_us=(0.0, 5000.0), clamp=True)
    with pytest.raises(DeviceError, match=r"TriggerDelay = 10000.0 µs \(slm1's settle\) read back as 5000.0 µs"):
        cam.trigger_from(SLM, delay_s=0.01)
    assert writes[-1] == ("TriggerDelay", 25.0)       # the delay it found is back


def test_camera_that_stops_streaming_raises_capture_timeout(camera):
    camera.capture(timeout_s=2.0)
    camera.node_map.AcquisitionStop.execute()    # the device stops sending; the stream still waits
    with pytest.raises(CaptureTimeout, match="0.25 s"):
        camera.capture(timeout_s=0.25)
    camera.node_map.AcquisitionStart.execute()
    assert camera.capture(timeout_s=2.0).shape == camera.shape


def test_close_then_reopen(cti):
    cam = GenICamCamera(cti, pitch_um=5.0)
    cam.capture(timeout_s=2.0)
    cam.close()
    cam.close()                                  # idempotent
    with pytest.raises(DeviceError, match="closed"):
        cam.capture(timeout_s=0.5)
    again = GenICamCamera(cti, pitch_um=5.0)
    try:
        assert again.capture(timeout_s=2.0).shape == again.shape
    finally:
        again.close()


def test_two_devices_of_one_producer_at_once(cti):
    # harvesters lists no devices for a second Harvester on the same .cti: the driver shares one.
    first = GenICamCamera(cti, pitch_um=5.0, device=0)
    try:
        second = GenICamCamera(cti, pitch_um=5.0, device=2)
        try:
            assert first.capture(timeout_s=2.0).shape == first.shape
            assert second.capture(timeout_s=2.0).shape == second.shape
        finally:
            second.close()
        assert first.capture(timeout_s=2.0).shape == first.shape
    finally:
        first.close()


def test_opening_a_camera_keeps_the_sigint_handler(cti):
    def handler(signum, frame):
        pass

    before = signal.signal(signal.SIGINT, handler)
    try:
        cam = GenICamCamera(cti, pitch_um=5.0)
        cam.close()
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_describe_snapshot(camera):
    snap = camera.describe()
    assert snap["driver"] == "genicam" and snap["pixel_format"] == "Mono8" and snap["trigger"] == "off"
    assert snap["identity"]["serial"] == camera.identity.serial
    assert snap["woi_mode"] in ("hardware", "software")
