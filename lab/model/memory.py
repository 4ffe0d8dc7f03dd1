"""Keep freed memory in the process heap while training, instead of handing it back to the OS.

A student step of batch 16 on the 512 grid allocates and frees dozens of (16, 512, 512)
complex64 tensors of 33.5 MB each. That is above glibc's largest mmap threshold (32 MB on
64-bit Linux), so every one of them is a fresh ``mmap`` whose pages the kernel zero-fills
on first touch, and a ``munmap`` when it is freed: on the 2-core VM a step took 0.37 s, and
0.16 s with the heap kept (``benchmarks/train_step.py --allocators``, the full-grid step); a
whole training spent 31 of its 90 CPU-minutes in the kernel before, 15 s after.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator

__all__ = ["heap_kept"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_DEFAULTS = {_M_MMAP_MAX: 65536, _M_TRIM_THRESHOLD: 128 * 1024}


def _glibc():
    """glibc's ``mallopt``, or None (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.mallopt if hasattr(libc, "mallopt") else None
    except OSError:
        return None


@contextlib.contextmanager
def heap_kept() -> Iterator[bool]:
    """Within the block, large allocations come from the heap and freed memory stays there.

    Yields whether that took effect (glibc only; elsewhere nothing changes). The process keeps
    its peak memory until the block ends. Afterwards mmap and the trim threshold are back at
    glibc's defaults, but glibc's self-adjusting mmap threshold stays where it was (any
    ``mallopt`` switches that adjustment off for good: glibc has no way back).
    """
    mallopt = _glibc()
    if mallopt is None:
        yield False
        return
    active = bool(mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    try:
        yield active
    finally:
        for option, value in _GLIBC_DEFAULTS.items():
            mallopt(option, value)
