"""``optgen devices``: identify each device of a bench file, or probe what is attached."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["describe_bench", "probe"]


def describe_bench(bench) -> list[str]:
    """One block of lines per device: identity and state, as the devices report them."""
    laser = bench.laser
    lines = [f"laser         {laser.identity}",
             f"              {laser.wavelength_nm:g} nm, setpoint {laser.power_setpoint() * 1e3:.4g} mW, "
             f"emission {'ON' if laser.emission else 'off'}, ceiling {laser.ceiling_w * 1e3:.4g} mW, "
             f"faults: {', '.join(laser.faults()) or 'none'}",
             f"              watchdog: {laser.watchdog_coverage()}"]
    for slm in (bench.encoding_slm, bench.decoding_slm):
        t = slm.timing
        lines += [f"{slm.name:<13} {slm.identity}",
                  f"              {slm.shape[1]}x{slm.shape[0]} px at {slm.pitch_um[0]:g} um, {slm.bitdepth}-bit, "
                  f"{t.refresh_hz:g} Hz, latency {t.latency_frames} frames, settle {t.settle_s * 1e3:g} ms, "
                  f"LUT {bench.luts[slm.name].id}"]
    cam = bench.camera
    lines += [f"camera        {cam.identity}",
              f"              {cam.shape[1]}x{cam.shape[0]} px, {cam.bitdepth}-bit, exposure "
              f"{cam.exposure_s * 1e3:.4g} ms, readout {cam.readout_s * 1e3:.4g} ms"]
    return lines


def _visa_usb_resources() -> list[str]:
    """USB instruments as VISA names. Asks pyvisa-py's USB session directly: its resource manager
    would also scan the network (TCPIP broadcast), which a probe must not do."""
    try:
        from pyvisa_py.sessions import Session
    except ImportError:
        return ["  (pyvisa-py not installed: pip install -e '.[hardware]')"]
    found: list[str] = []
    usb = [cls for (interface, _), cls in Session.iter_valid_session_classes()
           if getattr(interface, "name", str(interface)).upper().startswith("USB")]
    if not usb:
        return ["  (pyvisa-py has no USB support here: pip install pyusb, and libusb from the system)"]
    for session_cls in usb:
        try:
            found += session_cls.list_resources()
        except Exception as exc:  # no permission and the like: say so, keep probing
            return [f"  (could not list: {exc})"]
    return [f"  {r}" for r in found] or ["  none"]


def probe(cti_files: list[Path] | None = None) -> list[str]:
    """What is attached: serial ports (VID:PID), VISA resources, GenTL devices, screens."""
    lines = ["serial ports:"]
    try:
        from serial.tools import list_ports

        ports = list_ports.comports()
        lines += [f"  {p.device}  {p.vid:04x}:{p.pid:04x}  {p.description}" if p.vid is not None
                  else f"  {p.device}  {p.description}" for p in ports] or ["  none"]
    except ImportError:
        lines.append("  (pyserial not installed: pip install -e '.[hardware]')")
    lines.append("VISA USB resources (pyvisa-py; no network scan):")
    lines += _visa_usb_resources()
    cti_files = list(cti_files or [])
    for folder in os.environ.get("GENICAM_GENTL64_PATH", "").split(os.pathsep):
        if folder:
            cti_files += sorted(Path(folder).glob("*.cti"))
    lines.append("GenTL devices:")
    if not cti_files:
        lines.append("  (no producer: pass --cti FILE or set GENICAM_GENTL64_PATH)")
    for cti in cti_files:
        try:
            from optgen.drivers.cameras import GenICamCamera

            found = GenICamCamera.devices(cti)
            lines += [f"  {cti}: {d}" for d in found] or [f"  {cti}: no device"]
        except Exception as exc:
            lines.append(f"  {cti}: {exc}")
    lines.append("screens:")
    if not os.environ.get("DISPLAY"):
        lines.append("  (no DISPLAY)")
    else:
        try:
            from optgen.drivers.slms import screens

            lines += [f"  {s}" for s in screens()] or ["  none"]
        except Exception as exc:
            lines.append(f"  ({exc})")
    return lines + _what_optgen_can_drive()


def _what_optgen_can_drive() -> list[str]:
    """The shipped laser command tables, and the slmsuite camera classes whose SDK is installed here."""
    from optgen.drivers.cameras.slmsuite_camera import SLMSUITE_CAMERAS
    from optgen.drivers.lasers.command_table import SHIPPED_TABLES, load_table

    lines = ["laser command tables shipped ([laser] driver = \"table\"):"]
    lines += [f"  {name}: {load_table(name).family}" for name in SHIPPED_TABLES]
    lines.append("slmsuite camera classes ([camera] driver = \"slmsuite\"):")
    for name, spec in sorted(SLMSUITE_CAMERAS.items()):
        if not spec.sdk:
            lines.append(f"  {name}: no Python SDK to check ({spec.install})")
        else:
            lines.append(f"  {name}: " + ("SDK installed" if spec.sdk_available() else f"SDK missing: {spec.install}"))
    return lines
