"""The optgen command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from optgen.lab.bench.parse import default_bench_text
from optgen.lab.cli import main
from tests.conftest import small_bench_text


def test_config_dump_writes_the_default_bench_to_stdout(capsys):
    assert main(["config", "--dump"]) == 0
    assert capsys.readouterr().out == default_bench_text()


def test_config_dump_to_a_file_never_overwrites(tmp_path, capsys):
    target = tmp_path / "bench.toml"
    assert main(["config", "--dump", str(target)]) == 0
    assert target.read_text() == default_bench_text()
    target.write_text("mine")
    assert main(["config", "--dump", str(target)]) == 2                  # a refusal, like every user error
    assert target.read_text() == "mine"
    assert "not overwriting" in capsys.readouterr().err


def test_config_check_reports_a_bad_bench_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(default_bench_text().replace('driver = "simulated"', 'driver = "acme"', 1))
    assert main(["config", "--check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "[laser] driver = 'acme'" in err


@pytest.mark.parametrize("command", [[], ["run"], ["config"]])
def test_help_is_available_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: optgen" in capsys.readouterr().out


def test_run_on_a_bench_file_writes_a_run_folder(tmp_path, capsys):
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text())
    out = tmp_path / "run"
    assert main(["run", "--count", "3", "--out", str(out), "--bench", str(bench), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_written"] == 3
    assert "complete: 3 of 3 frames stored" in capsys.readouterr().out


def test_run_refuses_bad_count_and_existing_folder(tmp_path, capsys):
    assert main(["run", "--count", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--count 0" in capsys.readouterr().err
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("keep")
    assert main(["run", "--count", "2", "--out", str(tmp_path / "b")]) == 2
    assert "already holds files" in capsys.readouterr().err


def test_run_with_a_seed_file_of_the_wrong_shape_fails_before_any_device(tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "seeds.npy", np.zeros((4, 8, 8), np.float32))
    bench = tmp_path / "bench.toml"
    text = small_bench_text({("run", "seed_source"): '"file"', ("run", "seed_file"): '"seeds.npy"'})
    bench.write_text(text)
    assert main(["run", "--count", "2", "--out", str(tmp_path / "r"), "--bench", str(bench)]) == 2
    assert "expected (N, 16, 16)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_sigterm_stops_the_run_cleanly_with_the_laser_verified_off(tmp_path):
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text({("run", "timing"): '"wall"'}))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "optgen.lab.cli", "run", "--count", "2000", "--out", str(out),
                             "--bench", str(bench)], env=env, cwd=Path(__file__).parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stored = threading.Event()          # the progress bar (stderr) has counted a few stored frames

    def watch() -> None:
        seen = b""
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            seen = (seen + chunk)[-4096:]
            counts = re.findall(rb"(\d+)/2000", seen)
            if counts and int(counts[-1]) >= 3:
                stored.set()

    threading.Thread(target=watch, daemon=True).start()
    assert stored.wait(timeout=120), "the run stored no frames"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped" and "terminated" in summary["stop_reason"]
    assert summary["laser_verified_off"] is True
    assert 0 < summary["frames_written"] < 2000


def test_run_with_a_model_file_uses_its_encoder_and_decoder(tmp_path, capsys):
    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.model import OpticalGeometry, save_model
    from tests.lab.test_model import tiny_model

    text = small_bench_text({("run", "seed_source"): '"model"', ("run", "decoder_phase"): '"model"',
                             ("run", "model"): '"tiny.npz"'})
    geom = OpticalGeometry.from_bench(parse_bench(text, "t"))
    save_model(tmp_path / "tiny.npz", tiny_model(geom))
    (tmp_path / "bench.toml").write_text(text)
    out = tmp_path / "run"
    assert main(["run", "--count", "2", "--out", str(out), "--bench", str(tmp_path / "bench.toml"),
                 "--no-progress"]) == 0
    import h5py

    with h5py.File(out / "run.h5", "r") as f:
        assert f.attrs["decoder_phase"].startswith("model:tiny:")
        assert json.loads(f.attrs["seed_source"])["name"] == "model:tiny"


def test_run_refuses_a_model_trained_for_another_geometry(tmp_path, capsys):
    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.model import OpticalGeometry, save_model
    from tests.lab.test_model import tiny_model

    text = small_bench_text({("run", "seed_source"): '"model"', ("run", "model"): '"tiny.npz"'})
    geom = OpticalGeometry.from_bench(parse_bench(text, "t"))
    save_model(tmp_path / "tiny.npz", tiny_model(OpticalGeometry(**{**geom.as_dict(), "d2_mm": 96.4})))
    (tmp_path / "bench.toml").write_text(text)
    assert main(["run", "--count", "2", "--out", str(tmp_path / "r"), "--bench", str(tmp_path / "bench.toml")]) == 2
    assert "d2_mm: model 96.4, bench 30" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_evaluate_scores_a_run_and_agrees_with_the_twin(tmp_path, capsys):
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text())
    out = tmp_path / "run"
    assert main(["run", "--count", "4", "--out", str(out), "--bench", str(bench), "--no-progress"]) == 0
    assert main(["evaluate", str(out)]) == 0
    evaluation = json.loads((out / "summary.json").read_text())["evaluation"]
    assert evaluation["generated"]["count"] == 4
    assert 1.0 <= evaluation["generated"]["inception_score"] <= 10.0
    agreement = evaluation["twin_agreement"]
    assert len(agreement["pearson_r"]) == 4
    assert agreement["min"] > 0.9  # same twin, only the noise differs
    assert "Pearson r mean" in capsys.readouterr().out


def test_evaluate_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_devices_identifies_every_device_of_the_bench(tmp_path, capsys):
    bench = tmp_path / "bench.toml"
    bench.write_text(small_bench_text())
    assert main(["devices", "--bench", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "laser         optgen simulated 520 nm laser" in out and "emission off" in out
    assert "encoding_slm  optgen simulated phase SLM" in out and "LUT linear-nominal" in out
    assert "camera        optgen simulated camera" in out


def test_devices_probe_lists_each_kind_of_attachment(capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)
    assert main(["devices", "--probe"]) == 0
    out = capsys.readouterr().out
    for heading in ("serial ports:", "VISA USB resources (pyvisa-py; no network scan)", "GenTL devices:", "screens:"):
        assert heading in out
    assert "(no DISPLAY)" in out


def test_devices_probe_lists_the_laser_tables_and_the_slmsuite_cameras_this_machine_can_open(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pypylon", None)          # absent, whatever the test machine has
    assert main(["devices", "--probe"]) == 0
    out = capsys.readouterr().out
    assert "  toptica-ibeam-smart: TOPTICA iBeam smart" in out and "  omicron-luxx: Omicron LuxX" in out
    assert "  Basler: SDK missing: pip install pypylon" in out and "  Webcam: SDK installed" in out


def test_a_real_bench_that_cannot_open_a_device_says_which_and_leaves_nothing_on(tmp_path, capsys, monkeypatch):
    pytest.importorskip("serial")
    monkeypatch.delenv("DISPLAY", raising=False)
    text = small_bench_text({("laser", "driver"): '"obis"', ("camera", "driver"): '"genicam"',
                             ("encoding_slm", "driver"): '"screen"', ("decoding_slm", "driver"): '"screen"'})
    bench = tmp_path / "bench.toml"
    text = text.replace("[camera.connection]", '[camera.connection]\ncti = "/opt/no-such-producer.cti"')
    bench.write_text(text.replace("[laser.connection]", '[laser.connection]\nport = "twin"'))
    assert main(["devices", "--bench", str(bench)]) == 2
    err = capsys.readouterr().err
    assert "encoding_slm: no display" in err and "DISPLAY is not set" in err
    from optgen.drivers.laser import open_lasers

    assert open_lasers() == []  # the laser opened first was closed (safe-off verified) before the error


def test_a_simulated_laser_cannot_light_real_devices(tmp_path, capsys):
    text = small_bench_text({("camera", "driver"): '"genicam"', ("encoding_slm", "driver"): '"screen"',
                             ("decoding_slm", "driver"): '"screen"'})
    bench = tmp_path / "bench.toml"
    bench.write_text(text.replace("[camera.connection]", '[camera.connection]\ncti = "/opt/no-such-producer.cti"'))
    assert main(["devices", "--bench", str(bench)]) == 2
    assert "driver 'simulated' can only light the simulated bench" in capsys.readouterr().err


def test_config_dump_realistic_writes_the_bench_that_plants_what_real_benches_get_wrong(tmp_path):
    from optgen.lab.bench.examples import realistic_bench_text
    from optgen.lab.bench.parse import load_bench

    target = tmp_path / "real.toml"
    assert main(["config", "--dump", str(target), "--realistic"]) == 0
    assert target.read_text() == realistic_bench_text()
    twin = load_bench(target).twin
    assert twin.beam == "gaussian" and twin.encoding.unmodulated_fraction > 0 and twin.d1_m is not None


@pytest.mark.parametrize("change, message", [
    ((("geometry", "decoder_px"), "320"), "model 'digits-v7' was trained for another geometry: decoder_px: model 400, "
                                          "bench 320"),
    ((("run", "model"), '"no-such-model.npz"'), "no-such-model.npz: model file not found"),
])
def test_config_check_reads_the_model_and_the_geometry_it_needs(tmp_path, capsys, change, message):
    """config --check also reads what a run reads before any device opens (issue 22): a model for
    another geometry, or no model file, fails the check and nothing says OK."""
    from optgen.lab.bench.examples import edit_bench_text, one_panel_bench_text

    bench = tmp_path / "bench.toml"
    bench.write_text(edit_bench_text(one_panel_bench_text(), {change[0]: change[1]}), encoding="utf-8")
    assert main(["config", "--check", str(bench)]) == 2
    out, err = capsys.readouterr()
    assert message in err and "OK" not in out
