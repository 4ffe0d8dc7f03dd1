"""optgen refine (lab.refine): physics-aware steps, the rounds as runs, resume, and what it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optgen.drivers.errors import OptgenError
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.parse import parse_bench
from optgen.lab.model import OpticalGeometry, load_model, save_model
from optgen.lab.runfile.reader import RunFile
from tests.conftest import small_bench_text
from tests.lab.test_fine_tune import measured_optics, model_with_targets
from tests.lab.test_model import IDEAL_TWIN

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A small twin bench file with `calibrate all` done, and a tiny model with teacher pairs."""
    from optgen.lab.cli import main

    folder = tmp_path_factory.mktemp("refine")
    bench = folder / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    geom = OpticalGeometry.from_bench(parse_bench(small_bench_text(IDEAL_TWIN), "ideal"))
    save_model(folder / "tiny.npz", model_with_targets(geom, measured_optics(geom)))
    assert main(["calibrate", "all", "--bench", str(bench)]) == 0
    return folder, bench


def settings(**kw):
    from optgen.lab.refine.loop import RefineSettings

    return RefineSettings(**{"frames": 32, "batch": 8, "pretune_steps": 3, "eval_frames": 6, **kw})


def refine(folder, bench_path, out, s, **kw):
    from optgen.lab.refine.loop import refine_model
    from optgen.lab.refine.optics import measured_optics as bench_measured_optics

    cfg = parse_bench(bench_path.read_text(encoding="utf-8"), str(bench_path))
    model = load_model(folder / "tiny.npz")
    optics, record, sigma = bench_measured_optics(cfg, model.geometry.grid_px, folder / "calibrations")
    with build_bench(cfg, folder / "calibrations") as bench:
        path = refine_model(bench, model, out, optics, record, sigma, s, log=lambda m: None, **kw)
        assert bench.world.laser_emission is False
    return path, model


def test_a_physics_aware_step_is_the_models_step_when_the_bench_agrees_and_follows_the_bench_when_not(calibrated):
    from optgen.lab.model.fine_tune import student_from
    from optgen.lab.refine.loop import _step

    folder, _ = calibrated
    model = load_model(folder / "tiny.npz")
    geom = model.geometry
    optics = measured_optics(geom)
    noise, targets = model.teacher_noise[:8], model.teacher_samples[:8]
    a, b = student_from(model, optics, 0.0), student_from(model, optics, 0.0)
    with torch.no_grad():
        _, log_scale = a.encode(torch.from_numpy(noise))
        counts = (a(torch.from_numpy(noise))[:, 0] / torch.exp(log_scale[:, 0])[:, None, None]).numpy() * 1234.0
    opt_a = torch.optim.Adam([a.decoder_logits], lr=0.01)
    opt_b = torch.optim.Adam([b.decoder_logits], lr=0.01)
    step = _step(a, opt_a, noise, counts, targets)            # the bench saw what the model predicts
    loss = torch.mean((b(torch.from_numpy(noise))[:, 0] - torch.from_numpy(targets)) ** 2)
    opt_b.zero_grad()
    loss.backward()
    opt_b.step()
    start = student_from(model, optics, 0.0).decoder_logits.detach().numpy()
    moved = a.decoder_logits.detach().numpy() - start
    assert np.abs(moved).max() > 5e-3                         # Adam's first step: about the learning rate
    np.testing.assert_allclose(moved, b.decoder_logits.detach().numpy() - start, atol=1e-4)
    assert step["bench_loss"] == pytest.approx(step["model_loss"], rel=1e-4)
    assert step["bench_vs_model_r"] == pytest.approx(1.0, abs=1e-6)
    # a bench that shows something else: the loss is the bench's, not the model's
    other = counts[::-1].copy()
    step = _step(a, opt_a, noise, other, targets)
    assert step["bench_vs_model_r"] < 0.99 and step["bench_loss"] != pytest.approx(step["model_loss"], rel=1e-3)


def test_refine_captures_every_round_as_a_run_and_writes_a_new_model_that_records_what_it_used(calibrated):
    folder, bench = calibrated
    out = folder / "out"
    path, model = refine(folder, bench, out, settings())
    assert path == out / "tiny-refined.npz"
    tuned = load_model(path)
    info = tuned.info["refined"]
    assert info["base_model"] == model.id and info["rounds"] == 4 and info["frames_captured"] == 2 * 6 + 4 * 8
    assert info["calibrations"]["alignment"].startswith("alignment:bench")
    assert set(info["eval_after"]) == {"paired_r_mean", "paired_r_min", "frames", "confident", "inception"}
    assert 1.0 <= info["eval_after"]["inception"] <= 10.0
    assert not np.allclose(tuned.decoder_phase[520.0], model.decoder_phase[520.0])
    # the encoder's output scale is refined, the seeds it shows are not
    assert info["scale_refined"] is True
    for (w0, b0), (w1, b1) in zip(model.weights[:-1], tuned.weights[:-1]):
        np.testing.assert_array_equal(w0, w1)
        np.testing.assert_array_equal(b0, b1)
    (w0, b0), (w1, b1) = model.weights[-1], tuned.weights[-1]
    seed_outputs = model.geometry.seed_superpixels ** 2
    np.testing.assert_array_equal(w0[:, :seed_outputs], w1[:, :seed_outputs])
    np.testing.assert_array_equal(b0[:seed_outputs], b1[:seed_outputs])
    assert not np.array_equal(w0[:, seed_outputs:], w1[:, seed_outputs:])
    noise = np.asarray(model.teacher_noise[32:38], np.float32)
    (values0, scale0), (values1, scale1) = model.encode(noise), tuned.encode(noise)
    np.testing.assert_array_equal(values0, values1)
    assert not np.allclose(scale0, scale1)
    for name, count in (("before", 6), ("r0000", 8), ("r0003", 8), ("after", 6)):
        with RunFile(out / "rounds" / name / "run.h5") as f:
            assert f.status()["status"] == "complete" and len(f.indices) == count
            ids = f.seed_id()
            assert all("/pair" in i for i in ids)
    with RunFile(out / "rounds" / "before" / "run.h5") as f:
        assert [int(i.rsplit("pair", 1)[1]) for i in f.seed_id()] == list(range(32, 38))   # held out
    for picture in ("sheet_before.png", "sheet_after.png", "rounds.png", "refine.json"):
        assert (out / picture).is_file()
    history = json.loads((out / "refine.json").read_text())["history"]
    assert [h["round"] for h in history] == [0, 1, 2, 3]
    assert all(0.0 <= h["confident"] <= 1.0 and h["bench_loss"] > 0 for h in history)
    with pytest.raises(OptgenError, match="never overwrites"):
        refine(folder, bench, out, settings())


def test_keep_scale_refines_the_decoder_only(calibrated):
    folder, bench = calibrated
    path, model = refine(folder, bench, folder / "decoder-only", settings(scale=False, frames=16))
    tuned = load_model(path)
    assert tuned.info["refined"]["scale_refined"] is False
    assert not np.allclose(tuned.decoder_phase[520.0], model.decoder_phase[520.0])
    for (w0, b0), (w1, b1) in zip(model.weights, tuned.weights):
        np.testing.assert_array_equal(w0, w1)
        np.testing.assert_array_equal(b0, b1)


def test_the_checkpoint_keeps_the_refined_scale(calibrated, tmp_path):
    from optgen.lab.model.fine_tune import student_from
    from optgen.lab.refine.loop import _load, _save, _scale_head

    folder, _ = calibrated
    model = load_model(folder / "tiny.npz")
    a, b = student_from(model, None, 0.0), student_from(model, None, 0.0)
    opt_a = torch.optim.Adam([a.decoder_logits, *_scale_head(a)], lr=0.01)
    opt_b = torch.optim.Adam([b.decoder_logits, *_scale_head(b)], lr=0.01)
    loss = a(torch.from_numpy(model.teacher_noise[:4])).mean()
    opt_a.zero_grad()
    loss.backward()
    opt_a.step()
    _save(tmp_path / "refine.pt", {"x": 1}, a, opt_a, {"stage": "rounds"})
    assert _load(tmp_path / "refine.pt", {"x": 1}, b, opt_b) == {"stage": "rounds"}
    last_a, last_b = (next(m for m in reversed(s.encoder) if isinstance(m, torch.nn.Linear)) for s in (a, b))
    assert torch.equal(last_a.weight, last_b.weight) and torch.equal(last_a.bias, last_b.bias)
    base = next(m for m in reversed(student_from(model, None, 0.0).encoder) if isinstance(m, torch.nn.Linear))
    assert not torch.equal(base.bias, last_b.bias)


def test_a_stopped_refine_resumes_at_the_next_round_without_retaking_frames(calibrated):
    folder, bench = calibrated
    out = folder / "resumed"
    assert refine(folder, bench, out, settings(), minutes=0.0)[0] is None        # stops after round 1
    first = (out / "rounds" / "r0000" / "run.h5").stat().st_mtime_ns
    assert not (out / "rounds" / "r0001").exists()
    (out / "rounds" / "r0001").mkdir()                       # a round killed before its run file existed
    path, _ = refine(folder, bench, out, settings())
    assert (out / "rounds" / "r0000" / "run.h5").stat().st_mtime_ns == first
    info = load_model(path).info["refined"]
    assert info["rounds"] == 4
    assert refine(folder, bench, folder / "resumed-other", settings(), minutes=0.0)[0] is None
    with pytest.raises(OptgenError, match="another settings"):
        refine(folder, bench, folder / "resumed-other", settings(batch=4))


def test_refine_refuses_an_uncalibrated_bench_a_model_for_another_geometry_and_a_dark_camera(calibrated, tmp_path,
                                                                                             capsys, mocker):
    from optgen.lab.cli import main
    from optgen.simulators.world import OpticalWorld

    folder, bench = calibrated
    bare = tmp_path / "bench.toml"
    bare.write_text(small_bench_text(), encoding="utf-8")
    assert main(["refine", "--out", str(tmp_path / "r"), "--bench", str(bare), "--model",
                 str(folder / "tiny.npz")]) != 0
    assert "refine needs a calibrated bench" in capsys.readouterr().err
    assert main(["refine", "--out", str(tmp_path / "r"), "--bench", str(bench)]) != 0     # the shipped model
    assert "d1_mm: model 120.1, bench 40" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    mocker.patch.object(OpticalWorld, "delivered_power_w", return_value=0.0)
    with pytest.raises(OptgenError, match="show no light"):
        refine(folder, bench, tmp_path / "dark", settings())
    assert not list((tmp_path / "dark").glob("*.npz"))


def test_a_refined_model_run_on_other_calibrations_warns_in_the_run_log(calibrated, tmp_path):
    from optgen.lab.model.provenance import adapted_elsewhere
    from optgen.lab.run.generate import run_generation
    from optgen.lab.run.model_seeds import ModelSeedSource

    folder, bench = calibrated
    path, _ = refine(folder, bench, tmp_path / "ref", settings(frames=8, pretune_steps=0))
    tuned = load_model(path)
    cfg = parse_bench(bench.read_text(encoding="utf-8"), str(bench))
    with build_bench(cfg, folder / "calibrations") as same:
        assert adapted_elsewhere(tuned, same.calibration_ids()) is None
        assert adapted_elsewhere(tuned, same.calibration_ids(), decoder_corrected=False) is None
        # refined with SLM2 left uncorrected: a bench that now corrects it moves the decoder's wraps
        assert tuned.info["refined"]["optics"]["slm2_corrected"] is False
        warning = adapted_elsewhere(tuned, same.calibration_ids(), decoder_corrected=True)
        assert "correct_decoder_wavefront" in warning and "left it uncorrected" in warning
        run_generation(same, ModelSeedSource(tuned, 520.0), tuned.decoder_phase[520.0], "t", tmp_path / "here", 2)
    with build_bench(cfg, tmp_path / "no-calibrations") as other:
        warning = adapted_elsewhere(tuned, other.calibration_ids())
        assert "was refined on bench" in warning and "alignment" in warning and "distances" in warning
        run_generation(other, ModelSeedSource(tuned, 520.0), tuned.decoder_phase[520.0], "t", tmp_path / "there", 2)
    assert "was refined on bench" not in (tmp_path / "here" / "run.log").read_text()
    assert "was refined on bench" in (tmp_path / "there" / "run.log").read_text()


def test_refine_refuses_a_bench_without_an_alignment_before_any_device_opens(calibrated, tmp_path, capsys, mocker):
    from optgen.lab.bench import assemble
    from optgen.lab.cli import main

    folder, _ = calibrated
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text(), encoding="utf-8")
    assert main(["calibrate", "lut", "--bench", str(bench)]) == 0
    assert main(["calibrate", "distances", "--bench", str(bench)]) == 0
    opened = mocker.spy(assemble, "build_bench")
    capsys.readouterr()
    assert main(["refine", "--out", str(tmp_path / "r"), "--bench", str(bench), "--model",
                 str(folder / "tiny.npz")]) != 0
    assert "no alignment calibration in force" in capsys.readouterr().err
    assert opened.call_count == 0 and not (tmp_path / "r").exists()


def test_a_capture_stopped_midway_is_resumed_with_only_its_missing_frames_taken(calibrated, mocker):
    from optgen.drivers.stop import StopControl
    from optgen.lab.refine import loop

    folder, bench = calibrated
    out = folder / "stopped-midway"
    real = loop.run_generation

    def stopping(bench_, seeds, decoder, decoder_id, where, count, **kw):
        if where.name != "r0000" or kw.get("resume"):
            return real(bench_, seeds, decoder, decoder_id, where, count, **kw)
        stop = StopControl()

        def progress(done, total):
            if done >= 3:
                stop.request("test: stop after three frames")
        return real(bench_, seeds, decoder, decoder_id, where, count, progress=progress, stop=stop, **kw)

    mocker.patch.object(loop, "run_generation", side_effect=stopping)
    with pytest.raises(OptgenError, match="the capture stopped.*run the same command again"):
        refine(folder, bench, out, settings())
    with RunFile(out / "rounds" / "r0000" / "run.h5") as f:
        kept = dict(zip(f.indices.tolist(), f.meta("stored_s").tolist()))
    assert 3 <= len(kept) < 8
    mocker.stopall()
    refine(folder, bench, out, settings())
    with RunFile(out / "rounds" / "r0000" / "run.h5") as f:
        stored = dict(zip(f.indices.tolist(), f.meta("stored_s").tolist()))
        assert f.status()["status"] == "complete"
    assert len(stored) == 8 and all(stored[i] == t for i, t in kept.items())     # nothing retaken


def test_more_steps_a_round_are_the_model_s_steps_plus_what_the_bench_added_at_capture(calibrated):
    """Each round's captures give ``steps_per_round`` steps: where the bench agrees with the model they are
    the model's own steps; where it does not, every step keeps the bench's residual at capture."""
    from optgen.lab.model.fine_tune import student_from
    from optgen.lab.refine.loop import _step

    folder, _ = calibrated
    model = load_model(folder / "tiny.npz")
    optics = measured_optics(model.geometry)
    noise, targets = model.teacher_noise[:8], model.teacher_samples[:8]
    a, b, c = (student_from(model, optics, 0.0) for _ in range(3))
    x, t = torch.from_numpy(noise), torch.from_numpy(targets)
    with torch.no_grad():
        _, log_scale = a.encode(x)
        predicted = a(x)[:, 0]
        counts = (predicted / torch.exp(log_scale[:, 0])[:, None, None]).numpy() * 1234.0
    opt_a, opt_b, opt_c = (torch.optim.Adam([s.decoder_logits], lr=0.01) for s in (a, b, c))
    _step(a, opt_a, noise, counts, targets, steps=3)          # the bench saw what the model predicts
    for _ in range(3):
        loss = torch.mean((b(x)[:, 0] - t) ** 2)
        opt_b.zero_grad()
        loss.backward()
        opt_b.step()
    np.testing.assert_allclose(a.decoder_logits.detach().numpy(), b.decoder_logits.detach().numpy(), atol=1e-4)
    # a bench with more light in one corner: each step sees the model's new images plus that residual
    other = counts.copy()
    other[:, :4, :4] += 0.3 * float(counts.max())
    step = _step(c, opt_c, noise, other, targets, steps=2)
    with torch.no_grad():
        gain = float((predicted * torch.from_numpy(other) * torch.exp(log_scale[:, 0])[:, None, None]).sum()
                     / (torch.from_numpy(other) * torch.exp(log_scale[:, 0])[:, None, None]).pow(2).sum())
        residual = gain * torch.from_numpy(other) * torch.exp(log_scale[:, 0])[:, None, None] - predicted
    d = student_from(model, optics, 0.0)
    opt_d = torch.optim.Adam([d.decoder_logits], lr=0.01)
    losses = []
    for _ in range(2):
        loss = torch.mean((d(x)[:, 0] + residual - t) ** 2)
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        losses.append(float(loss.detach()))
    np.testing.assert_allclose(c.decoder_logits.detach().numpy(), d.decoder_logits.detach().numpy(), atol=1e-4)
    assert step["bench_loss"] == pytest.approx(losses[0], rel=1e-4) and losses[1] < losses[0]
