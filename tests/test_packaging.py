"""One import package, optgen: the four top-level folders install as its sub-packages, every
sub-package is listed for the wheel, and no code imports them by their folder names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import optgen

ROOT = Path(__file__).parents[1]
FOLDERS = ("drivers", "calibration", "lab", "simulators")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed_for_the_wheel_and_nothing_else():
    setuptools = pyproject()["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    expected = {"optgen"}
    for folder in FOLDERS:
        assert mapping[f"optgen.{folder}"] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            package = init.parent.relative_to(ROOT)
            if package.parts[:2] == ("lab", "optgen"):
                continue                        # the optgen package's own face, mapped on its own
            expected.add("optgen." + ".".join(package.parts))
    assert set(setuptools["packages"]) == expected
    assert mapping["optgen"] == "lab/optgen"


def test_no_module_imports_a_folder_by_its_bare_name():
    bare = re.compile(r"\b(from|import)\s+(%s)[.\s]" % "|".join(FOLDERS))     # also in code run as a string
    offenders = [str(p.relative_to(ROOT)) for folder in (*FOLDERS, "tests", "benchmarks")
                 for p in (ROOT / folder).rglob("*.py") if bare.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_package_says_its_version_and_its_api():
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", optgen.__version__)
    for name in optgen.__all__:
        assert getattr(optgen, name) is not None
