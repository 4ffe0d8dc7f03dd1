"""benchmarks/_release.py: another commit's source laid out as an import tree, without installing,
and a script run there whose figures come back; benchmarks/foundation.py's comparison."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import _release
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOW = ("import json, optgen, optgen.simulators.optics as m; "
        "print(json.dumps({'optics': m.__file__, 'optgen': str(__import__('pathlib').Path(optgen.__file__).parent)}))")
needs_git = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                               reason="needs git and a clone of the repository")


def test_the_last_release_is_named_by_version_and_full_commit():
    release = _release.last_release()
    assert re.fullmatch(r"\d+\.\d+\.\d+", release.version)
    assert re.fullmatch(r"[0-9a-f]{40}", release.commit)


def test_an_import_tree_maps_the_packages_as_pyproject_says(tmp_path):
    src = tmp_path / "src"
    (src / "lab" / "optgen").mkdir(parents=True)
    (src / "lab" / "optgen" / "__init__.py").write_text("FACE = 'face'\n")
    (src / "lab" / "__init__.py").write_text("")
    (src / "simulators").mkdir()
    (src / "simulators" / "__init__.py").write_text("")
    (src / "simulators" / "optics.py").write_text("WHERE = 'materialised'\n")
    (src / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.setuptools.package-dir]
        optgen = "lab/optgen"
        "optgen.lab" = "lab"
        "optgen.simulators" = "simulators"
    """))
    tree = _release.build_import_tree(src, tmp_path / "tree")
    code = ("import json, optgen, optgen.simulators.optics as m; "
            "print(json.dumps({'face': optgen.FACE, 'where': m.WHERE}))")
    # the tree shadows the installed optgen
    assert _release.run_json(tree, [sys.executable, "-c", code]) == {"face": "face", "where": "materialised"}


def test_a_tree_without_a_package_layout_is_refused(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(_release.ReleaseUnavailable, match="package-dir"):
        _release.build_import_tree(tmp_path / "src", tmp_path / "tree")


@needs_git
def test_the_tree_of_head_imports_optics_from_the_materialised_source_and_is_removed_afterwards():
    with _release.materialised("HEAD") as tree:
        found = _release.run_json(tree, [sys.executable, "-c", SHOW])
        optics = Path(found["optics"])
        assert optics.is_relative_to(tree) and not optics.is_relative_to(ROOT)
        committed = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:simulators/optics.py"],
                                   capture_output=True, text=True, check=True).stdout
        assert optics.read_text() == committed
        assert (tree / "optgen" / "lab" / "bench").is_dir()
    assert not tree.exists()


@needs_git
def test_figures_from_the_checkout_instead_of_the_tree_are_refused():
    wrong = "import json; print(json.dumps({'optgen': %r}))" % str(ROOT / "lab" / "optgen")
    with _release.materialised("HEAD") as tree, pytest.raises(_release.ReleaseUnavailable, match="not from"):
        _release.run_json(tree, [sys.executable, "-c", wrong])


@needs_git
def test_a_worker_on_the_tree_of_head_answers_figure_by_figure_from_the_tree():
    argv = [sys.executable, str(ROOT / "benchmarks" / "foundation.py"), "--serve"]
    with _release.materialised("HEAD") as tree, _release.Worker(argv, tree) as worker:
        reply = worker.ask({"figure": "propagation_ms", "repeats": 2, "frames": 2})
        assert len(reply["samples"]) == 2 and min(reply["samples"]) > 0
        assert Path(reply["optgen"]).is_relative_to(tree)
        assert "KeyError" in worker.ask({"figure": "no_such_figure", "repeats": 1, "frames": 2})["error"]
    assert not tree.exists()


def test_a_worker_that_dies_or_answers_from_elsewhere_says_so(tmp_path):
    echo_from = ("import json, sys\n"
                 "for line in sys.stdin:\n"
                 "    print(json.dumps({'value': 1.0, 'optgen': %r}), flush=True)\n")
    with _release.Worker([sys.executable, "-c", echo_from % str(tmp_path / "tree" / "optgen")],
                         tmp_path / "tree") as worker:
        assert worker.ask({"figure": "x"})["value"] == 1.0
    with _release.Worker([sys.executable, "-c", echo_from % str(ROOT)], tmp_path / "tree") as worker, \
            pytest.raises(_release.ReleaseUnavailable, match="not from"):
        worker.ask({"figure": "x"})
    dying = "import sys; sys.stderr.write('broken import here\\n'); sys.exit(1)"
    with _release.Worker([sys.executable, "-c", dying], tmp_path) as worker, \
            pytest.raises(_release.ReleaseUnavailable, match="broken import here"):
        worker.ask({"figure": "x"}, timeout=60)


def test_a_failing_script_and_an_unknown_commit_say_so(tmp_path):
    with pytest.raises(_release.ReleaseUnavailable, match="exited 3"):
        _release.run_json(tmp_path, [sys.executable, "-c", "import sys; sys.exit(3)"])
    if shutil.which("git") is not None and (ROOT / ".git").exists():
        with pytest.raises(_release.ReleaseUnavailable):
            _release.resolve("no-such-revision-anywhere")


def test_the_comparison_prints_both_figures_the_ratio_and_which_way_it_went(capsys):
    import foundation

    today = {"propagation_ms": 10.0, "frame_800_ms": 130.0, "frame_1080x1920_ms": 100.0, "run_fps": 5.0}
    then = {"propagation_ms": 10.2, "frame_800_ms": 100.0, "frame_1080x1920_ms": 130.0}
    foundation.print_comparison(today, then, "the last release 0.1.0")
    out = capsys.readouterr().out
    assert "today against the last release 0.1.0" in out
    lines = {line.split("(")[0].strip(): line for line in out.splitlines()[2:]}
    assert "0.98 (about the same)" in lines["propagation step 1080x1920 complex64"]
    assert "1.30 (WORSE)" in lines["twin frame, grid 800x800"]
    assert "0.77 (better)" in lines["twin frame, grid 1080x1920"]
    assert "not measured" in lines["optgen run on the twin"]
