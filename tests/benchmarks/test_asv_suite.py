"""The asv suite (benchmarks/asv/suite) imports, and each benchmark's setup and body run at a
tiny size; a name a commit lacks is asv's skip (NotImplementedError in setup). Content only:
asv measures the time."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("optics", "twin", "run", "calibration", "student")


def suite(name: str):
    return importlib.import_module(f"suite.{name}")


def test_the_configuration_points_asv_at_this_repository_and_suite():
    text = (ROOT / "benchmarks" / "asv" / "asv.conf.json").read_text()
    conf = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))
    assert conf["repo"] == "../.." and conf["benchmark_dir"] == "suite"
    ignored = (ROOT / "benchmarks" / "asv" / ".gitignore").read_text().split()
    assert {"/env/", "/results/", "/html/"} <= set(ignored)


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports_and_names_its_benchmarks(name):
    module = suite(name)
    names = [f"{cls}.{attr}" for cls, obj in vars(module).items() if isinstance(obj, type)
             for attr in vars(obj) if attr.startswith(("time_", "track_"))]
    assert names


def test_a_name_the_commit_lacks_is_a_skip():
    from suite._common import need

    with pytest.raises(NotImplementedError):
        need("optgen.simulators.optics", "no_such_function")
    with pytest.raises(NotImplementedError):
        need("optgen.no_such_module")
    propagate, = need("optgen.simulators.optics", "propagate")
    assert callable(propagate)


def test_the_propagation_step_at_64():
    bench = suite("optics").PropagationStep()
    bench.setup(64)
    out = bench.step()
    assert out.shape == (64, 64) and out.dtype == np.complex64
    bench.time_propagate(64)


def test_the_twin_frame_at_400_the_least_the_embedded_bench_takes():
    bench = suite("twin").TwinFrame()
    bench.setup(400)
    try:
        frame = bench.frame()
        assert frame.dtype == np.uint16 and frame.ndim == 2 and frame.max() > 0
        bench.time_twin_frame(400)
    finally:
        bench.teardown(400)


def test_a_short_run_at_400_stores_its_frames_and_tracks_its_rate(monkeypatch):
    module = suite("run")
    monkeypatch.setattr(module, "FRAMES", 3)
    bench = module.RunRate()
    bench.setup(400)
    try:
        assert bench.track_run_rate(400) > 0
        bench.time_run_20_frames(400)
        runs = sorted(p.name for p in bench.folder.iterdir())
        assert runs == ["run-0", "run-1", "run-2", "run-3"] and all((bench.folder / r / "run.h5").is_file() for r in runs)
    finally:
        bench.teardown(400)
    assert not bench.folder.exists()


def test_calibrate_all_sets_up_the_small_twin_with_a_fresh_store():
    bench = suite("calibration").CalibrateAll()
    bench.setup()
    try:
        assert bench.bench.camera.capture().ndim == 2
        assert not any(bench.store.glob("**/*.json"))
    finally:
        bench.teardown()


def test_the_student_step_at_a_tiny_grid_gives_a_finite_loss():
    pytest.importorskip("torch")
    bench = suite("student").StudentStep()
    bench.batch = 2
    bench.setup(400)
    try:
        assert np.isfinite(bench.step())
        bench.time_student_step(400)
    finally:
        bench.teardown(400)


@pytest.mark.parametrize("name", MODULES)
def test_a_commit_without_the_names_skips_and_tears_down_cleanly(name, monkeypatch):
    module = suite(name)

    def lacking(*args, **kwargs):
        raise NotImplementedError("this commit lacks it")

    for helper in ("need", "figures"):
        if hasattr(module, helper):
            monkeypatch.setattr(module, helper, lacking)
    for cls in [obj for obj in vars(module).values() if isinstance(obj, type) and hasattr(obj, "setup")]:
        params = list(getattr(cls, "params", [])[:1])                # one parameter each: the size
        bench = cls()
        with pytest.raises(NotImplementedError):
            bench.setup(*params)
        getattr(bench, "teardown", lambda *_: None)(*params)        # asv tears down after a skip too
