"""The camera as an ophyd-async ``StandardDetector`` that writes its frames to HDF5.

ophyd-async builds a detector from three logics; here they are thin:

- trigger: internal triggering only (a software-triggered ``capture()``); a ``livetime`` sets the
  exposure; deadtime is whatever the camera needs;
- acquire: each start takes the frames it was prepared for, one ``capture()`` after another on the
  device thread, each appended to the frame file before the next (``start_acquiring`` awaits them,
  so a capture error reaches the plan at once instead of as a timeout);
- data: a frame file per staging (:mod:`optgen.lab.bluesky.frame_file`) named by the path
  provider, described by StreamResource documents, each frame by a StreamDatum.

A pause or suspension of the RunEngine (``pause()``) waits for the frame in flight and rolls back
any frame no event has pointed to yet: the RunEngine rewinds to the last checkpoint and takes it again.
A plan that drops an event (a frame taken while the laser was off) rolls its frame back the same
way by triggering ``discard_unread``.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from pathlib import Path

import numpy as np
from ophyd_async.core import (
    AsyncStatus,
    DetectorAcquireLogic,
    DetectorDataLogic,
    DetectorTriggerLogic,
    PathProvider,
    SignalR,
    SoftCommandBackend,
    StandardDetector,
    StreamableDataProvider,
    TriggerableCommand,
    TriggerInfo,
    soft_signal_rw,
)
from ophyd_async.core import soft_signal_r_and_setter as soft_signal_r

from optgen.drivers.errors import DeviceError
from optgen.lab.bluesky.device_thread import DeviceThread
from optgen.lab.bluesky.frame_file import FrameFile, frame_provider

__all__ = ["OptgenCamera"]

PAUSE_WAIT_S = 30.0     # the longest pause() waits for a frame in flight (the capture's own timeout is shorter)


class _TriggerLogic(DetectorTriggerLogic):
    def __init__(self, camera: "OptgenCamera"):
        self.camera = camera

    def config_sigs(self) -> set[SignalR]:
        return {self.camera.exposure}

    async def prepare_internal(self, num: int, livetime: float, deadtime: float) -> None:
        if livetime:
            await self.camera.exposure.set(livetime)
        self.camera.frames_per_start = num

    async def default_trigger_info(self) -> TriggerInfo:
        return TriggerInfo()


class _AcquireLogic(DetectorAcquireLogic):
    def __init__(self, camera: "OptgenCamera"):
        self.camera = camera
        self.busy: asyncio.Future | None = None

    async def start_acquiring(self) -> None:
        self.busy = asyncio.ensure_future(self.camera._take(self.camera.frames_per_start))
        await self.busy

    async def wait_for_idle(self) -> None:
        if self.busy is not None:
            await self.busy

    async def ensure_stopped(self) -> None:
        if self.busy is not None and not self.busy.done():
            await asyncio.wait([self.busy], timeout=PAUSE_WAIT_S)
        self.busy = None


class _DataLogic(DetectorDataLogic):
    def __init__(self, camera: "OptgenCamera", path_provider: PathProvider):
        self.camera, self.path_provider = camera, path_provider
        self.provider = None

    async def prepare_unbounded(self, datakey_name: str) -> StreamableDataProvider:
        camera = self.camera
        info = self.path_provider(datakey_name)
        name = f"{info.filename}.h5"
        camera.file = await camera.thread.call(FrameFile, Path(info.directory_path) / name, camera.frame_shape,
                                               camera.frame_dtype)
        camera._set_written(0)
        self.provider = frame_provider(f"{info.directory_uri}{name}", datakey_name, camera.frame_shape,
                                       camera.frame_dtype, camera.frames_written)
        return self.provider

    async def stop(self) -> None:
        file, self.camera.file, self.provider = self.camera.file, None, None
        if file is not None:
            await self.camera.thread.call(file.close)

    def get_hinted_fields(self, datakey_name: str) -> list[str]:
        return [datakey_name]


class OptgenCamera(StandardDetector):
    """The bench camera (``optgen.drivers.camera.BenchCamera``) as a detector writing HDF5.

    ``exposure`` (seconds) is read back from the camera and checked against its bounds when set;
    ``frames_written`` counts the frames in the current file; triggering ``discard_unread`` rolls
    back the frames no event points to.
    """

    def __init__(self, driver, thread: DeviceThread, path_provider: PathProvider, name: str = ""):
        self.driver, self.thread = driver, thread
        self.frame_shape = tuple(int(v) for v in driver.shape)
        self.frame_dtype = np.dtype(getattr(driver, "dtype", np.uint16))
        self.frames_per_start = 1
        self.file: FrameFile | None = None
        self.exposure = soft_signal_rw(float, units="s", getter=self._get_exposure, setter=self._set_exposure)
        self.frames_written, self._set_written = soft_signal_r(int)
        self.discard_unread = TriggerableCommand(
            SoftCommandBackend(self._discard_unread, inspect.signature(self._discard_unread, eval_str=True)),
            timeout=PAUSE_WAIT_S + 5.0)
        self._acquire = _AcquireLogic(self)
        self._data = _DataLogic(self, path_provider)
        self.add_detector_logics(_TriggerLogic(self), self._acquire, self._data)
        super().__init__(name=name)

    async def _get_exposure(self) -> float:
        return await self.thread.call(lambda: float(self.driver.exposure_s))

    async def _set_exposure(self, seconds: float) -> float:
        seconds = float(seconds)
        bounds = self.driver.exposure_bounds_s
        if not math.isfinite(seconds) or seconds <= 0 or (bounds is not None and not bounds[0] <= seconds <= bounds[1]):
            where = f" (the camera's bounds are {bounds[0]:g} .. {bounds[1]:g} s)" if bounds is not None else ""
            raise DeviceError(self.driver.name, f"exposure {seconds!r} s: expected a positive time{where}")
        return await self.thread.call(self._set_exposure_now, seconds)

    def _set_exposure_now(self, seconds: float) -> float:
        self.driver.set_exposure(seconds)
        return float(self.driver.exposure_s)

    async def _take(self, count: int) -> None:
        for _ in range(count):
            self._set_written(await self.thread.call(self._capture_one))

    def _capture_one(self) -> int:
        """Device thread: one frame, stored; the number of frames in the file."""
        if self.file is None:
            raise DeviceError(self.driver.name, "no frame file is open (the detector was not prepared)")
        return self.file.append(self.driver.capture())

    @AsyncStatus.wrap
    async def unstage(self) -> None:
        """Stop, close the frame file and forget the preparation: a trigger after this prepares a
        new file instead of writing into the closed one."""
        await super().unstage()
        self._prepare_ctx = None

    # --- the RunEngine's pause hooks ---------------------------------------------------------------
    async def pause(self) -> None:
        """Wait for the frame in flight, then roll back the frames no event points to yet."""
        await self._discard_unread()

    async def _discard_unread(self) -> None:
        busy = self._acquire.busy
        if busy is not None and not busy.done():
            await asyncio.wait([busy], timeout=PAUSE_WAIT_S)
        provider, file = self._data.provider, self.file
        if provider is not None and file is not None and file.count > provider.last_emitted:
            await self.thread.call(file.truncate, provider.last_emitted)
            self._set_written(provider.last_emitted)

    async def resume(self) -> None:
        """Nothing to do: the RunEngine takes the rolled-back frames again."""
