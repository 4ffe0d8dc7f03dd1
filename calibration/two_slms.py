"""Two SLMs, which first? (slmsuite issue #133)

Each measurement needs the other SLM as a lens, and a lens shown through an uncalibrated LUT is
imperfect. The ratio f makes this a second-order problem: the helping lens's efficiency cancels
in f, the light it fails to focus is a smooth background subtracted locally, and what is left of
its imperfection (how well the +-1 orders are collected against the zero order) is the fitted k.
So :func:`calibrate_luts` goes: round 1 measures the encoding SLM with the decoding SLM's current
(nominal or stored) LUT and applies the result at once, then measures the decoding SLM with the
encoding SLM's lens now shown through that new LUT; round 2 re-measures the encoding SLM with the
decoding SLM's calibrated lens, and the decoding SLM again only if the encoding SLM's response
moved by more than ``tolerance_rad`` (only then did its helping lens change materially). The
encoding SLM goes first because its measurement is the more robust one with a poor helper: the
sharp aperture sits on it, so its orders are clean, well separated Fourier-plane spots. Every
measurement records how far the response moved since the previous round (RMS over 0..2pi) in
``history``, so a user sees it converge; on the twin the second round moves the encoding SLM's
curve by ~3 mrad, i.e. one round is nearly enough and the second confirms it.
"""

from __future__ import annotations

import logging

import numpy as np

from optgen.calibration.lut import apply_response
from optgen.calibration.response import ResponseMeasurement, measure_response
from optgen.drivers.common.patterns import TWO_PI
from optgen.drivers.common.roles import DECODING, ENCODING

__all__ = ["calibrate_luts"]

log = logging.getLogger(__name__)


def _change_rad(new: np.ndarray, old: np.ndarray | None) -> float | None:
    if old is None:
        return None
    use = new <= TWO_PI
    return float(np.sqrt(np.mean((new[use] - old[use]) ** 2)))


def calibrate_luts(session, rounds: int = 2, *, tolerance_rad: float = 0.01,
                   **kw) -> dict[str, ResponseMeasurement]:
    """Measure both SLMs in alternation, applying each new LUT at once (module docstring).

    Round 1: encoding SLM (decoding SLM's current LUT as the lens), then decoding SLM (encoding
    SLM's new LUT). Rounds >= 2: encoding SLM again; decoding SLM again only if the encoding
    SLM's response moved by more than ``tolerance_rad`` RMS. ``kw`` goes to measure_response.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    results: dict[str, ResponseMeasurement] = {}
    history: dict[str, list[dict]] = {ENCODING: [], DECODING: []}
    for r in range(1, rounds + 1):
        keys = [ENCODING, DECODING]
        for key in keys:
            if key == DECODING and r > 1:
                moved = history[ENCODING][-1]["change_rad_rms"]
                if moved is not None and moved <= tolerance_rad:
                    log.info("round %d: %s moved %.4f rad <= %.4f; %s not re-measured", r, ENCODING, moved,
                             tolerance_rad, DECODING)
                    continue
            m = measure_response(session, key, **kw)
            previous = results.get(key)
            change = _change_rad(m.phase_rad, previous.phase_rad if previous is not None else None)
            history[key].append({"round": r, "helper_lut_id": m.helper_lut_id, "change_rad_rms": change,
                                 "crosstalk_sigma_px": m.crosstalk_sigma_px, "order_balance": m.order_balance,
                                 "residual_rms": m.residual_rms, "lut_range_rad": m.lut_range_rad(),
                                 **m.counters})
            m.rounds = len(history[key])
            m.history = list(history[key])
            response = m.response(f"measured:{key}:{m.wavelength_nm:g}nm:r{r}:{m.digest()}")
            apply_response(session.slms[key], response)
            session.bench.luts[key] = response
            for w in m.warnings:
                log.warning(w)
            log.info("round %d: %s measured (change %s rad, sigma %.3f px, residual %.4f)", r, key,
                     "n/a" if change is None else f"{change:.4f}", m.crosstalk_sigma_px, m.residual_rms)
            results[key] = m
    return results
