"""Multi-colour runs: the [colours] table, one colour at a time, RGB in the model's units."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from optgen.drivers.errors import OptgenError
from optgen.lab.bench.config import colour_bench
from optgen.lab.bench.examples import rgb_bench_text
from optgen.lab.bench.parse import parse_bench
from optgen.lab.bench.reader import BenchFileError
from optgen.lab.cli import main
from optgen.lab.evaluate.colour import evaluate_colour_run
from optgen.lab.evaluate.prediction import predict_images
from optgen.lab.model import ModelError, OpticalGeometry, OpticalModel, save_model
from optgen.lab.run.colour_run import combine_rgb, run_colours
from optgen.lab.run.model_seeds import ModelSeedSource
from tests.conftest import small_bench_text


def rgb_text(*changes: tuple[str, str]) -> str:
    """The small three-colour twin bench, with text replacements."""
    text = rgb_bench_text(small=True)
    head, table = text.split("\n[colours]\n")          # the default bench holds a commented example too
    for old, new in changes:
        part = "table" if old in table else "head"
        where = table if part == "table" else head
        assert where.count(old) == 1, old
        if part == "table":
            table = table.replace(old, new)
        else:
            head = head.replace(old, new)
    return head + "\n[colours]\n" + table


def rgb_model(cfg, flat: bool = False, seed: int = 0) -> OpticalModel:
    """A 3-colour model for ``cfg``: random, or ``flat`` (zero seed and decoder phase, scale 1 per colour)."""
    rng = np.random.default_rng(seed)
    colours = cfg.colours.order_nm
    n = cfg.geometry.seed_superpixels
    out = len(colours) * (n * n + 1)
    w0 = (rng.standard_normal((16, 24)) / 4).astype(np.float32)
    if flat:  # values -1 -> phase 0; log scale 0 -> scale 1
        w1 = np.zeros((24, out), np.float32)
        b1 = np.concatenate([-np.ones(len(colours) * n * n), np.zeros(len(colours))]).astype(np.float32)
    else:
        w1 = (rng.standard_normal((24, out)) / 5).astype(np.float32)
        b1 = np.zeros(out, np.float32)
    d = cfg.geometry.decoder_px
    decoder = {wl: (np.zeros((d, d)) if flat else rng.uniform(0, 2 * np.pi, (d, d))).astype(np.float32)
               for wl in colours}
    return OpticalModel("rgb-test", OpticalGeometry.from_bench(cfg), (4, 4), tuple(colours),
                        [(w0, np.zeros(24, np.float32)), (w1, b1)], decoder)


def test_colour_bench_swaps_the_laser_and_rescales_the_twin_response():
    cfg = parse_bench(rgb_text(), "rgb")
    red = colour_bench(cfg, 638.0)
    assert red.wavelength_nm == 638.0 and red.laser.wavelength_nm == 638.0
    assert red.laser.power_w == pytest.approx(0.12e-6) and red.laser.wall_plug_w == 6.0
    assert red.camera.qe == 0.55
    # retardance in radians goes as 1 / wavelength: the planted 520 nm response seen at 638 nm
    assert red.twin.encoding.response_max_rad == pytest.approx(cfg.twin.encoding.response_max_rad * 520 / 638)
    assert red.twin.qe == pytest.approx(cfg.twin.qe * 0.55 / 0.7)
    assert colour_bench(cfg, 520.0).laser is cfg.laser
    with pytest.raises(BenchFileError, match="no colour at 405 nm; \\[colours\\] has 638 nm, 520 nm, 450 nm"):
        colour_bench(cfg, 405.0)
    with pytest.raises(BenchFileError, match="the bench has one colour, 520 nm"):
        colour_bench(parse_bench(small_bench_text(), "mono"), 638.0)


@pytest.mark.parametrize("change, message", [
    ((("order_nm = [638.0, 520.0, 450.0]", "order_nm = [638.0, 532.0, 450.0]"),), "expected the \\[laser\\] wavelength 520"),
    ((("order_nm = [638.0, 520.0, 450.0]", "order_nm = [638.0, 520.0, 450.0, 405.0]"),
      ("camera_qe = [0.55, 0.7, 0.6]", "camera_qe = [0.55, 0.7, 0.6, 0.5]")), "no laser for 405 nm"),
    ((("wavelength_nm = 450.0", "wavelength_nm = 488.0"),), "wavelength_nm = 488: expected 450 nm"),
    ((("camera_qe = [0.55, 0.7, 0.6]", "camera_qe = [0.55, 0.7]"),), "one quantum efficiency"),
    ((("order_nm = [638.0, 520.0, 450.0]", "order_nm = [638.0, 520.0, 638.5]"),), "distinct wavelengths"),
    ((("power_mw = 0.00008", "power_mw = 2.0"),), "colours.lasers.450\\] power_mw = 2: expected at most"),
])
def test_bad_colour_tables_are_refused_with_the_key(change, message):
    with pytest.raises(BenchFileError, match=message):
        parse_bench(rgb_text(*change), "rgb")


def test_each_colour_runs_with_its_own_laser_seeds_and_decoder_then_combines(tmp_path):
    cfg = parse_bench(rgb_text(), "rgb")
    model = rgb_model(cfg)
    result = run_colours(cfg, model, tmp_path / "run", 4, random_seed=3)
    assert result.status == "complete" and result.colours_done == [638.0, 520.0, 450.0]
    import h5py

    for wl in (638.0, 520.0, 450.0):
        source = ModelSeedSource(model, wl, 3)
        with h5py.File(tmp_path / "run" / f"{wl:g}nm" / "run.h5", "r") as f:
            np.testing.assert_allclose(f["seed/phase"][2], source.seed(2).phase, atol=1e-6)
            np.testing.assert_array_equal(f["decoder_phase"][:], model.decoder_phase[wl])
            power = f["meta/laser_power_w"][:]
        assert power == pytest.approx(cfg.colours.lasers[wl].power_w, rel=0.05)  # that colour's laser setpoint
        summary = json.loads((tmp_path / "run" / f"{wl:g}nm" / "summary.json").read_text())
        assert summary["status"] == "complete"
    rgb = np.load(tmp_path / "run" / "rgb.npy")
    assert rgb.shape == (4, 16, 16, 3) and np.isfinite(rgb).all()
    assert (tmp_path / "run" / "rgb_contact_sheet.png").stat().st_size > 0
    # the red channel of image 1 is the red run's frame 1 times the encoder's red scale for that seed
    assert rgb[1, ..., 0].sum() > 0 and not np.allclose(rgb[..., 0], rgb[..., 2])
    energy = json.loads((tmp_path / "run" / "summary.json").read_text())["energy_per_rgb_image"]
    per = energy["per_colour"]
    assert energy["laser_optical_j"] == pytest.approx(sum(per[c]["laser_optical_j"] for c in per))
    assert energy["wall_plug_j"]["laser"] == pytest.approx(sum(per[c]["wall_plug_j"]["laser"] for c in per))
    assert per["638nm"]["laser_optical_j"] > per["450nm"]["laser_optical_j"]  # 0.12 uW against 0.08 uW
    evaluation = evaluate_colour_run(tmp_path / "run", model)
    assert evaluation["generated_rgb"]["count"] == 4
    assert set(evaluation["per_colour"]) == {"638nm", "520nm", "450nm"}
    assert evaluation["per_colour"]["450nm"]["twin_agreement"]["min"] > 0.99  # predicted at 450 nm, not 520



def test_a_colour_run_on_given_noise_shows_the_encoder_s_seeds_for_those_vectors(tmp_path):
    """``run_colours(noise=)`` (a paired benchmark on the teacher's own noise): image i of every colour comes
    from row i, its scale too, and the run records which vectors it was given."""
    cfg = parse_bench(rgb_text(), "rgb")
    model = rgb_model(cfg)
    noise = np.random.default_rng(5).standard_normal((3, 16)).astype(np.float32)
    run_colours(cfg, model, tmp_path / "run", 3, noise=noise)
    import h5py

    values, scale = model.encode(noise)
    for c, wl in enumerate((638.0, 520.0, 450.0)):
        with h5py.File(tmp_path / "run" / f"{wl:g}nm" / "run.h5", "r") as f:
            np.testing.assert_allclose(f["seed/phase"][:], [ModelSeedSource(model, wl, noise=noise).seed(i).phase
                                                            for i in range(3)], atol=1e-6)
            assert not np.allclose(f["seed/phase"][1], ModelSeedSource(model, wl).seed(1).phase)
        assert ModelSeedSource(model, wl, noise=noise).scale(2) == pytest.approx(float(scale[2, c]), rel=1e-6)
    recorded = json.loads((tmp_path / "run" / "colour_run.json").read_text())["noise"]
    assert recorded["count"] == 3 and len(recorded["sha256"]) == 64
    with pytest.raises(OptgenError, match="given noise: 3 vectors for 4 images"):
        run_colours(cfg, model, tmp_path / "more", 4, noise=noise)
    assert not (tmp_path / "more").exists()
    with pytest.raises(OptgenError, match=r"given noise of shape \(3, 15\): model 'rgb-test' expects finite "
                                          r"vectors of 16 values"):
        ModelSeedSource(model, 638.0, noise=noise[:, :15])
    with pytest.raises(OptgenError, match="seed 3: the given noise holds 3 vectors"):
        ModelSeedSource(model, 638.0, noise=noise).seed(3)

def test_a_colour_run_on_given_noise_is_not_resumed_without_it(tmp_path):
    """The colours still to run would show other noise than those done: refused, saying so."""
    from optgen.lab.run.folder import RunFolderError

    cfg = parse_bench(rgb_text(), "rgb")
    model = rgb_model(cfg)
    noise = np.random.default_rng(6).standard_normal((2, 16)).astype(np.float32)
    run_colours(cfg, model, tmp_path / "run", 2, noise=noise)
    with pytest.raises(RunFolderError, match="made on 2 given noise vectors; resume it with the same noise"):
        run_colours(cfg, model, tmp_path / "run", 2, resume=True)
    assert run_colours(cfg, model, tmp_path / "run", 2, resume=True, noise=noise).status == "complete"


def test_a_colour_run_of_one_class_shows_that_class_s_noise_in_every_colour_and_resumes_with_it(tmp_path, capsys):
    """``optgen run --colours --class K`` (``run_colours(class_index=K)``): every colour's seed i comes from
    the same noise, drawn for class K; a resumed run keeps the class; another class, or a model without
    classes, is refused before anything is written."""
    import shutil

    import h5py

    from optgen.lab.model.class_input import class_of_noise
    from optgen.lab.run.folder import RunFolderError

    cfg = parse_bench(rgb_text(), "rgb")
    model = rgb_model(cfg)
    model.info = {"classes": 10}
    out = tmp_path / "run"
    assert run_colours(cfg, model, out, 3, random_seed=2, class_index=7).status == "complete"

    def assert_class_seeds(wl: float) -> None:
        source = ModelSeedSource(model, wl, 2, 7)
        with h5py.File(out / f"{wl:g}nm" / "run.h5", "r") as f:
            np.testing.assert_allclose(f["seed/phase"][:], [source.seed(i).phase for i in range(3)], atol=1e-6)
        assert class_of_noise(np.stack([source.noise(i) for i in range(3)]), 10).tolist() == [7, 7, 7]

    for wl in cfg.colours.order_nm:
        assert_class_seeds(wl)
    assert json.loads((out / "colour_run.json").read_text())["class"] == 7
    rgb = np.load(out / "rgb.npy")
    configs = [colour_bench(cfg, wl) for wl in cfg.colours.order_nm]
    np.testing.assert_allclose(combine_rgb(out, configs, model, 2, class_index=7), rgb, rtol=1e-6)
    assert not np.allclose(combine_rgb(out, configs, model, 2), rgb, rtol=1e-3)     # the class's own scales
    shutil.rmtree(out / "450nm")                  # as if killed during the blue colour
    (out / "rgb.npy").unlink()
    assert run_colours(cfg, model, out, 3, random_seed=2, resume=True).status == "complete"
    assert_class_seeds(450.0)
    np.testing.assert_allclose(np.load(out / "rgb.npy"), rgb, rtol=1e-6)
    with pytest.raises(RunFolderError, match="another class"):
        run_colours(cfg, model, out, 3, random_seed=2, resume=True, class_index=3)
    with pytest.raises(OptgenError, match="trained without labels"):
        run_colours(cfg, rgb_model(cfg), tmp_path / "unlabelled", 2, class_index=1)
    with pytest.raises(OptgenError, match="has classes 0 to 9"):
        run_colours(cfg, model, tmp_path / "eleven", 2, class_index=10)
    assert not (tmp_path / "unlabelled").exists() and not (tmp_path / "eleven").exists()
    assert main(["run", "--colours", "--resume", str(out), "--class", "7", "--no-progress"]) == 2
    assert "leave out --class" in capsys.readouterr().err
    assert main(["status", str(out)]) == 0 and "3 frames each, class 7 requested" in capsys.readouterr().out
    evaluation = evaluate_colour_run(out, model)
    requested = evaluation["requested_class"]           # the RGB images' channel sums, judged
    assert requested["class"] == 7 and sum(requested["judged_classes"]) == 3
    assert requested["as_requested"] == requested["judged_classes"][7] / 3
    assert all(ev["requested_class"]["class"] == 7 for ev in evaluation["per_colour"].values())


def test_rgb_channels_are_irradiance_per_watt_at_each_wavelength(tmp_path):
    """Flat seeds and decoders: each channel must match the analytic optics at its own wavelength
    (the prediction module, per watt of beam), whatever the colour's laser power and sensor QE."""
    cfg = parse_bench(rgb_text(), "rgb")
    model = rgb_model(cfg, flat=True)
    run_colours(cfg, model, tmp_path / "run", 2)
    rgb = np.load(tmp_path / "run" / "rgb.npy")
    g = cfg.geometry
    for c, wl in enumerate(cfg.colours.order_nm):
        ccfg = colour_bench(cfg, wl)
        flat = np.zeros((1, g.seed_superpixels, g.seed_superpixels), np.float32)
        predicted = predict_images(ccfg, flat, np.zeros((g.decoder_px, g.decoder_px), np.float32))[0]
        predicted /= ccfg.twin.aperture_m ** 2                       # unit-amplitude beam -> one watt
        measured = rgb[:, :, :, c].mean(axis=0)
        assert measured.mean() == pytest.approx(predicted.mean(), rel=0.04), wl
        assert np.corrcoef(measured.ravel(), predicted.ravel())[0, 1] > 0.9, wl


def test_a_model_without_a_colour_is_refused_before_any_device_opens(tmp_path):
    cfg = parse_bench(rgb_text(), "rgb")
    model = rgb_model(cfg)
    del model.decoder_phase[450.0]
    model.wavelengths_nm = (638.0, 520.0)
    with pytest.raises(ModelError, match="no colour at 450 nm"):
        run_colours(cfg, model, tmp_path / "run", 2)
    assert not (tmp_path / "run").exists()
    mono = parse_bench(small_bench_text(), "mono")
    with pytest.raises(Exception, match="needs a \\[colours\\] table"):
        run_colours(mono, rgb_model(cfg), tmp_path / "run", 2)


def test_cli_colour_run_and_resume_runs_only_the_missing_colour(tmp_path, capsys):
    cfg = parse_bench(rgb_text(), "rgb")
    model_path = save_model(tmp_path / "rgb.npz", rgb_model(cfg))
    bench = tmp_path / "bench.toml"
    text = rgb_text(('seed_source = "placeholder-encoder"', 'seed_source = "model"'))
    bench.write_text(text.replace('model = "digits-rgb-v3"', f'model = "{model_path}"'))
    assert main(["config", "--check", str(bench)]) == 0
    assert "colours: 638 nm (laser simulated, QE 0.55), 520 nm" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["run", "--colours", "--bench", str(bench), "--count", "3", "--out", str(out), "--no-progress"]) == 0
    first = np.load(out / "rgb.npy")
    red_file = out / "638nm" / "run.h5"
    red_mtime = red_file.stat().st_mtime_ns
    # as if the process died during the blue colour: its folder and the combined images are gone
    import shutil

    shutil.rmtree(out / "450nm")
    (out / "rgb.npy").unlink()
    capsys.readouterr()
    assert main(["status", str(out)]) == 1                             # optgen status reads a colour run
    said = capsys.readouterr().out
    assert "638 nm: complete, frames stored 3 of 3" in said and "450 nm: not started" in said
    assert "RGB images: not yet combined" in said and f"continue with: optgen run --resume {out}" in said
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    assert main(["status", str(out)]) == 0 and "RGB images: rgb.npy" in capsys.readouterr().out
    assert red_file.stat().st_mtime_ns == red_mtime                    # finished colours are not redone
    np.testing.assert_allclose(np.load(out / "rgb.npy")[..., :2], first[..., :2])
    model = rgb_model(cfg)
    np.testing.assert_allclose(combine_rgb(out, [colour_bench(cfg, wl) for wl in cfg.colours.order_nm], model),
                               np.load(out / "rgb.npy"), rtol=1e-6)
    assert main(["evaluate", str(out)]) == 0


def test_a_pass_with_every_frame_stored_counts_as_done_and_a_lone_pass_is_not_resumed(tmp_path, capsys):
    cfg = parse_bench(rgb_text(), "rgb")
    model = rgb_model(cfg)
    out = tmp_path / "run"
    run_colours(cfg, model, out, 2)
    import h5py

    with h5py.File(out / "450nm" / "run.h5", "r+") as f:   # as if killed after its last frame was stored
        f.attrs["status"] = "stopped"
    (out / "450nm" / "summary.json").unlink()
    (out / "rgb.npy").unlink()
    result = run_colours(cfg, model, out, 2, resume=True)
    assert result.status == "complete" and np.load(out / "rgb.npy").shape == (2, 16, 16, 3)
    assert result.summary["energy_per_rgb_image"]["per_colour"]["450nm"] == {}   # unknown, not made up
    assert main(["run", "--resume", str(out / "638nm"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "one colour (638 nm) of a multi-colour run" in err and f"optgen run --resume {out}" in err


def test_the_shipped_rgb_model_runs_on_the_embedded_three_colour_twin(tmp_path):
    """`optgen run --colours` with no bench file: the embedded three-colour twin and digits-rgb-v3."""
    from optgen.lab.model import load_model

    model = load_model("digits-rgb-v3")
    assert model.wavelengths_nm == (638.0, 520.0, 450.0)
    dumped = tmp_path / "rgb.toml"
    assert main(["config", "--dump", str(dumped), "--colours"]) == 0
    assert parse_bench(dumped.read_text(), str(dumped)).colours.order_nm == model.wavelengths_nm
    out = tmp_path / "run"
    assert main(["run", "--colours", "--count", "2", "--out", str(out), "--no-progress"]) == 0
    rgb = np.load(out / "rgb.npy")
    assert rgb.shape == (2, 32, 32, 3) and (rgb > -1e-3 * rgb.max()).all()
    for wl in model.wavelengths_nm:
        summary = json.loads((out / f"{wl:g}nm" / "summary.json").read_text())
        assert summary["frames_with_saturation"] == 0 and summary["laser_verified_off"] is True
    # each channel carries light of its own colour: no channel is empty
    assert min(rgb[..., c].sum() for c in range(3)) > 0.05 * rgb.sum()


def test_a_colour_run_says_and_records_each_colours_calibrations_or_uncalibrated(tmp_path, capsys):
    """The embedded three-colour twin with its red calibrated (optgen calibrate --colour without
    --bench calibrates that twin, in its own store) and green and blue not."""
    from optgen.lab.bench.calibrations import store_folder
    from optgen.lab.bench.examples import embedded_colour_bench
    from optgen.lab.bench.parse import load_bench

    store = store_folder(embedded_colour_bench())
    assert store != store_folder(load_bench(None))                   # not the one-colour twin's calibrations
    assert main(["calibrate", "camera", "--colour", "638", "--quiet"]) == 0
    assert [p.name.split("-2")[0] for p in store.glob("*.h5")] == ["camera-camera-638nm"]
    capsys.readouterr()
    out = tmp_path / "run"
    assert main(["run", "--colours", "--count", "2", "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    red = err.index(f"638 nm: calibrations from {store}:")
    assert re.fullmatch(r"  camera +camera:camera:638nm:camera-camera-638nm-\S+\.h5  \(\d+ min old\)", err[red + 7])
    for nm in (520, 450):
        assert (f"{nm} nm: UNCALIBRATED: no calibration for this bench in {store}; the nominal LUTs, placement and "
                f"distances are used (measure them with: optgen calibrate all --colour {nm})") in err
    said = [line.split(":")[0] for line in err if re.match(r"\d+ nm: ", line)]
    assert said == ["638 nm", "520 nm", "450 nm"]                    # in the run's order, before its frames
    recorded = json.loads((out / "colour_run.json").read_text())["colour_calibrations"]
    assert [recorded[c]["calibrated"] for c in ("638nm", "520nm", "450nm")] == [True, False, False]
    assert recorded["638nm"]["calibrations"]["camera"].startswith("camera:camera:638nm")
    assert set(recorded["638nm"]["calibration_ages_h"]) == {"camera"} and recorded["520nm"]["calibration_ages_h"] == {}
    assert {r["calibration_store"] for r in recorded.values()} == {str(store.resolve())}
    assert "calibration: in force: camera camera:camera:638nm" in (out / "638nm" / "run.log").read_text()
    assert "calibration: UNCALIBRATED" in (out / "450nm" / "run.log").read_text()
    assert main(["run", "--colours", "--count", "1", "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""                             # --quiet: none said, all recorded
    assert json.loads((tmp_path / "quiet" / "colour_run.json").read_text())["colour_calibrations"].keys() == recorded.keys()
    # blue is calibrated and its pass taken again: the resume says and records blue's only
    import shutil

    shutil.rmtree(out / "450nm")
    (out / "rgb.npy").unlink()
    assert main(["calibrate", "camera", "--colour", "450", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if re.match(r"\d+ nm: ", line)]
    assert said == [f"450 nm: calibrations from {store}:"]
    recorded = json.loads((out / "colour_run.json").read_text())["colour_calibrations"]
    assert [recorded[c]["calibrated"] for c in ("638nm", "520nm", "450nm")] == [True, False, True]
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0                 # every colour done: none said
    assert not [line for line in capsys.readouterr().err.splitlines() if re.match(r"\d+ nm: ", line)]
