"""One HDF5 file per run that survives ``kill -9``: every dataset is allocated when the file
is created, so storing a frame writes raw bytes only, never HDF5 metadata (decision 0006).

Layout of ``run.h5`` (format_version 2)::

    /frames            (N, H, W) uint16, chunks (1, H, W), uncompressed (gzip is 15x too slow)
    /images            (N, n, n) float32  registered output images (counts above dark)
    /seed/phase        (N, s, s) float32  seed phases (radians) as shown, superpixel resolution
    /seed/gray         (N, s, s) uint16   the gray level each seed superpixel was shown with
    /seed/index        (N,) int64         seed index in its source
    /seed/id           (N,) utf-8, fixed 128 bytes (read with ``.asstr()``)
    /meta/<name>       (N,)               timestamp_s, exposure_s, laser_power_w, saturated_pixels
    /meta/stored_s     (N,) float64       Unix time the frame was stored
    /meta/written      (N,) bool          True once the frame and all the above are on disk
    /log/events        (E,) time_s, kind, text: the run log (starts, stops, retries, resumes)
    /log/written       (E,) bool          True once the event row is on disk
    /dark              (H, W) uint16      a frame with the laser off, at the run's exposure
    /decoder_phase     (d, d) float32     the decoder phase shown on the decoding SLM
    attrs              bench_file, calibrations, devices, software, status, stop_reason, ...

A frame is stored in two steps: its data, flushed to the OS, then its ``written`` mark,
flushed. A process killed at any moment leaves every marked frame complete. The file's
blocks are reserved (``posix_fallocate``) when it is created, so a full disk cannot stop a
run half way; without a reservation the free space is checked before every frame.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
from pathlib import Path

import h5py
import numpy as np
from h5py import h5d, h5p, h5s

from optgen.drivers.common.files import publish_exclusively
from optgen.lab.runfile.layout import (
    DISK_MARGIN_BYTES,
    EVENT_DTYPE,
    FORMAT_VERSION,
    PART_SUFFIX,
    PER_FRAME_FIELDS,
    SEED_ID_BYTES,
    DiskFullError,
    RunEvent,
    RunFileError,
    decoded_attrs,
    document_dataset,
    encode_attrs,
    fixed_text,
    hdf5_reason,
    open_run_file,
    read_events,
    utc_text,
)

__all__ = ["RunFileBusy", "RunWriter"]


class RunFileBusy(RunFileError):
    """The run file stayed held (by a write that does not return) longer than a caller would wait."""


def _reserved(group: h5py.Group, name: str, shape: tuple, dtype, chunks: tuple | None = None) -> h5py.Dataset:
    """A dataset whose file space is allocated now (no metadata changes when it is written)."""
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)
    dataset = group.create_dataset(name, shape, dtype=dtype, chunks=chunks, dcpl=dcpl, fill_time="never")
    document_dataset(dataset)
    return dataset


class _Rows:
    """Writes row ``i`` of a dataset through h5py's low-level API (10x faster than ``ds[i] = v``)."""

    def __init__(self, ds: h5py.Dataset):
        self.ds, self.shape, self.dtype = ds, ds.shape[1:], ds.dtype
        self.mspace, self.fspace, self.mtype = h5s.create_simple((1, *self.shape)), ds.id.get_space(), ds.id.get_type()

    def put(self, i: int, value) -> None:
        arr = np.asarray(value, dtype=self.dtype)
        if arr.shape != self.shape:
            raise ValueError(f"{self.ds.name}: row of shape {arr.shape}, expected {self.shape}")
        self.fspace.select_hyperslab((i, *(0,) * len(self.shape)), (1, *self.shape))
        self.ds.id.write(self.mspace, self.fspace, np.ascontiguousarray(arr).reshape(1, *self.shape), mtype=self.mtype)


def _publish(part: Path, final: Path) -> None:
    """Give the fully created file its name without ever replacing a file already there."""
    try:
        publish_exclusively(part, final)
    except FileExistsError:
        raise RunFileError(f"{final}: a file is already there; a run never overwrites one") from None


class RunWriter:
    """Writes frames of one run as they come; ``close(status)`` records how the run ended.

    Thread-safe: a storage thread may write frames while another records events.
    ``fsync=True`` also makes each frame survive a power loss (the default survives the death
    of the process, the OS keeps what was flushed to it).
    """

    def __init__(self, path: str | Path, count: int, frame_shape: tuple[int, int], image_shape: tuple[int, int],
                 seed_shape: tuple[int, int], attrs: dict, *, fsync: bool = False, _file: h5py.File | None = None):
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.RLock()
        if _file is not None:
            self._attach(_file)
            return
        if self.path.exists():
            raise RunFileError(f"{self.path}: a file is already there; a run never overwrites one")
        part = self.path.with_name(self.path.name + PART_SUFFIX)   # run.h5 appears whole, or not at all
        f = self._create(part, int(count), tuple(frame_shape), tuple(image_shape), tuple(seed_shape), attrs)
        try:
            self._attach(f, part)
            _publish(part, self.path)
            if fsync:                       # the new name survives a power loss too
                fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except BaseException:
            f.close()
            part.unlink(missing_ok=True)   # the file this call just made, never a finished run
            raise

    def _attach(self, f: h5py.File, at: Path | None = None) -> None:
        at = at or self.path
        self.file = f
        self.frames, self.images = f["frames"], f["images"]
        self.count = len(self.frames)
        self.seed_phase, self.seed_gray = f["seed/phase"], f["seed/gray"]
        self.seed_index, self.seed_id = f["seed/index"], f["seed/id"]
        self.meta = {name: f[f"meta/{name}"] for name in PER_FRAME_FIELDS}
        self.stored_s, self.written = f["meta/stored_s"], f["meta/written"]
        self._log, self._log_written = f["log/events"], f["log/written"]
        self._marks = self.written[:]
        self._n_events = int(np.count_nonzero(self._log_written[:]))
        if self._n_events and not self._log_written[self._n_events - 1]:
            self._n_events = int(np.flatnonzero(self._log_written[:])[-1]) + 1   # never overwrite a marked row
        self.n_written = int(self._marks.sum())
        self._rows = {name: _Rows(f[name]) for name in ("images", "seed/phase", "seed/gray", "seed/index", "seed/id",
                                                        "meta/stored_s", "meta/written", "log/events", "log/written",
                                                        *(f"meta/{n}" for n in PER_FRAME_FIELDS))}
        self.attrs = decoded_attrs(f)
        self.frame_bytes = int(np.prod(self.frames.shape[1:])) * 2
        self.reserved = self._reserve(at)
        self._fd = os.open(at, os.O_RDONLY) if self.fsync else None
        self._since_check = 0
        self._last_mark: str | None = None
        if not self._n_events:
            self.record_event("created", f"{self.count} frames of {self.frames.shape[1]}x{self.frames.shape[2]}")

    def _create(self, part: Path, count: int, frame_shape: tuple, image_shape: tuple, seed_shape: tuple,
                attrs: dict) -> h5py.File:
        if count < 1:
            raise ValueError(f"count = {count}: expected at least one frame")
        per_frame = (2 * int(np.prod(frame_shape)) + 4 * int(np.prod(image_shape)) + 6 * int(np.prod(seed_shape))
                     + 8 + SEED_ID_BYTES + 8 * (len(PER_FRAME_FIELDS) + 1) + 1)
        needed = count * per_frame + self._event_rows(count) * (EVENT_DTYPE.itemsize + 1)
        self._check_free(needed, "the run")
        try:
            f = open_run_file(part, "w")   # a .part file is a leftover of a killed creation, never a run
        except OSError as exc:
            raise RunFileError(f"{self.path}: cannot create the run file ({hdf5_reason(exc)}); check that the "
                               f"folder is writable and the disk has room") from None
        try:
            encoded, as_json = encode_attrs(attrs)
            for key, value in encoded.items():
                f.attrs[key] = value
            f.attrs["json_attrs"] = json.dumps(as_json)
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["created_utc"] = utc_text(time.time())
            f.attrs["status"] = "running"
            _reserved(f, "frames", (count, *frame_shape), np.uint16, chunks=(1, *frame_shape))
            _reserved(f, "images", (count, *image_shape), np.float32, chunks=(1, *image_shape))
            _reserved(f, "seed/phase", (count, *seed_shape), np.float32)
            _reserved(f, "seed/gray", (count, *seed_shape), np.uint16)
            _reserved(f, "seed/index", (count,), np.int64)
            _reserved(f, "seed/id", (count,), h5py.string_dtype("utf-8", SEED_ID_BYTES))
            for name, dtype in PER_FRAME_FIELDS.items():
                _reserved(f, f"meta/{name}", (count,), dtype)
            _reserved(f, "meta/stored_s", (count,), np.float64)
            _reserved(f, "meta/written", (count,), bool)[...] = False
            rows = self._event_rows(count)
            _reserved(f, "log/events", (rows,), EVENT_DTYPE)
            _reserved(f, "log/written", (rows,), bool)[...] = False
            f.flush()
        except BaseException:
            f.close()
            part.unlink(missing_ok=True)
            raise
        return f

    @staticmethod
    def _event_rows(count: int) -> int:
        return 1024 + count

    def _check_free(self, needed: int, what: str, margin: int = DISK_MARGIN_BYTES) -> None:
        free = shutil.disk_usage(self.path.parent if self.path.parent.exists() else Path.cwd()).free
        if free < needed + margin:
            raise DiskFullError(f"{self.path}: the disk cannot take {what}: {needed} bytes ({needed / 1e9:.3f} GB) "
                                f"needed plus a {margin / 2**20:g} MiB margin, {free} bytes ({free / 1e9:.3f} GB) "
                                f"free")

    def _reserve(self, at: Path) -> bool:
        """Allocate the file's blocks on disk now; False where the file system cannot."""
        size = at.stat().st_size
        fd = os.open(at, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, size)
            return True
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(f"{self.path}: the disk cannot take the run: reserving {size} bytes "
                                    f"({size / 1e9:.3f} GB) failed, {shutil.disk_usage(self.path.parent).free} "
                                    f"bytes free") from None
            return False   # EOPNOTSUPP, EINVAL: the free space is checked before every frame instead
        finally:
            os.close(fd)

    @classmethod
    def resume(cls, path: str | Path, *, fsync: bool = False) -> RunWriter:
        """Open an interrupted run (stopped, failed, or killed while running) to write its missing frames."""
        path = Path(path)
        f = open_run_file(path, "r+")
        try:
            status = f.attrs.get("status") if "status" in f.attrs else None
        except (OSError, KeyError, RuntimeError):
            status = None
        try:
            if status == "complete":
                raise RunFileError(f"{path}: the run is complete; nothing to resume")
            writer = cls(path, 0, (0, 0), (0, 0), (0, 0), {}, fsync=fsync, _file=f)
            try:
                f.attrs["status"] = "running"
            except (OSError, KeyError, RuntimeError):   # torn: the log below still says it was resumed
                pass
            writer.record_event("resumed", f"status was {status or 'unreadable (killed while closing?)'}; "
                                           f"{len(writer.missing())} of {writer.count} frames missing")
        except BaseException:
            f.close()
            raise
        return writer

    def missing(self) -> np.ndarray:
        """Indices of the frames not stored yet, ascending."""
        return np.flatnonzero(~self._marks)

    def _flush(self) -> None:
        self.file.flush()
        if self._fd is not None:
            os.fdatasync(self._fd)

    def _check_disk(self) -> None:
        """Before a frame: without a reservation every frame (1.6 us), with one every 64 frames that
        1 MiB is left for run.log, the summary and the final attributes."""
        self._since_check += 1
        if not self.reserved:
            self._check_free(self.frame_bytes, "the next frame")
        elif self._since_check >= 64:
            self._since_check = 0
            self._check_free(0, "the run's log and summary", margin=2**20)

    def write(self, index: int, frame: np.ndarray, image: np.ndarray, seed_phase: np.ndarray,
              seed_gray: np.ndarray, seed_index: int, seed_id: str, meta: dict) -> None:
        """Store frame ``index`` with its seed and metadata; on return it survives a killed process."""
        index = int(index)
        if not 0 <= index < self.count:
            raise IndexError(f"{self.path}: frame {index} is outside the run's 0..{self.count - 1}")
        frame = np.asarray(frame)
        if frame.shape != self.frames.shape[1:]:
            raise ValueError(f"{self.path}: frame {index} has shape {frame.shape}, the run stores "
                             f"{self.frames.shape[1:]}")
        sid = seed_id.encode("utf-8")
        if len(sid) > SEED_ID_BYTES:
            raise ValueError(f"{self.path}: seed id {seed_id!r} is longer than {SEED_ID_BYTES} bytes")
        with self._lock:
            if self._marks[index]:
                raise ValueError(f"{self.path}: frame {index} is already stored; a frame is written once")
            self._check_disk()
            self.frames.id.write_direct_chunk((index, 0, 0), np.ascontiguousarray(frame, dtype=np.uint16))
            rows = self._rows
            rows["images"].put(index, image)
            rows["seed/phase"].put(index, seed_phase)
            rows["seed/gray"].put(index, seed_gray)
            rows["seed/index"].put(index, seed_index)
            rows["seed/id"].put(index, sid)
            for name in PER_FRAME_FIELDS:
                rows[f"meta/{name}"].put(index, meta[name])
            rows["meta/stored_s"].put(index, time.time())
            self._flush()                       # the data reaches the OS before its mark
            rows["meta/written"].put(index, True)
            self._flush()
            self._marks[index] = True
            self.n_written += 1

    def record_event(self, kind: str, text: str, timeout_s: float | None = None) -> bool:
        """Append ``kind: text`` to the run log in the file, durably; False once the log is full.

        ``timeout_s``: wait at most this long for the file (a write that hangs holds it); then
        RunFileBusy, and the event is not in the file."""
        if not self._lock.acquire(timeout=-1 if timeout_s is None else timeout_s):
            raise RunFileBusy(f"{self.path}: the run file stayed busy for {timeout_s:g} s (a write that does not "
                               f"return?); event not stored in it: {kind}: {text}")
        try:
            return self._record_event(kind, text)
        finally:
            self._lock.release()

    def _record_event(self, kind: str, text: str) -> bool:
        """record_event with the file held."""
        rows = len(self._log)
        if self._n_events >= rows:
            return False
        full = self._n_events == rows - 1
        if full:
            kind, text = "log", f"the run log is full ({rows} events); later events are not stored"
        k = self._n_events
        self._rows["log/events"].put(k, np.array((time.time(), fixed_text(kind, 24), fixed_text(text, 480)),
                                                 dtype=EVENT_DTYPE))
        self._flush()
        self._rows["log/written"].put(k, True)
        self._flush()
        self._n_events += 1
        return not full

    def events(self) -> list[RunEvent]:
        """The run log stored so far, oldest first."""
        with self._lock:
            return read_events(self.file)

    def mark_stopped(self, status: str, reason: str = "") -> None:
        """Record, durably and without closing, that the run is ending and why."""
        text = f"{status}: {reason}" if reason else status
        if text != self._last_mark:
            self.record_event("status", text)
            self._last_mark = text

    def write_dark(self, dark: np.ndarray) -> None:
        """The dark frame (laser off) at the run's exposure; a resumed run's dark goes to /dark_1, ..."""
        with self._lock:
            name, k = "dark", 0
            while name in self.file:
                k += 1
                name = f"dark_{k}"
            document_dataset(self.file.create_dataset(name, data=np.asarray(dark, dtype=np.uint16)))
            self._flush()

    def write_decoder_phase(self, phase: np.ndarray) -> None:
        """The decoder phase (radians) shown for the whole run; a resumed run must show the same."""
        phase = np.asarray(phase, dtype=np.float32)
        with self._lock:
            if "decoder_phase" in self.file:
                if not np.array_equal(self.file["decoder_phase"][...], phase):
                    raise ValueError(f"{self.path}: the decoder phase differs from the one the run was made with")
                return
            document_dataset(self.file.create_dataset("decoder_phase", data=phase))
            self._flush()

    def close(self, status: str, reason: str = "", extra_attrs: dict | None = None) -> None:
        """Record the final status ("complete", "stopped", "failed") and close the file."""
        with self._lock:
            if not self.file.id.valid:
                return
            f = self.file
            try:
                try:
                    self.mark_stopped(status, reason)   # in the log first: attribute changes are not atomic
                finally:
                    encoded, as_json = encode_attrs(extra_attrs or {})
                    for key, value in encoded.items():
                        f.attrs[key] = value
                    if as_json:
                        f.attrs["json_attrs"] = json.dumps(sorted(set(as_json) | set(self._json_keys())))
                    f.attrs["status"] = status
                    f.attrs["stop_reason"] = reason
                    f.attrs["frames_written"] = self.n_written
            finally:
                self.file.close()
                if self._fd is not None:
                    os.fsync(self._fd)
                    os.close(self._fd)
                    self._fd = None

    def _json_keys(self) -> list[str]:
        try:
            return json.loads(self.file.attrs.get("json_attrs", "[]"))
        except (OSError, json.JSONDecodeError):
            return []
