"""Protocol twins: simulated lasers that answer the real byte protocol, for the real drivers.

- :class:`ObisTwin`, :class:`CoboltTwin`, :class:`IBeamSmartTwin` (TOPTICA iBeam smart) and
  :class:`LuxxTwin` (Omicron LuxX / LuxX+) listen on a pseudo-terminal (``twin.port``);
- :data:`TABLE_TWINS` names the twin of each shipped laser command table; each is built as
  ``TABLE_TWINS[name](world, max_power_w=..., wavelength_nm=...)``;
- ``ldc.yaml`` is a pyvisa-sim description of a SCPI laser-diode controller
  (:func:`ldc_visa_library`, :data:`LDC_RESOURCE`).

Nothing is opened at import; each twin starts its pty and thread when it is created.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from optgen.simulators.protocol._pty import FAULT_KINDS, PtySerialTwin
from optgen.simulators.protocol.cobolt import CoboltTwin
from optgen.simulators.protocol.ibeam_smart import IBeamSmartTwin
from optgen.simulators.protocol.obis import ObisTwin
from optgen.simulators.protocol.omicron_luxx import LuxxTwin

__all__ = ["CoboltTwin", "FAULT_KINDS", "IBeamSmartTwin", "LDC_RESOURCE", "LuxxTwin", "ObisTwin", "PtySerialTwin",
           "TABLE_TWINS", "ldc_visa_library"]

LDC_RESOURCE = "USB0::0x1313::0x804F::M00000001::INSTR"

#: the protocol twin of each shipped command table, by the table's name
TABLE_TWINS: dict[str, type[PtySerialTwin]] = {"toptica-ibeam-smart": IBeamSmartTwin, "omicron-luxx": LuxxTwin}


def ldc_visa_library(directory: str | os.PathLike | None = None) -> str:
    """The pyvisa library string (``'<path>/ldc.yaml@sim'``) of the controller twin.

    pyvisa-sim keeps one device state per YAML path for the life of the process; pass a
    ``directory`` to get a fresh copy (and so a fresh device) there.
    """
    source = files(__package__).joinpath("ldc.yaml")
    if directory is None and isinstance(source, Path):
        return f"{source}@sim"
    target = Path(directory if directory is not None else _private_dir()) / "ldc.yaml"
    target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return f"{target}@sim"


def _private_dir() -> Path:
    import tempfile
    return Path(tempfile.mkdtemp(prefix="optgen-ldc-"))
