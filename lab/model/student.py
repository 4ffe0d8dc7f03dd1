"""The optical student in torch: digital encoder + the same optics as the twin, differentiable.

Training only (needs torch). The transfer functions come from ``simulators.optics`` (one
implementation, numpy, cached) and the propagation step is the same two FFTs and a
multiply, so the twin and the trained model see the same physics (a test checks they agree
to float32 precision). The training path (:meth:`OpticalStudent.intensity`) computes the same
field with pruned transforms: the transfer functions are zero outside their band limit and
only the output window is seen (issue 24; :meth:`OpticalStudent.intensity_full_grid` is the
full-grid reference it is checked and benchmarked against).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from optgen.drivers.common.patterns import grid_coordinates
from optgen.lab.model.bench_optics import BenchOptics
from optgen.lab.model.geometry import OpticalGeometry
from optgen.lab.model.pruned_transforms import band_of, from_band, irradiance_from_band, to_band
from optgen.lab.model.teacher import class_from_noise
from optgen.simulators.optics import transfer_function

__all__ = ["OpticalStudent", "propagate_torch", "beam_amplitude"]

TWO_PI = 2.0 * math.pi
LOG_SCALE_RANGE = 20.0


def propagate_torch(field: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The twin's propagation step in torch: ifft2(fft2(field) * H)."""
    return torch.fft.ifft2(torch.fft.fft2(field) * h)


def beam_amplitude(geom: OpticalGeometry) -> np.ndarray:
    """Flat-top beam of unit power through the square aperture, as the twin's flat-top beam."""
    pitch = geom.pitch_um * 1e-6
    y, x = grid_coordinates((geom.grid_px, geom.grid_px), pitch)
    half = geom.aperture_mm * 1e-3 / 2
    inside = (np.abs(x) <= half) & (np.abs(y) <= half)
    return np.sqrt(inside / (inside.sum() * pitch**2)).astype(np.float32)


def _quantize_ste(phase: torch.Tensor, levels: int) -> torch.Tensor:
    """Round to the SLM's phase levels in the forward pass, identity gradient backwards."""
    step = TWO_PI / levels
    return phase + (torch.round(phase / step) * step - phase).detach()


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(phase: torch.Tensor, kernel: torch.Tensor | None) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) phases (the SLM's pixel crosstalk), edges replicated.

    Written as shifted sums: on the CPU this is several times faster than conv2d and its backward.
    """
    if kernel is None:
        return phase
    r = kernel.numel() // 2
    for dim in (1, 2):
        padded = torch.cat([phase.narrow(dim, 0, 1).expand_as(phase.narrow(dim, 0, r)) if r else phase[:0],
                            phase,
                            phase.narrow(dim, phase.shape[dim] - 1, 1).expand_as(phase.narrow(dim, 0, r))], dim=dim)
        n = phase.shape[dim]
        phase = sum(kernel[i] * padded.narrow(dim, i, n) for i in range(2 * r + 1))
    return phase


def _warp_bilinear(field: torch.Tensor, shift: tuple[float, float], rotation_deg: float) -> torch.Tensor:
    """(H, W) complex ``field`` moved by ``shift`` (rows, cols) pixels and turned by ``rotation_deg``
    about its centre: real and imaginary parts resampled bilinearly.

    Output pixel p (x, y) takes the bilinear value at q = R^-1 (p - c - s) + c, the map the twin
    uses for a misplaced SLM (``simulators.optics.field_in_beam``); values outside repeat the edge.
    """
    h, w = field.shape
    a = math.radians(rotation_deg)
    cos, sin = math.cos(a), math.sin(a)
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=field.device),
                          torch.arange(w, dtype=torch.float32, device=field.device), indexing="ij")
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    px, py = x - cx - shift[1], y - cy - shift[0]
    qx, qy = cos * px + sin * py + cx, -sin * px + cos * py + cy
    grid = torch.stack([2.0 * qx / (w - 1) - 1.0, 2.0 * qy / (h - 1) - 1.0], dim=-1)[None]
    parts = torch.stack([field.real, field.imag])[None]
    moved = F.grid_sample(parts, grid, mode="bilinear", padding_mode="border", align_corners=True)[0]
    return torch.complex(moved[0], moved[1])


def _upsample_matrix(n: int, factor: int, size: int, kernel: torch.Tensor | None) -> torch.Tensor:
    """(size, n) matrix E: E @ v repeats each of ``n`` values ``factor`` times, blurs the ``n * factor``
    samples with ``kernel`` (edges repeated, as :func:`_blur`) and centres them in ``size`` zeros.

    ``E @ q @ E.T`` is the superpixel seed shown on the lit block, blurred: two small matmuls
    instead of the blur's shifted sums over the whole block.
    """
    m = n * factor
    e = torch.zeros(m, n, dtype=torch.float64)
    e[torch.arange(m), torch.arange(m) // factor] = 1.0
    if kernel is not None:
        r = kernel.numel() // 2
        blur = torch.zeros(m, m, dtype=torch.float64)
        i = torch.arange(m)
        for t in range(2 * r + 1):
            blur[i, (i + t - r).clamp(0, m - 1)] += float(kernel[t])
        e = blur @ e
    top = (size - m) // 2
    return F.pad(e, (0, 0, top, size - m - top)).to(torch.float32)


class OpticalStudent(nn.Module):
    """Encoder (noise -> seed values + log scale per colour) and a decoder phase per colour, through the optics.

    ``wavelengths_nm``: the colours (default: the geometry's one wavelength). Each colour has its
    own seed, scale, decoder phase and transfer functions; the same noise drives all colours.
    ``optics``: what calibration measured of one bench (:class:`lab.model.bench_optics.BenchOptics`:
    true distances, beam, wavefronts, unmodulated light), else the bench file's nominal optics.
    ``classes``: the encoder also takes the class each noise vector asks for as that many one-hot
    inputs (:mod:`lab.model.class_input`); 0: the noise alone.
    """

    def __init__(self, geom: OpticalGeometry, noise_dim: int, hidden: int = 512, levels: int = 256,
                 crosstalk_sigma_px: float = 0.6, wavelengths_nm: tuple[float, ...] | None = None,
                 hidden_layers: int = 2, optics: BenchOptics | None = None, classes: int = 0):
        super().__init__()
        self.geom = geom
        self.optics = optics or BenchOptics()
        self.optics.check_grid(geom.grid_px)
        self.wavelengths_nm = tuple(wavelengths_nm or (geom.wavelength_nm,))
        colours = len(self.wavelengths_nm)
        n = geom.seed_superpixels
        if hidden_layers < 1:
            raise ValueError(f"hidden_layers = {hidden_layers}: expected at least 1")
        self.classes = int(classes)       # > 0: the class also enters as one-hot inputs (lab.model.class_input)
        layers: list[nn.Module] = [nn.Linear(noise_dim + self.classes, hidden), nn.LeakyReLU(0.2)]
        for _ in range(hidden_layers - 1):
            layers += [nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*layers, nn.Linear(hidden, colours * (n * n + 1)))
        self.straight_through = False      # see encode()
        self.out_of_range = torch.zeros(())
        self.decoder_logits = nn.Parameter(torch.zeros(colours, geom.decoder_px, geom.decoder_px))
        self.log_scale_offset = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.levels = levels
        pitch = geom.pitch_um * 1e-6
        shape = (geom.grid_px, geom.grid_px)
        o = self.optics
        for name, distance in (("h1", o.d1_m or geom.d1_mm * 1e-3), ("h2", o.d2_m or geom.d2_mm * 1e-3)):
            h = np.stack([np.array(transfer_function(shape, wl * 1e-9, distance, pitch)) for wl in self.wavelengths_nm])
            self.register_buffer(name, torch.from_numpy(h))
        light = beam_amplitude(geom) if o.beam is None else np.asarray(o.beam)
        beam = light if o.slm1_residual_rad is None else light * np.exp(1j * o.slm1_residual_rad)   # a fixed phase on SLM1
        beam = beam.astype(np.complex64 if np.iscomplexobj(beam) else np.float32)
        self.register_buffer("beam", torch.from_numpy(beam))
        self.kernel = _gaussian_kernel(crosstalk_sigma_px) if crosstalk_sigma_px > 0 else None
        self._measured_optics(light)
        lit = np.flatnonzero(np.abs(beam).any(axis=0))
        seed_px = geom.seed_superpixels * geom.superpixel_px
        lo = min(int(lit[0]), (geom.grid_px - seed_px) // 2)
        self._lit = (lo, geom.grid_px - lo)  # square block holding the beam and the seed
        # h1 for the block computed at the grid's origin: its place at (lo, lo) is a phase ramp in frequency
        ramp = np.exp(-2j * np.pi * lo * np.arange(geom.grid_px) / geom.grid_px).astype(np.complex64)
        self.register_buffer("h1_block", self.h1 * torch.from_numpy(ramp[:, None] * ramp[None, :]), persistent=False)
        self._band_optics()

    # --- pieces ---------------------------------------------------------------------
    def encode(self, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(seed phase (B, colours, n, n) radians, log scale (B, colours)).

        The phase is the published mapping clip(pi (H + 1), 0, 2 pi), as inference computes it;
        with ``straight_through`` its gradient passes the clip, so a value that left [-1, 1]
        still learns (plain clipping gives it none: a deep encoder whose outputs all ran out of
        range stopped learning for good), and :attr:`out_of_range` (the mean square of how far
        the values lie outside [-1, 1]) is there for the loss to pull them back.
        """
        n, colours = self.geom.seed_superpixels, len(self.wavelengths_nm)
        if self.classes:
            one_hot = F.one_hot(class_from_noise(noise, self.classes), self.classes).to(noise.dtype)
            noise = torch.cat([noise, one_hot], dim=1)
        out = self.encoder(noise)
        values = out[:, : colours * n * n].reshape(-1, colours, n, n)
        raw = math.pi * (values + 1.0)
        phase = torch.clamp(raw, 0.0, TWO_PI)
        if self.straight_through:
            phase = raw + (phase - raw).detach()
        self.out_of_range = torch.mean(F.relu(values.abs() - 1.0) ** 2)
        # the scale may move e**20 either way from its start, never to an overflow
        log_scale = torch.clamp(out[:, colours * n * n:], -LOG_SCALE_RANGE, LOG_SCALE_RANGE)
        return phase, log_scale + self.log_scale_offset

    def decoder_phase(self) -> torch.Tensor:
        """(colours, decoder_px, decoder_px) radians."""
        return TWO_PI * torch.sigmoid(self.decoder_logits)

    # --- forward --------------------------------------------------------------------
    def _shown_decoder(self, decoder_phase: torch.Tensor, realistic: bool = True) -> torch.Tensor:
        """The (d, d) decoder phase as SLM2's pixels show it (``realistic``: quantized, blurred by the
        crosstalk), less what :attr:`panel2` holds on the decoder block.

        Where runs add SLM2's wavefront correction, the decoder plus the correction is wrapped into
        one 2 pi range before the fringing blurs it (its wraps move and multiply). :attr:`panel2` is
        SLM2's wavefront plus the correction as the pixels show it alone (wrapped, quantized,
        blurred: what the light outside the decoder block sees), so that is taken off here."""
        c = self._correction_block
        if c is None:
            return _blur(_quantize_ste(decoder_phase[None], self.levels), self.kernel)[0] if realistic else decoder_phase
        if not realistic:
            return decoder_phase + c - self._correction_shown_block
        wrapped = torch.remainder(decoder_phase + c, TWO_PI)
        return _blur(_quantize_ste(wrapped[None], self.levels), self.kernel)[0] - self._correction_shown_block

    def _shown_with_correction(self, seed_block: torch.Tensor, realistic: bool = True) -> torch.Tensor:
        """SLM1's seed on the lit block as its pixels show it where runs add SLM1's wavefront correction
        (:attr:`_slm1_correction`): the seed plus the correction wrapped into one 2 pi range, quantized and
        blurred by the fringing (the wraps the correction adds cross the superpixels and are smeared
        too), less the correction (which the panel's own wavefront takes back out)."""
        c = self._slm1_correction
        if not realistic:
            return seed_block
        wrapped = torch.remainder(seed_block + c, TWO_PI)
        return _blur(_quantize_ste(wrapped, self.levels), self.kernel) - c

    def _decoder_placed(self, decoder_phase: torch.Tensor, shift: tuple[float, float],
                        rotation_deg: float) -> tuple[torch.Tensor, int, int]:
        """(transmission block, top, left): exp(i * SLM2's decoder phase) as placed on the grid by
        :meth:`decoder_mask` (zero phase around the decoder)."""
        n, d = self.geom.grid_px, self.geom.decoder_px
        rows, cols = float(shift[0]), float(shift[1])
        if rotation_deg == 0.0 and rows.is_integer() and cols.is_integer():
            return torch.polar(torch.ones_like(decoder_phase), decoder_phase), \
                (n - d) // 2 + int(rows), (n - d) // 2 + int(cols)
        margin = int(math.ceil(max(abs(rows), abs(cols)) + abs(math.radians(rotation_deg)) * d)) + 1
        padded = F.pad(decoder_phase, (margin,) * 4)
        dec = _warp_bilinear(torch.polar(torch.ones_like(padded), padded), (rows, cols), rotation_deg)
        return dec, (n - d - 2 * margin) // 2, (n - d - 2 * margin) // 2

    def decoder_mask(self, decoder_phase: torch.Tensor, shift: tuple[float, float] = (0.0, 0.0),
                     rotation_deg: float = 0.0) -> torch.Tensor:
        """SLM2 as a (grid, grid) complex mask: exp(i phase) on the decoder block, 1 elsewhere.

        The block is moved by ``shift`` (rows, cols) SLM pixels and turned by ``rotation_deg``
        about the grid's centre, as the twin places a misplaced SLM2 (``simulators.world``:
        the same affine map, bilinear on the transmission, zero phase around the decoder). Whole-pixel
        shifts without rotation move the block exactly, with no resampling.
        """
        n = self.geom.grid_px
        dec, top, left = self._decoder_placed(decoder_phase, shift, rotation_deg)
        d = dec.shape[-1]
        return F.pad(dec - 1, (left, n - d - left, top, n - d - top)) + 1

    def _decoder_block(self, decoder_phase: torch.Tensor, shift: tuple[float, float],
                       rotation_deg: float) -> tuple[torch.Tensor, int, int]:
        """(mask - 1 on the decoder block, top, left): :meth:`decoder_mask` minus 1, where it is not 0
        (the block clipped to the grid)."""
        n = self.geom.grid_px
        dec, top, left = self._decoder_placed(decoder_phase, shift, rotation_deg)
        h, w = dec.shape[-2:]
        r0, c0 = max(top, 0), max(left, 0)
        dec = dec[r0 - top:min(top + h, n) - top, c0 - left:min(left + w, n) - left]
        return dec - 1, r0, c0

    def intensity(self, seed_phase: torch.Tensor, decoder_phase: torch.Tensor,
                  shift: tuple[float, float] = (0, 0), realistic: bool = True, colour: int = 0,
                  rotation_deg: float = 0.0) -> torch.Tensor:
        """Sensor-plane irradiance in the output window (B, window, window) of one colour, for unit beam power.

        ``seed_phase`` (B, n, n) and ``decoder_phase`` (d, d) of that colour; the same field as
        :meth:`intensity_full_grid` (:func:`propagate_torch` twice on the full grid; tests check it
        to float32 precision, gradients too) with a fraction of its arithmetic: the transfer
        functions are zero outside a rectangle of frequencies (the band limit) and only the output
        window is seen, so every transform is pruned (:func:`lab.model.pruned_transforms.two_pass`): from the lines that hold
        light to the frequencies in the band, and back to the lines needed. The light arriving on
        SLM2 is needed only on the decoder block: outside it the mask is 1 and passes the arriving
        spectrum on as it is (:meth:`_window_through_slm2`). The superpixel seed is shown, blurred,
        by two small matmuls (:func:`_upsample_matrix`).
        """
        n, c, lo = self.geom.grid_px, colour, self._lit[0]
        dec, seed = decoder_phase, seed_phase
        dec = self._shown_decoder(dec, realistic)
        if self._slm1_correction is not None:
            shown = self._shown_with_correction(self._show @ seed @ self._show.T, realistic)
        else:
            if realistic:
                seed = _quantize_ste(seed, self.levels)        # the same values as quantizing the shown seed
            e = self._show_blurred if realistic and self.kernel is not None else self._show
            shown = e @ seed @ e.T
        field = torch.polar(self._beam_amplitude.expand_as(shown), shown + self._beam_phase)
        band1 = self._bands[c][:2]
        arriving = to_band(field, n, (lo, lo), *band1) * self.get_buffer(f"_h1_band{c}")   # on SLM2, h1's band
        block, top, left = self._decoder_block(dec, shift, rotation_deg)
        return self._window_through_slm2(arriving, block, top, left, c)

    def _window_through_slm2(self, arriving: torch.Tensor, block: torch.Tensor, top: int, left: int,
                             c: int) -> torch.Tensor:
        """Irradiance in the output window of the light whose spectrum ``arriving`` (h1's band, transposed)
        reaches SLM2, through SLM2 (``block``: its mask - 1 at ``top``, ``left``; the panel's wavefront
        and unmodulated light) and d2; SLM1's unmodulated light added as :meth:`intensity_full_grid` does.

        The field a on SLM2 times its mask 1 + block has the spectrum A + F(a block): A is h1's band
        moved into h2's (or, with a panel wavefront everywhere, the spectrum of a times it), and the
        second term needs a only on the block.
        """
        n, w = self.geom.grid_px, self.geom.output_window_px
        w0 = (n - w) // 2
        (a1r, k1r), (a1c, k1c), rows2, cols2 = self._bands[c]
        h, wd = block.shape
        if self.panel2 is None:     # the field on the block only
            on_block = from_band(arriving, n, (a1r, k1r), (a1c, k1c), (top, left), (h, wd))
            r, q = a1r - rows2[0], a1c - cols2[0]
            spectrum = F.pad(arriving, (r, rows2[1] - k1r - r, q, cols2[1] - k1c - q))
        else:                       # the panel's wavefront is everywhere: the field on the whole grid
            light = from_band(arriving, n, (a1r, k1r), (a1c, k1c), (0, 0), (n, n))
            full = light * self.panel2
            spectrum = to_band(full, n, (0, 0), rows2, cols2)
            on_block = full[..., top:top + h, left:left + wd]
        h2 = self.get_buffer(f"_h2_band{c}")

        def seen(free: torch.Tensor, on_block: torch.Tensor | None) -> torch.Tensor:
            """|window|^2 of the spectrum ``free`` (+ that of ``on_block`` times the block) through d2."""
            total = free if on_block is None else free + to_band(on_block, n, (top, left), rows2, cols2, block)
            return irradiance_from_band(total, h2, n, rows2, cols2, (w0, w0), (w, w))

        u1, u2 = self.optics.unmodulated
        out = seen(spectrum, on_block)
        # SLM2's unmodulated part then sees its panel alone (panel2, with the correction, is never None)
        corrected = self._correction_block is not None
        if u2 > 0:
            if corrected:
                spectrum = to_band(light * self._slm2_panel(), n, (0, 0), rows2, cols2)
            out = (1.0 - u2) * out + u2 * seen(spectrum, None)
        if u1 > 0:                                      # SLM1's unmodulated light, through SLM2's both parts
            incident = self.get_buffer(f"_incident_band{c}")
            other = seen(incident, self.get_buffer(f"_incident{c}")[top:top + h, left:left + wd])
            if u2 > 0:
                if corrected:
                    incident = self.get_buffer(f"_incident_band_unmodulated{c}")
                other = (1.0 - u2) * other + u2 * seen(incident, None)
            out = (1.0 - u1) * out + u1 * other[None]
        return out

    def intensity_full_grid(self, seed_phase: torch.Tensor, decoder_phase: torch.Tensor,
                            shift: tuple[float, float] = (0, 0), realistic: bool = True, colour: int = 0,
                            rotation_deg: float = 0.0) -> torch.Tensor:
        """:meth:`intensity` as it was before the band-limited path (issue 24): the reference it is checked
        and benchmarked against.

        Only the lit block of SLM1 is built (its place on the grid is a phase ramp folded into
        ``h1_block``) and SLM2 is a (grid, grid) mask that is 1 outside the decoder block
        (:meth:`decoder_mask`); then full-grid ``fft2`` / ``ifft2`` as :func:`propagate_torch`.
        """
        g = self.geom
        seed = seed_phase.repeat_interleave(g.superpixel_px, 1).repeat_interleave(g.superpixel_px, 2)
        dec = decoder_phase
        correction = self._slm1_correction is not None
        if realistic and not correction:
            seed = _blur(_quantize_ste(seed, self.levels), self.kernel)
        dec = self._shown_decoder(dec, realistic)
        b0, b1 = self._lit
        n = g.grid_px
        pad = ((b1 - b0 - seed.shape[-1]) // 2,) * 2 + ((b1 - b0 - seed.shape[-2]) // 2,) * 2
        block, shown = self.beam[b0:b1, b0:b1], F.pad(seed, pad)
        if correction:
            shown = self._shown_with_correction(shown, realistic)
        if block.is_complex():                          # a tilted beam, or SLM1's residual wavefront on it
            field = block * torch.polar(torch.ones_like(shown), shown)
        else:
            field = torch.polar(block.expand(seed.shape[0], -1, -1), shown)
        spectrum = torch.fft.fft2(field, s=(n, n))
        field = torch.fft.ifft2(spectrum * self.h1_block[colour])
        mask = self.decoder_mask(dec, shift, rotation_deg)
        if self.panel2 is not None:
            mask = mask * self.panel2
        u1, u2 = self.optics.unmodulated
        out = self._through_slm2(field, mask, colour)
        if u2 > 0:
            out = (1.0 - u2) * out + u2 * self._through_slm2(field, self._slm2_panel(), colour)
        if u1 > 0:                                      # SLM1's unmodulated light, through SLM2's both parts
            incident = self.unmodulated1[colour][None]
            other = self._through_slm2(incident, mask, colour)
            if u2 > 0:
                other = (1.0 - u2) * other + u2 * self._through_slm2(incident, self._slm2_panel(), colour)
            out = (1.0 - u1) * out + u1 * other
        return out

    def _through_slm2(self, field: torch.Tensor, mask: torch.Tensor, colour: int) -> torch.Tensor:
        """Irradiance in the output window of ``field`` arriving at SLM2, through ``mask``, over d2 (full grid)."""
        g = self.geom
        w, w0 = g.output_window_px, (g.grid_px - g.output_window_px) // 2
        window = torch.fft.ifft2(torch.fft.fft2(field * mask) * self.h2[colour])[:, w0:w0 + w, w0:w0 + w]
        return window.real**2 + window.imag**2

    def _band_optics(self) -> None:
        """Buffers of the band-limited path (:meth:`intensity`).

        ``_bands[c]``: (first signed frequency, count) of h1's rows, of its columns, of h2's rows, of
        its columns, for colour c; ``_h1_band{c}``, ``_h2_band{c}``: h1, h2 on their bands, transposed
        (as :func:`to_band` gives spectra); ``_incident{c}``, ``_incident_band{c}``: SLM1's unmodulated
        light on SLM2 (times SLM2's panel wavefront, if any) and its spectrum on h2's band;
        ``_show``, ``_show_blurred``: :func:`_upsample_matrix`; the beam on the lit block as amplitude
        and phase.
        """
        g = self.geom
        n, lo, lit = g.grid_px, self._lit[0], self._lit[1] - self._lit[0]
        self.register_buffer("_show", _upsample_matrix(g.seed_superpixels, g.superpixel_px, lit, None),
                             persistent=False)
        self.register_buffer("_show_blurred", _upsample_matrix(g.seed_superpixels, g.superpixel_px, lit, self.kernel),
                             persistent=False)
        c1 = self.optics.slm1_correction_rad
        c1 = None if c1 is None or not np.any(c1) else \
            torch.from_numpy(np.ascontiguousarray(np.asarray(c1, np.float32)[lo:lo + lit, lo:lo + lit]))
        self.register_buffer("_slm1_correction", c1, persistent=False)
        beam = self.beam[lo:lo + lit, lo:lo + lit].numpy()
        self.register_buffer("_beam_amplitude", torch.from_numpy(np.abs(beam).astype(np.float32)), persistent=False)
        self.register_buffer("_beam_phase", torch.from_numpy(np.angle(beam).astype(np.float32)), persistent=False)
        panel = None if self.panel2 is None else self.panel2.numpy()
        self._bands = []
        for c in range(len(self.wavelengths_nm)):
            h1, h2 = self.h1[c].numpy(), self.h2[c].numpy()
            bands = (band_of(h1, 0), band_of(h1, 1), band_of(h2, 0), band_of(h2, 1))
            self._bands.append(bands)
            (a1r, k1r), (a1c, k1c), (a2r, k2r), (a2c, k2c) = bands
            band2 = np.ix_((a2r + np.arange(k2r)) % n, (a2c + np.arange(k2c)) % n)
            buffers = {"_h1_band": h1[np.ix_((a1r + np.arange(k1r)) % n, (a1c + np.arange(k1c)) % n)].T,
                       "_h2_band": h2[band2].T}
            if self.unmodulated1 is not None:
                arriving = self.unmodulated1[c].numpy()
                incident = arriving * panel if panel is not None else arriving
                buffers["_incident"] = incident
                buffers["_incident_band"] = np.fft.fft2(incident.astype(np.complex128))[band2].T
                if self._correction_block is not None:      # through SLM2's unmodulated part: no correction
                    unmodulated = arriving * self._slm2_panel().numpy()
                    buffers["_incident_band_unmodulated"] = np.fft.fft2(unmodulated.astype(np.complex128))[band2].T
            for name, value in buffers.items():
                tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.complex64))
                self.register_buffer(f"{name}{c}", tensor, persistent=False)

    def _measured_optics(self, light: np.ndarray) -> None:
        """Buffers for SLM2's wavefront and SLM1's unmodulated light (None where nominal); ``light``:
        the beam arriving on SLM1.

        ``panel2``: what SLM2 adds to its modulated light besides the decoder (its wavefront, plus
        the correction runs add, if any, as the pixels show it: wrapped, quantized, blurred);
        ``panel2_unmodulated``: what it does to the light it leaves unmodulated (its wavefront alone);
        ``_correction_block``, ``_correction_shown_block``: the correction and the pixels' picture of
        it on the decoder block (:meth:`_shown_decoder`)."""
        o = self.optics
        panel2 = panel2_unmodulated = unmodulated1 = correction = shown_block = None

        def polar(phase: np.ndarray | torch.Tensor) -> torch.Tensor:
            phase = torch.as_tensor(np.asarray(phase, np.float32))
            return torch.polar(torch.ones(phase.shape), phase)

        panel = np.asarray(o.slm2_panel_rad, np.float32) if o.slm2_panel_rad is not None else None
        if panel is not None:
            panel2 = panel2_unmodulated = polar(panel)
        if o.slm2_correction_rad is not None and np.any(o.slm2_correction_rad != 0):
            added = torch.from_numpy(np.asarray(o.slm2_correction_rad, np.float32))
            step = TWO_PI / self.levels
            shown = _blur((torch.round(torch.remainder(added, TWO_PI) / step) * step)[None], self.kernel)[0]
            panel2 = polar(shown if panel is None else shown + torch.from_numpy(panel))
            n, d = self.geom.grid_px, self.geom.decoder_px
            block = (slice((n - d) // 2, (n + d) // 2),) * 2
            correction, shown_block = added[block].contiguous(), shown[block].contiguous()
        self.register_buffer("_correction_block", correction, persistent=False)
        self.register_buffer("_correction_shown_block", shown_block, persistent=False)
        self.register_buffer("panel2_unmodulated", panel2_unmodulated, persistent=False)
        if o.unmodulated[0] > 0:
            panel1 = np.asarray(o.slm1_panel_rad if o.slm1_panel_rad is not None else 0.0, np.float32)
            leaving = torch.from_numpy((light * np.exp(1j * panel1)).astype(np.complex64))
            unmodulated1 = torch.stack([propagate_torch(leaving, h) for h in self.h1])
        self.register_buffer("panel2", panel2, persistent=False)
        self.register_buffer("unmodulated1", unmodulated1, persistent=False)

    def _slm2_panel(self) -> torch.Tensor:
        """What SLM2's unmodulated part does to the light: its wavefront, or nothing."""
        p = self.panel2_unmodulated
        return p if p is not None else torch.ones((), dtype=torch.complex64)

    def output_image(self, window: torch.Tensor) -> torch.Tensor:
        """The output window averaged to (B, output_pixels, output_pixels)."""
        pool = self.geom.output_window_px // self.geom.output_pixels
        return F.avg_pool2d(window[:, None], pool)[:, 0]

    def forward(self, noise: torch.Tensor, shift: tuple[float, float] = (0, 0), realistic: bool = True,
                rotation_deg: float = 0.0, full_grid: bool = False) -> torch.Tensor:
        """Predicted images (B, colours, n_out, n_out) = scale * pooled output intensity, per colour.

        ``full_grid``: through :meth:`intensity_full_grid` (the reference) instead of :meth:`intensity`."""
        seed_phase, log_scale = self.encode(noise)
        decoder = self.decoder_phase()
        intensity = self.intensity_full_grid if full_grid else self.intensity
        images = torch.stack([self.output_image(intensity(seed_phase[:, c], decoder[c], shift, realistic, c,
                                                          rotation_deg))
                              for c in range(len(self.wavelengths_nm))], dim=1)
        return images * torch.exp(log_scale)[:, :, None, None]

    def forward_one_colour(self, noise: torch.Tensor, colour_of: torch.Tensor, shift: tuple[float, float] = (0, 0),
                           realistic: bool = True, rotation_deg: float = 0.0) -> torch.Tensor:
        """Each sample's image (B, n_out, n_out) in one colour only: ``colour_of[b]`` for sample b.

        What :meth:`forward` gives for that colour (the same field, to float32 precision), for a
        third of a three-colour step's optics: a step that trains every sample in one colour drawn
        for it (``TrainSettings.one_colour_per_sample``) sees each colour on a third of the batch.
        """
        colour_of = torch.as_tensor(colour_of, dtype=torch.long, device=noise.device)
        if colour_of.shape != noise.shape[:1] or bool(((colour_of < 0) | (colour_of >= len(self.wavelengths_nm))).any()):
            raise ValueError(f"colour_of {tuple(colour_of.shape)}: expected one colour in 0..{len(self.wavelengths_nm) - 1} "
                             f"for each of the {noise.shape[0]} samples")
        seed_phase, log_scale = self.encode(noise)
        decoder = self.decoder_phase()
        n_out = self.geom.output_pixels
        images = seed_phase.new_zeros(noise.shape[0], n_out, n_out)
        for c in range(len(self.wavelengths_nm)):
            rows = torch.nonzero(colour_of == c).flatten()
            if len(rows):
                seen = self.output_image(self.intensity(seed_phase[rows, c], decoder[c], shift, realistic, c, rotation_deg))
                images = images.index_copy(0, rows, seen)
        scale = torch.exp(log_scale.gather(1, colour_of[:, None]))
        return images * scale[:, :, None]
