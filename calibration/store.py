"""The calibration store: one folder of versioned calibration files, never silently overwritten.

Each calibration is one HDF5 file ``<kind>-<device>-<wavelength>nm-<UTC time>.h5`` holding
- attributes: format version, kind, device, wavelength, optical path, creation time, the
  device's identity, the bench file it was made on, residuals and small results (JSON);
- ``result/<name>``: the arrays the run uses (a response curve, an affine map, a dark frame);
- ``raw/<name>``: the raw measurements the result was fitted to.

Files are created exclusively (an existing name is an error, never overwritten); a newer
calibration supersedes an older one for the same key (kind, device, wavelength, optical path)
and the older stays on disk as history. Loading checks the format version, the key and the
file's integrity and refuses a mismatch with the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from drivers.errors import OptgenError

__all__ = ["FORMAT_VERSION", "KINDS", "CalibrationFileError", "CalibrationRecord", "CalibrationStore",
           "optical_path"]

FORMAT_VERSION = 1
KINDS = ("lut", "alignment", "camera")
_NAME = re.compile(r"^(lut|alignment|camera)-([a-z_0-9]+)-([0-9.]+)nm-(\d{8}T\d{6}\d{6}Z)\.h5$")
_WAVELENGTH_TOLERANCE_NM = 0.5


class CalibrationFileError(OptgenError, ValueError):
    """A calibration file that is corrupt, from another format version, or made for another key."""


def optical_path(config) -> str:
    """The light path a calibration was made on: the bench geometry that alignment depends on."""
    g = config.geometry
    return f"d1={g.d1_m * 1e3:.3f}mm;d2={g.d2_m * 1e3:.3f}mm"


def _now_stamp() -> tuple[str, str]:
    now = datetime.now(timezone.utc)
    return now.isoformat(timespec="microseconds"), now.strftime("%Y%m%dT%H%M%S%fZ")


@dataclass
class CalibrationRecord:
    """One calibration: what was measured, on what, when, and how well it fits."""

    kind: str
    device: str
    wavelength_nm: float
    optical_path: str
    results: dict[str, np.ndarray]
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    residuals: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)          # small JSON-able results and settings
    bench_name: str = ""
    bench_text: str = ""
    device_identity: dict = field(default_factory=dict)
    created: str = ""
    path: Path | None = None
    format_version: int = FORMAT_VERSION

    @property
    def id(self) -> str:
        """Recorded in every run that used this calibration."""
        name = self.path.name if self.path is not None else "unsaved"
        return f"{self.kind}:{self.device}:{self.wavelength_nm:g}nm:{name}"

    def check_key(self, kind: str, device: str, wavelength_nm: float, path_key: str) -> None:
        """Refuse this record for another kind, device, wavelength or optical path, with the reason."""
        where = self.path or "calibration"
        if self.kind != kind or self.device != device:
            raise CalibrationFileError(f"{where}: a {self.kind} calibration of {self.device}; expected a {kind} "
                                       f"calibration of {device}")
        if abs(self.wavelength_nm - wavelength_nm) > _WAVELENGTH_TOLERANCE_NM:
            raise CalibrationFileError(f"{where}: made at {self.wavelength_nm:g} nm; this bench runs at "
                                       f"{wavelength_nm:g} nm. Calibrate at this wavelength")
        if kind == "alignment" and self.optical_path != path_key:
            raise CalibrationFileError(f"{where}: made on optical path {self.optical_path!r}; this bench is "
                                       f"{path_key!r}. Re-run optgen calibrate alignment")


class CalibrationStore:
    """A folder of calibration files."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def save(self, record: CalibrationRecord) -> Path:
        """Write ``record`` as a new file (never over an existing one); returns its path."""
        if record.kind not in KINDS:
            raise ValueError(f"calibration kind {record.kind!r}: expected one of {KINDS}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CalibrationFileError(f"{self.folder}: cannot create the calibration folder ({exc.strerror})") \
                from None
        created, stamp = _now_stamp()
        path = self.folder / f"{record.kind}-{record.device}-{record.wavelength_nm:g}nm-{stamp}.h5"
        try:
            f = h5py.File(path, "w-")  # exclusive: an existing file is an error, never overwritten
        except (FileExistsError, OSError) as exc:
            raise CalibrationFileError(f"{path}: cannot create ({exc}); an existing calibration is never "
                                       f"overwritten") from None
        with f:
            attrs = {"format_version": FORMAT_VERSION, "kind": record.kind, "device": record.device,
                     "wavelength_nm": float(record.wavelength_nm), "optical_path": record.optical_path,
                     "created": created, "bench_name": record.bench_name, "bench_text": record.bench_text,
                     "device_identity": json.dumps(record.device_identity),
                     "residuals": json.dumps(record.residuals), "info": json.dumps(record.info)}
            f.attrs.update(attrs)
            for group, arrays in (("result", record.results), ("raw", record.raw)):
                g = f.create_group(group)
                for name, value in arrays.items():
                    g.create_dataset(name, data=np.asarray(value))
            f.attrs["checksum"] = _checksum(f)
        record.path, record.created = path, created
        return path

    def records(self) -> list[Path]:
        """Calibration files in the folder, oldest first (by the time in their name)."""
        if not self.folder.is_dir():
            return []
        files = [p for p in self.folder.iterdir() if _NAME.match(p.name)]
        return sorted(files, key=lambda p: _NAME.match(p.name).group(4))

    def latest(self, kind: str, device: str, wavelength_nm: float, path_key: str) -> CalibrationRecord | None:
        """The newest calibration for this key, loaded and checked; None if there is none."""
        candidates = []
        for path in self.records():
            m = _NAME.match(path.name)
            if m.group(1) == kind and m.group(2) == device \
                    and abs(float(m.group(3)) - wavelength_nm) <= _WAVELENGTH_TOLERANCE_NM:
                candidates.append(path)
        for path in reversed(candidates):
            record = load_record(path)
            if kind != "alignment" or record.optical_path == path_key:
                record.check_key(kind, device, wavelength_nm, path_key)
                return record
        return None


def _checksum(f: h5py.File) -> str:
    """SHA-256 over every dataset's bytes and the JSON attributes (a torn or edited file fails it)."""
    digest = hashlib.sha256()
    for key in ("kind", "device", "wavelength_nm", "optical_path", "created", "residuals", "info"):
        digest.update(repr(f.attrs[key]).encode())
    for group in ("result", "raw"):
        for name in sorted(f[group]):
            digest.update(f"{group}/{name}".encode())
            digest.update(np.ascontiguousarray(f[group][name][()]).tobytes())
    return digest.hexdigest()


def load_record(path: str | Path) -> CalibrationRecord:
    """Read and verify one calibration file; CalibrationFileError with the reason if it cannot serve."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise CalibrationFileError(f"{path}: not a readable calibration file ({exc})") from None
    with f:
        try:
            version = int(f.attrs["format_version"])
            if version != FORMAT_VERSION:
                raise CalibrationFileError(f"{path}: format version {version}; this optgen reads version "
                                           f"{FORMAT_VERSION}. Re-calibrate or use the matching optgen")
            if f.attrs.get("checksum") != _checksum(f):
                raise CalibrationFileError(f"{path}: checksum mismatch; the file is corrupt or was edited")
            record = CalibrationRecord(
                kind=str(f.attrs["kind"]), device=str(f.attrs["device"]),
                wavelength_nm=float(f.attrs["wavelength_nm"]), optical_path=str(f.attrs["optical_path"]),
                results={k: f["result"][k][()] for k in f["result"]},
                raw={k: f["raw"][k][()] for k in f["raw"]},
                residuals=json.loads(f.attrs["residuals"]), info=json.loads(f.attrs["info"]),
                bench_name=str(f.attrs["bench_name"]), bench_text=str(f.attrs["bench_text"]),
                device_identity=json.loads(f.attrs["device_identity"]), created=str(f.attrs["created"]),
                path=path, format_version=version)
        except KeyError as exc:
            raise CalibrationFileError(f"{path}: missing {exc.args[0]!r}; not an optgen calibration file") from None
        except (OSError, ValueError) as exc:
            if isinstance(exc, CalibrationFileError):
                raise
            raise CalibrationFileError(f"{path}: unreadable ({exc})") from None
    return record
