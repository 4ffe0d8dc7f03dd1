"""The camera's HDF5 frame file and the stream documents that point into it.

One file per staging of the camera: frames ``(N, H, W)`` of the camera's dtype in
``/entry/data/data``, chunked ``(1, H, W)`` and uncompressed (DESIGN 6: gzip is far too slow for
frames), flushed after each frame and readable while it is written (SWMR). Every event that reads
the camera carries a StreamDatum for its frame; the StreamResource names the file and dataset.

A frame that no event will point to (the RunEngine paused or suspended between the exposure and
the event, and rewinds to take it again) is rolled back (:meth:`FrameFile.truncate`), so row k of
the dataset is always the frame of the k-th event, as Tiled's HDF5 consolidator reads it.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from ophyd_async.core import StreamResourceDataProvider, StreamResourceInfo

__all__ = ["FRAMES_DATASET", "FrameFile", "frame_provider"]

FRAMES_DATASET = "/entry/data/data"


class FrameFile:
    """An HDF5 file of camera frames, appended to one frame at a time (on the device thread)."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype: np.dtype):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows, cols = (int(v) for v in shape)
        self._file = h5py.File(self.path, "w", libver="latest")
        self._frames = self._file.create_dataset(FRAMES_DATASET, shape=(0, rows, cols), maxshape=(None, rows, cols),
                                                 chunks=(1, rows, cols), dtype=np.dtype(dtype))
        self._frames.attrs["units"] = "counts"
        self._frames.attrs["description"] = "raw camera frames, one per event that read the camera"
        self._file.swmr_mode = True
        self.count = 0

    def append(self, frame: np.ndarray) -> int:
        """Store ``frame`` as the next row, flushed; returns the number of frames now in the file."""
        self._frames.resize(self.count + 1, axis=0)
        self._frames[self.count] = frame
        self._frames.flush()
        self.count += 1
        return self.count

    def truncate(self, count: int) -> None:
        """Keep only the first ``count`` frames (those an event points to)."""
        if count < self.count:
            self._frames.resize(count, axis=0)
            self._frames.flush()
            self.count = count

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()


def frame_provider(uri: str, data_key: str, shape: tuple[int, int], dtype: np.dtype,
                   collections_written) -> StreamResourceDataProvider:
    """The StreamResource/StreamDatum maker for a frame file at ``uri`` (one resource: the frames)."""
    rows, cols = (int(v) for v in shape)
    resource = StreamResourceInfo(data_key=data_key, shape=(rows, cols), chunk_shape=(1, rows, cols),
                                  dtype_numpy=np.dtype(dtype).str, parameters={"dataset": FRAMES_DATASET})
    return StreamResourceDataProvider(uri=uri, resources=[resource], mimetype="application/x-hdf5",
                                      collections_written_signal=collections_written)
