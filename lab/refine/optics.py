"""What a calibrated bench's optics are, as the differentiable model (lab.model.student) needs them."""

from __future__ import annotations

from pathlib import Path

from optgen.drivers.errors import OptgenError

__all__ = ["measured_optics"]


def measured_optics(cfg, grid_px: int, store: str | Path | None = None, *,
                    why: str = "training with --measured-optics needs them"):
    """(BenchOptics, where they come from, SLM2's fringing blur in pixels) of the calibrations in the
    store of ``cfg`` (or ``store``); OptgenError, ending with ``why``, when they measured none of it
    (no distances, no wavefront)."""
    from optgen.lab.bench.calibrations import load_bench_calibrations
    from optgen.lab.evaluate.prediction import calibrated_optics
    from optgen.lab.model.bench_optics import bench_optics

    cals = load_bench_calibrations(cfg, store)
    if cals.distances is None and not cals.wavefronts:
        raise OptgenError(f"{cals.store}: no distances or wavefront calibration for this bench; run optgen "
                          f"calibrate all (or wavefront) first; {why}")
    optics = calibrated_optics(cals, cfg)
    ids = {name: cals.ids()[name] for name in cals.ids() if name.endswith(".wavefront") or name == "distances"}
    record = {"bench": cfg.name, "store": str(cals.store), "calibrations": ids,
              "d1_mm": round(optics.d1_m * 1e3, 4) if optics.d1_m else None,
              "d2_mm": round(optics.d2_m * 1e3, 4) if optics.d2_m else None,
              "beam_waist_mm": round(optics.beam_waist_m * 1e3, 4),
              "unmodulated": [round(float(u), 5) for u in optics.unmodulated],
              "slm2_corrected": bool(optics.decoder_corrected),
              "slm1_correction_modelled": bool(optics.encoder_corrected and optics.encoder_wavefront is not None)}
    luts = cals.lut_records
    sigma = float(luts["decoding_slm"].results["crosstalk_sigma_px"]) if "decoding_slm" in luts else 0.0
    return bench_optics(optics, cfg, grid_px), record, sigma
