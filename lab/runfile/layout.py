"""The layout of run.h5 (format version 2; see optgen.lab.runfile.storage for the datasets), its
errors, and the few functions reader and writer share: opening a file checked, its attributes
and its event log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from optgen.drivers.errors import OptgenError

__all__ = ["DISK_MARGIN_BYTES", "DiskFullError", "EVENT_DTYPE", "FINISHED", "FORMAT_VERSION", "PART_SUFFIX",
           "PER_FRAME_FIELDS", "RunEvent", "RunFileError", "SEED_ID_BYTES", "decoded_attrs", "encode_attrs",
           "fixed_text", "open_run_file", "read_events", "utc_text"]

FORMAT_VERSION = 2
PER_FRAME_FIELDS = {
    "timestamp_s": np.float64,
    "exposure_s": np.float64,
    "laser_power_w": np.float64,
    "saturated_pixels": np.int64,
}
SEED_ID_BYTES = 128

#: Every dataset's units and a one-line description, written as its "units" and "description"
#: attributes (a reader of run.h5 need not know optgen to know what a number means).
DATASET_DOCS = {
    "frames": ("camera counts (DN)", "raw camera frame of each seed, as the camera delivered it"),
    "images": ("camera counts above dark (DN) per camera pixel, mean over each output pixel",
               "the output window registered onto the model's output grid, one image per frame"),
    "seed/phase": ("rad", "the seed phase shown on the encoding SLM, one value per superpixel"),
    "seed/gray": ("gray level", "the encoding SLM's gray levels for each superpixel, after its LUT"),
    "seed/index": ("1", "the seed's index in its seed source (the noise drawn from (random seed, index))"),
    "seed/id": ("text", "the seed's identity: source, random seed and index"),
    "meta/timestamp_s": ("s", "when the frame was captured (seconds since the epoch, UTC)"),
    "meta/exposure_s": ("s", "the camera's exposure as read back for the frame"),
    "meta/laser_power_w": ("W", "the laser's power read-back for the frame"),
    "meta/saturated_pixels": ("pixels", "pixels at the saturation level in the frame"),
    "meta/stored_s": ("s", "when the frame was stored (seconds since the epoch, UTC)"),
    "meta/written": ("bool", "whether the frame's row holds a stored frame (a stopped run has gaps)"),
    "log/events": ("s; text; text", "the run's events: time_s (seconds since the epoch, UTC), kind, text"),
    "log/written": ("bool", "whether the event's row holds an event"),
    "dark": ("camera counts (DN)", "dark frame (laser off) at the run's exposure; dark_1, ... for each resume"),
    "decoder_phase": ("rad", "the decoder phase shown on the decoding SLM for the whole run"),
}


def document_dataset(dataset, name: str | None = None) -> None:
    """Write ``dataset``'s units and description (DATASET_DOCS; a resumed run's dark_k as dark)."""
    key = name or dataset.name.lstrip("/")
    key = "dark" if key.startswith("dark_") else key
    units, description = DATASET_DOCS[key]
    dataset.attrs["units"] = units
    dataset.attrs["description"] = description
EVENT_DTYPE = np.dtype([("time_s", "<f8"), ("kind", "S24"), ("text", "S480")])  # 512-byte rows
PART_SUFFIX = ".part"             # the name a run file has until it is fully created
DISK_MARGIN_BYTES = 64 * 2**20     # left free beyond the run: run.log, summary, the final attributes
FINISHED = ("complete", "stopped", "failed")


class RunFileError(OptgenError):
    """A run file cannot be read, created or resumed; the message says why."""


class DiskFullError(OptgenError, OSError):
    """The disk cannot take the run (or its next frame); nothing stored so far is lost."""


class RunEvent(NamedTuple):
    time_s: float
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{utc_text(self.time_s)} {self.kind}: {self.text}"


def utc_text(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def fixed_text(text: str, size: int) -> bytes:
    """``text`` as utf-8, cut to ``size`` bytes on a character boundary."""
    return text.encode("utf-8")[:size].decode("utf-8", "ignore").encode("utf-8")


def encode_attrs(attrs: dict) -> tuple[dict, list[str]]:
    out, as_json = {}, []
    for key, value in attrs.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out[key] = value
        else:
            out[key] = json.dumps(value)
            as_json.append(key)
    return out, as_json


def decoded_attrs(f: h5py.File) -> dict:
    """The file's attributes, JSON decoded where they were stored as JSON; unreadable ones left out."""
    out = {}
    for key in f.attrs:
        try:
            value = f.attrs[key]
        except (OSError, KeyError, RuntimeError):   # torn by a kill while the attributes changed
            continue
        out[key] = value.item() if isinstance(value, np.generic) else value
    for key in json.loads(out.pop("json_attrs", "[]")):
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                pass
    return out


_PERMISSION_DENIED = "errno = 13"


def hdf5_reason(exc: OSError) -> str:
    """What an HDF5 error says in words ("Permission denied", "No space left on device"), not its
    whole message of file names, flags and error stack."""
    import re

    found = re.search(r"error message = '([^']+)'", str(exc))
    if found:
        return found.group(1)
    if exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def open_run_file(path: Path, mode: str, **kwargs) -> h5py.File:
    """Open a run file (the only place run.h5 is opened): ``"w"`` creates an empty one (the writer
    lays it out); otherwise a missing, corrupt, locked or foreign file raises RunFileError."""
    if mode == "w":
        return h5py.File(path, "w")       # the writer says what a refusal means (storage.RunWriter)
    if not path.is_file():
        part = path.with_name(path.name + PART_SUFFIX)
        if part.exists():
            raise RunFileError(f"{path}: no such run file; {part.name} is a creation that was interrupted "
                               f"(no frame was stored): delete the folder's files and start the run again")
        raise RunFileError(f"{path}: no such run file")
    try:
        try:
            f = h5py.File(path, mode, **kwargs)
        except OSError as exc:
            if "locking flag values don't match" not in str(exc):
                raise
            f = h5py.File(path, mode)     # this process has it open for writing: share that handle
    except OSError as exc:
        if "unable to lock" in str(exc):
            raise RunFileError(f"{path}: open for writing in another process (a run still going?): {exc}") from None
        if _PERMISSION_DENIED in str(exc):
            where = "for writing " if mode != "r" else ""
            raise RunFileError(f"{path}: cannot open the run file {where}(permission denied: the file or its "
                               f"folder is read-only)") from None
        raise RunFileError(f"{path}: not a readable HDF5 run file (truncated or corrupt?): {exc}") from None
    try:
        version = f.attrs.get("format_version")
        if version is None or int(version) != FORMAT_VERSION:
            raise RunFileError(f"{path}: run file format_version {version}; this optgen reads format_version "
                               f"{FORMAT_VERSION} only")
        for name in ("frames", "images", "seed/phase", "seed/gray", "seed/index", "seed/id", "meta/written",
                     "meta/stored_s", "log/events", "log/written", *(f"meta/{n}" for n in PER_FRAME_FIELDS)):
            if name not in f:
                raise RunFileError(f"{path}: not a complete run file: /{name} is missing")
            if name.startswith(("images", "seed", "meta")) and len(f[name]) != len(f["frames"]):
                raise RunFileError(f"{path}: /{name} holds {len(f[name])} rows for {len(f['frames'])} frames")
    except (RunFileError, OSError, KeyError, ValueError, RuntimeError) as exc:
        f.close()
        if isinstance(exc, RunFileError):
            raise
        raise RunFileError(f"{path}: corrupt run file: {exc}") from None
    return f


def read_events(f: h5py.File) -> list[RunEvent]:
    marks = f["log/written"][:]
    last = int(np.flatnonzero(marks)[-1]) + 1 if marks.any() else 0
    rows = f["log/events"][:last][marks[:last]]
    return [RunEvent(float(r["time_s"]), r["kind"].decode("utf-8", "replace"), r["text"].decode("utf-8", "replace"))
            for r in rows]
