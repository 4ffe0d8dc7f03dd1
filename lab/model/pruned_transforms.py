"""Pruned 2-D DFTs in torch: only the lines that hold data, only the samples wanted (issue 24).

The student's optics (:mod:`lab.model.student`) need, per propagation, the band of a transform
where the transfer function is not zero, and of the last one only the output window. Each pruned
transform here is two batches of contiguous 1-D FFTs: the first over the lines that hold data, the
second over the lines of the band (or window) wanted, the first pass's lines copied, transposed,
into the second's zero-padded input, so there is neither a full-grid transform nor a strided one.
The backward of each is its adjoint (the same pruned transform the other way), written out, so
autograd never builds full-grid tensors either. Tests: tests/lab/test_student_band_limited.py.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

__all__ = ["Irradiance", "TwoPass", "band_of", "from_band", "irradiance_from_band", "to_band", "two_pass"]


def band_of(h: np.ndarray, axis: int) -> tuple[int, int]:
    """(first signed frequency, count): the run of DFT frequencies along ``axis`` outside which the
    transfer function ``h`` is zero everywhere (the whole axis where it is not band-limited)."""
    n = h.shape[axis]
    kept = np.flatnonzero(np.abs(h).any(axis=1 - axis))
    if kept.size == 0:
        return 0, 1
    signed = np.where(kept < (n + 1) // 2, kept, kept - n)
    first, last = int(signed.min()), int(signed.max())
    return (first, last - first + 1) if last - first + 1 < n else (-(n // 2), n)


def _pieces(start: int, count: int, n: int) -> list[tuple[int, int, int]]:
    """(offset in the run, index mod n, length) of the contiguous parts of indices start .. start + count - 1
    taken mod n (one part, or two where the run wraps)."""
    start %= n
    first = min(count, n - start)
    return [(0, start, first)] + ([(first, 0, count - first)] if count > first else [])


def _lines_placed(x: torch.Tensor, n: int, at: int, take: tuple[int, int] | None = None,
                  factor: torch.Tensor | None = None) -> torch.Tensor:
    """(..., lines, n) with ``x``'s lines at ``at`` .. (mod n) and zeros elsewhere: the zero-padded input
    of n-point transforms along the last axis. With ``take`` = (start, count), the lines are
    columns start .. (mod n) of ``x`` (transposed on the way); ``factor`` (broadcast to the lines
    placed, or (n,) with ``take``): multiplied in on the way."""
    if take is None:
        src, rows = x, [(0, 0, x.shape[-2])]
    else:
        src, rows = x.transpose(-1, -2), _pieces(*take, x.shape[-1])
    m = src.shape[-1]
    lead = torch.broadcast_shapes(src.shape[:-2], () if factor is None or take is not None else factor.shape[:-2])
    out = src.new_empty(*lead, sum(length for *_, length in rows), n)
    for _, index, length in _pieces(at + m, n - m, n):
        out[..., index:index + length].zero_()
    for row, source_row, count in rows:
        part, into = src[..., source_row:source_row + count, :], out[..., row:row + count, :]
        for offset, index, length in _pieces(at, m, n):
            if factor is None:
                into[..., index:index + length] = part[..., offset:offset + length]
            elif take is None:
                torch.mul(part[..., offset:offset + length], factor[..., offset:offset + length],
                          out=into[..., index:index + length])
            else:
                torch.mul(part[..., offset:offset + length], factor[index:index + length],
                          out=into[..., index:index + length])
    return out


def _taken(y: torch.Tensor, n: int, start: int, count: int) -> torch.Tensor:
    """y[..., start:start + count] with indices mod n (a view unless the run wraps)."""
    parts = [y[..., index:index + length] for _, index, length in _pieces(start, count, n)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


@functools.lru_cache(maxsize=64)
def _frequency_shift(n: int, first: int, inverse: bool, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """exp(-+2 pi i first q / n) for q = 0 .. n - 1: times the input of an n-point (inverse) DFT, it moves
    sample ``first`` of the output to index 0."""
    q = (np.arange(n, dtype=np.int64) * first) % n
    return torch.from_numpy(np.exp((1j if inverse else -1j) * 2 * np.pi * q / n)).to(device=device, dtype=dtype)


def two_pass(x: torch.Tensor, n: int, first: tuple[int, int], second: tuple[int, int], at: tuple[int, int],
              inverse: bool, norm: str = "backward", factor: torch.Tensor | None = None) -> torch.Tensor:
    """Pruned n x n DFT (or inverse) of ``x`` (..., P, Q) (times ``factor``), transposed: (..., first count,
    second count).

    ``x``'s columns sit at ``at[0]`` .. and its rows at ``at[1]`` .. of an n x n grid of zeros (mod n);
    the result holds the samples (frequencies, or positions for the inverse) ``first`` = (start,
    count) of the columns' axis, then ``second`` of the rows' axis, the two axes swapped. Each axis
    is one batch of contiguous n-point FFTs over the lines that hold data, the first pass's lines
    copied, transposed, into the second's: no full-grid transform and no strided one. Where
    ``second`` wraps around n, a frequency shift on the second pass's input makes it one run.
    """
    fft = torch.fft.ifft if inverse else torch.fft.fft
    y = fft(_lines_placed(x, n, at[0], factor=factor), dim=-1, norm=norm)                    # (..., P, n)
    start, count = second
    shift = None
    if start % n + count > n:
        shift, start = _frequency_shift(n, start, inverse, y.dtype, y.device), 0
    z = fft(_lines_placed(y, n, at[1], take=first, factor=shift), dim=-1, norm=norm)
    return _taken(z, n, start, count)


def _summed_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``t`` summed over the leading axes it has beyond ``shape`` (a broadcast's gradient)."""
    return t.sum(dim=tuple(range(t.dim() - len(shape)))) if t.dim() > len(shape) else t


class TwoPass(torch.autograd.Function):
    """:func:`two_pass` of ``x`` times ``factor`` (None: 1), its backward the adjoint transform (the same
    pruned transform the other way, unscaled where the forward is scaled and so on)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: torch.Tensor | None, n: int, first: tuple[int, int],
                second: tuple[int, int], at: tuple[int, int], inverse: bool) -> torch.Tensor:
        rows, cols = x.shape[-2:]
        ctx.adjoint = (n, (at[1], rows), (at[0], cols), (second[0], first[0]), not inverse)
        if factor is not None:
            ctx.save_for_backward(x, factor)
        return two_pass(x, n, first, second, at, inverse, factor=factor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        back = two_pass(grad, *ctx.adjoint, norm="forward")
        if not ctx.saved_tensors:
            return back, None, None, None, None, None, None
        x, factor = ctx.saved_tensors
        grad_x = _summed_to(back * factor.conj(), x.shape) if ctx.needs_input_grad[0] else None
        grad_factor = _summed_to(back * x.conj(), factor.shape) if ctx.needs_input_grad[1] else None
        return grad_x, grad_factor, None, None, None, None, None


class Irradiance(torch.autograd.Function):
    """|:func:`two_pass` of ``t`` times ``factor``|^2 (``factor`` without gradient): the window's
    irradiance, its backward 2 g w through the adjoint transform."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, factor: torch.Tensor, n: int, first: tuple[int, int], second: tuple[int, int],
                at: tuple[int, int]) -> torch.Tensor:
        rows, cols = t.shape[-2:]
        ctx.adjoint = (n, (at[1], rows), (at[0], cols), (second[0], first[0]), False)
        window = two_pass(t, n, first, second, at, True, factor=factor)
        ctx.save_for_backward(window, factor)
        return window.real**2 + window.imag**2

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        window, factor = ctx.saved_tensors
        back = two_pass(2.0 * grad * window, *ctx.adjoint, norm="forward") * factor.conj()
        return back, None, None, None, None, None


def to_band(x: torch.Tensor, n: int, at: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int],
             factor: torch.Tensor | None = None) -> torch.Tensor:
    """The band (``rows``, ``cols``: (first signed frequency, count)) of the n x n DFT of ``x`` (..., h, w)
    (times ``factor``, broadcast) placed at ``at`` = (top, left) on a grid of zeros, transposed:
    (..., column frequencies, row frequencies). Differentiable."""
    return TwoPass.apply(x, factor, n, cols, rows, (at[1], at[0]), False)


def from_band(t: torch.Tensor, n: int, rows: tuple[int, int], cols: tuple[int, int], window: tuple[int, int],
               size: tuple[int, int]) -> torch.Tensor:
    """The ``size`` window at ``window`` = (top, left) of the n x n inverse DFT of the band ``t`` (transposed,
    as :func:`to_band` gives it; ``rows``, ``cols``: its frequencies). Differentiable."""
    return TwoPass.apply(t, None, n, (window[0], size[0]), (window[1], size[1]), (rows[0], cols[0]), True)


def irradiance_from_band(t: torch.Tensor, factor: torch.Tensor, n: int, rows: tuple[int, int],
                          cols: tuple[int, int], window: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """|:func:`from_band` of ``t`` times ``factor``|^2 (``factor``: no gradient), fused. Differentiable."""
    return Irradiance.apply(t, factor, n, (window[0], size[0]), (window[1], size[1]), (rows[0], cols[0]))
