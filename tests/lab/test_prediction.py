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


def _linear_twin_with_panel(sigma: float, role: str, coefficients: list[float]):
    """A twin with linear 0-2 pi responses and fringing ``sigma`` on both SLMs and a planted panel
    wavefront (Noll 2.. ``coefficients``, waves) on SLM ``role``."""
    from optgen.lab.bench.examples import add_to_bench_text

    linear = {(f"twin.{k}", key): value for k in ("encoding_slm", "decoding_slm")
              for key, value in (("response_max_rad", str(2 * np.pi)), ("response_exponent", "1.0"),
                                 ("response_wobble_rad", "0.0"), ("crosstalk_sigma_px", str(sigma)))}
    text = add_to_bench_text(small_bench_text(linear), {f"twin.{role}": [
        f"wavefront_waves = {[0.0] + list(coefficients)}", "wavefront_radius_mm = 1.2"]})
    return parse_bench(text, f"corrected {role}")


def test_with_slm2_corrected_in_runs_the_prediction_shows_the_wraps_the_correction_moves(rng):
    """Runs that add SLM2's correction show the decoder plus the correction wrapped into one 2 pi
    range, blurred by the fringing, on the panel: the prediction that models it matches the twin's
    light; the one that takes the corrected SLM2 as flat (the previous prediction) does not."""
    import dataclasses

    from optgen.calibration.wavefront import WavefrontCalibration, wavefront_correction_rad
    from optgen.drivers.common.roles import DECODING
    from optgen.lab.evaluate.prediction import CalibratedOptics

    sigma, coefficients = 0.6, [0.0, 0.0, 0.6, 0.3, -0.4, 0.2]        # Noll 2.., no tilt (the alignment's)
    config = _linear_twin_with_panel(sigma, "decoding_slm", coefficients)
    config = dataclasses.replace(config, calibration=dataclasses.replace(config.calibration,
                                                                          correct_decoder_wavefront=True))
    g = config.geometry
    cal = WavefrontCalibration(DECODING, tuple(range(2, 8)), np.array(coefficients), 1.2e-3, 0.01, 0.0, (0.0, 0.0), 0.0)
    pitch = config.decoding_slm.pitch_um * 1e-6
    decoder = rng.uniform(0, 2 * np.pi, (g.decoder_px, g.decoder_px)).astype(np.float32)
    seeds = rng.uniform(0, 2 * np.pi, (3, g.seed_superpixels, g.seed_superpixels)).astype(np.float32)
    with build_bench(config) as bench:
        np.testing.assert_allclose(bench.truths.wavefront_rad[DECODING],
                                   2 * np.pi * cal.wavefront_waves(bench.world.grid_shape, pitch), atol=1e-4)
        bench.decoding_slm.set_wavefront_correction(wavefront_correction_rad(cal, bench.decoding_slm.shape, pitch))
        from optgen.drivers.common.patterns import embed_centered

        light = twin_images(bench, seeds, embed_centered(decoder, config.decoding_slm.shape))
    modelled = predict_images(config, seeds, decoder, (sigma, sigma),
                              optics=CalibratedOptics(decoder_wavefront=cal, decoder_corrected=True))
    as_flat = predict_images(config, seeds, decoder, (sigma, sigma))
    r_modelled = [pearson_r(p, t) for p, t in zip(modelled, light)]
    r_flat = [pearson_r(p, t) for p, t in zip(as_flat, light)]
    # (a random decoder is all wraps: the prediction's unquantized phases differ from the pixels'
    # near each, so not 1; a trained decoder, smoother, agrees better)
    assert min(r_modelled) > 0.96, r_modelled
    assert max(r_flat) < 0.85, r_flat


def test_with_slm1_corrected_in_runs_the_prediction_shows_the_wraps_the_correction_adds(rng):
    """Runs add SLM1's correction to the seed before it is wrapped and blurred by the fringing: the
    prediction that models it matches the twin's light through a corrected SLM1 better than the one
    that takes the corrected SLM1 as flat (the previous prediction)."""
    from optgen.calibration.wavefront import WavefrontCalibration, wavefront_correction_rad
    from optgen.drivers.common.patterns import embed_centered
    from optgen.drivers.common.roles import ENCODING
    from optgen.lab.evaluate.prediction import CalibratedOptics

    sigma, coefficients = 0.6, [0.0, 0.0, 0.8, 0.3, -0.5, 0.2]        # Noll 2.., no tilt (the alignment's)
    config = _linear_twin_with_panel(sigma, "encoding_slm", coefficients)
    g = config.geometry
    cal = WavefrontCalibration(ENCODING, tuple(range(2, 8)), np.array(coefficients), 1.2e-3, 0.01, 0.0, (0.0, 0.0), 0.0)
    pitch = config.encoding_slm.pitch_um * 1e-6
    decoder = rng.uniform(0, 2 * np.pi, (g.decoder_px, g.decoder_px)).astype(np.float32)
    seeds = rng.uniform(0, 2 * np.pi, (3, g.seed_superpixels, g.seed_superpixels)).astype(np.float32)
    with build_bench(config) as bench:
        bench.encoding_slm.set_wavefront_correction(wavefront_correction_rad(cal, bench.encoding_slm.shape, pitch))
        light = twin_images(bench, seeds, embed_centered(decoder, config.decoding_slm.shape))
    modelled = predict_images(config, seeds, decoder, (sigma, sigma),
                              optics=CalibratedOptics(encoder_wavefront=cal, encoder_corrected=True))
    as_flat = predict_images(config, seeds, decoder, (sigma, sigma), optics=CalibratedOptics(encoder_wavefront=cal))
    r_modelled = [pearson_r(p, t) for p, t in zip(modelled, light)]
    r_flat = [pearson_r(p, t) for p, t in zip(as_flat, light)]
    # (random seeds wrap everywhere: the prediction's unquantized phases differ from the pixels' near each)
    assert min(r_modelled) > 0.97 and min(r_modelled) - max(r_flat) > 0.05, (r_modelled, r_flat)


def test_calibrated_optics_keep_slm2_s_wavefront_and_say_whether_runs_correct_it():
    import dataclasses
    from types import SimpleNamespace

    from optgen.calibration.wavefront import WavefrontCalibration
    from optgen.drivers.common.roles import DECODING
    from optgen.lab.evaluate.prediction import calibrated_optics

    config = parse_bench(twin_text(), "prediction")
    base = dict(kind="wavefront", wavelength_nm=520.0, optical_path="", bench_name="t", bench_text="", device_identity={})
    cal = WavefrontCalibration(DECODING, (2, 3, 4), np.array([0.0, 0.0, 0.2]), 1e-3, 0.01, 0.0, (0.0, 0.0), 0.0)
    stored = SimpleNamespace(distances=None, wavefronts={DECODING: cal.to_record({**base, "device": DECODING})})
    left = calibrated_optics(stored, config)
    corrected = calibrated_optics(stored, dataclasses.replace(
        config, calibration=dataclasses.replace(config.calibration, correct_decoder_wavefront=True)))
    assert not left.decoder_corrected and corrected.decoder_corrected
    assert not left.encoder_corrected                 # no SLM1 wavefront calibration: nothing added to SLM1
    for optics in (left, corrected):                  # the panel is there either way: the correction cancels it
        np.testing.assert_allclose(optics.decoder_wavefront.coefficients_waves, [0.0, 0.0, 0.2])
    assert not calibrated_optics(SimpleNamespace(distances=None, wavefronts={}), config).decoder_corrected


def test_with_a_vendor_correction_on_slm1_the_prediction_wraps_the_seed_with_it(rng, tmp_path):
    """The driver adds the vendor's correction file and the run the measured correction, which was
    measured with the vendor's in force (panel + vendor): SLM1 shows wrap(seed + vendor - measured).
    The prediction that reads the bench file's vendor map as the driver does matches the twin's
    light; the one that knows only the measured correction wraps the seed elsewhere."""
    import dataclasses

    from PIL import Image

    from optgen.calibration.wavefront import WavefrontCalibration, wavefront_correction_rad
    from optgen.drivers.common.patterns import embed_centered
    from optgen.drivers.common.roles import ENCODING
    from optgen.drivers.common.zernike import wavefront
    from optgen.lab.bench.examples import add_to_bench_text
    from optgen.lab.bench.vendor import vendor_correction_rad
    from optgen.lab.evaluate.prediction import CalibratedOptics

    sigma, panel = 0.6, [0.0, 0.0, 0.5, 0.3, -0.4, 0.2]                # Noll 2.., the twin's planted panel
    vendor_waves = [0.0, 0.0, -0.3, 0.1, 0.15, 0.0]                    # what the vendor's file adds
    base = _linear_twin_with_panel(sigma, "encoding_slm", panel)
    shape = base.encoding_slm.shape
    pitch = base.encoding_slm.pitch_um * 1e-6
    vendor_rad = 2 * np.pi * wavefront([0.0] + vendor_waves, shape, pitch, 1.2e-3)      # wrapped by the file's gray
    gray = np.mod(np.round(255 - vendor_rad * 256 / (2 * np.pi)), 256).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "vendor.png")
    (tmp_path / "bench.toml").write_text(add_to_bench_text(base.text, {"encoding_slm": [
        'wavefront_correction = "vendor.png"']}))
    config = parse_bench((tmp_path / "bench.toml").read_text(), str(tmp_path / "bench.toml"))
    g = config.geometry
    measured = WavefrontCalibration(ENCODING, tuple(range(2, 8)), np.array(panel) + np.array(vendor_waves), 1.2e-3,
                                    0.01, 0.0, (0.0, 0.0), 0.0)
    decoder = rng.uniform(0, 2 * np.pi, (g.decoder_px, g.decoder_px)).astype(np.float32)
    seeds = rng.uniform(0, 2 * np.pi, (3, g.seed_superpixels, g.seed_superpixels)).astype(np.float32)
    read = vendor_correction_rad(config, ENCODING)
    with build_bench(config, tmp_path / "store") as bench:
        np.testing.assert_allclose(read, bench.encoding_slm.vendor_correction_rad, atol=1e-5)   # as the driver adds it
        bench.encoding_slm.set_wavefront_correction(wavefront_correction_rad(measured, shape, pitch))
        light = twin_images(bench, seeds, embed_centered(decoder, config.decoding_slm.shape))
    optics = CalibratedOptics(encoder_wavefront=measured, encoder_corrected=True, encoder_vendor_rad=read)
    modelled = predict_images(config, seeds, decoder, (sigma, sigma), optics=optics)
    unaware = predict_images(config, seeds, decoder, (sigma, sigma),
                             optics=dataclasses.replace(optics, encoder_vendor_rad=None))
    r_modelled = [pearson_r(p, t) for p, t in zip(modelled, light)]
    r_unaware = [pearson_r(p, t) for p, t in zip(unaware, light)]
    assert min(r_modelled) > 0.97 and max(r_unaware) < 0.9, (r_modelled, r_unaware)
    assert vendor_correction_rad(base, ENCODING) is None
    from types import SimpleNamespace

    from optgen.lab.evaluate.prediction import calibrated_optics

    stored = calibrated_optics(SimpleNamespace(distances=None, wavefronts={}), config)   # what runs are judged with
    np.testing.assert_array_equal(stored.encoder_vendor_rad, read)
    assert stored.decoder_vendor_rad is None
