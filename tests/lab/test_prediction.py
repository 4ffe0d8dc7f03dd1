"""lab.prediction: the calibrated model's image for a seed, against the twin's noiseless light.

The twin here has linear SLM responses (the nominal LUT is then right, as the prediction
assumes), pixel crosstalk, and SLM2 sitting a fraction of a pixel off and turned: what the
run's whole-pixel compensation cannot take out. The prediction that knows SLM2's placement must
match the twin's light; the one that takes the decoder as centred must not.
"""

from __future__ import annotations

import numpy as np

from optgen.calibration.alignment import DecoderPlacement
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.examples import small_bench_text
from optgen.lab.bench.parse import parse_bench
from optgen.lab.evaluate.prediction import pearson_r, predict_images
from optgen.lab.run.patterns import seed_to_slm_phase
from optgen.lab.run.placement import place_decoder

SHIFT_UM, ROTATION_DEG, SIGMA = (3.2, -1.6), 0.2, 0.3     # 0.4 and -0.2 SLM pixels


def twin_text() -> str:
    linear = {(f"twin.{k}", key): value for k in ("encoding_slm", "decoding_slm")
              for key, value in (("response_max_rad", str(2 * np.pi)), ("response_exponent", "1.0"),
                                 ("response_wobble_rad", "0.0"), ("crosstalk_sigma_px", str(SIGMA)))}
    return small_bench_text({**linear, ("twin.decoding_slm", "shift_um"): f"[{SHIFT_UM[0]}, {SHIFT_UM[1]}]",
                             ("twin.decoding_slm", "rotation_deg"): str(ROTATION_DEG)})


def twin_images(bench, seeds: np.ndarray, shown_decoder: np.ndarray) -> np.ndarray:
    """The twin's noiseless output window, pooled to the output grid, for each seed."""
    g, world, clock = bench.config.geometry, bench.world, bench.clock
    bench.decoding_slm.set_phase(shown_decoder)
    rows, cols = world.grid_shape
    w, pool = g.output_window_px, g.output_window_px // g.output_pixels
    r0, c0 = (rows - w) // 2, (cols - w) // 2
    out = []
    for seed in seeds:
        bench.encoding_slm.set_phase(seed_to_slm_phase(seed, g.superpixel_px, bench.encoding_slm.shape))
        clock.sleep(bench.encoding_slm.timing.wait_s + bench.decoding_slm.timing.wait_s)
        window = world.output_irradiance(clock.now(), 1.0)[r0:r0 + w, c0:c0 + w].astype(np.float64)
        out.append(window.reshape(g.output_pixels, pool, g.output_pixels, pool).mean(axis=(1, 3)))
    return np.stack(out)


def test_the_prediction_that_knows_where_slm2_sits_matches_the_twins_light(rng):
    config = parse_bench(twin_text(), "prediction")
    g = config.geometry
    pitch = config.decoding_slm.pitch_um * 1e-6
    placement = DecoderPlacement(shift_m=tuple(v * 1e-6 for v in SHIFT_UM), rotation_deg=ROTATION_DEG,
                                 residual_m=0.0, centres_px=np.zeros((0, 2)), detected_m=np.zeros((0, 2)),
                                 pitch_m=pitch, slm_centre_px=(0.0, 0.0))
    # a decoder with pixel-scale structure, as a trained one has
    decoder = rng.uniform(0, 2 * np.pi, (g.decoder_px, g.decoder_px)).astype(np.float32)
    seeds = rng.uniform(0, 2 * np.pi, (4, g.seed_superpixels, g.seed_superpixels)).astype(np.float32)
    with build_bench(config) as bench:
        light = twin_images(bench, seeds, place_decoder(decoder, config.decoding_slm.shape, placement, pitch))
    knows = predict_images(config, seeds, decoder, (SIGMA, SIGMA), placement)
    centred = predict_images(config, seeds, decoder, (SIGMA, SIGMA))
    r_knows = [pearson_r(p, t) for p, t in zip(knows, light)]
    r_centred = [pearson_r(p, t) for p, t in zip(centred, light)]
    # (not 1: where a pixel's phase sits at the 2 pi wrap, the twin resamples the retardance the SLM
    # realizes, on the other side of the wrap from the ideal phase the prediction assumes)
    assert min(r_knows) > 0.98, r_knows
    assert max(r_centred) < 0.9, r_centred
