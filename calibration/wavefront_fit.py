"""Phase diversity: an SLM's wavefront (Zernike terms), and the light on it, fitted to defocused spots.

The SLM under test shows lenses that focus a little before or behind the sensor (the *diversity*:
a few waves of defocus either way). Each captured picture is the intensity of the Fresnel
transform of the pupil (the light on the SLM times the pattern) over the distance to the sensor,
which one FFT computes on a grid of cells of ``block`` x ``block`` SLM pixels (:class:`PupilGrid`;
a pattern enters as samples at the cells' centres of its light within the grid's band, the
aperture as the share of each cell's pixels it lets through):

    I_k = (1 - u) |F[a e^{i 2 pi W} (D_k + eps C)]|^2 + u |F[a e^{i 2 pi W} C]|^2

with ``D_k`` the pattern's transmission as the pixels show it (wrapped, blurred by the fringing
the LUT calibration measured) times the Fresnel chirp, plus a fitted amount ``eps`` of its own zero
order (``C``: the chirp alone; fringing and LUT errors the blur does not hold), ``a`` the light's
amplitude, ``W`` the wavefront error in waves, and ``u`` the light the SLM leaves unmodulated,
incoherent with the rest. The Zernike coefficients of ``W`` (Noll 2..), the unmodulated fraction and, for SLM1, the
Gaussian beam's centre and waist are fitted by L-BFGS with the analytic gradient; each picture's
scale and background are solved in closed form. Several defocus values make the answer unique
(the sign of each even aberration shows in which side of focus blurs more).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.optimize

from optgen.drivers.common.zernike import zernike

__all__ = ["FitCancelled", "PupilFit", "PupilGrid", "fit_pupil", "gaussian_light", "pattern_terms", "model_pictures"]


class FitCancelled(Exception):
    """A fit stopped because its result is no longer wanted."""


@dataclass(frozen=True)
class PupilGrid:
    """The model grid: ``n`` x ``n`` cells of ``block`` x ``block`` SLM pixels, centred on the SLM."""

    n: int
    block: int
    pitch_m: float            # SLM pixel pitch
    wavelength_m: float
    distance_m: float         # SLM -> sensor
    radius_m: float           # the Zernike unit disc
    noll: tuple[int, ...]     # fitted terms

    @property
    def dx_m(self) -> float:
        return self.block * self.pitch_m

    @property
    def du_m(self) -> float:
        """Sample spacing in the sensor plane."""
        return self.wavelength_m * self.distance_m / (self.n * self.dx_m)

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) in metres of the cells' centres, zero at the SLM's centre."""
        v = (np.arange(self.n) - (self.n - 1) / 2.0) * self.dx_m
        return np.meshgrid(v, v)

    def modes(self) -> np.ndarray:
        """(terms, n, n) Zernike modes (unit RMS over the disc, polynomials outside it)."""
        x, y = self.coordinates()
        rho, theta = np.hypot(x, y) / self.radius_m, np.arctan2(y, x)
        return np.stack([zernike(j, rho, theta) for j in self.noll])

    @classmethod
    def for_path(cls, pitch_m: float, wavelength_m: float, distance_m: float, beam_side_m: float,
                 radius_m: float, noll: tuple[int, ...], slm_shape: tuple[int, int]) -> "PupilGrid":
        """A grid whose sensor-plane field (wavelength x distance / cell) holds the unmodulated
        light's patch 1.8 times over, and whose SLM-plane field holds the beam 1.6 times over."""
        block = max(1, int(wavelength_m * distance_m / (1.8 * beam_side_m * pitch_m)))
        n = _fast_even(int(np.ceil(1.6 * beam_side_m / (block * pitch_m) / 2.0)) * 2)
        n = min(n, (min(slm_shape) // block) // 2 * 2)
        return cls(n=n, block=block, pitch_m=pitch_m, wavelength_m=wavelength_m, distance_m=distance_m,
                   radius_m=radius_m, noll=tuple(noll))


def _fast_even(n: int) -> int:
    """The smallest even size >= ``n`` with no prime factor above 5 (an FFT of 514 = 2 x 257 cells
    took 6 x as long as one of 540)."""
    m = n + (n % 2)
    while True:
        k = m
        for f in (2, 3, 5):
            while k % f == 0:
                k //= f
        if k == 1:
            return m
        m += 2


def pattern_terms(phase: np.ndarray, grid: PupilGrid, crosstalk_sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(D, C) on the model grid: the SLM's pattern (radians, SLM-shaped) as the pixels show it,
    times the Fresnel chirp, and the chirp alone; on the model grid's cells (band-limited samples)."""
    rows, cols = phase.shape
    m = grid.n * grid.block
    r0, c0 = (rows - m) // 2, (cols - m) // 2
    shown = np.mod(phase[r0:r0 + m, c0:c0 + m], 2 * np.pi).astype(np.float32)
    if crosstalk_sigma_px > 0:
        shown = scipy.ndimage.gaussian_filter(shown, crosstalk_sigma_px, mode="nearest", truncate=4.0)
    v = (np.arange(m) - (m - 1) / 2.0) * grid.pitch_m
    q = np.pi * v**2 / (grid.wavelength_m * grid.distance_m)
    chirp = np.exp(1j * (q[:, None] + q[None, :]))

    return _band_limited_cells(np.exp(1j * shown) * chirp, grid), _band_limited_cells(chirp, grid)


def _band_limited_cells(field: np.ndarray, grid: PupilGrid) -> np.ndarray:
    """A field on the SLM's pixels, sampled at the model grid's cell centres after taking out what the
    cells cannot hold: its spectrum cropped to the grid's band (light the model's sensor-plane field
    does not reach, rather than folded back into it)."""
    n, b = grid.n, grid.block
    if b == 1:
        return field
    m = n * b
    keep = np.r_[0:n // 2, m - n // 2:m]
    spectrum = scipy.fft.fft2(field)[np.ix_(keep, keep)]
    f = np.r_[0:n // 2, -(n // 2):0]
    ramp = np.exp(2j * np.pi * f * ((b - 1) / 2.0) / m)    # samples at the cells' centres, not their first pixels
    return scipy.fft.ifft2(spectrum * ramp[:, None] * ramp[None, :]) * (n * n / (m * m))


def _inside_share(offset_m: np.ndarray, half_m: float, grid: PupilGrid) -> np.ndarray:
    """The share of each cell's pixels (along one axis) whose centres lie within ``half_m`` of the
    aperture's centre, ``offset_m`` being the cell centre's distance from it: the aperture's edge
    between cells, as the pixels clip the light."""
    b = grid.block
    pixels = (np.arange(b) - (b - 1) / 2.0) * grid.pitch_m
    return np.mean([np.abs(offset_m + d) <= half_m for d in pixels], axis=0)


def gaussian_light(grid: PupilGrid, centre_m: tuple[float, float], waist_m: float, aperture_half_m: float,
                   aperture_centre_m: tuple[float, float] = (0.0, 0.0), distance_m: float = 0.0) -> np.ndarray:
    """The light on the model grid of a Gaussian beam (amplitude exp(-r^2/w^2)) clipped by a square
    aperture, after ``distance_m`` of free space (Fresnel transfer function; the light SLM2 receives)."""
    x, y = grid.coordinates()
    ax, ay = aperture_centre_m
    inside = _inside_share(x - ax, aperture_half_m, grid) * _inside_share(y - ay, aperture_half_m, grid)
    field = inside * np.exp(-((x - centre_m[0]) ** 2 + (y - centre_m[1]) ** 2) / waist_m**2)
    if distance_m == 0:
        return field.astype(np.complex128)
    f = np.fft.fftfreq(grid.n, d=grid.dx_m)
    transfer = np.exp(-1j * np.pi * grid.wavelength_m * distance_m * (f[:, None] ** 2 + f[None, :] ** 2))
    return scipy.fft.ifft2(scipy.fft.fft2(field) * transfer)


@dataclass
class PupilFit:
    coefficients_waves: np.ndarray     # per ``PupilGrid.noll`` term
    unmodulated_fraction: float
    zero_order: complex                # the patterns' own unlensed light (amplitude, coherent)
    beam_centre_m: tuple[float, float] | None   # fitted Gaussian (SLM1); None when the light was given
    beam_waist_m: float | None
    residual: float                    # weighted squared misfit / weighted squared data
    iterations: int


class _Problem:
    """The misfit and its gradient for one set of pictures.

    Everything is held in the FFT's order (the centre at index 0: ``ifftshift``-ed once here), so
    an evaluation is FFTs and element-wise products with no shifts, in single precision (complex64:
    half the memory traffic of complex128; the misfit and the gradient are summed in float64)."""

    def __init__(self, grid: PupilGrid, terms, pictures, weights, light: np.ndarray | None,
                 aperture_half_m: float | None, aperture_centre_m: tuple[float, float] = (0.0, 0.0)):
        shift = scipy.fft.ifftshift
        self.grid = grid
        self.terms = [(shift(d).astype(np.complex64), shift(c).astype(np.complex64)) for d, c in terms]
        self.pictures = [shift(d).astype(np.float32) for d in pictures]
        self.weights = [shift(w).astype(np.float32) for w in weights]
        self.modes = shift(grid.modes(), axes=(-2, -1)).astype(np.float32)
        x, y = grid.coordinates()
        self.x, self.y = shift(x), shift(y)
        self.light = None if light is None else shift(light).astype(np.complex64)
        if light is None:
            half = aperture_half_m if aperture_half_m else np.inf
            ax, ay = aperture_centre_m
            self.aperture = (_inside_share(self.x - ax, half, grid)
                             * _inside_share(self.y - ay, half, grid)).astype(np.float32)
        self.nz = len(grid.noll)
        # pictures on one grid share their chirp C (pattern_terms): the unmodulated field's FFT, forward
        # and back, is done once an evaluation for each distinct chirp, not once per picture
        self.chirps: list[np.ndarray] = []
        self.chirp_of: list[int] = []          # picture k's chirp: self.chirps[self.chirp_of[k]]
        for _, c in self.terms:
            same = [j for j, known in enumerate(self.chirps) if np.array_equal(known, c)]
            if not same:
                self.chirps.append(c)
            self.chirp_of.append(same[0] if same else len(self.chirps) - 1)

    @property
    def shared_chirp(self) -> bool:
        """Whether every picture has the same chirp (one unmodulated field for all)."""
        return len(self.chirps) <= 1

    def amplitude(self, p: np.ndarray) -> np.ndarray:
        if self.light is not None:
            return self.light
        cx, cy, inv_w2 = p[self.nz:self.nz + 3]
        return self.aperture * np.exp(-((self.x - cx) ** 2 + (self.y - cy) ** 2) * inv_w2).astype(np.float32)

    def base(self, p: np.ndarray) -> np.ndarray:
        phase = np.tensordot(p[:self.nz].astype(np.float32), self.modes, 1) * np.float32(2 * np.pi)
        field = np.empty(phase.shape, np.complex64)
        np.cos(phase, out=field.real)
        np.sin(phase, out=field.imag)
        return self.amplitude(p) * field

    def parts(self, p: np.ndarray, k: int, base: np.ndarray | None = None):
        """The modulated field (with the pattern's own zero order, ``eps`` x the unlensed light) and
        the unmodulated one, and their spectra (one batched FFT)."""
        base = self.base(p) if base is None else base
        eps = np.complex64(complex(p[-3], p[-2]))
        unlensed = base * self.terms[k][1]
        fields = np.stack([base * self.terms[k][0] + eps * unlensed, unlensed])
        return fields, scipy.fft.fft2(fields, axes=(-2, -1))

    def pictures_of(self, p: np.ndarray) -> list[np.ndarray]:
        """The model's pictures (centred, as the data came)."""
        u = p[-1]
        out = []
        for k in range(len(self.terms)):
            _, spectra = self.parts(p, k)
            power = np.abs(spectra) ** 2
            out.append(scipy.fft.fftshift(((1 - u) * power[0] + u * power[1]).astype(np.float64)))
        return out

    def __call__(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        """The misfit and its gradient. The unmodulated field (the pupil times a chirp) and its
        spectrum are computed once for each distinct chirp; its part of the gradient, linear in
        each picture's weighted residual, goes back through one inverse FFT of their sum."""
        u = p[-1]
        total = 0.0
        g_phase = np.zeros((self.grid.n, self.grid.n), np.float32)
        g_log_amp = np.zeros_like(g_phase)
        g_u = 0.0
        g_eps = 0j
        base = self.base(p)
        size = np.float32(self.grid.n * self.grid.n)
        eps = np.complex64(complex(p[-3], p[-2]))
        unlensed = [base * c for c in self.chirps]
        spec_u = [scipy.fft.fft2(f) for f in unlensed]
        power_u = [s.real**2 + s.imag**2 for s in spec_u]
        q_u = [np.zeros_like(g_phase) for _ in self.chirps]      # each chirp's sum of its pictures' 2 u q
        for k, (data, wt) in enumerate(zip(self.pictures, self.weights)):
            j = self.chirp_of[k]
            field = base * self.terms[k][0] + eps * unlensed[j]
            spec = scipy.fft.fft2(field)
            power = spec.real**2 + spec.imag**2
            model = np.float32(1 - u) * power + np.float32(u) * power_u[j]
            scale, background = _scale_and_background(model, data, wt)
            r = np.float32(scale) * model + np.float32(background) - data
            wr = wt * r
            total += float(np.dot(wr.ravel().astype(np.float64), r.ravel()))
            q = np.float32(2.0 * scale) * wr
            g_u += float(np.sum(q * (power_u[j] - power), dtype=np.float64))
            back = scipy.fft.ifft2(q * spec * np.float32(2.0 * (1 - u))) * size
            t = np.conj(back) * field
            g_phase -= t.imag
            g_log_amp += t.real
            g_eps += complex(np.sum(np.conj(back) * unlensed[j], dtype=np.complex128))
            q_u[j] += q * np.float32(2.0 * u)
        for field, spectrum, summed in zip(unlensed, spec_u, q_u):
            t = np.conj(scipy.fft.ifft2(summed * spectrum) * size) * field
            g_phase -= t.imag
            g_log_amp += t.real
        return total, self._gradient(p, g_phase, g_log_amp, g_eps, g_u)

    def _gradient(self, p: np.ndarray, g_phase: np.ndarray, g_log_amp: np.ndarray, g_eps: complex,
                  g_u: float) -> np.ndarray:
        """The gradient in the parameters from the gradients in the pupil's phase and log amplitude."""
        grad = np.zeros_like(p)
        grad[:self.nz] = 2 * np.pi * np.tensordot(self.modes, g_phase, axes=([1, 2], [0, 1]))
        if self.light is None:
            cx, cy, inv_w2 = p[self.nz:self.nz + 3]
            grad[self.nz] = np.sum(g_log_amp * 2 * (self.x - cx) * inv_w2)
            grad[self.nz + 1] = np.sum(g_log_amp * 2 * (self.y - cy) * inv_w2)
            grad[self.nz + 2] = -np.sum(g_log_amp * ((self.x - cx) ** 2 + (self.y - cy) ** 2))
        grad[-3], grad[-2] = g_eps.real, -g_eps.imag
        grad[-1] = g_u
        return grad


def _scale_and_background(model: np.ndarray, data: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Least-squares ``s``, ``b`` of ``s * model + b = data`` under ``weight``."""
    w, f8 = weight, np.float64
    wm = w * model
    sw, sm, sd = w.sum(dtype=f8), wm.sum(dtype=f8), (w * data).sum(dtype=f8)
    smm, smd = (wm * model).sum(dtype=f8), (wm * data).sum(dtype=f8)
    det = smm * sw - sm * sm
    if det <= 0:
        return 0.0, float(sd / max(sw, 1e-30))
    return float((smd * sw - sm * sd) / det), float((smm * sd - sm * smd) / det)


def fit_pupil(grid: PupilGrid, terms, pictures, weights, *, light: np.ndarray | None = None,
              aperture_half_m: float | None = None, aperture_centre_m: tuple[float, float] = (0.0, 0.0),
              waist_guess_m: float = 4e-3, max_iterations: int = 200,
              cancel: threading.Event | None = None) -> PupilFit:
    """Fit the wavefront (and, without ``light``, a Gaussian beam clipped by a square aperture of
    half side ``aperture_half_m`` about ``aperture_centre_m``) to ``pictures`` (each on the
    sensor-plane model grid, any units, with per-cell ``weights``: 0 where off the sensor).
    ``cancel``: set from another thread, the fit stops at its next evaluation (FitCancelled)."""
    nz = len(grid.noll)
    norm = [float(np.sqrt(np.sum(w * d * d))) or 1.0 for d, w in zip(pictures, weights)]
    pictures = [d / s for d, s in zip(pictures, norm)]
    problem = _Problem(grid, terms, pictures, weights, light, aperture_half_m, aperture_centre_m)
    start = [np.zeros(nz)]
    scales = [np.full(nz, 0.1)]
    bounds: list[tuple[float | None, float | None]] = [(None, None)] * nz
    if light is None:
        start.append([aperture_centre_m[0], aperture_centre_m[1], 1.0 / waist_guess_m**2])
        scales.append([1e-4, 1e-4, 1.0 / waist_guess_m**2])
        bounds += [(None, None), (None, None), (-0.95, None)]      # the waist stays finite
    start.append([0.0, 0.0, 0.02])                                 # the patterns' zero order, u
    scales.append([0.01, 0.01, 0.01])
    bounds += [(-30.0, 30.0), (-30.0, 30.0), (-2.0, 48.0)]           # |eps| <= 0.3, 0 <= u <= 0.5
    p0, s = np.concatenate(start), np.concatenate(scales)

    def scaled(q: np.ndarray) -> tuple[float, np.ndarray]:
        if cancel is not None and cancel.is_set():
            raise FitCancelled("the wavefront fit was cancelled")
        value, grad = problem(p0 + q * s)
        return value, grad * s

    result = scipy.optimize.minimize(scaled, np.zeros_like(p0), jac=True, method="L-BFGS-B", bounds=bounds,
                                     options={"maxiter": max_iterations})
    p = p0 + result.x * s
    data_energy = sum(float(np.sum(w * d * d)) for d, w in zip(pictures, weights))
    centre = waist = None
    if light is None:
        centre, waist = (float(p[nz]), float(p[nz + 1])), float(1.0 / np.sqrt(p[nz + 2]))
    return PupilFit(coefficients_waves=p[:nz].copy(), unmodulated_fraction=float(p[-1]),
                    zero_order=complex(p[-3], p[-2]), beam_centre_m=centre,
                    beam_waist_m=waist, residual=float(result.fun) / max(data_energy, 1e-30),
                    iterations=int(result.nit))


def model_pictures(grid: PupilGrid, terms, fit: PupilFit, *, light: np.ndarray | None = None,
                   aperture_half_m: float | None = None,
                   aperture_centre_m: tuple[float, float] = (0.0, 0.0)) -> list[np.ndarray]:
    """The pictures the fitted pupil makes (for the calibration's PNG), unscaled."""
    problem = _Problem(grid, terms, [], [], light, aperture_half_m, aperture_centre_m)
    parts = [fit.coefficients_waves]
    if light is None:
        parts.append([fit.beam_centre_m[0], fit.beam_centre_m[1], 1.0 / fit.beam_waist_m**2])
    parts.append([fit.zero_order.real, fit.zero_order.imag, fit.unmodulated_fraction])
    return problem.pictures_of(np.concatenate(parts))
