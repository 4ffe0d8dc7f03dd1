"""A [panel] bench: both SLMs are regions of one panel. The bench file is checked before any device
opens; the twin models one panel (one upload, one refresh edge, one liquid crystal) and makes images."""

from __future__ import annotations

import numpy as np
import pytest

from optgen.lab.bench.examples import edit_bench_text, one_panel_bench_text
from optgen.lab.bench.parse import default_bench_text, parse_bench
from optgen.lab.bench.reader import BenchFileError


def small_one_panel_text() -> str:
    from tests.conftest import small_bench_text

    return one_panel_bench_text(small_bench_text({("encoding_slm", "resolution"): "[640, 256]"}))


def test_the_one_panel_bench_splits_the_panel_into_two_regions():
    cfg = parse_bench(one_panel_bench_text(), "b.toml")
    assert cfg.panel.resolution == (1920, 1080)
    assert (cfg.panel.encoding_region, cfg.panel.decoding_region) == ((0, 0, 960, 1080), (960, 0, 960, 1080))
    assert cfg.encoding_slm.resolution == cfg.decoding_slm.resolution == (960, 1080)
    assert cfg.twin.decoding.response_max_rad == cfg.twin.encoding.response_max_rad      # one liquid crystal
    assert cfg.twin.decoding.shift_m != (0.0, 0.0)                                      # its own placement
    assert parse_bench(default_bench_text(), "b.toml").panel is None


def one_panel(changes: dict) -> str:
    return edit_bench_text(one_panel_bench_text(), changes)


@pytest.mark.parametrize("changes, match", [
    ({("panel", "decoding_region"): "[900, 0, 960, 1080]"},
     r"\[panel\] encoding region \[0, 0, 960, 1080\] and decoding region \[900, 0, 960, 1080\] overlap"),
    ({("panel", "decoding_region"): "[1000, 0, 960, 1080]"},
     r"\[panel\] decoding region \[1000, 0, 960, 1080\] .* leaves the 1920 x 1080 panel"),
    ({("panel", "decoding_region"): "[960, 0, 300, 300]", ("decoding_slm", "resolution"): "[300, 300]"},
     r"\[decoding_slm\] resolution = \[300, 300\]: expected at least 400 pixels each way to show the decoder"),
    ({("decoding_slm", "resolution"): "[900, 1080]"},
     r"\[decoding_slm\] resolution = \[900, 1080\]: expected the size of its panel region \[960, 1080\]"),
    ({("panel", "encoding_region"): "[0, 0, 960]"}, r"\[panel\] encoding_region = \[0, 0, 960\]: expected a region"),
    ({("panel", "encoding_region"): "[-1, 0, 960, 1080]"}, r"encoding_region = \[-1, 0, 960, 1080\]: expected"),
    ({("decoding_slm", "refresh_hz"): "120.0"}, r"\[decoding_slm\] refresh_hz = 120.0: expected the panel's 60.0"),
    ({("decoding_slm", "settle_ms"): "5.0"}, r"\[decoding_slm\] settle_ms = 5: expected the panel's 10"),
    ({("decoding_slm", "lut"): '"linear"'}, r"\[decoding_slm\] lut = 'linear': expected the panel's 'calibrated'"),
    ({("twin.decoding_slm", "response_max_rad"): "6.40"},
     r"\[twin.decoding_slm\] response_max_rad = 6.4: expected the encoding region's 6.55 \(one panel: one liquid"),
])
def test_a_panel_that_cannot_be_is_refused_before_any_device_opens(changes, match):
    with pytest.raises(BenchFileError, match=match):
        parse_bench(one_panel(changes), "b.toml")


def test_the_decoding_region_takes_no_connection_of_its_own():
    text = one_panel_bench_text().replace("\n[decoding_slm.connection]\n", '\n[decoding_slm.connection]\ndisplay = 2\n')
    text = edit_bench_text(text, {("encoding_slm", "driver"): '"screen"', ("decoding_slm", "driver"): '"screen"'})
    with pytest.raises(BenchFileError, match=r"\[decoding_slm.connection\] has keys \['display'\]: expected none "
                                             r"with \[panel\]"):
        parse_bench(text, "b.toml")


def test_dump_one_panel_writes_a_bench_that_checks(tmp_path, capsys):
    from optgen.lab.cli import main

    assert main(["config", "--dump", str(tmp_path / "one.toml"), "--one-panel", "--realistic"]) == 0
    capsys.readouterr()
    assert main(["config", "--check", str(tmp_path / "one.toml")]) == 0
    assert ("one panel: 1920 x 1080, encoding region [0, 0, 960, 1080], decoding region [960, 0, 960, 1080]"
            in capsys.readouterr().out)
    text = (tmp_path / "one.toml").read_text()
    assert "[panel]" in text and "unmodulated_fraction" in text


def test_on_the_twin_the_decoder_never_moves_while_seeds_change():
    """Every seed upload sends the whole panel, the decoder region with it: its liquid crystal must
    not move (no flicker), and both regions are latched at one refresh edge."""
    from optgen.lab.bench.assemble import build_bench

    with build_bench(parse_bench(small_one_panel_text(), "one panel")) as bench:
        world, clock = bench.world, bench.clock
        bench.decoding_slm.set_phase(np.full(bench.decoding_slm.shape, 40, dtype=np.uint8))
        clock.sleep(0.2)
        settled = world.retardance("decoding_slm", clock.now()).copy()
        for level in (0, 90, 200, 30):
            bench.encoding_slm.set_phase(np.full(bench.encoding_slm.shape, level, dtype=np.uint8))
            for dt in (0.0, 0.01, 0.03, 0.06):
                assert np.array_equal(world.retardance("decoding_slm", clock.now() + dt), settled)
        assert bench.encoding_slm.panel.uploads == 5
        bench.decoding_slm.set_phase(np.full(bench.decoding_slm.shape, 41, dtype=np.uint8))
        encoding_edge = world._slms["encoding_slm"].t_edge
        bench.encoding_slm.set_phase(np.full(bench.encoding_slm.shape, 77, dtype=np.uint8))
        assert world._slms["encoding_slm"].t_edge > encoding_edge
        bench.decoding_slm.set_phase(np.full(bench.decoding_slm.shape, 42, dtype=np.uint8))
        bench.encoding_slm.set_phase(np.full(bench.encoding_slm.shape, 78, dtype=np.uint8))
        # a panel upload that changes both regions latches both at one edge
        both = np.zeros(bench.encoding_slm.panel.display.shape, dtype=np.uint8)
        both[:, :320], both[:, 320:] = 5, 6
        bench.encoding_slm.panel.show("encoding_slm", both[:, :320])
        bench.decoding_slm.set_phase(np.full(bench.decoding_slm.shape, 6, dtype=np.uint8))
        assert world._slms["encoding_slm"].t_edge <= world._slms["decoding_slm"].t_edge


def test_a_run_on_the_one_panel_twin_makes_the_same_images_as_on_two_panels(tmp_path):
    """The same light path on one panel or two: the run stores frames from each seed that match."""
    from optgen.lab.bench.assemble import build_bench
    from optgen.lab.run.generate import run_generation
    from tests.conftest import small_bench_text
    from tests.lab.test_run import decoder_for, seeds_for

    one = parse_bench(small_one_panel_text(), "one panel")
    two = parse_bench(small_bench_text({("encoding_slm", "resolution"): "[320, 256]"}), "two panels")
    frames = {}
    for name, cfg in (("one", one), ("two", two)):
        with build_bench(cfg) as bench:
            phase, decoder_id = decoder_for(cfg)
            result = run_generation(bench, seeds_for(cfg), phase, decoder_id, tmp_path / name, 4)
            assert result.status == "complete" and bench.world.laser_emission is False
        import h5py

        with h5py.File(tmp_path / name / "run.h5", "r") as f:
            frames[name] = f["frames"][:].astype(float)
    r = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(frames["one"], frames["two"])]
    assert min(r) > 0.9, r


def test_on_a_real_bench_the_panel_device_is_opened_once_at_the_panel_resolution():
    from optgen.drivers.identity import DeviceIdentity
    from optgen.drivers.slm import PhaseSLM
    from optgen.lab.bench.one_panel import real_panel_slms

    class Panel(PhaseSLM):
        sent: list = []
        closed = 0

        @property
        def identity(self):
            return DeviceIdentity("Acme", "LCOS-1080", "P7")

        def _set_phase_hw(self, display):
            self.sent.append(display.copy())

        def close(self):
            type(self).closed += 1

    opened = []

    def open_slm(config, slm_cfg, wav_um):
        from optgen.drivers.identity import SLMTiming

        opened.append((slm_cfg.key, slm_cfg.resolution))
        return Panel(slm_cfg.resolution, timing=SLMTiming(slm_cfg.refresh_hz, slm_cfg.latency_frames,
                                                          slm_cfg.settle_s), name="panel")

    cfg = parse_bench(one_panel_bench_text(), "b.toml")
    slms = real_panel_slms(cfg, open_slm, 0.52)
    assert opened == [("encoding_slm", (1920, 1080))]
    slms["decoding_slm"].set_phase(np.full((1080, 960), 3, dtype=np.uint8))
    slms["encoding_slm"].set_phase(np.full((1080, 960), 250, dtype=np.uint8))
    assert [s.shape for s in Panel.sent] == [(1080, 1920), (1080, 1920)]
    assert (Panel.sent[-1][:, :960] == 250).all() and (Panel.sent[-1][:, 960:] == 3).all()
    assert "region [960, 0, 960, 1080]" in str(slms["decoding_slm"].identity)
    for slm in slms.values():
        slm.close()
    assert Panel.closed == 1


def test_one_panel_runs_with_one_lut_for_both_regions_the_mean_of_both_measurements(tmp_path):
    """One liquid crystal, one LUT: each region's response is measured (calibrate lut), and a run
    uses their mean on both regions; it is as close to the planted response as either measurement."""
    from optgen import open_bench
    from optgen.calibration.compare import response_error_rad
    from optgen.lab.bench.calibrations import load_bench_calibrations

    cfg = parse_bench(small_one_panel_text(), "one panel")
    store = tmp_path / "store"
    with open_bench(cfg, calibrations=store) as bench:
        bench.calibrate("lut")
        planted = bench.devices.truths.response_rad["encoding_slm"]
    with open_bench(cfg, calibrations=store) as bench:
        used = {key: lut.id for key, lut in bench.devices.luts.items()}
    cals = load_bench_calibrations(cfg, store)
    enc, dec = cals.luts["encoding_slm"], cals.luts["decoding_slm"]
    assert enc is dec and "+" in enc.id
    measured = [np.asarray(cals.lut_records[k].results["phase_rad"], dtype=float) for k in ("encoding_slm",
                                                                                             "decoding_slm")]
    assert np.allclose(enc.phase_rad, (measured[0] + measured[1]) / 2)
    errors = [response_error_rad(m, planted) for m in measured]
    assert response_error_rad(enc.phase_rad, planted) <= max(errors) + 1e-9
    assert used == {"encoding_slm": enc.id, "decoding_slm": enc.id}

