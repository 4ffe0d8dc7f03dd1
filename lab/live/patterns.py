"""The test patterns the live view shows on either SLM: flat, a lens, a grating, a seed of the
model, the trained decoder. Each is checked before it reaches an SLM; an error names the pattern,
the parameter and what is allowed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from optgen.drivers.common.patterns import TWO_PI, embed_centered, grid_coordinates, lens_phase
from optgen.drivers.errors import OptgenError

__all__ = ["PATTERNS", "LiveCommandError", "make_pattern"]

PATTERNS = ("flat", "lens", "grating", "seed", "decoder")
MIN_FOCAL_MM = 1.0
MAX_FOCAL_MM = 100_000.0


class LiveCommandError(OptgenError):
    """A command from the live view's page that cannot be carried out as asked."""


def _number(params: dict, key: str, what: str, low: float, high: float, default: float | None = None) -> float:
    value = params.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LiveCommandError(f"{what}: {key} = {value!r}; expected a number from {low:g} to {high:g}") from None
    if not np.isfinite(number) or not low <= abs(number) <= high:
        raise LiveCommandError(f"{what}: {key} = {value!r}; expected a number whose size is "
                               f"from {low:g} to {high:g}")
    return number


def make_pattern(kind: str, params: dict, *, slm_name: str, shape: tuple[int, int], pitch_m: float,
                 wavelength_m: float, superpixel_px: int, seed_phase: Callable[[int], np.ndarray] | None,
                 seed_count: int, decoder: Callable[[], np.ndarray] | None) -> np.ndarray:
    """The phase (float32 radians, ``shape``) of test pattern ``kind`` with ``params``.

    - flat: zero phase everywhere;
    - lens: ``focal_mm`` (either sign, 1 mm .. 100 m), centred;
    - grating: ``period_px`` (>= 2 pixels) and ``angle_deg`` (0 = the grating's lines vertical);
    - seed: ``index`` (0 .. count - 1) of the model's seeds, shown as a run shows it;
    - decoder: the trained decoder phase, placed as a run places it.
    """
    what = f"{slm_name}: pattern {kind!r}"
    if kind == "flat":
        return np.zeros(shape, dtype=np.float32)
    if kind == "lens":
        focal_mm = _number(params, "focal_mm", what, MIN_FOCAL_MM, MAX_FOCAL_MM)
        return lens_phase(shape, pitch_m, wavelength_m, focal_mm * 1e-3, wrapped=True)
    if kind == "grating":
        period = _number(params, "period_px", what, 2.0, float(max(shape)))
        angle = np.deg2rad(_number(params, "angle_deg", what, 0.0, 360.0, default=0.0))
        y, x = grid_coordinates(shape, 1.0)
        u = x * np.cos(angle) + y * np.sin(angle)
        return np.mod(TWO_PI * u / period, TWO_PI).astype(np.float32)
    if kind == "seed":
        if seed_phase is None or seed_count < 1:
            raise LiveCommandError(f"{what}: this bench file's [run] has no seeds to show")
        index = params.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, (int, float, str)) or not str(index).isdigit() \
                or int(index) >= seed_count:
            raise LiveCommandError(f"{what}: index = {index!r}; expected a whole number from 0 to {seed_count - 1}")
        block = np.repeat(np.repeat(np.asarray(seed_phase(int(index)), dtype=np.float32), superpixel_px, axis=0),
                          superpixel_px, axis=1)
        return _centred(block, shape, what)
    if kind == "decoder":
        if decoder is None:
            raise LiveCommandError(f"{what}: this bench file's [run] names no decoder phase")
        phase = np.asarray(decoder(), dtype=np.float32)
        return phase if phase.shape == tuple(shape) else _centred(phase, shape, what)
    raise LiveCommandError(f"{slm_name}: pattern {kind!r} is not known; expected one of {', '.join(PATTERNS)}")


def _centred(block: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
    try:
        return embed_centered(block, shape)
    except ValueError as exc:
        raise LiveCommandError(f"{what}: {exc}") from None
