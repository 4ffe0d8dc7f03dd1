"""The live view's page for real: headless Chromium (Debian's chromium, which .ci/run installs) loads
it from the server, draws the twin's camera frame with the window, the grid and the saturated pixels,
and a screenshot shows them."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import optgen
from optgen.lab.bench.examples import small_bench_text
from optgen.lab.bench.parse import parse_bench
from optgen.lab.live.apps import LiveSessionApp, RunBrowser
from optgen.lab.live.renderer import FrameRenderer
from optgen.lab.live.server import LiveServer
from optgen.lab.live.session import LiveSession
from optgen.lab.run.sources import RunSources

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
BROWSER_S = 90.0


def screenshot(url: str, out: Path, tmp_path: Path, while_waiting=lambda: time.sleep(0.02)) -> np.ndarray:
    """Load ``url`` in headless Chromium and return its screenshot (BGR); ``while_waiting`` runs meanwhile
    (the live session's main thread)."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,900",
            "--virtual-time-budget=4000", f"--screenshot={out}", url]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + BROWSER_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            while_waiting()
    finally:
        if proc.poll() is None:
            proc.kill()
    _, err = proc.communicate(timeout=30)
    assert out.is_file(), f"chromium wrote no screenshot: {err[-2000:]}"
    return cv2.imread(str(out))


def _colour_pixels(shot: np.ndarray, colour: str) -> int:
    b, g, r = (shot[..., i].astype(int) for i in range(3))
    if colour == "green":             # the window and the grid
        return int(np.count_nonzero((g > 180) & (r < 90) & (b < 160)))
    if colour == "red":               # saturated pixels
        return int(np.count_nonzero((r > 200) & (g < 60) & (b < 60)))
    if colour == "grey":              # the frame's light
        return int(np.count_nonzero((r > 60) & (np.abs(r - g) < 12) & (np.abs(r - b) < 12)))
    raise ValueError(colour)


def test_the_live_page_shows_the_frame_the_overlay_and_the_saturated_pixels(tmp_path):
    cfg = parse_bench(small_bench_text({("run", "timing"): '"wall"'}), "small-live.toml")
    with optgen.open_bench(cfg) as bench:
        session = LiveSession(bench, RunSources(cfg), lease_s=120.0)
        renderer = FrameRenderer(session.frames, bitdepth=12, saturation_dn=session.saturation_dn).start()
        try:
            with LiveServer(LiveSessionApp(session, renderer), port=0) as server:
                session._do("laser", {"on": True})
                session._do("exposure", {"ms": 3.0})          # bright enough that the brightest pixels saturate
                for _ in range(3):
                    session.step()
                assert session.frames.newest()[1][0].max() >= session.saturation_dn
                shot = screenshot(server.url, tmp_path / "live.png", tmp_path, session.step)
        finally:
            renderer.stop()
            session.close()
    cv2.imwrite(str(tmp_path / "live-copy.png"), shot)
    assert shot.shape[:2] == (900, 1400)
    view = shot[:, :1050]                                     # the frame's side of the page
    assert _colour_pixels(view, "green") > 2000, "the window and grid were not drawn"
    assert _colour_pixels(view, "red") > 20, "the saturated pixels were not marked"
    assert _colour_pixels(view, "grey") > 200, "no frame was drawn"
    assert _colour_pixels(shot[:, 1050:], "red") > 50          # the laser's ON button lit red


def test_the_show_page_shows_a_runs_frame_and_image(tmp_path):
    cfg = parse_bench(small_bench_text({("laser", "power_mw"): "0.0003"}), "small-show.toml")
    with optgen.open_bench(cfg) as bench:
        bench.generate(2, out=tmp_path / "run2")
    browser = RunBrowser(tmp_path / "run2")
    try:
        with LiveServer(browser, port=0) as server:
            shot = screenshot(server.url, tmp_path / "show.png", tmp_path)
    finally:
        browser.close()
    view, side = shot[:, :1050], shot[:, 1050:]
    assert _colour_pixels(view, "green") > 2000
    assert _colour_pixels(view, "grey") > 50
    assert _colour_pixels(side, "grey") > 500, "the run's image was not drawn"
