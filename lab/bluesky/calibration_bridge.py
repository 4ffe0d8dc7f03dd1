"""optgen's calibration code, unchanged, driven pattern by pattern from a bluesky plan.

A calibration (``calibration.response.measure_response``, ``calibration.alignment``) is ordinary
blocking code over a ``CalibrationSession``: it shows a pattern, captures, looks at the frame and
decides what to show next (the exposure search, the diffraction orders it finds, the second
reference gray it picks from the first sweep). Here it runs on a worker thread of its own over a
*plan bench*: drivers that do nothing themselves but hand each device operation to the plan as a
request and wait for its answer. The plan (:func:`drive`) performs each request with the bluesky
devices - an SLM's ``pattern`` (the array registered with the pattern library, its id in the
event), the laser's ``power`` and ``emission``, the camera's ``exposure``, and one event per frame
(the camera by StreamDatum into HDF5, the laser and both SLMs read with it) - and hands the frame
back. So every driver call still runs on the devices' one thread, every frame is an event, and the
fit is the calibration's own.

What the plan bench changes in the session's behaviour:

- the camera keeps its whole sensor: a window of interest (``session.window``) would change the
  frame shape of the detector's HDF5 file, so ``set_woi`` is declined and the session falls back to
  whole frames, as it does on a camera that cannot window (the same measurement, slower on the twin);
- the session is not pipelined: each pattern is shown, settled (the SLM device waits latency +
  settle on the bench's clock), then captured;
- each SLM's upload waits its own settle time (the session waits once for both).

While the worker computes (the fit, the spot search), the plan waits with a ``wait_for`` message,
so the RunEngine's loop stays free for pauses and Ctrl-C. When the plan ends however (done,
failed, aborted), :meth:`Channel.close` makes the worker's next request raise
:class:`PlanEnded`, and the worker is joined (bounded).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import Msg

from optgen.drivers.errors import OptgenError
from optgen.lab.bluesky.plans import lit_frame, staged

__all__ = ["Channel", "PlanEnded", "drive"]

Plan = Generator[Msg, Any, Any]

WORKER_WAIT_S = 600.0     # the longest the plan waits for the calibration's next request (its fit, its search)
JOIN_S = 5.0              # how long the plan waits for the worker to end (it ends at its next request)


class PlanEnded(OptgenError):
    """The plan ended (done, failed or aborted) while the calibration still asked for the devices."""


@dataclass
class _Request:
    kind: str
    args: tuple
    reply: Future


class Channel:
    """Requests from the calibration's thread to the plan, one at a time, and their answers."""

    def __init__(self):
        self.next: Future = Future()
        self._closed = False
        self._lock = threading.Lock()

    # --- the calibration's thread ---------------------------------------------------------
    def ask(self, kind: str, *args):
        """Hand ``kind`` to the plan and wait for its answer (an error the plan met is raised here)."""
        reply: Future = Future()
        with self._lock:
            if self._closed:
                raise PlanEnded(f"the plan ended; the calibration's request {kind!r} was not carried out")
            self.next.set_result(_Request(kind, args, reply))
        return reply.result()

    def finish(self, result=None, error: BaseException | None = None) -> None:
        with self._lock:
            if not self._closed and not self.next.done():
                self.next.set_result(_Request("error" if error is not None else "done", (error or result,), Future()))

    # --- the plan ---------------------------------------------------------------------------
    def take(self) -> _Request:
        """The request that arrived; the next one goes to a new future (made before this is answered)."""
        request = self.next.result()
        self.next = Future()
        return request

    def close(self) -> None:
        with self._lock:
            self._closed = True


def _when_done(future: Future) -> Callable:
    """A ``wait_for`` factory: an awaitable done when ``future`` is (cancelling it leaves ``future`` be)."""
    async def wait() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def set_done(_):
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        future.add_done_callback(set_done)
        await done
    return wait


class _Timing:
    def __init__(self, exposure_s: float, readout_s: float):
        self.exposure_s, self.readout_s = exposure_s, readout_s


class _PlanCamera:
    """The camera as the session sees it: settings from the driver, exposure and frames from the plan."""

    def __init__(self, driver, channel: Channel, exposure_s: float):
        self._driver, self._channel, self._exposure_s = driver, channel, float(exposure_s)
        self.name, self.saturation_dn = driver.name, driver.saturation_dn
        self.exposure_bounds_s, self.shape = driver.exposure_bounds_s, tuple(driver.shape)
        self._readout_s = float(driver.timing.readout_s)

    @property
    def timing(self) -> _Timing:
        return _Timing(self._exposure_s, self._readout_s)

    @property
    def woi(self):
        return (0, self.shape[1], 0, self.shape[0])

    def set_woi(self, woi) -> None:
        """Declined: the detector's frame file has the whole sensor's shape (module docstring)."""

    def set_exposure(self, seconds: float) -> None:
        self._exposure_s = float(self._channel.ask("exposure", float(seconds)))

    def capture(self) -> np.ndarray:
        return self._channel.ask("capture")

    def capture_series(self, count: int) -> np.ndarray:
        """``count`` frames, each one the plan's trigger and read."""
        return np.stack([self.capture() for _ in range(int(count))])


class _PlanLaser:
    def __init__(self, driver, channel: Channel):
        self._driver, self._channel = driver, channel
        self.name, self.wavelength_nm = driver.name, driver.wavelength_nm

    def check_power(self, watts: float) -> float:
        return self._driver.check_power(watts)

    def set_power(self, watts: float) -> None:
        self._channel.ask("power", float(self._driver.check_power(watts)))

    def set_emission(self, on: bool) -> bool:
        return bool(self._channel.ask("emission", bool(on)))

    def safe_off(self) -> None:
        try:
            self._channel.ask("emission", False)
        except PlanEnded:
            pass           # the plan's own clean-up turns the laser off (verified)


class _PlanSLM:
    """An SLM: everything from the driver (shape, LUT, ``phase_to_gray``) but ``set_phase``, which the plan does."""

    def __init__(self, driver, role: str, channel: Channel):
        self._driver, self._role, self._channel = driver, role, channel

    def set_phase(self, pattern: np.ndarray) -> None:
        self._channel.ask("show", self._role, np.array(pattern, copy=True))

    def __getattr__(self, name: str):
        return getattr(self._driver, name)


class _PlanClock:
    """The bench's clock to read; its sleeps are done (the SLM device waits each upload's settle time)."""

    def __init__(self, clock):
        self._clock = clock

    def now(self) -> float:
        return self._clock.now()

    def sleep(self, seconds: float) -> None:
        pass


class PlanBench:
    """What a ``CalibrationSession`` needs of a bench (``lab.bench.Bench``), over a :class:`Channel`."""

    def __init__(self, bench, channel: Channel, exposure_s: float):
        self.config, self.luts, self.calibrations = bench.config, bench.luts, bench.calibrations
        self.laser = _PlanLaser(bench.laser, channel)
        self.camera = _PlanCamera(bench.camera, channel, exposure_s)
        self.encoding_slm = _PlanSLM(bench.encoding_slm, "encoding_slm", channel)
        self.decoding_slm = _PlanSLM(bench.decoding_slm, "decoding_slm", channel)
        self.clock = _PlanClock(bench.clock)


def _describe(array: np.ndarray) -> str:
    """``key=value`` words for a pattern the calibrations show: a uniform gray or a binary gray grating."""
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        return "kind=phase" if array.ndim == 2 else ""
    values = np.unique(array[0])
    if values.size == 1 and (array == values[0]).all():
        return f"gray={int(values[0])}"
    if values.size == 2 and (array == array[0]).all():
        row = array[0]
        edges = np.flatnonzero(np.diff(row.astype(np.int64)) != 0)
        if edges.size >= 2:
            half = int(np.min(np.diff(edges)))
            centre = int(row[row.size // 2])
            other = int(values[0] if values[1] == centre else values[1])
            return f"test={centre},ref={other},period_px={2 * half}"
    return "kind=gray"


def drive(devices, work: Callable[[Any], Any], *, frames_stream: str = "primary") -> Plan:
    """Run ``work(plan_bench)`` on a worker thread; carry out its device requests as plan messages.

    Needs the laser staged (it is, inside :func:`armed`) and the camera staged. Returns what ``work``
    returned; raises what it raised.
    """
    camera, laser = devices.camera, devices.laser
    slms = {"encoding_slm": devices.encoding_slm, "decoding_slm": devices.decoding_slm}
    readers = [slms["encoding_slm"], slms["decoding_slm"]]
    channel = Channel()
    exposure = yield from bps.rd(camera.exposure)
    plan_bench = PlanBench(devices.bench.devices, channel, exposure)
    lit = False

    def body() -> None:
        try:
            result = work(plan_bench)
        except BaseException as exc:  # noqa: BLE001 - handed to the plan, raised there
            channel.finish(error=exc)
        else:
            channel.finish(result)

    worker = threading.Thread(target=body, name="optgen-calibration-plan", daemon=True)
    worker.start()
    try:
        while True:
            yield from bps.checkpoint()       # a pause while the worker computes rewinds to here
            yield from bps.wait_for([_when_done(channel.next)], timeout=WORKER_WAIT_S)
            request = channel.take()
            if request.kind == "done":
                return request.args[0]
            if request.kind == "error":
                raise request.args[0]
            try:
                if request.kind == "show":
                    role, array = request.args
                    pattern_id = devices.patterns.register(array, _describe(array))
                    yield from bps.mv(slms[role].pattern, pattern_id)
                    answer = None
                elif request.kind == "power":
                    yield from bps.mv(laser.power, request.args[0])
                    answer = None
                elif request.kind == "emission":
                    yield from bps.mv(laser.emission, request.args[0])
                    lit = bool((yield from bps.rd(laser.emission)))
                    answer = lit
                elif request.kind == "exposure":
                    yield from bps.mv(camera.exposure, request.args[0])
                    answer = yield from bps.rd(camera.exposure)
                elif request.kind == "capture":
                    if lit:
                        yield from lit_frame(devices, readers, stream=frames_stream)
                    else:
                        yield from _dark_event(devices, readers, frames_stream)
                    answer = yield from _last_frame(devices)
                else:
                    raise OptgenError(f"calibration plan: unknown request {request.kind!r}")
            except BaseException as exc:
                request.reply.set_exception(exc)
                raise
            request.reply.set_result(answer)
    finally:
        channel.close()             # the worker's next request raises PlanEnded
        devices.patterns.forget()
        worker.join(JOIN_S)         # done at once unless the plan ended while it computed


def _dark_event(devices, readers, stream: str) -> Plan:
    """One event of a frame taken with the laser off (a dark frame of the calibration)."""
    camera, laser = devices.camera, devices.laser
    yield from bps.checkpoint()
    yield from bps.trigger(camera, wait=True)
    yield from bps.create(stream)
    yield from bps.read(laser)
    yield from bps.read(camera)
    for reader in readers:
        yield from bps.read(reader)
    yield from bps.save()


def _last_frame(devices) -> Plan:
    """The frame the last event saved (the last row of the camera's frame file), read on the device thread."""
    camera = devices.camera
    holder: dict = {}

    def read_now() -> np.ndarray:
        file = camera.file
        return np.array(file._frames[file.count - 1])

    async def read() -> None:
        holder["frame"] = await camera.thread.call(read_now)

    yield from bps.wait_for([read], timeout=WORKER_WAIT_S)
    return holder["frame"]


def armed(devices, plan) -> Plan:
    """Run ``plan`` with the laser staged (so a calibration may light it) but dark until it asks;
    off (verified) and unstaged after it, however it ends; the camera staged throughout."""
    laser = devices.laser

    def inner() -> Plan:
        yield from bps.stage(laser, wait=True)
        return (yield from staged(devices.camera, plan))

    def off() -> Plan:
        yield from bps.mv(laser.emission, False)
        yield from bps.unstage(laser, wait=True)

    return (yield from bpp.finalize_wrapper(inner(), off()))
