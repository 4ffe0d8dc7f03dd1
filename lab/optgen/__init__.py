"""optgen: run an optical generative model bench (Chen, Ozcan et al., Nature 2025), real or simulated.

This folder is installed as the ``optgen`` package itself (pyproject.toml maps it; decision 0011):
the drivers, calibrations, lab and simulators live in the project's four top-level folders and
install as ``optgen.drivers``, ``optgen.calibration``, ``optgen.lab`` and ``optgen.simulators``.

The public API is below; names are imported when first used, so ``import optgen.drivers.errors``
stays light.
"""

from __future__ import annotations

from importlib import import_module

# public name -> the module that defines it
_API = {
    "load_bench": "optgen.lab.api", "load_model": "optgen.lab.api", "open_bench": "optgen.lab.api",
    "open_run": "optgen.lab.api", "Bench": "optgen.lab.api", "Run": "optgen.lab.api",
    "BenchClosedError": "optgen.lab.api",
    "OptgenError": "optgen.drivers.errors", "DeviceError": "optgen.drivers.errors",
    "LaserSafetyError": "optgen.drivers.errors",
    "BenchFileError": "optgen.lab.bench.reader", "ModelFileError": "optgen.lab.model.errors",
    "CalibrationFileError": "optgen.calibration.record", "RunFileError": "optgen.lab.runfile.layout",
    "RunFolderError": "optgen.lab.run.folder",
}

__all__ = sorted(_API) + ["__version__"]


def _version() -> str:
    """The installed version. Read on first use: importlib.metadata takes a tenth of a second to
    import, and a Ctrl-C while ``optgen`` itself loads would end in a traceback."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("optgen")
    except PackageNotFoundError:     # pragma: no cover - running from a tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'optgen' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
