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

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from optgen.calibration.record import (
    DEVICES,
    FORMAT_VERSION,
    HEADER_SIZE,
    KINDS,
    NAME_HELP,
    NAME_PATTERN,
    PATH_KINDS,
    WAVELENGTH_TOLERANCE_NM,
    CalibrationFileError,
    CalibrationRecord,
    check_name,
    now_stamp,
    place_exclusively,
    read_record,
    record_from,
    seal,
)
from optgen.calibration.record_checks import BenchSpec, check_content, check_for_bench

__all__ = ["CalibrationStore", "Selection", "load_record"]


def load_record(path: str | Path) -> CalibrationRecord:
    """Read one calibration file, verified in full: its format, checksum and layout
    (:func:`optgen.calibration.record.read_record`), then its content (:func:`check_content`).
    CalibrationFileError naming the file and field for a bad one, never anything else."""
    return read_record(path, check_content)


@dataclass
class Selection:
    """The calibrations a bench runs with, and the files of its store passed over, each with the reason."""

    records: dict[tuple[str, str], CalibrationRecord | None]
    skipped: list[str] = field(default_factory=list)
    #: those of ``skipped`` made at another of the bench's own colours: expected in a store serving its colours
    other_colours: list[str] = field(default_factory=list)


class CalibrationStore:
    """A folder of calibration files."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def save(self, record: CalibrationRecord) -> Path:
        """Write ``record`` as a new file (never over an existing one); returns its path.

        The record is checked as loading checks it first: a file that would be refused is never written."""
        if record.kind not in KINDS:
            raise ValueError(f"calibration kind {record.kind!r}: expected one of {KINDS}")
        created, stamp = now_stamp()
        path = self.folder / f"{record.kind}-{record.device}-{record.wavelength_nm:g}nm-{stamp}.h5"
        attrs = {"format_version": FORMAT_VERSION, "kind": record.kind, "device": record.device,
                 "wavelength_nm": float(record.wavelength_nm), "optical_path": record.optical_path,
                 "created": created, "bench_name": record.bench_name, "bench_text": record.bench_text,
                 "device_identity": json.dumps(record.device_identity),
                 "residuals": json.dumps(record.residuals), "info": json.dumps(record.info)}
        results = {k: np.asarray(v) for k, v in record.results.items()}
        raw = {k: np.asarray(v) for k, v in record.raw.items()}
        name = NAME_PATTERN.match(path.name)
        if name is None:
            raise CalibrationFileError(f"{path}: device {record.device!r} or wavelength {record.wavelength_nm!r} "
                                       f"makes no calibration file name ({NAME_HELP})")
        candidate = record_from(path, attrs, {"result": results, "raw": raw}, FORMAT_VERSION)
        check_name(path, name, candidate)
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
                f = h5py.File(part, "w-", userblock_size=HEADER_SIZE)
            except (FileExistsError, OSError) as exc:
                raise CalibrationFileError(f"{path}: cannot create ({exc})") from None
            with f:
                f.attrs.update(attrs)
                for group, arrays in (("result", results), ("raw", raw)):
                    g = f.create_group(group)
                    for key, value in arrays.items():
                        g.create_dataset(key, data=value)
            digest = seal(part)
            place_exclusively(part, path)
        finally:
            part.unlink(missing_ok=True)
        record.path, record.created, record.format_version, record.checksum = path, created, FORMAT_VERSION, digest
        return path

    def records(self) -> list[Path]:
        """Calibration files in the folder, oldest first (by the time in their name)."""
        return [p for p in self._entries() if NAME_PATTERN.match(p.name)]

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
            m = NAME_PATTERN.match(p.name)
            return (0, m.group(4), p.name) if m else (1, "", p.name)

        return sorted(entries, key=order)

    def latest(self, kind: str, device: str, wavelength_nm: float, path_key: str,
               spec: BenchSpec | None = None) -> CalibrationRecord | None:
        """The newest calibration for this key, loaded and checked (against ``spec`` when given);
        None if there is none. An alignment for another optical path is passed over."""
        candidates = []
        for path in self.records():
            m = NAME_PATTERN.match(path.name)
            if m.group(1) == kind and m.group(2) == device and _close(m.group(3), wavelength_nm):
                candidates.append(path)
        for path in reversed(candidates):
            record = load_record(path)
            if kind not in PATH_KINDS or record.optical_path == path_key:
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
        other_colours: list[str] = []
        candidates: dict[tuple[str, str], list[Path]] = {w: [] for w in wanted}
        elsewhere: dict[tuple[str, str, str], Path] = {}
        for path in self._entries():
            m = NAME_PATTERN.match(path.name)
            if m is None:
                if path.name.lower().endswith(".h5"):
                    skipped.append(f"{path}: not named as a calibration file ({NAME_HELP}); not read")
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
            if colour:
                other_colours.append(skipped[-1])
        records: dict[tuple[str, str], CalibrationRecord | None] = {}
        for (kind, device), paths in candidates.items():
            records[(kind, device)] = None
            for path in reversed(paths):
                record = load_record(path)
                record.check_key(kind, device, spec.wavelength_nm, record.optical_path)
                if kind in PATH_KINDS and record.optical_path != spec.optical_path:
                    skipped.append(f"{path}: made on optical path {record.optical_path}; this bench is "
                                   f"{spec.optical_path}; not used (optgen calibrate {kind} measures this "
                                   f"path)")
                    continue
                check_for_bench(record, spec)
                records[(kind, device)] = record
                break
        return Selection(records, skipped, other_colours)


def _close(wavelength_text: str, wavelength_nm: float) -> bool:
    try:
        return abs(float(wavelength_text) - wavelength_nm) <= WAVELENGTH_TOLERANCE_NM
    except ValueError:
        return False


# --- the header and checksum ------------------------------------------------------------------


# --- loading ----------------------------------------------------------------------------------


# --- content ----------------------------------------------------------------------------------


