"""Vendor-SDK phase SLMs through slmsuite's drivers: Meadowlark, Holoeye, Santec, Hamamatsu.

Same composition as ``ScreenSLM``: ``VendorSLM`` is optgen's ``PhaseSLM`` (validation, LUT,
identity, timing) and owns the slmsuite driver (``self.device``), which only receives integer
gray levels through its ``_set_phase_hw``. The vendor is chosen by name; a missing SDK is an
``SDKMissingError`` that names what to install, raised before any device is touched.

As of slmsuite 0.5.0: Meadowlark, Santec and Hamamatsu load Windows DLLs (Meadowlark's driver
calls ``ctypes.windll`` even for its Linux SDK); Holoeye needs the HEDS 4.0 Python SDK on the
path (``HEDS_4_0_PYTHON``). On other platforms these name the SDK and say so.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import DeviceIdentity, SLMTiming
from optgen.drivers.slm import PhaseSLM

__all__ = ["SDKMissingError", "VENDORS", "VendorSLM"]


class SDKMissingError(DeviceError, ImportError):
    """The vendor SDK (library, DLL or Python module) an SLM driver needs is not installed."""


@dataclass(frozen=True)
class Vendor:
    """How slmsuite drives one vendor's SLMs, and what it needs installed."""

    company: str
    module: str            # slmsuite module
    cls: str               # class in it
    sdk: str               # what to install, for the error message
    sentinel: str | None   # module attribute that slmsuite sets to None when the SDK failed to load
    windows_only: bool


VENDORS: dict[str, Vendor] = {
    "meadowlark": Vendor("Meadowlark Optics", "slmsuite.hardware.slms.meadowlark", "Meadowlark",
                         "the Meadowlark Blink SDK (Blink_C_wrapper; default folder "
                         r"C:\Program Files\Meadowlark Optics, or pass sdk_path)", None, True),
    "holoeye": Vendor("HOLOEYE Photonics", "slmsuite.hardware.slms.holoeye", "Holoeye",
                      "the HOLOEYE SLM Display SDK 4.0 for Python (module HEDS; set HEDS_4_0_PYTHON "
                      "to its installation folder)", "HEDS", False),
    "santec": Vendor("Santec", "slmsuite.hardware.slms.santec", "Santec",
                     "Santec's SLMFunc.dll and FTD3XX.dll (from the SLM's USB stick, in the working folder)",
                     "slm_funcs", True),
    "hamamatsu": Vendor("Hamamatsu Photonics", "slmsuite.hardware.slms.hamamatsu", "Hamamatsu",
                        "Hamamatsu's hpkSLMdaLV.dll and hpkSLMda.dll (LCOS-SLM SDK, in the working folder)",
                        "Lcoslib", True),
}


def vendor_class(vendor: str, device: str = "slm"):
    """The slmsuite class for ``vendor``, or SDKMissingError / DeviceError saying why not."""
    spec = VENDORS.get(vendor)
    if spec is None:
        raise DeviceError(device, f"unknown SLM vendor {vendor!r}; known: {sorted(VENDORS)}")
    if spec.windows_only and sys.platform != "win32":
        raise SDKMissingError(device, f"{vendor} SLMs need {spec.sdk}, which slmsuite loads on Windows only "
                                      f"(this is {sys.platform})")
    path, sys_path = os.environ.get("PATH"), list(sys.path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # slmsuite warns at import when the SDK is missing
            module = importlib.import_module(spec.module)
    except Exception as error:
        raise SDKMissingError(device, f"{vendor} SLMs need {spec.sdk}; importing {spec.module} failed: "
                                      f"{error}") from error
    finally:
        if path is not None:                      # slmsuite edits PATH to look for DLLs
            os.environ["PATH"] = path
    if spec.sentinel is not None and getattr(module, spec.sentinel, None) is None:
        sys.path[:] = sys_path                    # holoeye guessed SDK folders onto sys.path
        raise SDKMissingError(device, f"{vendor} SLMs need {spec.sdk}: it is not installed")
    return getattr(module, spec.cls)


def _serial(device) -> str:
    for attribute in ("serial_number", "product_code_id", "name"):
        value = getattr(device, attribute, None)
        if value not in (None, ""):
            return str(value)
    return ""


class VendorSLM(PhaseSLM):
    """A vendor-SDK SLM chosen by ``vendor`` ("meadowlark", "holoeye", "santec", "hamamatsu").

    ``sdk_options`` go to the slmsuite driver (e.g. ``slm_number``, ``sdk_path``, ``lut_path``
    for Meadowlark; ``preselect`` for Holoeye; ``serial_number`` for Hamamatsu). Resolution,
    bit depth and pitch come from the SDK where it reports them; ``resolution``/``bitdepth``/
    ``pitch_um`` from the bench file are passed where the driver takes them and checked after.
    """

    def __init__(self, vendor: str, *, timing: SLMTiming, wav_um: float = 0.52,
                 resolution: tuple[int, int] | None = None, bitdepth: int | None = None,
                 pitch_um: float | None = None, name: str = "slm", serial: str | None = None,
                 **sdk_options):
        cls = vendor_class(vendor, name)
        self.vendor = vendor
        accepted = inspect.signature(cls.__init__).parameters
        wanted = {"resolution": resolution, "bitdepth": bitdepth,
                  "pitch_um": None if pitch_um is None else (pitch_um, pitch_um)}
        options = {**{k: v for k, v in wanted.items() if v is not None and k in accepted}, **sdk_options}
        try:
            self.device = cls(wav_um=wav_um, gpu=False, **options)
        except Exception as error:
            raise DeviceError(name, f"{vendor} SLM did not open ({VENDORS[vendor].sdk}): {error}") from error
        try:
            dev = self.device
            size = (int(dev.shape[1]), int(dev.shape[0]))
            checks = [("resolution", resolution and tuple(int(v) for v in resolution), size),
                      ("bitdepth", bitdepth, int(dev.bitdepth)),
                      ("pitch_um", pitch_um, float(dev.pitch_um[0]))]
            for key, expected, actual in checks:
                if expected is not None and not np.isclose(np.asarray(expected, float), np.asarray(actual, float)).all():
                    raise DeviceError(name, f"the bench file says {key} = {expected}, the {vendor} SDK reports {actual}")
            self._identity = DeviceIdentity(VENDORS[vendor].company, type(dev).__name__,
                                            serial=serial if serial is not None else _serial(dev))
            super().__init__(size, timing=timing, bitdepth=int(dev.bitdepth), pitch_um=float(dev.pitch_um[0]),
                             wav_um=wav_um, name=name)
            self.set_phase(None)
        except BaseException:
            self.close()
            raise

    @property
    def identity(self) -> DeviceIdentity:
        return self._identity

    @staticmethod
    def info(verbose: bool = True) -> list:
        """The vendor names this driver knows."""
        return sorted(VENDORS)

    def describe(self) -> dict:
        return {**super().describe(), "driver": self.vendor}

    def close(self) -> None:
        """Close the vendor device. Safe to call twice."""
        device, self.device = getattr(self, "device", None), None
        if device is not None:
            device.close()

    def _set_phase_hw(self, display: np.ndarray) -> None:
        if self.device is None:
            raise DeviceError(self.name, "SLM is closed")
        self.device._set_phase_hw(display)
