"""One calibration file: its record, its header and checksum, and reading it back checked.

See :mod:`optgen.calibration.store` for the layout and the guarantees; the content checks are in
:mod:`optgen.calibration.record_checks`."""

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

from optgen.drivers.common.files import publish_exclusively
from optgen.drivers.errors import OptgenError

__all__ = ["CalibrationFileError", "CalibrationRecord", "DEVICES", "FORMAT_VERSION", "KINDS", "PATH_KINDS", "MAX_FILE_BYTES", "header_bytes",
           "read_record", "seal"]

FORMAT_VERSION = 2


KINDS = ("lut", "alignment", "camera", "wavefront", "distances")


DEVICES = {"lut": ("encoding_slm", "decoding_slm"), "alignment": ("bench",), "camera": ("camera",),
           "wavefront": ("encoding_slm", "decoding_slm"), "distances": ("bench",)}


NAME_PATTERN = re.compile(r"^(lut|alignment|camera|wavefront|distances)-([a-z_0-9]+)-([0-9.]+)nm-(\d{8}T\d{6}\d{6}Z)\.h5$")


NAME_HELP = "<kind>-<device>-<wavelength>nm-<UTC time>.h5"


PATH_KINDS = ("alignment", "distances")    # kinds that hold only for the optical path they were made on


WAVELENGTH_TOLERANCE_NM = 0.5


MAX_FILE_BYTES = 512 * 2**20          # the largest a calibration file may be (a 64 MP dark frame is 256 MiB)


HEADER_SIZE = 512                    # the HDF5 user block


_MAGIC = b"OPTGEN CALIBRATION FILE\n"


MAX_RAW_ELEMENTS = 1 << 20           # per raw array (the largest written holds a few hundred values)


MAX_RAW_NDIM = 4


_MAX_RESULT_ELEMENTS = 1 << 26        # a dark frame of a 64 MP sensor


_MAX_JSON_DEPTH = 8


_TEXT_LIMITS = {"kind": 32, "device": 64, "optical_path": 200, "created": 64, "bench_name": 4096,
                "bench_text": 1 << 20, "device_identity": 1 << 16, "residuals": 1 << 16, "info": 1 << 20}


_ATTR_TYPES = {"format_version": "int", "kind": "text", "device": "text", "wavelength_nm": "float",
               "optical_path": "text", "created": "text", "bench_name": "text", "bench_text": "text",
               "device_identity": "text", "residuals": "text", "info": "text"}


RAW_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class CalibrationFileError(OptgenError, ValueError):
    """A calibration file that is corrupt, from another format version, or made for another key."""


def now_stamp() -> tuple[str, str]:
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
        if abs(self.wavelength_nm - wavelength_nm) > WAVELENGTH_TOLERANCE_NM:
            raise CalibrationFileError(f"{where}: made at {self.wavelength_nm:g} nm; this bench runs at "
                                       f"{wavelength_nm:g} nm. Calibrate at this wavelength")
        if kind in PATH_KINDS and self.optical_path != path_key:
            raise CalibrationFileError(f"{where}: made on optical path {self.optical_path!r}; this bench is "
                                       f"{path_key!r}. Re-run optgen calibrate {kind}")


def header_bytes(version: int, digest: str) -> bytes:
    text = _MAGIC + f"format {int(version)}\nsha256 {digest}\n".encode("ascii")
    return text.ljust(HEADER_SIZE, b"\0")


def seal(path: Path) -> str:
    """Write the header (format version, SHA-256 of everything after it) into the file's user block."""
    with open(path, "r+b") as fh:
        fh.seek(HEADER_SIZE)
        digest = hashlib.sha256(fh.read()).hexdigest()
        fh.seek(0)
        fh.write(header_bytes(FORMAT_VERSION, digest))
        fh.flush()
        os.fsync(fh.fileno())
    return digest


def place_exclusively(part: Path, path: Path) -> None:
    """Give the finished file ``part`` its name ``path``, never over an existing file."""
    try:
        publish_exclusively(part, path)
    except FileExistsError:
        raise CalibrationFileError(f"{path}: exists; an existing calibration is never overwritten") from None
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
    if len(data) < HEADER_SIZE or not data.startswith(_MAGIC):
        raise CalibrationFileError(f"{path}: header: not an optgen calibration file (expected "
                                   f"{HEADER_SIZE} bytes starting {_MAGIC.strip().decode()!r}); it is "
                                   f"truncated or another kind of file")
    match = re.match(rb"format (\d{1,6})\nsha256 ([0-9a-f]{64})\n", data[len(_MAGIC):HEADER_SIZE])
    if match is None:
        raise CalibrationFileError(f"{path}: header: unreadable format version or checksum; the file is corrupt")
    version, digest = int(match.group(1)), match.group(2).decode("ascii")
    if version != FORMAT_VERSION:
        raise CalibrationFileError(f"{path}: format_version: {version}; this optgen reads version {FORMAT_VERSION}"
                                   f" only: {again}, or use the optgen that wrote it")
    if data[:HEADER_SIZE] != header_bytes(version, digest):
        raise CalibrationFileError(f"{path}: header: unexpected bytes after the checksum; the file is corrupt or "
                                   f"was edited")
    if data[HEADER_SIZE:HEADER_SIZE + len(_HDF5_SIGNATURE)] != _HDF5_SIGNATURE:
        raise CalibrationFileError(f"{path}: no HDF5 data after the header; the file is truncated or corrupt")
    return version, digest


def read_record(path: str | Path, check_content=None) -> CalibrationRecord:
    """Read and verify one calibration file; CalibrationFileError with the reason if it cannot serve.

    In order: the name, the file (a regular file within MAX_FILE_BYTES), the header (format
    version), the checksum over every byte after the header, the HDF5 layout and the type of
    every attribute and array, the name against the content, then ``check_content(record)``
    (``optgen.calibration.store.load_record`` passes the content checks). Never anything but
    CalibrationFileError for a bad file."""
    path = Path(path)
    name = NAME_PATTERN.match(path.name)
    if name is None:
        raise CalibrationFileError(f"{path}: not named as a calibration file ({NAME_HELP})")
    data = _read_bytes(path)
    version, digest = _check_header(path, data, name.group(1))
    if hashlib.sha256(memoryview(data)[HEADER_SIZE:]).hexdigest() != digest:
        raise CalibrationFileError(f"{path}: checksum mismatch; the file is corrupt, truncated or was edited")
    try:
        attrs, arrays = _parse(path, data)
        record = record_from(path, attrs, arrays, version)
        record.checksum = digest
        check_name(path, name, record)
        if check_content is not None:
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
    limit = _MAX_RESULT_ELEMENTS if group == "result" else MAX_RAW_ELEMENTS
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
        if len(ds.shape) > MAX_RAW_NDIM:
            raise CalibrationFileError(f"{path}: {where}: {len(ds.shape)} dimensions; expected at most "
                                       f"{MAX_RAW_NDIM}")
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
    check_json_depth(path, name, obj)
    return obj


def check_json_depth(path: Path, name: str, obj, limit: int = _MAX_JSON_DEPTH) -> None:
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise CalibrationFileError(f"{path}: {name}: JSON nested {depth} levels deep; expected at most {limit}")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def record_from(path: Path, attrs: dict, arrays: dict, version: int) -> CalibrationRecord:
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


def check_name(path: Path, name: re.Match, record: CalibrationRecord) -> None:
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


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
