"""The bench as one composite ophyd-async device: laser, two SLMs, camera (``optgen.bluesky.devices``).

The same code wraps the twin and real hardware: it holds an open ``optgen.Bench`` and wraps its
drivers (``bench.devices``), whatever the bench file opened.
"""

from __future__ import annotations

from pathlib import Path

from ophyd_async.core import Device, PathProvider, StaticPathProvider, UUIDFilenameProvider

from optgen.drivers.errors import OptgenError
from optgen.lab.bluesky.camera import OptgenCamera
from optgen.lab.bluesky.device_thread import DeviceThread
from optgen.lab.bluesky.laser import OptgenLaser
from optgen.lab.bluesky.patterns import PatternLibrary
from optgen.lab.bluesky.slm import OptgenSLM

__all__ = ["OptgenBench", "devices"]

CONNECT_TIMEOUT_S = 10.0


class OptgenBench(Device):
    """An open optgen bench under bluesky: ``laser``, ``encoding_slm``, ``decoding_slm``, ``camera``.

    ``bench`` is the ``optgen.Bench`` it wraps (its file, seeds and decoder are what the plans
    show); ``thread`` is the one thread every driver call runs on; ``patterns`` resolves pattern ids.
    """

    def __init__(self, bench, path_provider: PathProvider, name: str = "bench"):
        self.bench = bench
        self.thread = DeviceThread()
        self.patterns = PatternLibrary(bench)
        drivers = bench.devices
        self.laser = OptgenLaser(drivers.laser, self.thread)
        self.encoding_slm = OptgenSLM(bench, "encoding_slm", self.thread, self.patterns)
        self.decoding_slm = OptgenSLM(bench, "decoding_slm", self.thread, self.patterns)
        self.camera = OptgenCamera(drivers.camera, self.thread, path_provider)
        super().__init__(name=name)

    @property
    def config(self):
        """The bench file (``optgen.lab.bench.config.BenchConfig``)."""
        return self.bench.config

    def describe_bench(self) -> dict:
        """Every device's settings and identity, and the calibration ids (run on the device thread)."""
        return self.thread.call_now(self.bench.devices.describe)

    def close(self) -> None:
        """Laser off (verified), then end the device thread. The bench itself stays open (close it)."""
        try:
            if not self.bench.closed:
                self.laser.safe_off_now()
        finally:
            try:
                self.thread.close()
            finally:
                self.patterns.close()


def devices(bench, frames_dir: str | Path = "bluesky-frames", *, name: str = "bench",
            path_provider: PathProvider | None = None) -> OptgenBench:
    """The composite ophyd-async device for an open ``optgen.Bench``, connected.

    Parameters
    ----------
    bench : optgen.Bench
        From ``optgen.open_bench()``; the caller keeps closing it.
    frames_dir : str or Path, default "bluesky-frames"
        Where the camera writes its HDF5 frame files (one per staging, a UUID name).
    name : str, default "bench"
        The device's name: data keys read ``bench-laser-power``, ``bench-camera``, ...
    path_provider : PathProvider, optional
        Instead of ``frames_dir``: any ophyd-async path provider.

    Create the RunEngine first: the devices connect in bluesky's event loop.
    """
    from bluesky.run_engine import call_in_bluesky_event_loop, get_bluesky_event_loop

    from optgen.lab.api import Bench

    if not isinstance(bench, Bench):
        raise OptgenError(f"devices(bench): expected an open optgen.Bench (from optgen.open_bench()), "
                          f"got {type(bench).__name__}")
    bench._check_open()
    if get_bluesky_event_loop() is None:
        raise OptgenError("devices(bench): create the RunEngine first (bluesky.RunEngine()); the devices connect "
                          "in its event loop")
    if path_provider is None:
        path_provider = StaticPathProvider(UUIDFilenameProvider(), Path(frames_dir).resolve())
    device = OptgenBench(bench, path_provider, name=name)
    try:
        call_in_bluesky_event_loop(device.connect(timeout=CONNECT_TIMEOUT_S), timeout=CONNECT_TIMEOUT_S + 5.0)
    except BaseException:
        device.thread.close()
        device.patterns.close()
        raise
    return device
