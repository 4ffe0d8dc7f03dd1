"""Vendor-SDK SLMs: the missing-SDK errors (no SDK is installed here) and the composition with a fake SDK."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from optgen.drivers._slmsuite import SlmsuiteSLM
from optgen.drivers.errors import DeviceError, PhaseInputError
from optgen.drivers.identity import SLMTiming
from optgen.drivers.slms.vendor import VENDORS, SDKMissingError, VendorSLM, vendor_class

TIMING = SLMTiming(refresh_hz=60.0, latency_frames=2, settle_s=0.0)
NEEDS = {"meadowlark": "Blink SDK", "holoeye": "HEDS", "santec": "SLMFunc.dll", "hamamatsu": "hpkSLMdaLV.dll"}


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_missing_sdk_names_what_to_install(vendor):
    if sys.platform == "win32":
        pytest.skip("on Windows a vendor SDK may really be installed")
    path, sys_path = os.environ.get("PATH"), list(sys.path)
    with pytest.raises(SDKMissingError, match=NEEDS[vendor]) as error:
        VendorSLM(vendor, timing=TIMING, name="enc")
    assert isinstance(error.value, DeviceError) and isinstance(error.value, ImportError)
    assert str(error.value).startswith(f"enc: {vendor} SLMs need ")
    assert os.environ.get("PATH") == path and sys.path == sys_path     # slmsuite's import edits undone


@pytest.mark.parametrize("vendor", ["santec", "hamamatsu"])
def test_missing_dlls_are_detected_after_import_too(monkeypatch, vendor):
    # As on Windows without the DLLs: slmsuite imports, sets its library handle to None, warns.
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(SDKMissingError, match=f"{NEEDS[vendor]}.*it is not installed"):
        vendor_class(vendor, "enc")


def test_unknown_vendor_lists_the_known_ones():
    with pytest.raises(DeviceError, match=r"unknown SLM vendor 'acme'; known: \['hamamatsu', 'holoeye'"):
        VendorSLM("acme", timing=TIMING)


CREATED: list = []


class FakeHamamatsu(SlmsuiteSLM):
    """Stands in for slmsuite's Hamamatsu driver (same constructor), recording what it is sent."""

    def __init__(self, serial_number=None, wav_um=1, resolution=(1272, 1024), pitch_um=(12.5, 12.5), **kwargs):
        self.serial_number, self.shown, self.closed = "SN-4711", [], False
        CREATED.append(self)
        super().__init__(resolution, bitdepth=8, wav_um=wav_um, pitch_um=pitch_um, **kwargs)
        self.set_phase(None)

    def _set_phase_hw(self, display):
        self.shown.append(display.copy())

    def close(self):
        self.closed = True

    @staticmethod
    def info(verbose=True):
        return []


@pytest.fixture
def fake_sdk(mocker):
    return mocker.patch("optgen.drivers.slms.vendor.vendor_class", return_value=FakeHamamatsu)


def test_vendor_slm_takes_geometry_from_the_sdk_and_identity(fake_sdk):
    slm = VendorSLM("hamamatsu", timing=TIMING, resolution=(640, 512), pitch_um=12.5, name="dec")
    assert slm.resolution == (640, 512) and slm.shape == (512, 640)
    assert slm.device.resolution == (640, 512)                      # passed on, since the driver takes it
    assert (slm.identity.vendor, slm.identity.model, slm.identity.serial) == \
        ("Hamamatsu Photonics", "FakeHamamatsu", "SN-4711")
    assert slm.describe()["driver"] == "hamamatsu"


def test_phase_is_converted_once_and_the_gray_levels_reach_the_sdk(fake_sdk):
    slm = VendorSLM("hamamatsu", timing=TIMING, resolution=(320, 256), pitch_um=12.5)
    phase = np.random.default_rng(1).uniform(-7, 7, slm.shape)
    display = slm.set_phase(phase)
    np.testing.assert_array_equal(slm.device.shown[-1], display)
    # slmsuite's linear map, computed as it does on the float32 copy of the phase
    scaled = np.rint(phase.astype(np.float32) * (-256 / 2 / np.pi)).astype(np.int64)
    expected = ((scaled - 1) & 255).astype(np.uint8)
    np.testing.assert_array_equal(display, expected)


def test_invalid_phase_never_reaches_the_sdk(fake_sdk):
    slm = VendorSLM("hamamatsu", timing=TIMING, resolution=(320, 256), pitch_um=12.5)
    sent = len(slm.device.shown)
    bad = np.zeros(slm.shape)
    bad[3, 4] = np.nan
    with pytest.raises(PhaseInputError, match="NaN"):
        slm.set_phase(bad)
    assert len(slm.device.shown) == sent


def test_bench_file_mismatch_closes_the_device(fake_sdk):
    with pytest.raises(DeviceError, match="bench file says bitdepth = 10, the hamamatsu SDK reports 8"):
        VendorSLM("hamamatsu", timing=TIMING, bitdepth=10)
    assert CREATED[-1].closed


def test_close_is_idempotent(fake_sdk):
    slm = VendorSLM("hamamatsu", timing=TIMING)
    device = slm.device
    slm.close()
    slm.close()
    assert device.closed
    with pytest.raises(DeviceError, match="closed"):
        slm.set_phase(None)
