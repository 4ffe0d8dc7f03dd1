"""One HDF5 file per run: raw frames chunked (1, H, W), per-frame metadata, the run's metadata.

Layout of ``run.h5``::

    /frames            (N, H, W) uint16, chunks (1, H, W), uncompressed (gzip is 15x too slow)
    /images            (N, n, n) float32  registered output images (counts above dark)
    /seed/phase        (N, s, s) float32  seed phases (radians) as shown, superpixel resolution
    /seed/gray         (N, s, s) uint16   the gray level each seed superpixel was shown with
    /seed/index        (N,) int64         seed index in its source; /seed/id (N,) strings
    /meta/<name>       (N,)               timestamp_s, exposure_s, laser_power_w, saturated_pixels
    /meta/written      (N,) bool          True once the frame and its metadata are stored
    /dark              (H, W) uint16      a frame with the laser off, at the run's exposure
    /decoder_phase     (d, d) float32     the decoder phase shown on the decoding SLM
    attrs              bench_file, bench_source, calibrations, devices, software, status, ...

Every frame is flushed to disk as soon as it is written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import numpy as np

__all__ = ["RunWriter", "FORMAT_VERSION", "PER_FRAME_FIELDS"]

FORMAT_VERSION = 1
PER_FRAME_FIELDS = {
    "timestamp_s": np.float64,
    "exposure_s": np.float64,
    "laser_power_w": np.float64,
    "saturated_pixels": np.int64,
}


class RunWriter:
    """Writes frames of one run as they come; ``close(status)`` records how the run ended."""

    def __init__(self, path: Path, count: int, frame_shape: tuple[int, int], image_shape: tuple[int, int],
                 seed_shape: tuple[int, int], attrs: dict):
        self.path = Path(path)
        self.count = int(count)
        self.file = h5py.File(self.path, "w-")  # never overwrite an existing run file
        f = self.file
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        f.attrs["status"] = "running"
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
        self.frames = f.create_dataset("frames", (count, *frame_shape), dtype=np.uint16,
                                       chunks=(1, *frame_shape))
        self.images = f.create_dataset("images", (count, *image_shape), dtype=np.float32,
                                       chunks=(1, *image_shape))
        self.seed_phase = f.create_dataset("seed/phase", (count, *seed_shape), dtype=np.float32)
        self.seed_gray = f.create_dataset("seed/gray", (count, *seed_shape), dtype=np.uint16)
        self.seed_index = f.create_dataset("seed/index", (count,), dtype=np.int64)
        self.seed_id = f.create_dataset("seed/id", (count,), dtype=h5py.string_dtype())
        self.meta = {name: f.create_dataset(f"meta/{name}", (count,), dtype=dtype)
                     for name, dtype in PER_FRAME_FIELDS.items()}
        self.written = f.create_dataset("meta/written", (count,), dtype=bool)
        f.flush()
        self.n_written = 0

    def write(self, index: int, frame: np.ndarray, image: np.ndarray, seed_phase: np.ndarray,
              seed_gray: np.ndarray, seed_index: int, seed_id: str, meta: dict) -> None:
        """Store frame ``index`` with its seed and metadata, then flush."""
        if self.written[index]:
            raise ValueError(f"{self.path}: frame {index} is already stored")
        self.frames[index] = frame
        self.images[index] = image
        self.seed_phase[index] = seed_phase
        self.seed_gray[index] = seed_gray
        self.seed_index[index] = seed_index
        self.seed_id[index] = seed_id
        for name in PER_FRAME_FIELDS:
            self.meta[name][index] = meta[name]
        self.written[index] = True
        self.n_written += 1
        self.file.flush()

    def write_decoder_phase(self, phase: np.ndarray) -> None:
        """The decoder phase (radians) shown for the whole run."""
        self.file.create_dataset("decoder_phase", data=np.asarray(phase, dtype=np.float32))

    def close(self, status: str, reason: str = "", extra_attrs: dict | None = None) -> None:
        """Record the final status ("complete", "stopped", "failed") and close the file."""
        if not self.file.id.valid:
            return
        self.file.attrs["status"] = status
        self.file.attrs["stop_reason"] = reason
        self.file.attrs["frames_written"] = self.n_written
        for key, value in (extra_attrs or {}).items():
            self.file.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
        self.file.close()
