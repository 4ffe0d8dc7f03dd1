"""The calibration store: one folder of versioned calibration files, never silently overwritten.

Each calibration is one HDF5 file ``<kind>-<device>-<wavelength>nm-<UTC time>.h5`` holding
- a 512-byte header (the HDF5 user block) ahead of the HDF5 data: the format version and the
  SHA-256 of every byte after the header. The checksum thus covers everything in the file but
  itself (every attribute, array, dtype, shape and the HDF5 structure), and a torn or edited
  file is refused before the HDF5 library parses it (libhdf5 can crash or hang on damaged
  metadata, which Python cannot catch);
- attributes: format version, kind, device, wavelength, optical path, creation time, the
  device's identity, the bench file it was made on, residuals and small results (JSON);
- ``result/<name>``: the arrays the run uses (a response curve, an affine map, a dark frame);
- ``raw/<name>``: the raw measurements the result was fitted to.

The checksum detects damage and edits, not an author: whoever can write the file can compute a
new one, which is why every field's content is checked too (and why a crafted HDF5 structure with
a valid checksum is left to libhdf5's own robustness).

Files are written under a temporary name, sealed, then put in place whole and exclusively (an
existing name is an error, never overwritten); a newer
calibration supersedes an older one for the same key (kind, device, wavelength, optical path)
and the older stays on disk as history. Loading checks the header, the checksum, the layout and
the type of every field, then the content (a LUT that grows with the gray level over a sensible
range, finite alignment numbers within the bench's size, a saturation level within the camera's
bit depth ...; :func:`load_record`), then what the bench expects (:func:`check_for_bench`), and
refuses a mismatch with :class:`CalibrationFileError` naming the file, the field and what was
expected. :meth:`CalibrationStore.select` picks a bench's calibrations and names the files it
passes over (made at another wavelength or on another optical path).

Format history: 1 (until 2026-12) kept a checksum attribute that left the device identity, the
bench file, the bench name and the format version unchecked; such files are refused with the
advice to re-run ``optgen calibrate`` (accepting them would let any file claim version 1 to
escape the check).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import h5py
import numpy as np
from optgen.calibration.lut import response_problem
from optgen.drivers.errors import OptgenError

__all__ = ["FORMAT_VERSION", "KINDS", "DEVICES", "MAX_FILE_BYTES", "BenchSpec", "CalibrationFileError",
           "CalibrationRecord", "CalibrationStore", "Selection", "check_content", "check_for_bench", "load_record"]

FORMAT_VERSION = 2
KINDS = ("lut", "alignment", "camera")
DEVICES = {"lut": ("encoding_slm", "decoding_slm"), "alignment": ("bench",), "camera": ("camera",)}
_NAME = re.compile(r"^(lut|alignment|camera)-([a-z_0-9]+)-([0-9.]+)nm-(\d{8}T\d{6}\d{6}Z)\.h5$")
_NAME_HELP = "<kind>-<device>-<wavelength>nm-<UTC time>.h5"
_WAVELENGTH_TOLERANCE_NM = 0.5

MAX_FILE_BYTES = 512 * 2**20          # the largest a calibration file may be (a 64 MP dark frame is 256 MiB)
_HEADER_SIZE = 512                    # the HDF5 user block
_MAGIC = b"OPTGEN CALIBRATION FILE\n"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MAX_RAW_ELEMENTS = 1 << 20           # per raw array (the largest written holds a few hundred values)
_MAX_RAW_NDIM = 4
_MAX_RESULT_ELEMENTS = 1 << 26        # a dark frame of a 64 MP sensor
_MAX_JSON_DEPTH = 8
_TEXT_LIMITS = {"kind": 32, "device": 64, "optical_path": 200, "created": 64, "bench_name": 4096,
                "bench_text": 1 << 20, "device_identity": 1 << 16, "residuals": 1 << 16, "info": 1 << 20}
_ATTR_TYPES = {"format_version": "int", "kind": "text", "device": "text", "wavelength_nm": "float",
               "optical_path": "text", "created": "text", "bench_name": "text", "bench_text": "text",
               "device_identity": "text", "residuals": "text", "info": "text"}
_PATH_KEY = re.compile(r"^d1=(\d{1,9}\.\d{3})mm;d2=(\d{1,9}\.\d{3})mm$")
_RAW_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")

# content limits (what a measurement can produce, with room to spare)
MAX_ROTATION_DEG = 5.0           # SLM2 in the beam, and the sensor against the bench file's placement
PITCH_RATIO_RANGE = (0.5, 2.0)   # the measurement refuses a sensor scale outside it
MAX_CROSSTALK_SIGMA_PX = 3.0     # the response fit's bound
MAX_EXPOSURE_S = 3600.0
_RESIDUALS = {"lut": ("fit_rms",), "alignment": ("sensor_residual_px", "decoder_residual_m"),
              "camera": ("linearity_rms",)}
_NAN_RESIDUALS = {("camera", "linearity_rms")}   # not measured when every exposure step clipped
# result arrays of each kind: name -> (shape, ``None`` for any 2-D frame)
_RESULTS = {
    "lut": {"phase_rad": (-1,), "crosstalk_sigma_px": ()},
    "alignment": {"output_to_sensor": (2, 3), "sensor_offset_m": (2,), "sensor_rotation_deg": (),
                  "sensor_pitch_ratio": (), "decoder_shift_m": (2,), "decoder_rotation_deg": (),
                  "decoder_pitch_m": (), "decoder_slm_centre_px": (2,)},
    "camera": {"dark_frame": None, "dark_level_dn": (), "saturation_dn": (), "exposure_s": ()},
}
_ALIGNMENT_RAW = ("sensor_expected_m", "sensor_detected_px", "decoder_centres_px", "decoder_detected_m")


class CalibrationFileError(OptgenError, ValueError):
    """A calibration file that is corrupt, from another format version, or made for another key."""


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
    checksum: str = ""                                 # SHA-256 of the file after its header (set on save/load)

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


@dataclass(frozen=True)
class BenchSpec:
    """What one bench expects of its calibration files (taken from its bench file)."""

    wavelength_nm: float
    optical_path: str
    slm_bitdepth: dict[str, int]                    # SLM key -> bits per gray level
    slm_resolution: dict[str, tuple[int, int]]      # SLM key -> (columns, rows)
    slm_pitch_m: dict[str, float]
    camera_resolution: tuple[int, int]              # (columns, rows)
    camera_bitdepth: int
    camera_pitch_m: float
    sensor_offset_m: tuple[float, float] = (0.0, 0.0)    # the bench file's nominal sensor placement
    sensor_rotation_deg: float = 0.0
    colours_nm: tuple[float, ...] = ()              # every colour of a multi-colour bench ([colours])

    @classmethod
    def from_config(cls, config) -> BenchSpec:
        slms = (config.encoding_slm, config.decoding_slm)
        g = config.geometry
        return cls(wavelength_nm=float(config.wavelength_nm), optical_path=config.light_path.digest(),
                   slm_bitdepth={s.key: int(s.bitdepth) for s in slms},
                   slm_resolution={s.key: (int(s.resolution[0]), int(s.resolution[1])) for s in slms},
                   slm_pitch_m={s.key: float(s.pitch_um) * 1e-6 for s in slms},
                   camera_resolution=(int(config.camera.resolution[0]), int(config.camera.resolution[1])),
                   camera_bitdepth=int(config.camera.bitdepth), camera_pitch_m=float(config.camera.pitch_um) * 1e-6,
                   sensor_offset_m=(float(g.sensor_offset_m[0]), float(g.sensor_offset_m[1])),
                   sensor_rotation_deg=float(g.sensor_rotation_deg),
                   colours_nm=tuple(float(w) for w in config.colours.order_nm) if config.colours else ())


@dataclass
class Selection:
    """The calibrations a bench runs with, and the files of its store passed over, each with the reason."""

    records: dict[tuple[str, str], CalibrationRecord | None]
    skipped: list[str] = field(default_factory=list)


class CalibrationStore:
    """A folder of calibration files."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def save(self, record: CalibrationRecord) -> Path:
        """Write ``record`` as a new file (never over an existing one); returns its path.

        The record is checked as loading checks it first: a file that would be refused is never written."""
        if record.kind not in KINDS:
            raise ValueError(f"calibration kind {record.kind!r}: expected one of {KINDS}")
        created, stamp = _now_stamp()
        path = self.folder / f"{record.kind}-{record.device}-{record.wavelength_nm:g}nm-{stamp}.h5"
        attrs = {"format_version": FORMAT_VERSION, "kind": record.kind, "device": record.device,
                 "wavelength_nm": float(record.wavelength_nm), "optical_path": record.optical_path,
                 "created": created, "bench_name": record.bench_name, "bench_text": record.bench_text,
                 "device_identity": json.dumps(record.device_identity),
                 "residuals": json.dumps(record.residuals), "info": json.dumps(record.info)}
        results = {k: np.asarray(v) for k, v in record.results.items()}
        raw = {k: np.asarray(v) for k, v in record.raw.items()}
        name = _NAME.match(path.name)
        if name is None:
            raise CalibrationFileError(f"{path}: device {record.device!r} or wavelength {record.wavelength_nm!r} "
                                       f"makes no calibration file name ({_NAME_HELP})")
        candidate = _record_from(path, attrs, {"result": results, "raw": raw}, FORMAT_VERSION)
        _check_name(path, name, candidate)
        check_content(candidate)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CalibrationFileError(f"{self.folder}: cannot create the calibration folder ({exc.strerror})") \
                from None
        if path.exists():
            raise CalibrationFileError(f"{path}: exists; an existing calibration is never overwritten")
        # written and sealed under a temporary name, then put in place whole: a calibration that is
        # stopped half-way (a signal, a full disk) leaves no torn file that would stop later runs
        part = path.with_name(f".{path.name}.part")
        try:
            try:
                f = h5py.File(part, "w-", userblock_size=_HEADER_SIZE)
            except (FileExistsError, OSError) as exc:
                raise CalibrationFileError(f"{path}: cannot create ({exc})") from None
            with f:
                f.attrs.update(attrs)
                for group, arrays in (("result", results), ("raw", raw)):
                    g = f.create_group(group)
                    for key, value in arrays.items():
                        g.create_dataset(key, data=value)
            digest = _seal(part)
            _place(part, path)
        finally:
            part.unlink(missing_ok=True)
        record.path, record.created, record.format_version, record.checksum = path, created, FORMAT_VERSION, digest
        return path

    def records(self) -> list[Path]:
        """Calibration files in the folder, oldest first (by the time in their name)."""
        return [p for p in self._entries() if _NAME.match(p.name)]

    def _entries(self) -> list[Path]:
        """Everything in the folder (sorted: calibration names by their time, then the rest by name)."""
        if not self.folder.exists():
            return []
        if not self.folder.is_dir():
            raise CalibrationFileError(f"{self.folder}: the calibration store is not a folder")
        try:
            entries = list(self.folder.iterdir())
        except OSError as exc:
            raise CalibrationFileError(f"{self.folder}: cannot list the calibration store "
                                       f"({exc.strerror or exc})") from None

        def order(p: Path):
            m = _NAME.match(p.name)
            return (0, m.group(4), p.name) if m else (1, "", p.name)

        return sorted(entries, key=order)

    def latest(self, kind: str, device: str, wavelength_nm: float, path_key: str,
               spec: BenchSpec | None = None) -> CalibrationRecord | None:
        """The newest calibration for this key, loaded and checked (against ``spec`` when given);
        None if there is none. An alignment for another optical path is passed over."""
        candidates = []
        for path in self.records():
            m = _NAME.match(path.name)
            if m.group(1) == kind and m.group(2) == device and _close(m.group(3), wavelength_nm):
                candidates.append(path)
        for path in reversed(candidates):
            record = load_record(path)
            if kind != "alignment" or record.optical_path == path_key:
                record.check_key(kind, device, wavelength_nm, path_key)
                if spec is not None:
                    check_for_bench(record, spec)
                return record
        return None

    def select(self, spec: BenchSpec, wanted) -> Selection:
        """The newest calibration of each ``(kind, device)`` in ``wanted`` that fits the bench of ``spec``.

        Every file read is checked in full (:func:`load_record`, :func:`check_for_bench`): a bad one
        raises CalibrationFileError naming it. Files not for this bench are passed over and named in
        ``Selection.skipped`` with the reason: the newest file of each kind and device made at
        another wavelength (a store serving several colours; unread), alignments made on another
        optical path (read and checked; the newest one on this path is used), ``.h5`` files not named
        as calibrations and files for a device no bench has (unread). Older calibrations of a key are
        history, not named; kinds the bench file switches off are not looked at."""
        wanted = [tuple(w) for w in wanted]
        skipped: list[str] = []
        candidates: dict[tuple[str, str], list[Path]] = {w: [] for w in wanted}
        elsewhere: dict[tuple[str, str, str], Path] = {}
        for path in self._entries():
            m = _NAME.match(path.name)
            if m is None:
                if path.name.lower().endswith(".h5"):
                    skipped.append(f"{path}: not named as a calibration file ({_NAME_HELP}); not read")
                continue
            kind, device, wavelength, _ = m.groups()
            if device not in DEVICES[kind]:
                skipped.append(f"{path}: a calibration of kind {kind} for device {device!r}, which no bench has "
                               f"(expected {' or '.join(DEVICES[kind])}); not read")
                continue
            if (kind, device) not in candidates:
                continue                        # this bench does not use that kind (its bench file says so)
            if _close(wavelength, spec.wavelength_nm):
                candidates[(kind, device)].append(path)
            else:
                elsewhere[(kind, device, wavelength)] = path     # the newest of each wins (sorted by time)
        for (kind, device, wavelength), path in sorted(elsewhere.items(), key=lambda kv: str(kv[1])):
            colour = any(_close(wavelength, w) for w in spec.colours_nm)
            skipped.append(f"{path}: made at {wavelength} nm; this bench runs at {spec.wavelength_nm:g} nm "
                           f"({'another of its colours' if colour else 'not one of its colours'}); not used")
        records: dict[tuple[str, str], CalibrationRecord | None] = {}
        for (kind, device), paths in candidates.items():
            records[(kind, device)] = None
            for path in reversed(paths):
                record = load_record(path)
                record.check_key(kind, device, spec.wavelength_nm, record.optical_path)
                if kind == "alignment" and record.optical_path != spec.optical_path:
                    skipped.append(f"{path}: made on optical path {record.optical_path}; this bench is "
                                   f"{spec.optical_path}; not used (optgen calibrate alignment measures this "
                                   f"path)")
                    continue
                check_for_bench(record, spec)
                records[(kind, device)] = record
                break
        return Selection(records, skipped)


def _close(wavelength_text: str, wavelength_nm: float) -> bool:
    try:
        return abs(float(wavelength_text) - wavelength_nm) <= _WAVELENGTH_TOLERANCE_NM
    except ValueError:
        return False


# --- the header and checksum ------------------------------------------------------------------
def _header(version: int, digest: str) -> bytes:
    text = _MAGIC + f"format {int(version)}\nsha256 {digest}\n".encode("ascii")
    return text.ljust(_HEADER_SIZE, b"\0")


def _seal(path: Path) -> str:
    """Write the header (format version, SHA-256 of everything after it) into the file's user block."""
    with open(path, "r+b") as fh:
        fh.seek(_HEADER_SIZE)
        digest = hashlib.sha256(fh.read()).hexdigest()
        fh.seek(0)
        fh.write(_header(FORMAT_VERSION, digest))
        fh.flush()
        os.fsync(fh.fileno())
    return digest


def _place(part: Path, path: Path) -> None:
    """Give the finished file ``part`` its name ``path``, never over an existing file."""
    try:
        os.link(part, path)                     # fails if ``path`` exists
    except FileExistsError:
        raise CalibrationFileError(f"{path}: exists; an existing calibration is never overwritten") from None
    except OSError:                             # a file system without hard links
        if path.exists():
            raise CalibrationFileError(f"{path}: exists; an existing calibration is never overwritten") from None
        try:
            os.replace(part, path)
        except OSError as exc:
            raise CalibrationFileError(f"{path}: cannot create ({exc.strerror or exc})") from None


def _read_bytes(path: Path) -> bytes:
    """The file's bytes: a regular file no larger than MAX_FILE_BYTES (a FIFO or device is never waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        raise CalibrationFileError(f"{path}: a folder, not a calibration file") from None
    except OSError as exc:
        raise CalibrationFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise CalibrationFileError(f"{path}: a folder, not a calibration file")
        if not stat.S_ISREG(st.st_mode):
            raise CalibrationFileError(f"{path}: not a regular file; a calibration is a file")
        if st.st_size > MAX_FILE_BYTES:
            raise CalibrationFileError(f"{path}: {st.st_size} bytes; a calibration file is at most "
                                       f"{MAX_FILE_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CalibrationFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise CalibrationFileError(f"{path}: more than {MAX_FILE_BYTES} bytes; a calibration file is not that large")
    return data


def _check_header(path: Path, data: bytes, kind: str) -> tuple[int, str]:
    """(format version, SHA-256) from the header; CalibrationFileError for an older or foreign file."""
    again = f"re-run `optgen calibrate {kind}` (with --colour NM for a colour of a multi-colour bench)"
    if data.startswith(_HDF5_SIGNATURE):
        raise CalibrationFileError(
            f"{path}: format_version: 1 (written by an older optgen, whose checksum did not cover every field); "
            f"this optgen reads version {FORMAT_VERSION} only: {again}")
    if len(data) < _HEADER_SIZE or not data.startswith(_MAGIC):
        raise CalibrationFileError(f"{path}: header: not an optgen calibration file (expected "
                                   f"{_HEADER_SIZE} bytes starting {_MAGIC.strip().decode()!r}); it is "
                                   f"truncated or another kind of file")
    match = re.match(rb"format (\d{1,6})\nsha256 ([0-9a-f]{64})\n", data[len(_MAGIC):_HEADER_SIZE])
    if match is None:
        raise CalibrationFileError(f"{path}: header: unreadable format version or checksum; the file is corrupt")
    version, digest = int(match.group(1)), match.group(2).decode("ascii")
    if version != FORMAT_VERSION:
        raise CalibrationFileError(f"{path}: format_version: {version}; this optgen reads version {FORMAT_VERSION}"
                                   f" only: {again}, or use the optgen that wrote it")
    if data[:_HEADER_SIZE] != _header(version, digest):
        raise CalibrationFileError(f"{path}: header: unexpected bytes after the checksum; the file is corrupt or "
                                   f"was edited")
    if data[_HEADER_SIZE:_HEADER_SIZE + len(_HDF5_SIGNATURE)] != _HDF5_SIGNATURE:
        raise CalibrationFileError(f"{path}: no HDF5 data after the header; the file is truncated or corrupt")
    return version, digest


# --- loading ----------------------------------------------------------------------------------
def load_record(path: str | Path) -> CalibrationRecord:
    """Read and verify one calibration file; CalibrationFileError with the reason if it cannot serve.

    In order: the name, the file (a regular file within MAX_FILE_BYTES), the header (format
    version), the checksum over every byte after the header, the HDF5 layout and the type of
    every attribute and array, the name against the content, then the content
    (:func:`check_content`). Never anything but CalibrationFileError for a bad file."""
    path = Path(path)
    name = _NAME.match(path.name)
    if name is None:
        raise CalibrationFileError(f"{path}: not named as a calibration file ({_NAME_HELP})")
    data = _read_bytes(path)
    version, digest = _check_header(path, data, name.group(1))
    if hashlib.sha256(memoryview(data)[_HEADER_SIZE:]).hexdigest() != digest:
        raise CalibrationFileError(f"{path}: checksum mismatch; the file is corrupt, truncated or was edited")
    try:
        attrs, arrays = _parse(path, data)
        record = _record_from(path, attrs, arrays, version)
        record.checksum = digest
        _check_name(path, name, record)
        check_content(record)
    except CalibrationFileError:
        raise
    except RecursionError:
        raise CalibrationFileError(f"{path}: nested too deeply to read; the file is corrupt") from None
    except MemoryError:
        raise CalibrationFileError(f"{path}: too large to read; the file is corrupt") from None
    except Exception as exc:  # noqa: BLE001 - the last guard: whatever else a damaged file makes h5py raise
        raise CalibrationFileError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    return record


def _parse(path: Path, data: bytes) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """The attributes and arrays of a file whose checksum held, every type checked."""
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, ValueError, KeyError ... on damaged files
        raise CalibrationFileError(f"{path}: not a readable calibration file ({exc})") from None
    with f:
        attrs = _read_attrs(path, f)
        members = sorted(f.keys())
        if members != ["raw", "result"]:
            raise CalibrationFileError(f"{path}: holds {members}; expected exactly the groups 'raw' and 'result'")
        arrays = {}
        for group in ("result", "raw"):
            arrays[group] = _read_group(path, f, group)
    return attrs, arrays


def _read_attrs(path: Path, f: h5py.File) -> dict:
    names = set(f.attrs.keys())
    for name in sorted(set(_ATTR_TYPES) - names):
        raise CalibrationFileError(f"{path}: missing attribute {name!r}; not an optgen calibration file")
    for name in sorted(names - set(_ATTR_TYPES)):
        raise CalibrationFileError(f"{path}: unexpected attribute {name!r}; expected only {sorted(_ATTR_TYPES)}")
    attrs = {}
    for name in _ATTR_TYPES:
        try:
            shape = f.attrs.get_id(name).shape
            value = f.attrs[name]
        except Exception as exc:  # noqa: BLE001 - an attribute of a type h5py cannot read
            raise CalibrationFileError(f"{path}: {name}: unreadable ({type(exc).__name__}: {exc})") from None
        if shape != ():
            raise CalibrationFileError(f"{path}: {name}: an array of shape {shape}; expected a single value")
        attrs[name] = value
    return attrs


def _read_group(path: Path, f: h5py.File, group: str) -> dict[str, np.ndarray]:
    link = f.get(group, getlink=True)
    if not isinstance(link, h5py.HardLink) or not isinstance(f[group], h5py.Group):
        raise CalibrationFileError(f"{path}: {group}: expected a group of arrays")
    g = f[group]
    if len(g.attrs):
        raise CalibrationFileError(f"{path}: {group}: unexpected attributes {sorted(g.attrs.keys())}")
    limit = _MAX_RESULT_ELEMENTS if group == "result" else _MAX_RAW_ELEMENTS
    out = {}
    for name in sorted(g.keys()):
        where = f"{group}/{name}"
        if not isinstance(g.get(name, getlink=True), h5py.HardLink):
            raise CalibrationFileError(f"{path}: {where}: a link; expected an array stored in the file")
        ds = g[name]
        if not isinstance(ds, h5py.Dataset):
            raise CalibrationFileError(f"{path}: {where}: a group; expected an array")
        if len(ds.attrs):
            raise CalibrationFileError(f"{path}: {where}: unexpected attributes {sorted(ds.attrs.keys())}")
        if ds.shape is None:
            raise CalibrationFileError(f"{path}: {where}: an empty dataspace; expected an array")
        if ds.dtype.kind not in "biuf" or ds.dtype.fields is not None or ds.dtype.subdtype is not None:
            raise CalibrationFileError(f"{path}: {where}: dtype {ds.dtype}; expected numbers (bool, integer or "
                                       f"float)")
        if len(ds.shape) > _MAX_RAW_NDIM:
            raise CalibrationFileError(f"{path}: {where}: {len(ds.shape)} dimensions; expected at most "
                                       f"{_MAX_RAW_NDIM}")
        size = math.prod(ds.shape)
        if size > limit:
            raise CalibrationFileError(f"{path}: {where}: {size} values (shape {ds.shape}); expected at most "
                                       f"{limit}")
        out[name] = ds[()]
    return out


def _text(path: Path, name: str, value, limit: int | None = None) -> str:
    if not isinstance(value, str):
        raise CalibrationFileError(f"{path}: {name}: {_describe(value)}; expected UTF-8 text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CalibrationFileError(f"{path}: {name}: bytes that are not UTF-8; expected UTF-8 text") from None
    limit = limit or _TEXT_LIMITS[name]
    if len(value) > limit:
        raise CalibrationFileError(f"{path}: {name}: {len(value)} characters; expected at most {limit}")
    return value


def _describe(value) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return "bytes"
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype}"
    return f"a value of type {type(value).__name__} ({str(value)[:40]})"


def _json(path: Path, name: str, value) -> dict:
    text = _text(path, name, value)
    try:
        obj = json.loads(text)
    except RecursionError:
        raise CalibrationFileError(f"{path}: {name}: JSON nested too deeply; expected at most {_MAX_JSON_DEPTH} "
                                   f"levels") from None
    except ValueError as exc:
        raise CalibrationFileError(f"{path}: {name}: not JSON ({exc}); expected a JSON object") from None
    if not isinstance(obj, dict):
        raise CalibrationFileError(f"{path}: {name}: a JSON {type(obj).__name__}; expected a JSON object")
    _check_json_depth(path, name, obj)
    return obj


def _check_json_depth(path: Path, name: str, obj, limit: int = _MAX_JSON_DEPTH) -> None:
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise CalibrationFileError(f"{path}: {name}: JSON nested {depth} levels deep; expected at most {limit}")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _record_from(path: Path, attrs: dict, arrays: dict, version: int) -> CalibrationRecord:
    """A record from the attribute values and arrays of a file (or of a record being saved), types checked."""
    v = attrs["format_version"]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise CalibrationFileError(f"{path}: format_version: {_describe(v)}; expected the integer {version}")
    if int(v) != version:
        raise CalibrationFileError(f"{path}: format_version: {int(v)}, the header says {version}; the file was "
                                   f"edited")
    wl = attrs["wavelength_nm"]
    if isinstance(wl, (bool, np.bool_)) or not isinstance(wl, (float, np.floating)):
        raise CalibrationFileError(f"{path}: wavelength_nm: {_describe(wl)}; expected a floating-point number of nanometres")
    texts = {name: _text(path, name, attrs[name]) for name, t in _ATTR_TYPES.items() if t == "text"}
    return CalibrationRecord(
        kind=texts["kind"], device=texts["device"], wavelength_nm=float(wl), optical_path=texts["optical_path"],
        results=dict(arrays["result"]), raw=dict(arrays["raw"]),
        residuals=_json(path, "residuals", texts["residuals"]), info=_json(path, "info", texts["info"]),
        bench_name=texts["bench_name"], bench_text=texts["bench_text"],
        device_identity=_json(path, "device_identity", texts["device_identity"]), created=texts["created"],
        path=path, format_version=version)


def _check_name(path: Path, name: re.Match, record: CalibrationRecord) -> None:
    """The file name (what the store sorts and selects by) must say what the file holds."""
    kind, device, wavelength, stamp = name.groups()
    if record.kind not in KINDS:
        raise CalibrationFileError(f"{path}: kind: {record.kind!r}; expected one of {', '.join(KINDS)}")
    if record.device not in DEVICES[record.kind]:
        raise CalibrationFileError(f"{path}: device: {record.device!r}; expected {' or '.join(DEVICES[record.kind])}"
                                   f" for a calibration of kind {record.kind}")
    if (record.kind, record.device) != (kind, device):
        raise CalibrationFileError(f"{path}: kind, device: {record.kind} of {record.device}; the file name says "
                                   f"{kind} of {device} (renamed?)")
    if not math.isfinite(record.wavelength_nm) or not 100.0 <= record.wavelength_nm <= 20000.0:
        raise CalibrationFileError(f"{path}: wavelength_nm: {record.wavelength_nm}; expected a laser wavelength "
                                   f"(100 to 20000 nm)")
    if f"{record.wavelength_nm:g}" != wavelength:
        raise CalibrationFileError(f"{path}: wavelength_nm: made at {record.wavelength_nm:g} nm; the file name says "
                                   f"{wavelength} nm (renamed or edited)")
    try:
        created = datetime.fromisoformat(record.created)
    except ValueError:
        raise CalibrationFileError(f"{path}: created: {record.created[:40]!r}; expected an ISO 8601 UTC time") \
            from None
    if created.utcoffset() != timedelta(0):
        raise CalibrationFileError(f"{path}: created: {record.created!r}; expected a UTC time")
    if created.strftime("%Y%m%dT%H%M%S%fZ") != stamp:
        raise CalibrationFileError(f"{path}: created: {record.created}; the file name says {stamp} (renamed?)")


# --- content ----------------------------------------------------------------------------------
def _bad(record: CalibrationRecord, what: str, found: str, expected: str) -> CalibrationFileError:
    return CalibrationFileError(f"{record.path}: {what}: {found}; expected {expected}")


def _array(record: CalibrationRecord, group: str, name: str, shape) -> np.ndarray:
    """``group/name`` as a float array of ``shape`` (-1: any length >= 2; None: any 2-D), finite."""
    arrays = record.results if group == "result" else record.raw
    what = f"{group}/{name}"
    if name not in arrays:
        raise _bad(record, what, "missing", f"the {record.kind} calibration's {name}")
    a = np.asarray(arrays[name])
    if a.dtype.kind != "f" or a.dtype.fields is not None:
        raise _bad(record, what, f"dtype {a.dtype}", "floating-point numbers")
    if shape is None:
        if a.ndim != 2 or 0 in a.shape:
            raise _bad(record, what, f"shape {a.shape}", "a 2-D frame")
    elif shape == (-1,):
        if a.ndim != 1 or a.size < 2:
            raise _bad(record, what, f"shape {a.shape}", "a 1-D array of at least 2 values")
    elif a.shape != tuple(shape):
        raise _bad(record, what, f"shape {a.shape}", f"shape {tuple(shape)}")
    if not np.isfinite(a).all():
        raise _bad(record, what, "NaN or infinite values", "finite numbers")
    return a.astype(np.float64)


def _scalar(record, name, lo, hi, what_range, *, lo_open=False) -> float:
    v = float(_array(record, "result", name, ()))
    if v < lo or v > hi or (lo_open and v == lo):
        raise _bad(record, f"result/{name}", f"{v:g}", what_range)
    return v


def check_content(record: CalibrationRecord) -> None:
    """What holds for any calibration of its kind, whatever the bench: CalibrationFileError if not.

    The fields' types and sizes, finite numbers, a LUT that grows with the gray level over a
    sensible range (:func:`calibration.lut.response_problem`), rotations within a few degrees, a
    positive exposure, a saturation level above the dark level, residuals that are numbers."""
    kind = record.kind
    where = record.path
    if kind not in KINDS:
        raise _bad(record, "kind", repr(kind), f"one of {', '.join(KINDS)}")
    m = _PATH_KEY.match(record.optical_path)
    if m is None or not all(float(x) > 0 for x in m.groups()):
        raise _bad(record, "optical_path", repr(record.optical_path[:60]), "'d1=<mm>mm;d2=<mm>mm'")
    expected = _RESULTS[kind]
    for name in sorted(set(record.results) - set(expected)):
        raise _bad(record, f"result/{name}", "not a result of this kind", f"only {sorted(expected)}")
    for name, shape in expected.items():
        _array(record, "result", name, shape)
    for name, value in record.raw.items():
        a = np.asarray(value)
        if not isinstance(name, str) or not _RAW_NAME.match(name):
            raise _bad(record, f"raw/{name}", "an odd name", "letters, digits and _")
        if a.dtype.kind not in "biuf" or a.dtype.fields is not None or a.ndim > _MAX_RAW_NDIM \
                or a.size > _MAX_RAW_ELEMENTS:
            raise _bad(record, f"raw/{name}", f"dtype {a.dtype}, shape {a.shape}",
                       f"numbers, at most {_MAX_RAW_NDIM} dimensions and {_MAX_RAW_ELEMENTS} values")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise _bad(record, f"raw/{name}", "NaN or infinite values", "finite measurements")
    for name in _RESIDUALS[kind]:
        if name not in record.residuals:
            raise _bad(record, "residuals", f"no {name!r}", f"the {kind} calibration's {', '.join(_RESIDUALS[kind])}")
    for name, value in record.residuals.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isinf(value) \
                or value < 0 or (math.isnan(value) and (kind, name) not in _NAN_RESIDUALS):
            raise _bad(record, f"residuals[{name!r}]", repr(value)[:40], "a finite number >= 0")
    _check_json_depth(where, "info", record.info)
    _check_identity(record)
    {"lut": _check_lut, "alignment": _check_alignment, "camera": _check_camera}[kind](record)


def _check_identity(record: CalibrationRecord) -> None:
    _check_json_depth(record.path, "device_identity", record.device_identity, 3)
    tables = record.device_identity.items() if record.kind == "alignment" else [(None, record.device_identity)]
    for key, table in tables:
        what = "device_identity" + (f"[{key!r}]" if key else "")
        if not isinstance(table, dict):
            raise _bad(record, what, f"a JSON {type(table).__name__}", "a JSON object of the device's vendor, "
                                                                        "model, serial and firmware")
        for k, v in table.items():
            if not isinstance(v, str):
                raise _bad(record, f"{what}[{k!r}]", f"a JSON {type(v).__name__}", "text")
            if len(v) > 256:
                raise _bad(record, f"{what}[{k!r}]", f"{len(v)} characters", "at most 256")


def _check_lut(record: CalibrationRecord) -> None:
    phase = _array(record, "result", "phase_rad", (-1,))
    problem = response_problem(phase)
    if problem is not None:
        raise CalibrationFileError(f"{record.path}: result/phase_rad: {problem}")
    _scalar(record, "crosstalk_sigma_px", 0.0, MAX_CROSSTALK_SIGMA_PX,
            f"a pixel crosstalk sigma within 0..{MAX_CROSSTALK_SIGMA_PX:g} px (the fit's bounds)")


def _check_alignment(record: CalibrationRecord) -> None:
    m = _array(record, "result", "output_to_sensor", (2, 3))
    det = float(np.linalg.det(m[:, :2]))
    if not abs(det) > 0:
        raise _bad(record, "result/output_to_sensor", "a singular map", "a similarity (rotation, scale, offset)")
    _scalar(record, "sensor_pitch_ratio", *PITCH_RATIO_RANGE, f"a sensor pitch ratio within "
            f"{PITCH_RATIO_RANGE[0]:g}..{PITCH_RATIO_RANGE[1]:g} (the measurement's own limits)", lo_open=True)
    _scalar(record, "sensor_rotation_deg", -180.0, 180.0, "a rotation within -180..180 degrees")
    _array(record, "result", "sensor_offset_m", (2,))
    _array(record, "result", "decoder_shift_m", (2,))
    _scalar(record, "decoder_rotation_deg", -MAX_ROTATION_DEG, MAX_ROTATION_DEG,
            f"SLM2 turned by at most {MAX_ROTATION_DEG:g} degrees in the beam")
    _scalar(record, "decoder_pitch_m", 0.0, 1e-3, "an SLM pixel pitch (0 to 1 mm)", lo_open=True)
    centre = _array(record, "result", "decoder_slm_centre_px", (2,))
    if (centre < 0).any() or (centre > 65536).any():
        raise _bad(record, "result/decoder_slm_centre_px", str(centre.tolist()), "an SLM's centre pixel")
    sizes = {}
    for name in _ALIGNMENT_RAW:
        a = _array(record, "raw", name, None)
        if a.shape[1] != 2 or a.shape[0] < 2:
            raise _bad(record, f"raw/{name}", f"shape {a.shape}", "(points, 2) with at least 2 points")
        sizes[name] = a.shape[0]
    if sizes["decoder_centres_px"] != sizes["decoder_detected_m"] or \
            sizes["sensor_expected_m"] != sizes["sensor_detected_px"]:
        raise _bad(record, "raw", f"point counts {sizes}", "as many spots detected as shown")


def _check_camera(record: CalibrationRecord) -> None:
    dark = _array(record, "result", "dark_frame", None)
    if dark.min() < 0:
        raise _bad(record, "result/dark_frame", f"a minimum of {dark.min():g}", "counts >= 0")
    level = _scalar(record, "dark_level_dn", 0.0, math.inf, "a dark level >= 0 counts")
    _scalar(record, "saturation_dn", level, math.inf, f"a saturation level above the dark level ({level:g})",
            lo_open=True)
    _scalar(record, "exposure_s", 0.0, MAX_EXPOSURE_S, f"an exposure within 0..{MAX_EXPOSURE_S:g} s", lo_open=True)


def check_for_bench(record: CalibrationRecord, spec: BenchSpec) -> None:
    """What a bench expects of a calibration made for it (sizes, bit depths, placements within its
    optics): CalibrationFileError naming the field and what the bench file says, if not."""
    kind = record.kind
    if kind == "lut":
        bits = spec.slm_bitdepth[record.device]
        n = np.asarray(record.results["phase_rad"]).size
        if n != 2**bits:
            raise _bad(record, "result/phase_rad", f"{n} values",
                       f"one per gray level of [{record.device}], a {bits}-bit SLM ({2**bits}); re-run "
                       f"`optgen calibrate lut`")
    elif kind == "camera":
        cols, rows = spec.camera_resolution
        top = 2**spec.camera_bitdepth - 1
        dark = np.asarray(record.results["dark_frame"])
        if dark.shape != (rows, cols):
            raise _bad(record, "result/dark_frame", f"shape {dark.shape}",
                       f"the [camera] sensor's {rows} x {cols} pixels; re-run `optgen calibrate camera`")
        if float(dark.max()) > top:
            raise _bad(record, "result/dark_frame", f"counts up to {float(dark.max()):g}",
                       f"counts within the camera's {spec.camera_bitdepth} bits (0..{top})")
        for name in ("dark_level_dn", "saturation_dn"):
            v = float(record.results[name])
            if v > top:
                raise _bad(record, f"result/{name}", f"{v:g}",
                           f"a level within the camera's {spec.camera_bitdepth} bits (0..{top})")
    else:
        _check_alignment_for_bench(record, spec)


def _check_alignment_for_bench(record: CalibrationRecord, spec: BenchSpec) -> None:
    r = record.results
    again = "re-run `optgen calibrate alignment`"
    m = np.asarray(r["output_to_sensor"], dtype=np.float64)
    cols, rows = spec.camera_resolution
    ratio = 1.0 / (math.sqrt(abs(np.linalg.det(m[:, :2]))) * spec.camera_pitch_m)
    if not PITCH_RATIO_RANGE[0] < ratio < PITCH_RATIO_RANGE[1]:
        raise _bad(record, "result/output_to_sensor", f"a scale of {ratio:.3g} x the [camera] pitch",
                   f"{PITCH_RATIO_RANGE[0]:g}..{PITCH_RATIO_RANGE[1]:g} x the pitch ({spec.camera_pitch_m * 1e6:g} um)")
    x, y = m[:, 2]
    if not (-0.5 * cols <= x <= 1.5 * cols and -0.5 * rows <= y <= 1.5 * rows):
        raise _bad(record, "result/output_to_sensor", f"the optical axis at sensor pixel ({x:.0f}, {y:.0f})",
                   f"on or near the {cols} x {rows} sensor")
    turn = float(r["sensor_rotation_deg"]) - spec.sensor_rotation_deg
    turn = (turn + 180.0) % 360.0 - 180.0
    if abs(turn) > MAX_ROTATION_DEG:
        raise _bad(record, "result/sensor_rotation_deg", f"{float(r['sensor_rotation_deg']):g} degrees",
                   f"within {MAX_ROTATION_DEG:g} degrees of the bench file's sensor_rotation_deg "
                   f"({spec.sensor_rotation_deg:g}); if the sensor is turned that far, state it in [geometry] "
                   f"sensor_rotation_deg and {again}")
    offset = np.asarray(r["sensor_offset_m"], dtype=np.float64) - np.asarray(spec.sensor_offset_m)
    extent = np.array([cols, rows]) * spec.camera_pitch_m
    if (np.abs(offset) > extent).any():
        raise _bad(record, "result/sensor_offset_m", f"{(offset * 1e6).round(1).tolist()} um from the bench file's "
                   f"placement", f"within the sensor's size ({(extent * 1e6).round(1).tolist()} um) of [geometry] "
                   f"sensor_offset_um; if the sensor sits that far off, state it there and {again}")
    key = "decoding_slm"
    scols, srows = spec.slm_resolution[key]
    pitch = spec.slm_pitch_m[key]
    half = np.array([scols, srows]) * pitch / 2.0
    shift = np.asarray(r["decoder_shift_m"], dtype=np.float64)
    if (np.abs(shift) > half).any():
        raise _bad(record, "result/decoder_shift_m", f"{(shift * 1e6).round(2).tolist()} um",
                   f"SLM2 shifted by less than half its size ({(half * 1e6).round(1).tolist()} um)")
    if abs(float(r["decoder_pitch_m"]) - pitch) > 1e-6 * pitch:
        raise _bad(record, "result/decoder_pitch_m", f"{float(r['decoder_pitch_m']) * 1e6:g} um",
                   f"[{key}] pitch_um {pitch * 1e6:g}; {again}")
    centre = np.asarray(r["decoder_slm_centre_px"], dtype=np.float64)
    if not np.allclose(centre, [(scols - 1) / 2.0, (srows - 1) / 2.0]):
        raise _bad(record, "result/decoder_slm_centre_px", str(centre.tolist()),
                   f"the centre of [{key}]'s {scols} x {srows} pixels; {again}")
    centres = np.asarray(record.raw["decoder_centres_px"], dtype=np.float64)
    if (centres < -0.5).any() or (centres[:, 0] > scols - 0.5).any() or (centres[:, 1] > srows - 0.5).any():
        raise _bad(record, "raw/decoder_centres_px", "lens centres off the SLM", f"pixels of [{key}]'s {scols} x "
                   f"{srows}")
