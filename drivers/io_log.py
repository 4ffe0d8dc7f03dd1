"""Each SLM upload and camera capture at DEBUG, one line per operation (run.log keeps them).

Loggers: ``optgen.drivers.slms.io`` (device, pattern shape and dtype, a CRC-32 of the gray
levels sent, how long the upload took) and ``optgen.drivers.cameras.io`` (device, exposure,
frame shape and dtype, its min and max counts, how long the capture took; timeouts and other
failures with the error). Callers ask :func:`slm_debug` / :func:`camera_debug` first and time
and describe the operation only when the line will be kept: with DEBUG off an operation costs
one level check. The laser links' commands and replies go to ``optgen.drivers.lasers.wire``.
"""

from __future__ import annotations

import logging
import zlib

import numpy as np

__all__ = ["camera_io_log", "camera_debug", "checksum", "log_capture", "log_capture_failed", "log_upload",
           "log_upload_failed", "slm_debug", "slm_io_log"]

slm_io_log = logging.getLogger("optgen.drivers.slms.io")
camera_io_log = logging.getLogger("optgen.drivers.cameras.io")


def slm_debug() -> bool:
    """Whether SLM uploads are logged now."""
    return slm_io_log.isEnabledFor(logging.DEBUG)


def camera_debug() -> bool:
    """Whether camera captures are logged now."""
    return camera_io_log.isEnabledFor(logging.DEBUG)


def checksum(a: np.ndarray) -> str:
    """CRC-32 of the array's bytes, 8 hex digits (about 0.5 ms for a 1920 x 1080 8-bit pattern)."""
    return f"{zlib.crc32(np.ascontiguousarray(a)) & 0xFFFFFFFF:08x}"


def _shape(a: np.ndarray) -> str:
    return "x".join(str(n) for n in a.shape) + f" {a.dtype.name}"


def log_upload(device: str, gray, seconds: float) -> None:
    """One SLM upload: the gray levels sent and how long it took."""
    if isinstance(gray, np.ndarray):
        slm_io_log.debug("%s: upload %s crc %s in %.1f ms", device, _shape(gray), checksum(gray), seconds * 1e3)
    else:
        slm_io_log.debug("%s: upload in %.1f ms", device, seconds * 1e3)


def log_upload_failed(device: str, exc: BaseException, seconds: float) -> None:
    slm_io_log.debug("%s: upload FAILED after %.1f ms: %s: %s", device, seconds * 1e3, type(exc).__name__, exc)


def _range(frame: np.ndarray) -> str:
    if frame.size == 0:
        return "empty"
    try:
        import cv2

        lo, hi, _, _ = cv2.minMaxLoc(frame) if frame.ndim == 2 else (frame.min(), frame.max(), 0, 0)
    except Exception:   # noqa: BLE001 - a dtype OpenCV does not take
        lo, hi = frame.min(), frame.max()
    return f"min {float(lo):g} max {float(hi):g}"


def log_capture(device: str, exposure_s: float, frame, seconds: float) -> None:
    """One camera capture: exposure, the frame's shape and range, and how long it took."""
    if isinstance(frame, np.ndarray):
        camera_io_log.debug("%s: capture at %.4g ms exposure: %s %s in %.1f ms", device, exposure_s * 1e3, _shape(frame),
                            _range(frame), seconds * 1e3)
    else:
        camera_io_log.debug("%s: capture at %.4g ms exposure: %r in %.1f ms", device, exposure_s * 1e3, type(frame).__name__,
                            seconds * 1e3)


def log_capture_failed(device: str, exposure_s: float, timeout_s: float, exc: BaseException, seconds: float) -> None:
    """A capture that raised: a timeout (``CaptureTimeout``) or another device error."""
    what = "TIMEOUT" if isinstance(exc, TimeoutError) else "FAILED"
    camera_io_log.debug("%s: capture %s after %.1f ms (exposure %.4g ms, timeout %.3g s): %s: %s", device, what,
                        seconds * 1e3, exposure_s * 1e3, timeout_s, type(exc).__name__, exc)
