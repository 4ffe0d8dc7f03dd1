"""Fine-tuning a model's decoder through a bench's measured optics (lab.model.fine_tune, optgen train --from)."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.lab.bench.parse import parse_bench
from optgen.lab.model import OpticalGeometry, load_model, save_model
from tests.conftest import small_bench_text
from tests.lab.test_model import IDEAL_TWIN, tiny_model

torch = pytest.importorskip("torch")


def measured_optics(geom: OpticalGeometry):
    from optgen.lab.model.bench_optics import BenchOptics

    y, x = np.mgrid[0:geom.grid_px, 0:geom.grid_px] / geom.grid_px
    return BenchOptics(d1_m=0.0406, d2_m=0.0296, slm2_panel_rad=(3.0 * (x - 0.5) ** 2).astype(np.float32),
                       unmodulated=(0.03, 0.04))


def model_with_targets(geom: OpticalGeometry, optics):
    """The tiny model, and teacher pairs that a decoder it does not have makes through ``optics``."""
    from optgen.lab.model.fine_tune import student_from

    model = tiny_model(geom)
    rng = np.random.default_rng(5)
    truth = student_from(model, optics, 0.0)
    with torch.no_grad():
        truth.decoder_logits.add_(torch.from_numpy(rng.normal(0, 0.6, truth.decoder_logits.shape).astype(np.float32)))
        noise = rng.standard_normal((64, 16)).astype(np.float32)
        images = truth(torch.from_numpy(noise))[:, 0].numpy()
    mean = float(images.mean())                     # images near 1, as a teacher's are
    model.teacher_noise, model.teacher_samples = noise, images / mean
    model.log_scale_offset = -float(np.log(mean))
    return model


@pytest.fixture
def geom():
    return OpticalGeometry.from_bench(parse_bench(small_bench_text(IDEAL_TWIN), "ideal"))


def test_fine_tuning_moves_only_the_decoder_toward_the_targets_and_writes_a_new_file(tmp_path, geom):
    from optgen.lab.model.fine_tune import fine_tune_model, student_from

    optics = measured_optics(geom)
    model = model_with_targets(geom, optics)
    record = {"bench": "ideal", "calibrations": {"distances": "distances-bench-1"}}
    # the tiny model's random decoder tolerates no misplacement: the targets are made without any
    path = fine_tune_model(model, optics, record, tmp_path, 0.0, steps=60, lr=0.02, log=lambda m: None,
                           misplaced=False)
    assert path == tmp_path / "tiny-measured-optics.npz"
    tuned = load_model(path)
    info = tuned.info["fine_tuned"]
    assert info["base_model"] == model.id and info["measured_optics"] == record and info["steps"] == 60
    assert info["teacher_pairs_used"] == [0, 32]
    assert info["loss_first_last"][1] < 0.7 * info["loss_first_last"][0]
    for (w0, b0), (w1, b1) in zip(model.weights, tuned.weights):           # the encoder as it was
        np.testing.assert_array_equal(w0, w1)
        np.testing.assert_array_equal(b0, b1)
    assert not np.allclose(tuned.decoder_phase[geom.wavelength_nm], model.decoder_phase[geom.wavelength_nm])
    # the pairs it never saw come closer too
    held = slice(32, 64)
    noise, targets = torch.from_numpy(model.teacher_noise[held]), model.teacher_samples[held]
    with torch.no_grad():
        before = student_from(model, optics, 0.0)(noise)[:, 0].numpy()
        after = student_from(tuned, optics, 0.0)(noise)[:, 0].numpy()
    assert np.mean((after - targets) ** 2) < np.mean((before - targets) ** 2)
    with pytest.raises(FileExistsError, match="never overwrites"):
        fine_tune_model(model, optics, record, tmp_path, 0.0, steps=2, log=lambda m: None)


def test_a_model_without_teacher_pairs_or_with_three_colours_is_refused(tmp_path, geom):
    from optgen.lab.model.fine_tune import fine_tune_model, student_from

    optics = measured_optics(geom)
    with pytest.raises(ValueError, match="keeps no teacher pairs"):
        fine_tune_model(tiny_model(geom), optics, {}, tmp_path, 0.0, steps=2)
    model = model_with_targets(geom, optics)
    with pytest.raises(ValueError, match="steps = 0"):
        fine_tune_model(model, optics, {}, tmp_path, 0.0, steps=0)
    model.wavelengths_nm = (638.0, 520.0, 450.0)
    with pytest.raises(ValueError, match="3-colour model"):
        student_from(model, optics, 0.0)
    assert not list(tmp_path.iterdir())


def test_train_from_needs_measured_optics_and_measured_calibrations(tmp_path, capsys, geom):
    from optgen.lab.cli import main

    text = small_bench_text()
    bench = tmp_path / "bench.toml"
    bench.write_text(text, encoding="utf-8")
    save_model(tmp_path / "tiny.npz", model_with_targets(geom, measured_optics(geom)))
    out = tmp_path / "tuned"
    assert main(["train", "--out", str(out), "--bench", str(bench), "--from", str(tmp_path / "tiny.npz")]) != 0
    assert "add --measured-optics" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--bench", str(bench), "--from", str(tmp_path / "tiny.npz"),
                 "--measured-optics", "--pairs", "64"]) != 0
    assert "--pairs do not apply" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--bench", str(bench), "--from", str(tmp_path / "tiny.npz"),
                 "--measured-optics"]) != 0
    assert "no distances or wavefront calibration for this bench" in capsys.readouterr().err
    assert not out.exists()


def test_train_from_on_a_calibrated_bench_writes_a_model_that_records_the_calibrations(tmp_path, capsys, geom):
    from optgen.lab.cli import main

    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    save_model(tmp_path / "tiny.npz", model_with_targets(geom, measured_optics(geom)))
    assert main(["calibrate", "all", "--bench", str(bench)]) == 0
    args = ["train", "--out", str(tmp_path / "tuned"), "--bench", str(bench), "--from", str(tmp_path / "tiny.npz"),
            "--measured-optics", "--steps", "3"]
    capsys.readouterr()
    assert main(args) == 0
    assert "fine-tuned from tiny:" in capsys.readouterr().out
    tuned = load_model(tmp_path / "tuned" / "tiny-measured-optics.npz")
    record = tuned.info["fine_tuned"]["measured_optics"]
    assert record["calibrations"]["distances"].startswith("distances:bench")
    assert set(record["calibrations"]) == {"distances", "encoding_slm.wavefront", "decoding_slm.wavefront"}
    assert tuned.info["fine_tuned"]["steps"] == 3
    assert main(args) != 0
    assert "never overwrites" in capsys.readouterr().err
