"""One panel, two regions: each region is an SLM of its own size, every upload sends the whole panel."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.drivers.errors import DeviceError, PhaseInputError
from optgen.drivers.identity import DeviceIdentity, SLMTiming
from optgen.drivers.slms.panel import PanelRegion, PanelRegionSLM, SharedPanel, check_regions

TIMING = SLMTiming(refresh_hz=60.0, latency_frames=2, settle_s=0.01)


class Device:
    """The panel's device: records every whole-panel image it is sent."""

    def __init__(self):
        self.sent: list[np.ndarray] = []
        self.closed = 0

    def upload(self, display: np.ndarray) -> None:
        self.sent.append(display.copy())

    def close(self) -> None:
        self.closed += 1


def panel_with_regions(shape=(40, 100)):
    device = Device()
    panel = SharedPanel(shape, np.uint8, device.upload, DeviceIdentity("Acme", "LCOS-2", "S1"), close=device.close)
    a = PanelRegionSLM(panel, PanelRegion(0, 5, 40, 30), timing=TIMING, bitdepth=8, pitch_um=8.0, wav_um=0.52,
                       name="encoding_slm")
    b = PanelRegionSLM(panel, PanelRegion(50, 0, 50, 40), timing=TIMING, bitdepth=8, pitch_um=8.0, wav_um=0.52,
                       name="decoding_slm")
    return device, panel, a, b


def test_each_region_is_an_slm_of_its_size_and_every_upload_sends_the_whole_panel():
    device, panel, a, b = panel_with_regions()
    assert a.shape == (30, 40) and b.shape == (40, 50)
    b.set_phase(np.full(b.shape, 9, dtype=np.uint8))
    a.set_phase(np.full(a.shape, 200, dtype=np.uint8))
    a.set_phase(np.full(a.shape, 100, dtype=np.uint8))
    assert len(device.sent) == 3 and all(s.shape == (40, 100) for s in device.sent)
    last = device.sent[-1]
    assert (last[5:35, 0:40] == 100).all() and (last[0:40, 50:100] == 9).all()       # the decoder re-sent as it was
    assert (last[0:5, 0:40] == 0).all() and (last[:, 40:50] == 0).all()               # outside the regions: untouched
    assert all((s[0:40, 50:100] == 9).all() for s in device.sent)                    # never a frame without it


def test_a_region_converts_phase_through_its_own_lut_and_checks_its_own_shape():
    device, panel, a, b = panel_with_regions()
    a.set_phase(np.full(a.shape, np.pi, dtype=np.float32))
    assert device.sent[-1][5:35, 0:40].max() > 0 and device.sent[-1][0:40, 50:100].max() == 0
    with pytest.raises(PhaseInputError, match=r"encoding_slm: phase has shape \(40, 50\); expected \(30, 40\)"):
        a.set_phase(np.zeros(b.shape, dtype=np.float32))


def test_identity_names_the_panel_and_the_region_and_closing_both_closes_the_device_once():
    device, panel, a, b = panel_with_regions()
    assert str(a.identity) == "Acme LCOS-2, region [0, 5, 40, 30] (serial S1)"
    a.close()
    assert device.closed == 0
    with pytest.raises(DeviceError, match="encoding_slm: the panel region is closed"):
        a.set_phase(None)
    b.close()
    b.close()
    assert device.closed == 1


@pytest.mark.parametrize("regions, match", [
    ({"encoding": PanelRegion(0, 0, 60, 40), "decoding": PanelRegion(50, 0, 50, 40)},
     r"encoding region \[0, 0, 60, 40\] and decoding region \[50, 0, 50, 40\] overlap"),
    ({"encoding": PanelRegion(0, 0, 40, 40), "decoding": PanelRegion(70, 0, 50, 40)},
     r"decoding region \[70, 0, 50, 40\] \(\[x, y, width, height\]\) leaves the 100 x 40 panel"),
    ({"encoding": PanelRegion(0, 10, 40, 40), "decoding": PanelRegion(50, 0, 50, 40)},
     r"encoding region \[0, 10, 40, 40\] .* leaves the 100 x 40 panel"),
])
def test_regions_that_overlap_or_leave_the_panel_are_refused(regions, match):
    with pytest.raises(ValueError, match=match):
        check_regions((100, 40), regions)


def test_a_second_region_that_overlaps_the_first_is_refused_before_it_exists():
    device, panel, a, b = panel_with_regions()
    with pytest.raises(ValueError, match="overlap"):
        PanelRegionSLM(panel, PanelRegion(30, 0, 30, 10), timing=TIMING, bitdepth=8, pitch_um=8.0, wav_um=0.52,
                       name="third")
