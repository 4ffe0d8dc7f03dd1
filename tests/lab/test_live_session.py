"""The live view's session on the small twin: frames flow, the page's commands are carried out on the
main thread, and the laser is on only while asked, within its ceiling, watched and leased."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import optgen
from optgen.lab.bench.examples import small_bench_text
from optgen.lab.bench.parse import parse_bench
from optgen.lab.live import session as live_session
from optgen.lab.live.apps import LiveSessionApp
from optgen.lab.live.renderer import FrameRenderer
from optgen.lab.live.session import LiveSession
from optgen.lab.run.sources import RunSources


@pytest.fixture
def live():
    cfg = parse_bench(small_bench_text(), "small-live.toml")
    sources = RunSources(cfg)
    with optgen.open_bench(cfg) as bench:
        session = LiveSession(bench, sources, lease_s=60.0)
        yield session
        session.close()


def command(session: LiveSession, name: str, params: dict | None = None) -> dict:
    """Submit from another thread (as the web server does) while the main thread steps."""
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(session.submit(name, params, timeout_s=30)))
    worker.start()
    for _ in range(500):
        if not worker.is_alive():
            break
        session.step()
    worker.join(5)
    assert not worker.is_alive()
    return result


def test_each_step_publishes_a_frame_of_the_sensor(live):
    for _ in range(3):
        live.step()
    seq, (frame, _, extra) = live.frames.newest()
    assert seq == 3 and live.captured == 3
    assert frame.shape == (256, 320) and frame.dtype == np.uint16
    assert extra["laser_on"] is False


def test_laser_goes_on_at_the_power_set_and_off_verified(live):
    laser = live.devices.laser
    live.step()
    dark = live.frames.newest()[1][0].astype(float)
    assert command(live, "power", {"mw": 0.0002})["ok"]
    assert not laser.emission                                  # a power alone never switches it on
    said = command(live, "laser", {"on": True})
    assert said["ok"] and "0.0002 mW" in said["message"]
    assert laser.emission and laser.power_setpoint() == pytest.approx(0.0002e-3)
    live.step()
    lit = live.frames.newest()[1][0].astype(float)
    assert lit.sum() > 2 * dark.sum()
    assert live.state()["laser"] == {"on": True, "power_mw": pytest.approx(0.0002)}
    said = command(live, "laser", {"on": False})
    assert said["ok"] and "verified" in said["message"] and not laser.emission


def test_a_power_above_the_ceiling_is_refused_before_the_laser_hears_of_it(live, mocker):
    laser = live.devices.laser
    sent = mocker.spy(laser, "_set_power_hw")
    before = laser.power_setpoint()
    result = command(live, "power", {"mw": 5.0})
    assert not result["ok"] and "above the ceiling of 1 mW" in result["error"] and laser.name in result["error"]
    assert sent.call_count == 0 and laser.power_setpoint() == before
    assert live.state()["error"] == result["error"]
    for bad in (True, "1", None):
        assert "expected a number of milliwatts" in command(live, "power", {"mw": bad})["error"]


def test_the_laser_goes_off_when_no_page_looks_for_the_lease(live):
    live.lease_s = 0.05
    assert command(live, "laser", {"on": True})["ok"]
    time.sleep(0.1)
    live.step()
    assert not live.devices.laser.emission and not live.laser_on
    assert "no page has looked at the live view for 0.05 s" in live.error


def test_a_page_that_keeps_looking_keeps_the_laser_on(live):
    live.lease_s = 0.2
    assert command(live, "laser", {"on": True})["ok"]
    for _ in range(5):
        time.sleep(0.06)
        live.touch()
        live.step()
    assert live.devices.laser.emission and live.laser_on


def test_a_laser_fault_switches_it_off_and_says_which(live, monkeypatch):
    monkeypatch.setattr(live_session, "LASER_CHECK_S", 0.0)
    assert command(live, "laser", {"on": True})["ok"]
    live.devices.laser.trip("interlock open")
    live.step()
    live.step()
    assert not live.laser_on and "interlock open" in live.error


def test_exposure_is_set_and_read_back_and_out_of_bounds_refused(live):
    camera = live.devices.camera
    result = command(live, "exposure", {"ms": 0.5})
    assert result["ok"] and camera.exposure_s == pytest.approx(0.5e-3) and "(read back)" in result["message"]
    result = command(live, "exposure", {"ms": 2500})              # within the camera's bounds, above 2 s
    assert not result["ok"] and "outside 0.001 .. 2000 ms" in result["error"]
    assert "at most 2 s" in result["error"] and camera.exposure_s == pytest.approx(0.5e-3)
    assert live.describe()["exposure_bounds_ms"] == [pytest.approx(0.001), 2000.0]
    assert "positive number of milliseconds" in command(live, "exposure", {"ms": -1})["error"]


def test_a_pattern_is_shown_on_the_slm_asked_and_changes_the_light(live, mocker):
    shown = mocker.spy(live.bench, "show")
    assert command(live, "laser", {"on": True})["ok"]
    live.step()
    before = live.frames.newest()[1][0].astype(float)
    result = command(live, "pattern", {"slm": "encoding_slm", "kind": "grating", "period_px": 4, "angle_deg": 0})
    assert result["ok"] and "encoding_slm: showing grating" in result["message"]
    phase = shown.call_args.kwargs["encoding"]
    assert phase.shape == (256, 320) and np.allclose(np.diff(np.unwrap(phase[0].astype(float))), np.pi / 2, atol=1e-4)
    live.step()
    after = live.frames.newest()[1][0].astype(float)
    assert np.abs(after - before).sum() > 0.2 * before.sum()    # the grating sent the light elsewhere
    assert live.state()["patterns"]["encoding_slm"] == {"kind": "grating", "period_px": 4, "angle_deg": 0}
    result = command(live, "pattern", {"slm": "decoding_slm", "kind": "seed", "index": 1})
    assert result["ok"] and "decoding" in shown.call_args.kwargs
    assert "expected one of encoding_slm, decoding_slm" in command(live, "pattern", {"slm": "camera",
                                                                                       "kind": "flat"})["error"]


def test_unknown_commands_and_bad_values_are_refused_naming_them(live):
    assert "command 'fly' is not known" in command(live, "fly", {})["error"]
    assert "laser: on = 'yes'" in command(live, "laser", {"on": "yes"})["error"]
    assert "mode = 'log'" in command(live, "scale", {"mode": "log"})["error"]
    assert command(live, "scale", {"mode": "auto"})["ok"] and live.scale == "auto"


def test_quit_ends_run_and_close_turns_the_laser_off_and_answers_what_waits(live):
    assert command(live, "laser", {"on": True})["ok"]
    assert command(live, "quit", {})["ok"]
    live.run(minutes=0.1)                      # returns at once: the page said quit
    live.close()
    assert not live.devices.laser.emission
    assert live.submit("laser", {"on": True})["error"] == "the live view is closing"


def test_the_renderer_and_app_serve_the_newest_frame_with_its_figures(live):
    renderer = FrameRenderer(live.frames, bitdepth=12, saturation_dn=live.saturation_dn).start()
    try:
        app = LiveSessionApp(live, renderer)
        live.step()
        seq, jpeg = app.frame({"after": "0"})
        assert seq >= 1 and jpeg[:2] == b"\xff\xd8"
        state = app.state()
        assert state["frame"]["width"] == 320 and sum(state["frame"]["histogram"]) == 128 * 160
        assert app.frame({"after": str(seq + 5)}) is None        # nothing newer within the bound
        assert app.describe()["overlay"]["calibrated"] is False
        assert app.describe()["laser"]["ceiling_mw"] == pytest.approx(1.0)
    finally:
        renderer.stop()
