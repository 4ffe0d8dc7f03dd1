"""The optical generative model: one physics for training and twin, model files, numpy inference."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optgen.drivers.common.patterns import embed_centered
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import parse_bench
from optgen.lab.model import ModelError, OpticalGeometry, OpticalModel, load_model, save_model
from optgen.lab.run.model_seeds import ModelSeedSource
from optgen.lab.run.patterns import seed_to_slm_phase
from tests.conftest import small_bench_text

IDEAL_TWIN = {
    ("twin.encoding_slm", "response_max_rad"): "6.283185307179586", ("twin.encoding_slm", "response_exponent"): "1.0",
    ("twin.encoding_slm", "response_wobble_rad"): "0.0", ("twin.encoding_slm", "crosstalk_sigma_px"): "0.0",
    ("twin.decoding_slm", "response_max_rad"): "6.283185307179586", ("twin.decoding_slm", "response_exponent"): "1.0",
    ("twin.decoding_slm", "response_wobble_rad"): "0.0", ("twin.decoding_slm", "crosstalk_sigma_px"): "0.0",
    ("twin.decoding_slm", "shift_um"): "[0.0, 0.0]", ("twin.decoding_slm", "rotation_deg"): "0.0",
}


def tiny_model(geom: OpticalGeometry, noise_dim: int = 16, seed: int = 0) -> OpticalModel:
    rng = np.random.default_rng(seed)
    n = geom.seed_superpixels
    dims = [noise_dim, 24, n * n + 1]
    weights = [((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), np.zeros(b, np.float32))
               for a, b in zip(dims[:-1], dims[1:])]
    decoder = rng.uniform(0, 2 * np.pi, (geom.decoder_px, geom.decoder_px)).astype(np.float32)
    return OpticalModel("tiny", geom, (4, 4), (geom.wavelength_nm,), weights, {geom.wavelength_nm: decoder})


@pytest.fixture
def ideal_config():
    return parse_bench(small_bench_text(IDEAL_TWIN), "ideal")


def test_training_optics_and_twin_agree_to_float32_precision(ideal_config):
    torch = pytest.importorskip("torch")
    from optgen.lab.model.student import OpticalStudent

    cfg = ideal_config
    geom = OpticalGeometry.from_bench(cfg)
    student = OpticalStudent(geom, noise_dim=16)
    rng = np.random.default_rng(5)
    step = 2 * np.pi / 256
    n = geom.seed_superpixels
    seed = (rng.integers(0, 256, (n, n)) * step).astype(np.float32)  # phases the 8-bit SLM shows exactly
    dec = (rng.integers(0, 256, (geom.decoder_px,) * 2) * step).astype(np.float32)
    with torch.no_grad():
        ours = student.intensity(torch.from_numpy(seed)[None], torch.from_numpy(dec), realistic=False)[0].numpy()
    with build_bench(cfg) as bench:
        bench.encoding_slm.set_phase(seed_to_slm_phase(seed, geom.superpixel_px, bench.encoding_slm.shape))
        bench.decoding_slm.set_phase(embed_centered(dec, bench.decoding_slm.shape))
        twin = bench.world.output_irradiance(bench.clock.now() + 1.0, 1.0)
    w0 = (geom.grid_px - geom.output_window_px) // 2
    twin = twin[w0:w0 + geom.output_window_px, w0:w0 + geom.output_window_px]
    assert twin.max() > 0
    np.testing.assert_allclose(ours, twin, rtol=0, atol=2e-5 * twin.max())


def test_the_training_optics_with_a_shifted_decoder_match_two_full_grid_propagations(ideal_config):
    """The student's shortcuts (lit block only, SLM2 as a mask) against the plain full-grid path."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from optgen.lab.model.student import OpticalStudent, propagate_torch

    geom = OpticalGeometry.from_bench(ideal_config)
    student = OpticalStudent(geom, noise_dim=16, crosstalk_sigma_px=0.0)
    rng = np.random.default_rng(8)
    n, g, d = geom.seed_superpixels, geom.grid_px, geom.decoder_px
    seed = torch.from_numpy(rng.uniform(0, 2 * np.pi, (2, n, n)).astype(np.float32))
    dec = torch.from_numpy(rng.uniform(0, 2 * np.pi, (d, d)).astype(np.float32))
    shift = (2, -1)
    with torch.no_grad():
        ours = student.intensity(seed, dec, shift=shift, realistic=False).numpy()
    big = seed.repeat_interleave(geom.superpixel_px, 1).repeat_interleave(geom.superpixel_px, 2)
    edge = (g - big.shape[-1]) // 2
    phase = F.pad(big, (edge, g - big.shape[-1] - edge) * 2)
    field = propagate_torch(torch.polar(student.beam.expand(2, -1, -1), phase), student.h1[0])
    top, left = (g - d) // 2 + shift[0], (g - d) // 2 + shift[1]
    field[:, top:top + d, left:left + d] *= torch.polar(torch.ones_like(dec), dec)
    field = propagate_torch(field, student.h2[0])
    w0, w = (g - geom.output_window_px) // 2, geom.output_window_px
    plain = (field.abs() ** 2)[:, w0:w0 + w, w0:w0 + w].numpy()
    assert plain.max() > 0
    np.testing.assert_allclose(ours, plain, rtol=0, atol=1e-5 * plain.max())


def test_a_subpixel_shifted_and_turned_decoder_matches_the_twins_misplaced_slm2():
    """Training's subpixel misplacement (bilinear on the transmission) is the twin's: same map, same result."""
    torch = pytest.importorskip("torch")
    from optgen.lab.model.student import OpticalStudent

    shift_um, rotation_deg = (3.0, -2.0), 0.3        # x, y on the bench; 0.375 and -0.25 SLM pixels
    cfg = parse_bench(small_bench_text({**IDEAL_TWIN, ("twin.decoding_slm", "shift_um"): "[3.0, -2.0]",
                                        ("twin.decoding_slm", "rotation_deg"): str(rotation_deg)}), "misplaced")
    geom = OpticalGeometry.from_bench(cfg)
    student = OpticalStudent(geom, noise_dim=16, crosstalk_sigma_px=0.0)
    rng = np.random.default_rng(11)
    n, d, step = geom.seed_superpixels, geom.decoder_px, 2 * np.pi / 256
    seed = (rng.integers(0, 256, (n, n)) * step).astype(np.float32)
    yy, xx = np.mgrid[0:d, 0:d] * (2 * np.pi / d)
    smooth = np.pi + 2.5 * np.sin(3 * xx + 1.0) * np.cos(2 * yy)   # cv2's bilinear weights are 1/32-pixel steps
    dec = (np.round(smooth / step) * step).astype(np.float32)
    with build_bench(cfg) as bench:
        bench.encoding_slm.set_phase(seed_to_slm_phase(seed, geom.superpixel_px, bench.encoding_slm.shape))
        bench.decoding_slm.set_phase(embed_centered(dec, bench.decoding_slm.shape))
        twin = bench.world.output_irradiance(bench.clock.now() + 1.0, 1.0)
    w0, w = (geom.grid_px - geom.output_window_px) // 2, geom.output_window_px
    twin = twin[w0:w0 + w, w0:w0 + w]
    pitch = geom.pitch_um
    moved = (shift_um[1] / pitch, shift_um[0] / pitch)                # rows, cols
    with torch.no_grad():
        args = (torch.from_numpy(seed)[None], torch.from_numpy(dec))
        ours = student.intensity(*args, shift=moved, realistic=False, rotation_deg=rotation_deg)[0].numpy()
        in_place = student.intensity(*args, realistic=False)[0].numpy()
        turned_wrong_way = student.intensity(*args, shift=moved, realistic=False, rotation_deg=-rotation_deg)[0].numpy()
    err = np.abs(ours - twin).max() / twin.max()
    assert err < 1e-4                                                  # measured 1.3e-6
    assert np.abs(in_place - twin).max() / twin.max() > 0.05            # measured 0.13
    assert np.abs(turned_wrong_way - twin).max() / twin.max() > 0.02    # measured 0.05


def test_whole_pixel_shifts_move_the_decoder_exactly_and_agree_with_the_resampled_path(ideal_config):
    torch = pytest.importorskip("torch")
    from optgen.lab.model.student import OpticalStudent

    geom = OpticalGeometry.from_bench(ideal_config)
    student = OpticalStudent(geom, noise_dim=16)
    dec = torch.from_numpy(np.random.default_rng(3).uniform(0, 2 * np.pi, (geom.decoder_px,) * 2).astype(np.float32))
    exact = student.decoder_mask(dec, (2, -1))
    resampled = student.decoder_mask(dec, (2.0 + 1e-7, -1.0))      # the bilinear path at (almost) whole pixels
    g, d = geom.grid_px, geom.decoder_px
    top, left = (g - d) // 2 + 2, (g - d) // 2 - 1
    np.testing.assert_allclose(torch.angle(exact[top:top + d, left:left + d]).numpy() % (2 * np.pi),
                               dec.numpy() % (2 * np.pi), atol=1e-5)
    assert float((exact - resampled).abs().max()) < 1e-4
    assert float((student.decoder_mask(dec, (2.5, -1.0)) - exact).abs().max()) > 0.5


def test_numpy_encoder_matches_the_torch_encoder(ideal_config):
    torch = pytest.importorskip("torch")
    from optgen.lab.model.student import OpticalStudent

    geom = OpticalGeometry.from_bench(ideal_config)
    student = OpticalStudent(geom, noise_dim=16, hidden=24)
    layers = [m for m in student.encoder if isinstance(m, torch.nn.Linear)]
    model = OpticalModel("t", geom, (4, 4), (geom.wavelength_nm,),
                         [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in layers],
                         {geom.wavelength_nm: np.zeros((geom.decoder_px,) * 2, np.float32)})
    noise = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    with torch.no_grad():
        phase_t, log_scale_t = student.encode(torch.from_numpy(noise))
    values, scale = model.encode(noise)
    np.testing.assert_allclose(np.clip(np.pi * (values + 1), 0, 2 * np.pi), phase_t.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.log(scale), log_scale_t.numpy(), atol=1e-5)


def test_model_file_round_trip_and_seed_source(tmp_path, ideal_config):
    geom = OpticalGeometry.from_bench(ideal_config)
    path = save_model(tmp_path / "m.npz", tiny_model(geom))
    model = load_model(path)
    assert model.id.startswith("tiny:") and model.noise_shape == (4, 4)
    source = ModelSeedSource(model, 520.0, random_seed=3)
    a, b = source.seed(7), ModelSeedSource(model, 520.0, random_seed=3).seed(7)
    np.testing.assert_array_equal(a.phase, b.phase)
    assert a.phase.shape == (geom.seed_superpixels,) * 2
    assert 0 <= a.phase.min() and a.phase.max() <= 2 * np.pi
    assert not np.array_equal(a.phase, source.seed(8).phase)


def _rewrite(path: Path, out: Path, header_changes: dict | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A copy of the model file ``path`` with header keys changed and arrays dropped."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k not in drop}
    header = json.loads(arrays["header"].tobytes().decode()) | (header_changes or {})
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(out, **arrays)
    return out


def weight_bytes(path: Path) -> int:
    with np.load(path) as f:
        return sum(f[k].nbytes for k in f.files if k[0] == "w")


# seed error in 8-bit SLM phase steps, mean and 99th percentile (the shipped digits-v5 in int8: 0.25, 1.3)
@pytest.mark.parametrize("fmt, fraction, steps_mean, steps_p99", [("float16", 0.5, 0.03, 0.1), ("int8", 0.25, 0.5, 2.5)])
def test_smaller_weight_formats_shrink_the_file_and_keep_the_seeds_within_the_slms_phase_step(
        tmp_path, ideal_config, fmt, fraction, steps_mean, steps_p99):
    geom = OpticalGeometry.from_bench(ideal_config)
    model = tiny_model(geom)
    full, small = save_model(tmp_path / "full.npz", model), save_model(tmp_path / f"{fmt}.npz", model, weights=fmt)
    scales = 4 * sum(w.shape[1] for w, _ in model.weights) if fmt == "int8" else 0   # float32 per column
    assert weight_bytes(small) == fraction * weight_bytes(full) + scales
    assert small.stat().st_size < full.stat().st_size
    a, b = load_model(full), load_model(small)
    assert all(w.dtype == np.float32 for w, _ in b.weights)            # computed in float32
    noise = np.random.default_rng(1).standard_normal((512, 16)).astype(np.float32)
    (va, sa), (vb, sb) = a.encode(noise), b.encode(noise)
    step = 2 * np.pi / 256                                             # an 8-bit SLM's phase step
    phase = lambda v: np.clip(np.pi * (v + 1), 0, 2 * np.pi)           # noqa: E731
    error_steps = np.abs(phase(va) - phase(vb)) / step
    assert error_steps.mean() < steps_mean and np.percentile(error_steps, 99) < steps_p99
    np.testing.assert_allclose(sb, sa, rtol=2e-2)


def test_weight_files_of_format_1_still_load_and_broken_int8_weights_are_refused(tmp_path, ideal_config):
    geom = OpticalGeometry.from_bench(ideal_config)
    model = tiny_model(geom)
    float32, int8 = save_model(tmp_path / "f.npz", model), save_model(tmp_path / "q.npz", model, weights="int8")
    old = load_model(_rewrite(float32, tmp_path / "v1.npz", {"format_version": 1}))
    np.testing.assert_array_equal(old.weights[0][0], model.weights[0][0])
    with pytest.raises(ModelError, match="format version 3; this optgen reads 1 and 2"):
        load_model(_rewrite(float32, tmp_path / "v3.npz", {"format_version": 3}))
    with pytest.raises(ModelError, match="w1 are int8 without their scale w1_scale"):
        load_model(_rewrite(int8, tmp_path / "noscale.npz", drop=("w1_scale",)))
    with np.load(int8) as f:
        arrays = dict(f) | {"w0_scale": -f["w0_scale"]}
    np.savez(tmp_path / "negative.npz", **arrays)
    with pytest.raises(ModelError, match=r"w0_scale has shape \(1, 24\); expected \(1, 24\) of finite positive"):
        load_model(tmp_path / "negative.npz")
    with np.load(int8) as f:
        arrays = dict(f) | {"w1": f["w1"].ravel()}
    np.savez(tmp_path / "flat.npz", **arrays)
    with pytest.raises(ModelError, match=r"w1 have shape \(\d+,\); expected a matrix"):
        load_model(tmp_path / "flat.npz")
    with pytest.raises(ValueError, match="weights = 'int4': expected one of float32, float16, int8"):
        save_model(tmp_path / "x.npz", model, weights="int4")


def test_bad_model_files_are_refused_with_the_reason(tmp_path, ideal_config):
    geom = OpticalGeometry.from_bench(ideal_config)
    with pytest.raises(ModelError, match="model file not found"):
        load_model(tmp_path / "none.npz")
    with pytest.raises(ModelError, match=r"'digits-v2': no such model file.*ships digits-rgb-v3, digits-v7; "
                                         r"digits-v2 was replaced by digits-v7"):
        load_model("digits-v2")                    # a bench file from before digits-v4 shipped
    with pytest.raises(ModelError, match=r"'digits-v4': no such model file.*digits-v4 was replaced by digits-v7"):
        load_model("digits-v4")
    with pytest.raises(ModelError, match=r"'digits-v5': no such model file.*digits-v5 was replaced by digits-v7"):
        load_model("digits-v5")
    with pytest.raises(ModelError, match=r"'digits-v6': no such model file.*digits-v6 was replaced by digits-v7"):
        load_model("digits-v6")                    # the deep one-colour model without class inputs
    with pytest.raises(ModelError, match=r"'digits-rgb': no such model file.*digits-rgb was replaced by digits-rgb-v3"):
        load_model("digits-rgb")                   # the first three-colour model
    with pytest.raises(ModelError, match=r"'digits-rgb-v2': no such model file.*digits-rgb-v2 was replaced by digits-rgb-v3"):
        load_model("digits-rgb-v2")                # the deep three-colour model without class inputs
    with pytest.raises(ModelError, match=r"'digits-v9': no such model file.*ships digits-rgb-v3, digits-v7\)$"):
        load_model("digits-v9")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match="not a readable model file"):
        load_model(tmp_path / "junk.npz")
    good = tiny_model(geom)
    good.decoder_phase[520.0] = good.decoder_phase[520.0][:-1]
    save_model(tmp_path / "cut.npz", good)
    with pytest.raises(ModelError, match="decoder phase at 520 nm is not a finite 128x128"):
        load_model(tmp_path / "cut.npz")
    bad = tiny_model(geom)
    bad.weights[0][0][0, 0] = np.nan
    save_model(tmp_path / "nan.npz", bad)
    with pytest.raises(ModelError, match="NaN"):
        load_model(tmp_path / "nan.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ModelError, match="no header"):
        load_model(tmp_path / "plain.npz")


def test_teacher_noise_round_trips_and_a_mismatched_one_is_refused(tmp_path, ideal_config):
    geom = OpticalGeometry.from_bench(ideal_config)
    model = tiny_model(geom)
    rng = np.random.default_rng(2)
    model.teacher_samples = rng.uniform(size=(6, geom.output_pixels, geom.output_pixels)).astype(np.float32)
    model.teacher_noise = rng.standard_normal((6, 16)).astype(np.float32)
    loaded = load_model(save_model(tmp_path / "t.npz", model, weights="int8"))
    np.testing.assert_array_equal(loaded.teacher_noise, model.teacher_noise)
    assert load_model(save_model(tmp_path / "none.npz", tiny_model(geom))).teacher_noise is None
    model.teacher_noise = model.teacher_noise[:5]
    with pytest.raises(ModelError, match=r"teacher_noise has shape \(5, 16\); expected \(6, 16\)"):
        load_model(save_model(tmp_path / "short.npz", model))


def test_the_shipped_models_teacher_noise_is_the_noise_of_its_teacher_samples():
    """The class a noise vector asks for (the decile of its first value) is the class the judge reads
    in the teacher sample stored with it: the two arrays are paired, in order."""
    from scipy.special import ndtr

    from optgen.lab.model.evaluate import DigitsJudge, normalize_images

    model = load_model("digits-v7")
    assert model.teacher_noise.shape == (len(model.teacher_samples), 64)
    asked = np.minimum((ndtr(model.teacher_noise[:, 0]) * 10).astype(int), 9)
    judge = DigitsJudge(image_size=32)
    seen = judge.clf.predict(normalize_images(model.teacher_samples).reshape(len(asked), -1))
    assert np.mean(seen == asked) > 0.95
    assert np.mean(seen == np.roll(asked, 1)) < 0.3


def test_geometry_and_colour_mismatches_name_what_differs(ideal_config):
    geom = OpticalGeometry.from_bench(ideal_config)
    model = tiny_model(geom)
    model.check_bench(geom)
    other = OpticalGeometry(**{**geom.as_dict(), "d1_mm": 50.0, "decoder_px": 100})
    with pytest.raises(ModelError, match=r"d1_mm: model 40, bench 50; decoder_px: model 128, bench 100"):
        model.check_bench(other)
    with pytest.raises(ModelError, match="no colour at 638 nm \\(it has 520 nm\\)"):
        model.colour_index(638.0)


def test_inference_needs_no_torch(tmp_path, ideal_config):
    geom = OpticalGeometry.from_bench(ideal_config)
    path = save_model(tmp_path / "m.npz", tiny_model(geom))
    code = ("import sys; sys.modules['torch'] = None\n"
            "from optgen.lab.model import load_model\n"
            "from optgen.lab.run.model_seeds import ModelSeedSource\n"
            f"m = load_model({str(path)!r}); s = ModelSeedSource(m, 520.0)\n"
            "print(s.seed(0).phase.shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert "(16, 16)" in out.stdout


def test_the_shipped_model_fits_the_default_bench_and_generates_digits_on_the_twin(tmp_path):
    """Looser floors than the benchmark (benchmarks/model.py prints the figures)."""
    from optgen.lab.bench.parse import load_bench
    from optgen.lab.cli import main
    from optgen.lab.model.evaluate import DigitsJudge

    cfg = load_bench()
    model = load_model("digits-v7")
    model.check_bench(OpticalGeometry.from_bench(cfg), cfg.wavelength_nm)
    assert model.teacher_samples is not None
    out = tmp_path / "run"
    assert main(["run", "--count", "40", "--out", str(out), "--no-progress"]) == 0
    import h5py

    with h5py.File(out / "run.h5", "r") as f:
        images = f["images"][:]
        assert json.loads(f.attrs["summary"])["frames_with_saturation"] == 0
    judge = DigitsJudge(image_size=32)
    generated, teacher = judge.scores(images), judge.scores(model.teacher_samples)
    # benchmark (200 frames, uncalibrated as here): 95.5 % confident, inception 9.35, Frechet 3.0;
    # these 40: 100 %, 8.7, 4.8 (the floor of 40 real digits: 2.7)
    assert generated["confident_fraction"] > 0.8
    assert generated["inception_score"] > 7.0  # several digit classes, not one blob
    assert sum(c > 0 for c in generated["class_histogram"]) >= 8
    assert teacher["confident_fraction"] > 0.95
    speckle = judge.scores(np.random.default_rng(0).uniform(size=(40, 32, 32)))
    assert generated["frechet_distance"] < speckle["frechet_distance"] / 4   # speckle: 99


def test_training_resumes_from_its_checkpoint_and_exports_a_loadable_model(tmp_path, ideal_config):
    pytest.importorskip("torch")
    from optgen.lab.model.train import TrainSettings, train_model

    geom = OpticalGeometry.from_bench(ideal_config)
    settings = TrainSettings(teacher_steps=30, pairs=64, student_steps=6, batch=2, checkpoint_every=2,
                             name="tiny-trained", encoder_hidden=24, encoder_layers=3)
    logs: list[str] = []
    assert train_model(tmp_path, geom, settings, max_minutes=0.0, log=logs.append) is None  # "interrupted"
    assert (tmp_path / "student.pt").exists() and (tmp_path / "teacher.pt").exists()
    import torch  # the checkpoint holds tensors, dicts, lists, numbers and strings: it resumes with weights_only=True

    assert torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "student.pt") == []
    assert any("stopping after" in m for m in logs)
    logs.clear()
    path = train_model(tmp_path, geom, settings, log=logs.append)
    assert any(m.startswith("teacher: loaded") for m in logs)
    assert any(m.startswith("student: resumed at step 1") for m in logs)
    model = load_model(path)
    assert model.info["steps"] == 6 and model.teacher_samples is not None
    with np.load(tmp_path / "pairs.npz") as pairs:     # each teacher sample keeps the noise it came from
        np.testing.assert_array_equal(model.teacher_noise, pairs["noise"][-len(model.teacher_samples):])
    assert [w.shape for w, _ in model.weights][1:3] == [(24, 24), (24, 24)] and len(model.weights) == 4
    values, scale = model.encode(np.zeros((2, int(np.prod(model.noise_shape))), np.float32))
    assert values.shape == (2, 1, *model.seed_shape) and np.isfinite(scale).all()
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    model.check_bench(geom)


def test_a_training_step_that_overflows_is_skipped_and_endless_ones_stop_the_training(tmp_path, ideal_config,
                                                                                        monkeypatch):
    pytest.importorskip("torch")
    from optgen.lab.model import train as train_module
    from optgen.lab.model.student import OpticalStudent
    from optgen.lab.model.train import TrainSettings, train_model

    real_forward, calls = OpticalStudent.forward, {"n": 0}

    def overflows_on_the_third(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        calls["n"] += 1
        return out * float("inf") if calls["n"] == 3 else out     # (call 1 sets the starting scale)

    monkeypatch.setattr(OpticalStudent, "forward", overflows_on_the_third)
    geom = OpticalGeometry.from_bench(ideal_config)
    settings = TrainSettings(teacher_steps=30, pairs=64, student_steps=4, batch=2, checkpoint_every=2,
                             encoder_hidden=32, encoder_layers=2)
    model = load_model(train_model(tmp_path / "a", geom, settings, log=lambda m: None))
    assert model.info["steps"] == 4 and calls["n"] == 6                  # 4 steps taken, 1 skipped
    assert all(np.isfinite(w).all() and np.isfinite(b).all() for w, b in model.weights)
    monkeypatch.setattr(train_module, "MAX_SKIPPED_STEPS", 0)
    calls["n"] = 0
    with pytest.raises(FloatingPointError, match="diverged"):
        train_model(tmp_path / "b", geom, settings, log=lambda m: None)


def test_training_draws_whole_pixel_shifts_by_default_and_any_shift_and_turn_with_subpixel_shifts():
    pytest.importorskip("torch")
    from optgen.lab.model.train import TrainSettings, _decoder_misplacement

    rng = np.random.default_rng(0)
    whole = [_decoder_misplacement(rng, TrainSettings(subpixel_shifts=False)) for _ in range(200)]
    assert {r for (r, _), _ in whole} == {-2.0, -1.0, 0.0, 1.0, 2.0} and {a for _, a in whole} == {0.0}
    settings = TrainSettings(subpixel_shifts=True, max_shift_px=1.5, max_rotation_deg=0.1)
    drawn = [_decoder_misplacement(rng, settings) for _ in range(400)]
    shifts = np.array([s for s, _ in drawn])
    turns = np.array([a for _, a in drawn])
    assert np.abs(shifts).max() <= 1.5 and np.abs(shifts).max() > 1.4
    assert np.mean(np.abs(shifts - np.round(shifts)) > 0.1) > 0.5       # mostly fractions of a pixel
    assert np.abs(turns).max() <= 0.1 and turns.min() < -0.08 and turns.max() > 0.08


def test_the_straight_through_clip_keeps_a_gradient_for_values_out_of_range_and_the_same_phase(ideal_config):
    torch = pytest.importorskip("torch")
    from optgen.lab.model.student import OpticalStudent

    geom = OpticalGeometry.from_bench(ideal_config, grid_px=256)
    student = OpticalStudent(geom, 16, hidden=8)
    last = student.encoder[-1]
    grads, phases = {}, {}
    for straight in (False, True):
        student.straight_through = straight
        with torch.no_grad():
            last.bias.fill_(3.0)                    # every value far above the range
        student.zero_grad()
        phase, _ = student.encode(torch.zeros(2, 16))
        phase.sum().backward()
        grads[straight], phases[straight] = last.bias.grad.abs().sum().item(), phase.detach()
        assert student.out_of_range.item() > 3.0          # (3 - 1)**2 at least, as the values run
    assert grads[False] == 0.0 and grads[True] > 0.0      # plain clipping: no gradient, the encoder is stuck
    assert torch.equal(phases[False], phases[True]) and float(phases[True].max()) == pytest.approx(2 * np.pi)


def test_optgen_train_defaults_to_the_shipped_recipe_and_colours_to_the_rgb_one(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from optgen.lab.bench.examples import rgb_bench_text
    from optgen.lab.cli import main
    from optgen.lab.model import train as train_module

    seen = []
    monkeypatch.setattr(train_module, "train_model", lambda out, geom, settings, **kw: seen.append(settings))
    shipped = load_model("shipped")
    assert main(["train", "--out", str(tmp_path / "a")]) == 0
    s = seen[-1]
    assert s.name == shipped.name and s.student_steps == shipped.info["steps"]
    assert [w.shape[1] for w, _ in shipped.weights[:-1]] == [s.encoder_hidden] * s.encoder_layers
    assert shipped.info["settings"]["straight_through"] is s.straight_through is True
    assert shipped.info["settings"]["lr_encoder"] == s.lr_encoder
    assert (shipped.info["settings"]["peak_weight"], shipped.info["settings"]["peak_from"]) == (s.peak_weight,
                                                                                              s.peak_from)
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(s).items()}
    assert recorded == shipped.info["settings"]            # every setting, the class inputs included (digits-v7)
    assert s.class_one_hot is True and shipped.info["class_input"] == "one-hot"
    (tmp_path / "rgb.toml").write_text(rgb_bench_text())
    assert main(["train", "--out", str(tmp_path / "b"), "--bench", str(tmp_path / "rgb.toml"), "--colours",
                 "--encoder-layers", "3"]) == 0
    s, rgb = seen[-1], load_model("digits-rgb-v3")
    assert s.name == rgb.name and len(s.colours_nm) == 3 and s.encoder_layers == 3    # --encoder-layers kept
    assert s.student_steps == rgb.info["steps"] and s.pairs == rgb.info["settings"]["pairs"]
    assert [w.shape[1] for w, _ in rgb.weights[:-1]] == [s.encoder_hidden] * 6 and s.straight_through is True
    assert s.peak_weight == rgb.info["settings"]["peak_weight"] == 0.0
    assert s.class_one_hot is True and rgb.info["class_input"] == "one-hot"     # the class as inputs (digits-rgb-v3)


def test_optgen_train_refuses_a_model_name_that_is_not_a_file_name(tmp_path, capsys):
    pytest.importorskip("torch")
    from optgen.lab.cli import main

    assert main(["train", "--out", str(tmp_path / "t"), "--name", "../elsewhere"]) == 2
    assert "--name '../elsewhere'" in capsys.readouterr().err and not (tmp_path / "t").exists()
    assert main(["train", "--out", str(tmp_path / "t"), "--max-rotation", "-1"]) == 2
    assert "--max-rotation -1" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "t"), "--whole-pixel-shifts", "--max-rotation", "0.1"]) == 2
    assert "--whole-pixel-shifts" in capsys.readouterr().err and not (tmp_path / "t").exists()
    assert main(["train", "--out", str(tmp_path / "t"), "--encoder-layers", "0"]) == 2
    assert "--encoder-layers 0" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "t"), "--encoder-hidden", "4"]) == 2
    assert "--encoder-hidden 4" in capsys.readouterr().err and not (tmp_path / "t").exists()


def test_a_multi_colour_model_trains_with_a_seed_and_decoder_per_colour(tmp_path, ideal_config):
    torch = pytest.importorskip("torch")
    from optgen.lab.model.student import OpticalStudent
    from optgen.lab.model.train import TrainSettings, train_model

    geom = OpticalGeometry.from_bench(ideal_config)
    colours = (638.0, 520.0, 450.0)
    student = OpticalStudent(geom, noise_dim=8, hidden=16, wavelengths_nm=colours)
    seed = torch.zeros(1, geom.seed_superpixels, geom.seed_superpixels)
    flat = torch.zeros(geom.decoder_px, geom.decoder_px)
    with torch.no_grad():  # one flat wave, three wavelengths: diffraction ripples differ, power does not
        windows = [student.intensity(seed, flat, realistic=False, colour=c)[0].numpy() for c in range(3)]
    assert not np.allclose(windows[0], windows[2], rtol=0.02)
    sums = [w.sum() for w in windows]
    assert max(sums) / min(sums) < 1.05
    settings = TrainSettings(teacher_steps=30, pairs=32, student_steps=2, batch=2, checkpoint_every=1,
                             name="tiny-rgb", colours_nm=colours, encoder_hidden=32, encoder_layers=2,
                             class_one_hot=True)
    model = load_model(train_model(tmp_path, geom, settings, log=lambda m: None))
    assert model.wavelengths_nm == colours and model.noise_shape == (3, 8, 8)
    assert model.info["data"]["channels"] == 3 and model.info["data"]["count"] == 2 * 1797    # the colour digits
    assert model.info["class_input"] == "one-hot" and model.weights[0][0].shape[0] == 192 + 10
    assert not np.allclose(model.decoder_phase[638.0], model.decoder_phase[450.0])
    assert model.teacher_samples.shape[1:] == (geom.output_pixels, geom.output_pixels)
    values, scale = model.encode(np.zeros((2, 192), np.float32))
    assert values.shape == (2, 3, geom.seed_superpixels, geom.seed_superpixels) and scale.shape == (2, 3)
    assert ModelSeedSource(model, 450.0).seed(0).phase.shape == (geom.seed_superpixels,) * 2



def test_one_colour_per_sample_trains_each_colour_on_an_equal_share_of_every_batch(tmp_path, ideal_config, mocker):
    """``TrainSettings.one_colour_per_sample``: every step computes each sample in one colour,
    each colour for a third of the batch, and never all three colours of a sample."""
    pytest.importorskip("torch")
    from optgen.lab.model.student import OpticalStudent
    from optgen.lab.model.train import TrainSettings, train_model

    geom = OpticalGeometry.from_bench(ideal_config)
    one = mocker.spy(OpticalStudent, "forward_one_colour")
    every = mocker.spy(OpticalStudent, "forward")
    settings = TrainSettings(teacher_steps=30, pairs=32, student_steps=3, batch=6, checkpoint_every=1,
                             name="tiny-rgb", colours_nm=(638.0, 520.0, 450.0), encoder_hidden=32,
                             encoder_layers=2, one_colour_per_sample=True)
    model = load_model(train_model(tmp_path, geom, settings, log=lambda m: None))
    assert one.call_count == 3
    assert every.call_count == 1                         # the scale's start only, every colour of 64 pairs
    for call in one.call_args_list:
        assert sorted(call.args[2].tolist()) == [0, 0, 1, 1, 2, 2]
    assert len({tuple(call.args[2].tolist()) for call in one.call_args_list}) > 1   # drawn anew each step
    assert model.wavelengths_nm == (638.0, 520.0, 450.0) and model.info["settings"]["one_colour_per_sample"]

def test_training_keeps_large_blocks_in_the_heap_instead_of_fresh_kernel_mappings():
    """heap_kept: what makes a training step 2.4x faster (benchmarks/train_step.py)."""
    import ctypes

    from optgen.lab.model.memory import heap_kept

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc allocator settings: Linux only")
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("no mallinfo2 in this libc")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc.mallinfo2.restype = MallInfo2
    size = 1 << 30                                  # never touched: address space only
    before = libc.mallinfo2().hblkhd
    block = np.empty(size, np.uint8)
    assert libc.mallinfo2().hblkhd >= before + size  # glibc's default: a block this large is mapped
    del block
    with heap_kept() as active:
        assert active
        before = libc.mallinfo2()
        block = np.empty(size, np.uint8)
        after = libc.mallinfo2()
        del block
    assert after.hblkhd == before.hblkhd
    assert after.arena >= size                     # the heap grew to hold it


def test_the_peak_loss_charges_only_pixels_above_the_targets_brightest():
    torch = pytest.importorskip("torch")
    from optgen.lab.model.train import _peak_excess

    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, 1, 1], target[1, 0, 2, 2] = 1.0, 2.0
    predicted = target.clone()
    assert _peak_excess(predicted, target).item() == 0.0
    predicted[0, 0, 3, 3] = 0.9                      # below its image's brightest: free
    predicted[1, 0, 0, 0] = 2.5                      # 0.5 above: (0.5^2) / 32 pixels
    assert _peak_excess(predicted, target).item() == pytest.approx(0.25 / 32)
    predicted.requires_grad_(True)
    _peak_excess(predicted, target).backward()
    assert torch.count_nonzero(predicted.grad) == 1 and predicted.grad[1, 0, 0, 0] > 0


def test_the_training_optics_with_a_benchs_measured_optics_match_the_realistic_twin():
    """True distances, a tilted off-centre Gaussian beam, both SLMs' wavefronts and unmodulated light:
    the student given them (lab.model.bench_optics) draws what the twin draws."""
    torch = pytest.importorskip("torch")
    from optgen.drivers.common.roles import DECODING, ENCODING
    from optgen.lab.bench.examples import add_to_bench_text
    from optgen.lab.model.bench_optics import BenchOptics
    from optgen.lab.model.student import OpticalStudent

    text = add_to_bench_text(small_bench_text({**IDEAL_TWIN, ("twin.laser", "beam"): '"gaussian"',
                                               ("twin.laser", "waist_mm"): "0.9"}), {
        "twin": ["d1_mm = 41.0", "d2_mm = 29.2"],
        "twin.laser": ["centre_um = [40.0, -25.0]", "tilt_urad = [150.0, -80.0]"],
        "twin.encoding_slm": ["wavefront_waves = [0, 0.05, -0.03, 0.4, 0.19, -0.16, 0.08]", "wavefront_radius_mm = 0.6",
                              "unmodulated_fraction = 0.03"],
        "twin.decoding_slm": ["wavefront_waves = [0, -0.02, 0.04, -0.2, -0.08, 0.14]", "wavefront_radius_mm = 0.6",
                              "unmodulated_fraction = 0.05"]})
    cfg = parse_bench(text, "measured optics")
    geom = OpticalGeometry.from_bench(cfg)
    rng = np.random.default_rng(21)
    n, d, step = geom.seed_superpixels, geom.decoder_px, 2 * np.pi / 256
    seed = (rng.integers(0, 256, (n, n)) * step).astype(np.float32)
    dec = (rng.integers(0, 256, (d, d)) * step).astype(np.float32)
    with build_bench(cfg) as bench:
        world, truths = bench.world, bench.truths
        t = bench.clock.now() + 1.0
        bench.encoding_slm.set_phase(seed_to_slm_phase(seed, geom.superpixel_px, bench.encoding_slm.shape))
        bench.decoding_slm.set_phase(embed_centered(dec, bench.decoding_slm.shape))
        twin = world.output_irradiance(t, 1.0)
        beam = world.beam_field(t)
    w0, w = (geom.grid_px - geom.output_window_px) // 2, geom.output_window_px
    twin = twin[w0:w0 + w, w0:w0 + w]
    w1, w2 = truths.wavefront_rad[ENCODING], truths.wavefront_rad[DECODING]
    optics = BenchOptics(d1_m=truths.d1_m, d2_m=truths.d2_m, beam=beam, slm1_residual_rad=w1, slm1_panel_rad=w1,
                         slm2_panel_rad=w2, unmodulated=(0.03, 0.05))
    measured = OpticalStudent(geom, noise_dim=16, crosstalk_sigma_px=0.0, optics=optics)
    nominal = OpticalStudent(geom, noise_dim=16, crosstalk_sigma_px=0.0)
    with torch.no_grad():
        args = (torch.from_numpy(seed)[None], torch.from_numpy(dec))
        ours = measured.intensity(*args, realistic=False)[0].numpy()
        flat = nominal.intensity(*args, realistic=False)[0].numpy()
        no_unmodulated = OpticalStudent(geom, 16, crosstalk_sigma_px=0.0, optics=BenchOptics(
            d1_m=truths.d1_m, d2_m=truths.d2_m, beam=beam, slm1_residual_rad=w1, slm2_panel_rad=w2)).intensity(
            *args, realistic=False)[0].numpy()
    assert twin.max() > 0
    np.testing.assert_allclose(ours, twin, rtol=0, atol=1e-4 * twin.max())
    assert np.abs(flat - twin).max() > 0.05 * twin.max()                 # the nominal optics do not
    assert np.abs(no_unmodulated - twin).max() > 1e-3 * twin.max()       # nor without the unmodulated light


def test_bench_optics_are_checked_against_the_training_grid():
    from optgen.lab.model.bench_optics import BenchOptics

    with pytest.raises(ValueError, match="unmodulated fractions"):
        BenchOptics(unmodulated=(1.2, 0.0))
    with pytest.raises(ValueError, match="d1_m"):
        BenchOptics(d1_m=-0.1)
    with pytest.raises(ValueError, match="training grid is 64 x 64"):
        BenchOptics(slm2_panel_rad=np.zeros((32, 32), np.float32)).check_grid(64)


def test_bench_optics_take_what_the_calibrations_measured(ideal_config):
    from optgen.calibration.wavefront import WavefrontCalibration
    from optgen.drivers.common.roles import DECODING, ENCODING
    from optgen.lab.evaluate.prediction import CalibratedOptics
    from optgen.lab.model.bench_optics import bench_optics

    def cal(key, coefficients):
        return WavefrontCalibration(key, tuple(range(2, 8)), np.array(coefficients), 0.6e-3, 0.01, 0.02, (0.0, 0.0),
                                    0.0)

    w1, w2 = cal(ENCODING, [0.1, -0.1, 0.3, 0.0, 0.05, 0.0]), cal(DECODING, [0.2, 0.0, -0.2, 0.1, 0.0, 0.0])
    measured = CalibratedOptics(d1_m=0.0406, d2_m=0.0296, beam_centre_m=(20e-6, -10e-6), beam_waist_m=0.9e-3,
                                decoder_wavefront=w2, unmodulated=(0.03, 0.04), encoder_wavefront=w1)
    grid = 256
    optics = bench_optics(measured, ideal_config, grid)
    pitch = ideal_config.encoding_slm.pitch_um * 1e-6
    assert (optics.d1_m, optics.d2_m, optics.unmodulated) == (0.0406, 0.0296, (0.03, 0.04))
    assert float(np.sum(optics.beam**2) * pitch**2) == pytest.approx(1.0, rel=1e-5)       # unit power
    rows, cols = np.nonzero(optics.beam == optics.beam.max())
    assert abs(cols.mean() - (grid - 1) / 2 - 20e-6 / pitch) <= 1 and abs(rows.mean() - (grid - 1) / 2 + 10e-6 / pitch) <= 1
    # tilt stays with the alignment: only Noll 4 on reaches the panels
    np.testing.assert_allclose(optics.slm2_panel_rad, 2 * np.pi * w2.wavefront_waves((grid, grid), pitch, corrected_only=True),
                               atol=1e-5)
    assert optics.slm1_residual_rad is None and optics.slm1_panel_rad is not None
    assert optics.slm2_correction_rad is None                   # runs leave SLM2 uncorrected by default
    assert optics.slm1_correction_rad is None                   # CalibratedOptics' default: SLM1 shown as it is
    import dataclasses

    slm1_corrected = bench_optics(dataclasses.replace(measured, encoder_corrected=True), ideal_config, grid)
    np.testing.assert_array_equal(slm1_corrected.slm1_correction_rad, -optics.slm1_panel_rad)   # what runs add to SLM1

    corrected = bench_optics(dataclasses.replace(measured, decoder_corrected=True), ideal_config, grid)
    np.testing.assert_array_equal(corrected.slm2_correction_rad, -optics.slm2_panel_rad)   # what runs add to SLM2
    np.testing.assert_array_equal(corrected.slm2_panel_rad, optics.slm2_panel_rad)
    nominal = bench_optics(CalibratedOptics(), ideal_config, grid)
    assert nominal.beam is None and nominal.slm2_panel_rad is None and nominal.d1_m is None

    # vendor correction files: the drivers add them, and the wavefronts were measured with them in force
    from optgen.drivers.common.patterns import centre_crop

    shapes = (ideal_config.encoding_slm.shape, ideal_config.decoding_slm.shape)
    v1, v2 = (np.random.default_rng(k).uniform(0, 2 * np.pi, s).astype(np.float32) for k, s in enumerate(shapes))
    with_vendor = bench_optics(dataclasses.replace(measured, encoder_corrected=True, decoder_corrected=True,
                                                   encoder_vendor_rad=v1, decoder_vendor_rad=v2), ideal_config, grid)
    c1, c2 = centre_crop(v1, (grid, grid)), centre_crop(v2, (grid, grid))
    np.testing.assert_allclose(with_vendor.slm1_correction_rad, c1 - optics.slm1_panel_rad, atol=1e-5)
    np.testing.assert_allclose(with_vendor.slm1_panel_rad, optics.slm1_panel_rad - c1, atol=1e-5)   # the panel itself
    np.testing.assert_allclose(with_vendor.slm2_correction_rad, c2 - optics.slm2_panel_rad, atol=1e-5)
    np.testing.assert_allclose(with_vendor.slm2_panel_rad, optics.slm2_panel_rad - c2, atol=1e-5)
    left = bench_optics(dataclasses.replace(measured, encoder_vendor_rad=v1), ideal_config, grid)
    np.testing.assert_allclose(left.slm1_correction_rad, c1, atol=1e-6)          # the driver adds it uncorrected too


def test_a_measured_beam_wider_than_the_seed_gives_the_nominal_path_s_light_when_it_is_the_same_beam(ideal_config):
    """The complex-beam path (a tilted beam, a residual wavefront) pads the seed as the plain one does."""
    torch = pytest.importorskip("torch")
    import dataclasses

    from optgen.lab.model.bench_optics import BenchOptics
    from optgen.lab.model.student import OpticalStudent, beam_amplitude

    geom = dataclasses.replace(OpticalGeometry.from_bench(ideal_config), aperture_mm=1.2)   # 150 px > the 96-px seed
    plain = OpticalStudent(geom, 16, crosstalk_sigma_px=0.0)
    as_measured = OpticalStudent(geom, 16, crosstalk_sigma_px=0.0,
                                 optics=BenchOptics(beam=beam_amplitude(geom).astype(np.complex64)))
    assert plain._lit[1] - plain._lit[0] > geom.seed_superpixels * geom.superpixel_px
    rng = np.random.default_rng(2)
    seed = torch.from_numpy(rng.uniform(0, 2 * np.pi, (2, geom.seed_superpixels, geom.seed_superpixels)).astype(np.float32))
    dec = torch.from_numpy(rng.uniform(0, 2 * np.pi, (geom.decoder_px,) * 2).astype(np.float32))
    with torch.no_grad():
        a, b = plain.intensity(seed, dec, realistic=False), as_measured.intensity(seed, dec, realistic=False)
    assert float(a.max()) > 0
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-6 * float(a.max()))


def test_training_through_measured_optics_records_them_and_refuses_to_resume_with_others(tmp_path, ideal_config):
    pytest.importorskip("torch")
    from optgen.lab.model.bench_optics import BenchOptics
    from optgen.lab.model.train import TrainSettings, train_model

    geom = OpticalGeometry.from_bench(ideal_config)
    y, x = np.mgrid[0:geom.grid_px, 0:geom.grid_px] / geom.grid_px
    optics = BenchOptics(d1_m=0.0406, d2_m=0.0296, slm2_panel_rad=(1.5 * (x - 0.5) ** 2).astype(np.float32),
                         unmodulated=(0.03, 0.04))
    record = {"bench": "ideal", "calibrations": {"distances": "distances-bench-1", "decoding_slm.wavefront": "w-2"},
              "d1_mm": 40.6, "unmodulated": [0.03, 0.04]}
    settings = TrainSettings(teacher_steps=30, pairs=64, student_steps=4, batch=2, checkpoint_every=2,
                             encoder_hidden=24, encoder_layers=2, name="measured")
    assert train_model(tmp_path, geom, settings, max_minutes=0.0, log=lambda m: None, optics=optics,
                       optics_record=record) is None
    with pytest.raises(ValueError, match="asked now for those of the bench file"):
        train_model(tmp_path, geom, settings, log=lambda m: None)
    model = load_model(train_model(tmp_path, geom, settings, log=lambda m: None, optics=optics, optics_record=record))
    assert model.info["measured_optics"] == record and model.info["steps"] == 4


def test_train_with_measured_optics_needs_them_measured(tmp_path, capsys):
    pytest.importorskip("torch")
    from optgen.lab.cli import main

    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    assert main(["train", "--out", str(tmp_path / "t"), "--bench", str(bench), "--measured-optics",
                 "--steps", "2"]) != 0
    assert "no distances or wavefront calibration for this bench; run optgen calibrate all" in capsys.readouterr().err
    assert not (tmp_path / "t" / "teacher.pt").exists()


def _light_through_a_corrected_panel(sigma: float, role: str, waves: str, seed_rng: int, smooth_decoder: bool):
    """An ideal twin (fringing ``sigma`` on both SLMs) with a planted panel wavefront on SLM ``role``
    that the runs' correction (its negative) cancels: (geometry, seed, decoder, panel, the twin's
    irradiance in the output window, the beam)."""
    from optgen.lab.bench.examples import add_to_bench_text

    ideal = {**IDEAL_TWIN, ("twin.encoding_slm", "crosstalk_sigma_px"): str(sigma),
             ("twin.decoding_slm", "crosstalk_sigma_px"): str(sigma)}
    text = add_to_bench_text(small_bench_text(ideal), {f"twin.{role}": [
        f"wavefront_waves = {waves}", "wavefront_radius_mm = 1.2"]})
    cfg = parse_bench(text, f"corrected {role}")
    geom = OpticalGeometry.from_bench(cfg)
    rng = np.random.default_rng(seed_rng)
    n, d, step = geom.seed_superpixels, geom.decoder_px, 2 * np.pi / 256
    seed = (rng.integers(0, 256, (n, n)) * step).astype(np.float32)
    if smooth_decoder:
        y, x = (np.mgrid[0:d, 0:d] - (d - 1) / 2) / d
        dec = np.mod(np.round((6 * np.sin(7 * x) * np.cos(5 * y) + 3) / step) * step, 2 * np.pi).astype(np.float32)
    else:
        dec = (rng.integers(0, 256, (d, d)) * step).astype(np.float32)
    with build_bench(cfg) as bench:
        panel = bench.truths.wavefront_rad[role]
        slm = getattr(bench, role)
        slm.set_wavefront_correction(embed_centered(-panel, slm.shape))
        t = bench.clock.now() + 1.0
        bench.encoding_slm.set_phase(seed_to_slm_phase(seed, geom.superpixel_px, bench.encoding_slm.shape))
        bench.decoding_slm.set_phase(embed_centered(dec, bench.decoding_slm.shape))
        twin = bench.world.output_irradiance(t, 1.0)
        beam = bench.world.beam_field(t)
    w0, w = (geom.grid_px - geom.output_window_px) // 2, geom.output_window_px
    return geom, seed, dec, panel, twin[w0:w0 + w, w0:w0 + w], beam


def _student_light(geom, sigma: float, optics, seed: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """The student's irradiance in the output window for one seed and decoder through ``optics``."""
    import torch

    from optgen.lab.model.student import OpticalStudent

    student = OpticalStudent(geom, 16, crosstalk_sigma_px=sigma, optics=optics)
    with torch.no_grad():
        return student.intensity(torch.from_numpy(seed)[None], torch.from_numpy(dec))[0].numpy()


@pytest.mark.parametrize("sigma", [0.0, 0.6])
def test_the_training_optics_show_slm1_s_correction_as_its_pixels_do(sigma):
    """Runs add SLM1's wavefront correction to the seed before it is wrapped, quantized and blurred by
    the fringing: the student given that correction (``slm1_correction_rad``) draws the twin's light
    through a corrected SLM1, exactly without crosstalk; the student that takes the corrected SLM1 as
    flat does not where the fringing smears the wraps the correction adds across the superpixels."""
    pytest.importorskip("torch")
    from optgen.drivers.common.roles import ENCODING
    from optgen.lab.model.bench_optics import BenchOptics

    geom, seed, dec, panel, twin, beam = _light_through_a_corrected_panel(
        sigma, ENCODING, "[0, 0, 0, 0.8, 0.3, -0.5, 0.2]", 6, smooth_decoder=False)
    lit = np.abs(beam) > 0
    assert float(np.ptp(panel[lit])) > 2 * np.pi          # more than a wave over the beam: the correction wraps
    modelled = _student_light(geom, sigma, BenchOptics(beam=beam, slm1_correction_rad=-panel), seed, dec)
    as_flat = _student_light(geom, sigma, BenchOptics(beam=beam), seed, dec)
    r = [float(np.corrcoef(a.ravel(), twin.ravel())[0, 1]) for a in (modelled, as_flat)]
    if sigma == 0:     # (a few pixels of the wrapped sum round to the neighbouring level: float32 vs the LUT's path)
        np.testing.assert_allclose(modelled, twin, rtol=0, atol=2e-3 * twin.max())
        assert r[0] > 0.99999, r
    else:
        assert r[0] > 0.985 and r[0] - r[1] > 0.1, r           # (edges: the student blurs its lit block alone)


@pytest.mark.parametrize("sigma", [0.0, 0.6])
def test_the_training_optics_show_slm2_s_correction_where_runs_add_it(sigma):
    """Runs that correct SLM2 show the decoder plus the correction wrapped, quantized and blurred on the
    panel (and the correction alone around the decoder): the student given the correction
    (``slm2_correction_rad``) draws the twin's light, exactly without crosstalk; the student that
    takes the corrected panel as flat does not where the fringing blurs the moved wraps."""
    pytest.importorskip("torch")
    from optgen.drivers.common.roles import DECODING
    from optgen.lab.model.bench_optics import BenchOptics

    geom, seed, dec, panel, twin, beam = _light_through_a_corrected_panel(
        sigma, DECODING, "[0, 0, 0, 0.6, 0.3, -0.4, 0.2]", 5, smooth_decoder=True)
    assert float(np.std(panel)) > 2.0                     # waves of panel error: the correction wraps often
    modelled = _student_light(geom, sigma, BenchOptics(beam=beam, slm2_panel_rad=panel, slm2_correction_rad=-panel),
                              seed, dec)
    as_flat = _student_light(geom, sigma, BenchOptics(beam=beam), seed, dec)
    r = [float(np.corrcoef(a.ravel(), twin.ravel())[0, 1]) for a in (modelled, as_flat)]
    if sigma == 0:
        np.testing.assert_allclose(modelled, twin, rtol=0, atol=1e-5 * twin.max())
    else:   # (the student blurs the decoder block with its edges repeated: r 0.994 even with flat panels)
        assert r[0] > 0.99 and r[1] < 0.96, r
