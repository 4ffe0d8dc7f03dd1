"""The HDMI SLM driver on a virtual X display, checked pixel by pixel from the X server.

The test starts its own Xvfb (``-displayfd`` lets the server pick a free display number). The
SLM runs in a child process (pyglet keeps a window thread and an X connection; a child with a
timeout cannot hang or crash pytest), shows patterns on command, and this process reads the
root window back with Xlib's ``XGetImage`` through ctypes, so no screenshot tool is needed.
Debian packages: ``xvfb`` (it pulls in libgl1-mesa-dri and libx11-6).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import SLMTiming
from optgen.drivers.slms.screen import ScreenSLM

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1024, 768

CHILD = r"""
import json, sys
import numpy as np
from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import SLMTiming
from optgen.drivers.slms.screen import ScreenSLM

def say(**message):
    print(json.dumps(message), flush=True)

def wait():
    if sys.stdin.readline().strip() != "next":
        raise SystemExit("test went away")

timing = SLMTiming(refresh_hz=60.0, latency_frames=2, settle_s=0.0)
for display, resolution, allow_main in ((0, (1920, 1080), True), (1, None, True), (0, None, False)):
    try:
        ScreenSLM(display, timing=timing, resolution=resolution, allow_main=allow_main)
        say(refused=None)
    except DeviceError as error:
        say(refused=str(error))
slm = ScreenSLM(0, timing=timing, resolution=(1024, 768), name="enc", vendor="HOLOEYE", model="PLUTO-2",
                allow_main=True)
say(shown="zero", describe=slm.describe())
wait()
y, x = np.mgrid[:768, :1024]
slm.set_phase(((x + 3 * y) % 256).astype(np.uint8))
say(shown="ramp")
wait()
phase = np.random.default_rng(7).uniform(-9.0, 9.0, slm.shape)
np.save(sys.argv[1], phase)
display = slm.set_phase(phase)
np.save(sys.argv[2], display)
say(shown="radians")
wait()
slm.close()
slm.close()
say(closed=True)
"""


class XImage(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.c_void_p), ("byte_order", ctypes.c_int),
                ("bitmap_unit", ctypes.c_int), ("bitmap_bit_order", ctypes.c_int),
                ("bitmap_pad", ctypes.c_int), ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int),
                ("bits_per_pixel", ctypes.c_int), ("red_mask", ctypes.c_ulong),
                ("green_mask", ctypes.c_ulong), ("blue_mask", ctypes.c_ulong)]


def screenshot(display: str) -> np.ndarray:
    """The root window of ``display`` as (height, width, 3) uint8 RGB, read with XGetImage."""
    xlib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    xlib.XOpenDisplay.restype, xlib.XOpenDisplay.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    xlib.XDefaultRootWindow.restype, xlib.XDefaultRootWindow.argtypes = ctypes.c_ulong, [ctypes.c_void_p]
    xlib.XDisplayWidth.argtypes = xlib.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xlib.XGetImage.restype = ctypes.POINTER(XImage)
    xlib.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                               ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    xlib.XCloseDisplay.argtypes = xlib.XFree.argtypes = [ctypes.c_void_p]
    connection = xlib.XOpenDisplay(display.encode())
    assert connection, f"cannot connect to X display {display}"
    try:
        width, height = xlib.XDisplayWidth(connection, 0), xlib.XDisplayHeight(connection, 0)
        pointer = xlib.XGetImage(connection, xlib.XDefaultRootWindow(connection), 0, 0, width, height,
                                 0xFFFFFFFFFFFFFFFF, 2)                    # AllPlanes, ZPixmap
        image = pointer.contents
        try:
            assert image.bits_per_pixel == 32 and image.byte_order == 0, "expected 32-bit LSB-first pixels"
            raw = ctypes.string_at(image.data, image.bytes_per_line * image.height)
            words = np.frombuffer(raw, "<u4").reshape(image.height, -1)[:, :image.width]
            masks = (image.red_mask, image.green_mask, image.blue_mask)
        finally:
            xlib.XFree(image.data)                                         # what XDestroyImage frees
            xlib.XFree(pointer)
        channels = []
        for mask in masks:
            shift = (mask & -mask).bit_length() - 1
            channels.append(((words & mask) >> shift).astype(np.uint8))
        return np.stack(channels, axis=-1)
    finally:
        xlib.XCloseDisplay(connection)


@pytest.fixture(scope="module")
def xvfb():
    """A private Xvfb server; yields its DISPLAY string."""
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb)")
    read_end, write_end = os.pipe()
    server = subprocess.Popen([binary, "-displayfd", str(write_end), "-screen", "0", f"{WIDTH}x{HEIGHT}x24",
                               "+extension", "GLX", "+render", "-noreset", "-nolisten", "tcp"],
                              pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 15.0)
        number = os.read(read_end, 64).decode().strip() if ready else ""
        if not number:
            server.kill()
            pytest.fail(f"Xvfb did not start: {server.communicate(timeout=5)[1].decode()[-500:]}")
        yield f":{number}"
    finally:
        os.close(read_end)
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


class Child:
    """The SLM process, driven one JSON line at a time, every wait bounded."""

    def __init__(self, display: str, *argv: str):
        env = {**os.environ, "DISPLAY": display, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen([sys.executable, "-c", CHILD, *argv], cwd=ROOT, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read(self, timeout: float = 60.0) -> dict:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.process.kill()
            pytest.fail(f"SLM process said nothing within {timeout} s; stderr:\n{self.process.communicate(timeout=10)[1][-3000:]}")
        return json.loads(line)

    def next(self) -> None:
        self.process.stdin.write("next\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


def gray(shot: np.ndarray) -> np.ndarray:
    """The gray level of a screenshot, checking that R = G = B."""
    assert np.array_equal(shot[..., 0], shot[..., 1]) and np.array_equal(shot[..., 0], shot[..., 2])
    return shot[..., 0]


def test_screen_shows_exactly_the_gray_levels_sent(xvfb, tmp_path):
    child = Child(xvfb, str(tmp_path / "phase.npy"), str(tmp_path / "display.npy"))
    try:
        mismatch, missing, main = (child.read()["refused"] for _ in range(3))
        assert "screen 0 is 1024x768, the bench file says 1920x1080" in mismatch
        assert "no screen 1" in missing
        assert "screen 0 is the main screen" in main

        zero = child.read()
        assert zero["shown"] == "zero"
        assert zero["describe"]["identity"]["model"] == "PLUTO-2"
        assert zero["describe"]["screen"]["geometry"] == [0, 0, WIDTH, HEIGHT]
        assert np.all(gray(screenshot(xvfb)) == 255)          # phase 0 is the top gray level

        child.next()
        assert child.read()["shown"] == "ramp"
        y, x = np.mgrid[:HEIGHT, :WIDTH]
        np.testing.assert_array_equal(gray(screenshot(xvfb)), (x + 3 * y) % 256)

        child.next()
        assert child.read()["shown"] == "radians"
        phase, display = np.load(tmp_path / "phase.npy"), np.load(tmp_path / "display.npy")
        # slmsuite's linear map, computed as it does on the float32 copy of the phase
        scaled = np.rint(phase.astype(np.float32) * (-256 / 2 / np.pi)).astype(np.int64)
        expected = ((scaled - 1) & 255).astype(np.uint8)
        np.testing.assert_array_equal(display, expected)       # converted once, by optgen's LUT
        np.testing.assert_array_equal(gray(screenshot(xvfb)), display)

        child.next()
        assert child.read() == {"closed": True}
        assert child.process.wait(timeout=30) == 0
    finally:
        child.stop()


def test_no_display_is_a_clear_error(monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("DISPLAY matters on Linux only")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(DeviceError, match="DISPLAY is not set"):
        ScreenSLM(1, timing=SLMTiming(60.0, 2, 0.0))


def test_missing_pyglet_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":99999")
    monkeypatch.setitem(sys.modules, "pyglet", None)           # import pyglet now raises ImportError
    with pytest.raises(DeviceError, match=r"pip install 'pyglet>=2\.1\.19'"):
        ScreenSLM(1, timing=SLMTiming(60.0, 2, 0.0))


def test_more_than_eight_bits_is_refused():
    with pytest.raises(DeviceError, match="at most 8 bits"):
        ScreenSLM(1, timing=SLMTiming(60.0, 2, 0.0), bitdepth=10)
