"""Which calibrations a bench runs with: the newest matching files of its calibration store.

A bench file's ``[calibration] store`` names the folder, relative to the bench file: the
calibrations belong to the bench, wherever a command runs. An embedded bench (no file) keeps them
in the user's data folder (platformdirs; ``OPTGEN_DATA_DIR`` moves it), in a folder of its own
named by the bench's identity (a hash of its bench text), never in the working folder.
``lut = "calibrated"`` takes each SLM's newest LUT for the bench wavelength, falling back to the
nominal linear response when none was measured yet;
the alignment (decoder placement on SLM2, sensor registration) and the camera calibration are
used when present and enabled. Every run records the ids of what it used.

Every file read is checked in full before any device opens (``calibration.store``): a corrupt,
edited, older-format or implausible file, or one whose sizes do not fit this bench, stops with
CalibrationFileError naming the file, the field and what was expected. Files that are fine but
not for this bench (made at another wavelength, an alignment on another optical path, an ``.h5``
not named as a calibration) are passed over: ``BenchCalibrations.skipped`` names each with the
reason (for the console and the run file) and each is logged as a warning on the "optgen" logger.
A calibration made on another device (serial) is refused once the devices are open and known:
``BenchCalibrations.check_devices(bench)``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optgen.calibration.lut import LINEAR, PhaseResponse, load_response
from optgen.calibration.record import CalibrationFileError, CalibrationRecord
from optgen.calibration.record_checks import BenchSpec
from optgen.calibration.store import CalibrationStore
from optgen.lab.bench.config import BenchConfig

__all__ = ["BenchCalibrations", "store_folder", "load_bench_calibrations"]

log = logging.getLogger("optgen")

UNCALIBRATED = PhaseResponse("linear-nominal (no LUT calibration in the store)")


DATA_DIR_ENV = "OPTGEN_DATA_DIR"


def user_data_folder() -> Path:
    """optgen's folder in the user's data folder (``OPTGEN_DATA_DIR`` wins)."""
    given = os.environ.get(DATA_DIR_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    import platformdirs

    return platformdirs.user_data_path("optgen", appauthor=False)


def bench_identity(config: BenchConfig) -> str:
    """A short name for a bench that has no file: its name and a hash of its bench text (what the
    calibrations depend on: the devices, the geometry, the wavelengths)."""
    digest = hashlib.sha256(config.text.encode("utf-8")).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", config.name).strip("-") or "bench"
    return f"{name}-{digest}"


def store_folder(config: BenchConfig, override: str | Path | None = None) -> Path:
    """The calibration store of ``config`` (``override`` wins): ``[calibration] store`` beside the
    bench file, or for an embedded bench in the user's data folder under the bench's identity."""
    if override is not None:
        return Path(override)
    folder = Path(config.calibration.store).expanduser()
    if folder.is_absolute():
        return folder
    source = Path(config.source)
    if source.is_file():
        return source.parent / folder
    return user_data_folder() / "benches" / bench_identity(config) / folder


@dataclass
class BenchCalibrations:
    """The calibrations one bench opens with."""

    store: Path
    luts: dict[str, PhaseResponse]
    lut_records: dict[str, CalibrationRecord] = field(default_factory=dict)
    alignment: CalibrationRecord | None = None
    camera: CalibrationRecord | None = None
    skipped: list[str] = field(default_factory=list)   # files of the store passed over: "path: reason" each
    other_colours: list[str] = field(default_factory=list)   # those of skipped made at another of the bench's colours
    wavefronts: dict[str, CalibrationRecord] = field(default_factory=dict)   # SLM key -> its newest wavefront
    distances: CalibrationRecord | None = None
    flat_field: np.ndarray | None = None       # [camera] flat_field: the relative gain of each pixel
    flat_field_source: str = ""
    _camera_cal: object = field(default=None, init=False, repr=False, compare=False)   # read once

    def ids(self) -> dict[str, str]:
        ids = {f"{key}.lut": lut.id for key, lut in self.luts.items()}
        for key in ("encoding_slm", "decoding_slm"):
            record = self.wavefronts.get(key)
            ids[f"{key}.wavefront"] = record.id if record is not None else "none (uncorrected)"
        ids["distances"] = self.distances.id if self.distances is not None else "none (the bench file's)"
        ids["alignment"] = self.alignment.id if self.alignment is not None else "none (nominal placement)"
        ids["camera"] = self.camera.id if self.camera is not None else "none (driver defaults)"
        return ids

    def in_force(self) -> dict[str, CalibrationRecord]:
        """Every calibration file in force, by what it calibrates (the names of :meth:`ids`)."""
        out = {f"{key}.lut": record for key, record in self.lut_records.items()}
        out.update({f"{key}.wavefront": record for key, record in self.wavefronts.items()})
        for name, record in (("distances", self.distances), ("alignment", self.alignment), ("camera", self.camera)):
            if record is not None:
                out[name] = record
        return out

    def ages_h(self, now=None) -> dict[str, float]:
        """Hours since each calibration in force was made (``now``: a UTC datetime, default the clock's)."""
        from datetime import datetime, timezone

        now = now or datetime.now(timezone.utc)
        return {name: round((now - datetime.fromisoformat(record.created)).total_seconds() / 3600.0, 3)
                for name, record in self.in_force().items() if record.created}

    def describe(self, now=None, measure_with: str = "optgen calibrate all") -> list[str]:
        """Console lines: the store, then each calibration in force with its age, or UNCALIBRATED
        (saying the command that measures them: ``measure_with``)."""
        in_force = self.in_force()
        if not in_force:
            return [f"UNCALIBRATED: no calibration for this bench in {self.store}; the nominal LUTs, placement and "
                    f"distances are used (measure them with: {measure_with})"]
        ages = self.ages_h(now)
        lines = [f"calibrations from {self.store}:"]
        for name, ident in self.ids().items():
            age = ages.get(name)
            lines.append(f"  {name:<22} {ident}" + (f"  ({_age_words(age)} old)" if age is not None else ""))
        return lines

    def decoder_placement(self):
        """The measured placement of SLM2 in the beam, or None."""
        from optgen.calibration.alignment import DecoderPlacement

        return DecoderPlacement.from_record(self.alignment) if self.alignment is not None else None

    def output_to_sensor(self) -> np.ndarray | None:
        """The measured 2x3 map from output-plane metres to sensor pixels, or None."""
        from optgen.calibration.alignment import SensorRegistration

        return SensorRegistration.from_record(self.alignment).output_to_sensor if self.alignment is not None else None

    def saturation_dn(self) -> float | None:
        cal = self.camera_calibration()
        return cal.saturation_dn if cal is not None else None

    def pixel_correction(self, dark: np.ndarray, exposure_s: float,
                         window: tuple[int, int, int, int] | None = None):
        """(``calibration.camera_pixels.PixelCorrection`` of a run's frames, what it does in words)
        given the run's own dark frame, or (None, "") with neither a camera calibration nor a
        flat field (runs then subtract the dark level only). ``window``: the frames (and ``dark``)
        are that sensor window, (x, width, y, height)."""
        from optgen.calibration.camera_pixels import PixelCorrection

        cal = self.camera_calibration()
        if cal is None and self.flat_field is None:
            return None, ""
        if cal is None:
            correction, words = PixelCorrection(np.asarray(dark, np.float32)), "this run's dark frame"
        else:
            correction, words = (cal if window is None else cal.window(window)).correction_for(dark, exposure_s)
        if self.flat_field is not None:
            flat = self.flat_field
            if window is not None:
                x, w, y, h = (int(v) for v in window)
                flat = flat[y:y + h, x:x + w]
            correction = PixelCorrection(correction.dark, correction.hot, flat)
            words += f"; flat field {self.flat_field_source}"
        return correction, words

    def camera_calibration(self):
        """The camera calibration in force (``calibration.camera.CameraCalibration``), or None."""
        from optgen.calibration.camera import CameraCalibration

        if self.camera is None:
            return None
        if self._camera_cal is None:
            self._camera_cal = CameraCalibration.from_record(self.camera)
        return self._camera_cal

    def check_devices(self, bench) -> None:
        """Refuse, once the devices are open, a calibration made on another device: CalibrationFileError
        when a serial number recorded in a LUT, the alignment or the camera calibration differs from
        the open device's (either unknown: not compared)."""
        devices = {"encoding_slm": bench.encoding_slm, "decoding_slm": bench.decoding_slm, "camera": bench.camera}
        checks = [(record, key, record.device_identity) for key, record in self.lut_records.items()]
        checks += [(record, key, record.device_identity) for key, record in self.wavefronts.items()]
        if self.camera is not None:
            checks.append((self.camera, "camera", self.camera.device_identity))
        for record in (self.alignment, self.distances):
            if record is not None:
                checks += [(record, key, record.device_identity.get(key) or {}) for key in devices]
        for record, key, identity in checks:
            made_on = identity.get("serial") if isinstance(identity, dict) else None
            now = getattr(getattr(devices[key], "identity", None), "serial", None)
            if made_on and now and made_on != now:
                what = "SLM" if key != "camera" else "camera"
                raise CalibrationFileError(
                    f"{record.path}: device_identity: {record.kind} measured on {what} serial {made_on!r}; "
                    f"[{key}] is serial {now!r}. Calibrate this device (optgen calibrate {record.kind})")


def _age_words(hours: float) -> str:
    if hours < 1.0:
        return f"{hours * 60:.0f} min"
    if hours < 48.0:
        return f"{hours:.1f} h"
    return f"{hours / 24:.0f} days"


def _one_panel_luts(luts: dict[str, PhaseResponse], records: dict) -> dict[str, PhaseResponse]:
    """One panel has one liquid crystal: one LUT for both regions. Where both regions' responses
    were measured, their mean (two measurements of one response); where one was, that one."""
    measured = [key for key in ("encoding_slm", "decoding_slm") if key in records]
    if not measured:
        return luts
    if len(measured) == 1:
        shared = luts[measured[0]]
    else:
        a, b = luts["encoding_slm"], luts["decoding_slm"]
        shared = PhaseResponse(f"{a.id}+{b.id}", a.levels, (np.asarray(a.phase_rad) + np.asarray(b.phase_rad)) / 2)
    return {**luts, "encoding_slm": shared, "decoding_slm": shared}


def load_bench_calibrations(config: BenchConfig, override: str | Path | None = None) -> BenchCalibrations:
    """Load (and check) every calibration ``config`` asks for; CalibrationFileError/LUTError on a bad file.

    Files passed over (another wavelength or optical path) are in ``skipped`` and logged."""
    folder = store_folder(config, override)
    store = CalibrationStore(folder)
    source = Path(config.source)
    base_dir = source.parent if source.is_file() else None
    spec = BenchSpec.from_config(config)
    slms = (config.encoding_slm, config.decoding_slm)
    wanted = [("lut", cfg.key) for cfg in slms if cfg.lut == "calibrated"]
    if config.calibration.use_alignment:
        wanted.append(("alignment", "bench"))
    if config.calibration.use_camera:
        wanted.append(("camera", "camera"))
    if config.calibration.use_wavefront:
        wanted += [("wavefront", cfg.key) for cfg in slms]
        wanted.append(("distances", "bench"))
    selection = store.select(spec, wanted)
    for line in selection.skipped:     # another of the bench's colours: expected where a store serves them all
        log.log(logging.INFO if line in selection.other_colours else logging.WARNING, "calibration not used: %s", line)
    luts: dict[str, PhaseResponse] = {}
    records: dict[str, CalibrationRecord] = {}
    for cfg in slms:
        if cfg.lut == "calibrated":
            record = selection.records[("lut", cfg.key)]
            if record is None:
                luts[cfg.key] = UNCALIBRATED
            else:
                luts[cfg.key] = PhaseResponse.from_record(record)
                records[cfg.key] = record
        elif cfg.lut == "linear":
            luts[cfg.key] = LINEAR
        else:
            luts[cfg.key] = load_response(cfg.lut, cfg.bitdepth, base_dir)
    if config.panel is not None:
        luts = _one_panel_luts(luts, records)
    alignment = selection.records.get(("alignment", "bench"))
    camera = selection.records.get(("camera", "camera"))
    wavefronts = {cfg.key: selection.records[("wavefront", cfg.key)] for cfg in slms
                  if selection.records.get(("wavefront", cfg.key)) is not None}
    flat = None
    if config.camera.flat_field:
        from optgen.calibration.camera_pixels import load_flat_field

        path = Path(config.camera.flat_field)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        width, height = config.camera.resolution
        flat = load_flat_field(path, (int(height), int(width)))
    return BenchCalibrations(folder, luts, records, alignment, camera, list(selection.skipped),
                             list(selection.other_colours), wavefronts,
                             selection.records.get(("distances", "bench")), flat,
                             str(path) if flat is not None else "")
