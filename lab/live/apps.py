"""What the live view's server serves: the camera of an open bench (``optgen live``) or the frames
and images of a run folder (``optgen show``)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from optgen.drivers.errors import OptgenError
from optgen.lab.live.picture import overlay_from_registration, render_frame
from optgen.lab.live.renderer import FrameRenderer
from optgen.lab.live.server import FRAME_WAIT_S
from optgen.lab.live.session import LiveSession

__all__ = ["LiveSessionApp", "RunBrowser"]

IMAGE_PX = 256          # a run's output image is shown this many pixels wide (nearest neighbour)


class LiveSessionApp:
    """The live camera: frames from the renderer, commands to the session's main thread."""

    def __init__(self, session: LiveSession, renderer: FrameRenderer) -> None:
        self.session, self.renderer = session, renderer

    def describe(self) -> dict:
        return self.session.describe()

    def state(self) -> dict:
        state = self.session.state(self.renderer)
        _, newest = self.renderer.shown.newest()
        state["frame"] = newest.stats() if newest is not None else None
        return state

    def frame(self, query: dict[str, str]) -> tuple[int, bytes] | None:
        after = _whole(query.get("after", "0"), "after")
        seq, rendered = self.renderer.shown.wait_newer(after, FRAME_WAIT_S)
        return (seq, rendered.jpeg) if rendered is not None else None

    def image(self, query: dict[str, str]) -> bytes | None:
        return None

    def command(self, name: str, params: dict) -> dict:
        return self.session.submit(name, params)

    def touch(self) -> None:
        self.session.touch()


class RunBrowser:
    """A run folder's raw frames (with the overlay the run's calibrations give) and its images."""

    def __init__(self, folder: str | Path) -> None:
        from optgen.lab.runfile.layout import RunFileError
        from optgen.lab.runfile.reader import RunFile

        self.folder = Path(folder)
        if self.folder.name == "run.h5":
            self.folder = self.folder.parent
        path = self.folder / "run.h5"
        if not path.is_file():
            raise RunFileError(f"{self.folder}: no run.h5 here; not a run folder (optgen run writes one)")
        self._lock = threading.Lock()          # h5py is not to be read from two threads at once
        self._file = RunFile(path)
        self.attrs = self._file.attrs
        self.indices = [int(i) for i in self._file.indices]
        self.status = self._file.status()
        self.config, self.overlay = self._overlay()
        camera = (self.attrs.get("devices") or {}).get("camera") or {}
        self.bitdepth = int(camera.get("bitdepth") or self.config.camera.bitdepth)
        # runs record the camera's saturation since the live view came; older ones: the ADC's top
        self.saturation_dn = float(camera.get("saturation_dn") or 2 ** self.bitdepth - 1)
        self.scale = "full"
        self.quit = threading.Event()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _overlay(self):
        """(bench config, overlay): the placement of the run's own alignment where its store still holds
        it, else the bench file's nominal placement (and the overlay says which)."""
        from optgen.lab.bench.calibrations import load_bench_calibrations
        from optgen.lab.bench.parse import parse_bench
        from optgen.lab.run.registration import OutputRegistration

        cfg = parse_bench(self.attrs["bench_file"], str(self.folder / "run.h5"))
        used = (self.attrs.get("calibrations") or {}).get("alignment", "")
        store = self.attrs.get("calibration_store") or ""
        measured, source = None, "nominal placement from the bench file (the run was not aligned)"
        if store and not str(used).startswith("none"):
            try:
                cals = load_bench_calibrations(cfg, store)
                if cals.alignment is not None and cals.alignment.id == used:
                    measured, source = cals.output_to_sensor(), f"alignment {used} (the run's own)"
                else:
                    source = f"nominal placement: the run's alignment {used} is no longer in {store}"
            except OptgenError as exc:
                source = f"nominal placement: the run's calibration store cannot be read ({exc})"
        registration = OutputRegistration(cfg, output_to_sensor=measured)
        window = self.attrs.get("readout_window")
        if isinstance(window, (list, tuple, np.ndarray)) and len(window) == 4:   # frames of a window of the sensor
            registration.read_from(tuple(int(v) for v in window))
        return cfg, overlay_from_registration(registration, measured is not None, source)

    def describe(self) -> dict:
        shape = self._file.frame_shape
        return {"mode": "show", "bench": self.config.name, "source": str(self.folder),
                "sensor": {"width": int(shape[1]), "height": int(shape[0]), "bitdepth": self.bitdepth,
                           "saturation_dn": self.saturation_dn},
                "overlay": self.overlay.as_dict(), "frames": self.indices, "count": int(self._file.count),
                "status": _status_line(self.status)}

    def state(self) -> dict:
        return {"scale": self.scale, "message": "", "error": ""}

    def _index(self, query: dict[str, str]) -> int:
        index = _whole(query.get("index", ""), "index")
        if index not in self.indices:
            raise OptgenError(f"{self.folder}: frame {index} is not stored (stored: {len(self.indices)} frames, "
                              f"{self.indices[0] if self.indices else '-'} .. {self.indices[-1] if self.indices else '-'})")
        return index

    def frame(self, query: dict[str, str]) -> tuple[int, bytes] | None:
        index = self._index(query)
        scale = query.get("scale", "full")
        if scale not in ("full", "auto"):
            raise OptgenError(f"scale = {scale!r}: expected full or auto")
        with self._lock:
            raw = self._file.frame(index)
        return index, render_frame(raw, index, bitdepth=self.bitdepth, saturation_dn=self.saturation_dn,
                                   scale=scale).jpeg

    def frame_stats(self, index: int) -> dict:
        with self._lock:
            raw = self._file.frame(index)
        r = render_frame(raw, index, bitdepth=self.bitdepth, saturation_dn=self.saturation_dn)
        return r.stats()

    def image(self, query: dict[str, str]) -> bytes | None:
        index = self._index(query)
        row = self.indices.index(index)
        with self._lock:
            image = self._file.images(limit=row + 1)[row]
        top = float(image.max()) if image.size else 0.0
        grey = np.clip(image / top * 255.0, 0, 255).astype(np.uint8) if top > 0 else np.zeros(image.shape, np.uint8)
        big = cv2.resize(grey, (IMAGE_PX, IMAGE_PX), interpolation=cv2.INTER_NEAREST)
        ok, png = cv2.imencode(".png", big)
        if not ok:
            raise OptgenError(f"{self.folder}: image {index} could not be encoded")
        return png.tobytes()

    def command(self, name: str, params: dict) -> dict:
        if name == "stats":
            try:
                return {"ok": True, "frame": self.frame_stats(self._index({"index": str(params.get("index", ""))}))}
            except OptgenError as exc:
                return {"ok": False, "error": str(exc)}
        if name == "quit":
            self.quit.set()
            return {"ok": True, "message": "closing"}
        return {"ok": False, "error": f"{name}: optgen show only browses a run (no devices are open)"}

    def touch(self) -> None:
        pass


def _status_line(status: dict) -> str:
    """The run's status in words: how far it got and why it stopped."""
    line = (f"{status['status']}: {status['frames_written']} of {status['frames_requested']} frames stored"
            + (f", first missing {status['first_missing']}" if status.get("first_missing") is not None else ""))
    return line + (f"; {status['stop_reason']}" if status.get("stop_reason") else "")


def _whole(text: str, name: str) -> int:
    if not str(text).isdigit():
        raise OptgenError(f"{name} = {text!r}: expected a whole number >= 0")
    return int(text)

