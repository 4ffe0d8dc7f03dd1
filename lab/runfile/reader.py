"""Reading run.h5: the one module through which every reader of a run file reads it.

A :class:`RunFile` opens the file read-only and without HDF5's file lock, so a run still being
written (or a killed one) can be read; :func:`read_run_attrs` and :func:`read_run_status` are the
short forms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optgen.lab.runfile.layout import (
    FINISHED,
    PER_FRAME_FIELDS,
    RunEvent,
    decoded_attrs,
    open_run_file,
    read_events,
    utc_text,
)

__all__ = ["RunFile", "read_run_attrs", "read_run_status"]


class RunFile:
    """A run.h5 opened read-only, also while a run is writing it; use it as a context manager.

    Arrays come back for the frames stored so far (``written``), in frame order, unless
    ``every_row=True`` (rows of frames never stored are then whatever the file holds).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = open_run_file(self.path, "r", locking=False)
        self.attrs = decoded_attrs(self._f)
        self.written = self._f["meta/written"][:]

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "RunFile":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def count(self) -> int:
        """Frames the run was asked for."""
        return int(self.written.size)

    @property
    def indices(self) -> np.ndarray:
        """Indices of the frames stored, ascending."""
        return np.flatnonzero(self.written)

    def _rows(self, name: str, every_row: bool, limit: int | None = None) -> np.ndarray:
        data = self._f[name]
        if every_row:
            return data[...]
        rows = self.indices if limit is None else self.indices[:limit]
        return data[rows] if rows.size else data[0:0]

    def images(self, every_row: bool = False, limit: int | None = None) -> np.ndarray:
        """Registered output images (N, n, n) float32, counts above dark."""
        return self._rows("images", every_row, limit)

    def seed_phase(self, every_row: bool = False) -> np.ndarray:
        """Seed phases as shown (N, s, s) float32 radians."""
        return self._rows("seed/phase", every_row)

    def seed_index(self, every_row: bool = False) -> np.ndarray:
        return self._rows("seed/index", every_row)

    def seed_id(self, every_row: bool = False) -> list[str]:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in self._rows("seed/id", every_row)]

    def meta(self, name: str, every_row: bool = False) -> np.ndarray:
        """A per-frame field: timestamp_s, exposure_s, laser_power_w, saturated_pixels, stored_s."""
        if name not in PER_FRAME_FIELDS and name != "stored_s":
            raise KeyError(f"{self.path}: no per-frame field {name!r}; there are {sorted(PER_FRAME_FIELDS)}")
        return self._rows(f"meta/{name}", every_row)

    def frame(self, index: int) -> np.ndarray:
        """One raw frame (H, W) uint16, read from disk now."""
        return self._f["frames"][int(index)]

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self._f["frames"].shape[1:])

    @property
    def decoder_phase(self) -> np.ndarray | None:
        return self._f["decoder_phase"][...] if "decoder_phase" in self._f else None

    @property
    def dark(self) -> np.ndarray | None:
        """The first session's dark frame (laser off)."""
        return self._f["dark"][...] if "dark" in self._f else None

    def events(self) -> list[RunEvent]:
        return read_events(self._f)

    def status(self) -> dict:
        """How far the run got (see :func:`read_run_status`)."""
        return _status(self.path, self.attrs, self.written, self._f["meta/stored_s"][:][self.written], self.events())


def read_run_attrs(path: str | Path) -> dict:
    """The attributes of a run file (JSON decoded); works while a run is writing it."""
    path = Path(path)
    with open_run_file(path, "r", locking=False) as f:
        return decoded_attrs(f)


def read_run_status(path: str | Path) -> dict:
    """How far a run got, read without modifying the file (also while another process writes it).

    ``status`` is the recorded final status, or "killed or still running" for a run that was
    never closed; ``stop_reason`` then is what ``mark_stopped`` recorded, if anything.
    """
    with RunFile(path) as run:
        return run.status()


def _status(path: Path, attrs: dict, marks: np.ndarray, stored: np.ndarray, events: list[RunEvent]) -> dict:
    status = attrs.get("status")
    reason = attrs.get("stop_reason", "")
    if status not in FINISHED:
        mark = _last_mark(events)
        status, reason = "killed or still running", (f"{mark[0]}: {mark[1]}" if mark and mark[1] else
                                                      mark[0] if mark else "")
    missing = np.flatnonzero(~marks)
    return {"path": str(path), "status": status, "stop_reason": reason, "frames_requested": int(marks.size),
            "frames_written": int(marks.sum()), "first_missing": int(missing[0]) if missing.size else None,
            "created_utc": attrs.get("created_utc"),
            "last_write_utc": utc_text(float(stored.max())) if stored.size else None,
            "events": events}


def _last_mark(events: list[RunEvent]) -> tuple[str, str] | None:
    """(status, reason) of the last ``mark_stopped`` after the last start or resume, if any."""
    for event in reversed(events):
        if event.kind in ("created", "resumed"):
            return None
        if event.kind == "status":
            status, _, reason = event.text.partition(": ")
            return status, reason
    return None
