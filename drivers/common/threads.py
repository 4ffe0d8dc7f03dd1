"""One BLAS thread while optgen's own threads share the cores.

Calibration keeps the cores busy with threads of its own: a fit runs beside the measurements, the
camera's frames are registered while the SLMs settle, and on the twin the light and the sensor are
computed ahead. OpenBLAS (numpy's and scipy's) starts worker threads of its own for a matrix
product, and they spin waiting for the next one: on the 2-core machine they took about 20 of the 90
CPU seconds of ``calibrate all`` on the hardware-timed realistic twin, from the threads that do the
work (docs/performance.md, decision 0028). Inside :func:`single_blas_thread` every BLAS call runs on
the thread that makes it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from threadpoolctl import threadpool_limits

__all__ = ["single_blas_thread"]


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """BLAS libraries (OpenBLAS, MKL, BLIS) limited to one thread for the block, process-wide; the
    previous limits come back when it ends, however it ends."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
