"""Reading a model file that may be damaged, or made to do harm: all of it is checked before use.

A model file is a zip archive of ``.npy`` arrays (``numpy.savez``). The checks, in order, each
before anything of the next step is read or allocated:

1. the file's size, and the zip's end record (how many members, how big the directory is);
2. every member, from the zip's directory alone: unencrypted, stored or deflated, its size
   uncompressed, the total, and the compression ratio (a zip bomb is refused unread);
3. the header (a small JSON member): an object holding every required field, each within a
   sane range;
4. each expected array's ``.npy`` header: its dtype, its shape, and the bytes that shape
   declares against the bytes the member holds (an array "of 10^12 elements" is refused
   unallocated); then the shapes of the whole encoder chain (noise -> hidden layers ->
   seed values and scale per colour, biases and int8 scales matching), decoder phases and
   teacher samples against the header;
5. only then the data, streamed into arrays of the declared (and checked) size;
6. the values: finite, of sane magnitudes, scales positive.

What fails raises :class:`ModelFileError`, whose message names the file, the field and what was
expected. ``numpy.load`` is not used: it would allocate what a member's header declares.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from optgen.lab.model.archive import (
    DeclaredArray,
    check_end_record,
    fail,
    npy_header,
    read_array,
    read_header,
    read_members,
    reading,
    show_value,
)
from optgen.lab.model.class_input import class_inputs
from optgen.lab.model.geometry import OpticalGeometry

__all__ = ["ModelFileContents", "read_model_file", "shown_path", "READABLE_VERSIONS", "WEIGHT_FORMATS"]

READABLE_VERSIONS = (1, 2)   # 1: float32 or float16 weights; 2: also int8 with a float32 scale per column
WEIGHT_FORMATS = ("float32", "float16", "int8")


MAX_LAYERS = 64
MAX_WIDTH = 65_536                   # outputs of one hidden layer
MAX_NOISE_VALUES = 65_536
MAX_COLOURS = 8
MAX_ENCODER_WEIGHTS = 64 * 2**20     # all layers together (256 MB as float32)
MAX_WEIGHT = 1e4                     # largest |weight| or |bias|
MAX_PHASE_RAD = 1e4                  # largest |decoder phase|
MAX_TEACHER_SAMPLES = 100_000
MAX_TEACHER_VALUE = 1e4
MAX_TEACHER_NOISE = 1e3
MAX_LOG_SCALE_OFFSET = 80.0          # exp() of float32 overflows above 88
MAX_NAME_CHARS = 200
MAX_FILE_BYTES = 512 * 2**20

#: required header fields and what each should hold
REQUIRED_FIELDS = {
    "format_version": "one of " + ", ".join(str(v) for v in READABLE_VERSIONS),
    "name": "the model's name (text)",
    "geometry": "an object with the optical geometry the model was trained for",
    "noise_shape": "a list of positive integers",
    "wavelengths_nm": "a list of wavelengths in nm",
    "layers": f"the number of encoder layers (1 to {MAX_LAYERS})",
    "log_scale_offset": f"a finite number within +-{MAX_LOG_SCALE_OFFSET:g}",
}

#: geometry field: (integer, low, high, low excluded)
GEOMETRY_RANGES: dict[str, tuple[bool, float, float, bool]] = {
    "wavelength_nm": (False, 200.0, 2000.0, False),
    "pitch_um": (False, 0.0, 1000.0, True),
    "d1_mm": (False, 0.0, 1e5, True),
    "d2_mm": (False, 0.0, 1e5, True),
    "seed_superpixels": (True, 1, 1024, False),
    "superpixel_px": (True, 1, 1024, False),
    "decoder_px": (True, 1, 8192, False),
    "output_window_px": (True, 1, 65_536, False),
    "output_pixels": (True, 1, 4096, False),
    "aperture_mm": (False, 0.0, 1e4, True),
    "grid_px": (True, 1, 65_536, False),
}


@dataclass
class ModelFileContents:
    """What a model file holds, checked: header fields, encoder weights in float32, the rest."""

    name: str
    geometry: OpticalGeometry
    noise_shape: tuple[int, ...]
    wavelengths_nm: tuple[float, ...]
    weights: list[tuple[np.ndarray, np.ndarray]]
    decoder_phase: dict[float, np.ndarray]
    log_scale_offset: float
    info: dict
    sha256: str
    teacher_samples: np.ndarray | None
    teacher_noise: np.ndarray | None


def shown_path(path: Path | str) -> str:
    """The file's name as messages show it: on one line, whatever characters it holds."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def read_model_file(path: Path) -> ModelFileContents:
    """Read and check the model file ``path``; raise ModelFileError on anything wrong with it."""
    shown = shown_path(path)
    with reading(shown, "file"):
        fh = open(path, "rb")   # noqa: SIM115 - closed below; an error opening it is a ModelFileError
    with fh:
        return _read(shown, fh)


def _read(path: str, fh: BinaryIO) -> ModelFileContents:
    with reading(path, "file"):
        size = os.fstat(fh.fileno()).st_size
    if size > MAX_FILE_BYTES:
        fail(path, "file", f"{size} bytes; expected a model file of at most {MAX_FILE_BYTES} bytes")
    check_end_record(path, fh)
    with reading(path, "file"):
        fh.seek(0)
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        fh.seek(0)
    with reading(path, "zip archive"):
        archive = zipfile.ZipFile(fh)
    with archive:
        members = read_members(path, archive)
        header = read_header(path, archive, members, tuple(REQUIRED_FIELDS))
        fields = _check_header(path, header)
        plan = _check_shapes(path, archive, members, fields)
        arrays = {key: read_array(path, archive, key, declared) for key, declared in plan.items()}
    return _check_values(path, fields, arrays, digest)


# -- the header ---------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(path: str, field: str, value, integer: bool, low: float, high: float, low_open: bool = False):
    """``value`` if it is an integer (or a number) within [low, high] (or (low, high])."""
    ok = (type(value) is int) if integer else (_is_number(value) and math.isfinite(value))
    if ok:
        ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        what = "an integer" if integer else "a finite number"
        fail(path, f"header field {field!r}", f"{show_value(value)}; expected {what} from {low:g}{' (excluded)' if low_open else ''} "
                                               f"to {high:g}")
    return value


@dataclass
class _Fields:
    version: int
    name: str
    geometry: OpticalGeometry
    noise_shape: tuple[int, ...]
    wavelengths: tuple[float, ...]
    layers: int
    log_scale_offset: float
    weights: str | None
    info: dict


def _check_header(path: str, header: dict) -> _Fields:
    version = header.get("format_version")
    if "format_version" not in header:
        fail(path, "header field 'format_version'", f"missing; expected {REQUIRED_FIELDS['format_version']}")
    if type(version) is not int or version not in READABLE_VERSIONS:
        fail(path, "header field 'format_version'", f"format version {show_value(version)}; this optgen reads "
                                                     f"{' and '.join(str(v) for v in READABLE_VERSIONS)}")
    for key, what in REQUIRED_FIELDS.items():
        if key not in header:
            fail(path, f"header field {key!r}", f"missing; expected {what}")
    name = header["name"]
    if not (isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS and name.isprintable()):
        fail(path, "header field 'name'", f"{show_value(name)}; expected text of 1 to {MAX_NAME_CHARS} printable "
                                           f"characters")
    raw_geometry = header["geometry"]
    if not isinstance(raw_geometry, dict):
        fail(path, "header field 'geometry'", f"{show_value(raw_geometry)}; expected {REQUIRED_FIELDS['geometry']}")
    values = {}
    for key, (integer, low, high, low_open) in GEOMETRY_RANGES.items():
        if key not in raw_geometry:
            fail(path, f"header field 'geometry.{key}'", "missing; expected " + ("an integer" if integer else "a number"))
        values[key] = _number(path, f"geometry.{key}", raw_geometry[key], integer, low, high, low_open)
    geometry = OpticalGeometry(**values)
    noise_shape = header["noise_shape"]
    if not (isinstance(noise_shape, list) and 1 <= len(noise_shape) <= 4
            and all(type(v) is int and v >= 1 for v in noise_shape)
            and math.prod(noise_shape) <= MAX_NOISE_VALUES):
        fail(path, "header field 'noise_shape'", f"{show_value(noise_shape)}; expected a list of 1 to 4 positive integers "
                                                  f"of at most {MAX_NOISE_VALUES} values in all")
    wavelengths = header["wavelengths_nm"]
    if not (isinstance(wavelengths, list) and 1 <= len(wavelengths) <= MAX_COLOURS):
        fail(path, "header field 'wavelengths_nm'", f"{show_value(wavelengths)}; expected a list of 1 to {MAX_COLOURS} "
                                                     f"wavelengths")
    wavelengths = tuple(float(_number(path, "wavelengths_nm", wl, False, 200.0, 2000.0)) for wl in wavelengths)
    for i, a in enumerate(wavelengths):
        if any(abs(a - b) <= 1.0 for b in wavelengths[i + 1:]):
            fail(path, "header field 'wavelengths_nm'", f"{show_value(list(wavelengths))}; expected wavelengths more "
                                                         f"than 1 nm apart")
    layers = _number(path, "layers", header["layers"], True, 1, MAX_LAYERS)
    offset = float(_number(path, "log_scale_offset", header["log_scale_offset"], False,
                           -MAX_LOG_SCALE_OFFSET, MAX_LOG_SCALE_OFFSET))
    weights = header.get("weights")
    formats = WEIGHT_FORMATS if version >= 2 else ("float32", "float16")
    if weights is not None and weights not in formats:
        fail(path, "header field 'weights'", f"{show_value(weights)}; expected one of {', '.join(formats)} "
                                              f"(format version {version})")
    info = header.get("info", {})
    if not isinstance(info, dict):
        fail(path, "header field 'info'", f"{show_value(info)}; expected an object (how the model was trained)")
    try:
        class_inputs(info)
    except ValueError as exc:
        fail(path, "header field 'info'", str(exc))
    return _Fields(version, name, geometry, tuple(noise_shape), wavelengths, layers, offset, weights, info)


# -- the arrays' shapes ----------------------------------------------------------------------------


def _is_real(dtype: np.dtype, sizes: tuple[int, ...] = (2, 4, 8)) -> bool:
    return dtype.kind == "f" and dtype.itemsize in sizes


def _check_shapes(path: str, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo],
                  f: _Fields) -> dict[str, DeclaredArray]:
    """Every array the header implies, from its .npy header: dtype, shape, and the encoder chain."""
    plan: dict[str, DeclaredArray] = {}

    def declared(key: str, what: str, required: bool = True) -> DeclaredArray | None:
        if key not in members:
            if required:
                fail(path, f"array {key}", f"missing (no member {key}.npy); expected {what}")
            return None
        plan[key] = npy_header(path, archive, key, members[key])
        return plan[key]

    n = f.geometry.seed_superpixels
    colours = len(f.wavelengths)
    noise_values = math.prod(f.noise_shape)
    expected_out = colours * (n * n + 1)
    formats = {np.dtype(np.float32), np.dtype(np.float16)} | ({np.dtype(np.int8)} if f.version >= 2 else set())
    class_rows = class_inputs(f.info)           # one-hot class inputs after the noise values (lab.model.class_input)
    inputs, total = noise_values + class_rows, 0
    for i in range(f.layers):
        last = i == f.layers - 1
        w = declared(f"w{i}", f"the encoder weights of layer {i} of {f.layers}")
        field = f"array w{i}"
        if len(w.shape) != 2:
            fail(path, field, f"encoder weights w{i} have shape {w.shape}; expected a matrix (inputs, outputs)")
        if w.dtype.newbyteorder("=") not in formats:
            fail(path, field, f"encoder weights w{i} are {w.dtype}; expected "
                               f"{', '.join(sorted(str(t) for t in formats))} (format version {f.version})")
        if f.weights is not None and w.dtype.newbyteorder("=") != np.dtype(f.weights):
            fail(path, field, f"encoder weights w{i} are {w.dtype}; expected {f.weights}, as header field "
                               f"'weights' says")
        rows, cols = w.shape
        source = "the noise values (noise_shape " + str(list(f.noise_shape)) + ")" + \
            (f" and {class_rows} one-hot class inputs" if class_rows else "") \
            if i == 0 else f"the outputs of w{i - 1}"
        if rows != inputs:
            fail(path, field, f"encoder weights w{i} have shape {w.shape}; expected {inputs} rows, one for each of "
                               f"{source}")
        if last and cols != expected_out:
            fail(path, field, f"encoder weights w{i} have shape {w.shape}; expected {expected_out} columns: "
                               f"{colours} colour(s) x ({n}x{n} seed values + 1 scale)")
        if not last and not 1 <= cols <= MAX_WIDTH:
            fail(path, field, f"encoder weights w{i} have shape {w.shape}; expected 1 to {MAX_WIDTH} columns")
        total += rows * cols
        if total > MAX_ENCODER_WEIGHTS:
            fail(path, field, f"the encoder reaches {total} weights by w{i}; expected at most {MAX_ENCODER_WEIGHTS}")
        scale_key = f"w{i}_scale"
        if w.dtype.kind == "i":
            if scale_key not in members:
                fail(path, field, f"encoder weights w{i} are int8 without their scale w{i}_scale")
            s = declared(scale_key, "")
            if s.shape != (1, cols) or not _is_real(s.dtype, (4,)):
                fail(path, f"array {scale_key}", f"scale w{i}_scale has shape {s.shape}; expected (1, {cols}) "
                                                  f"of finite positive float32 values"
                                                  + ("" if _is_real(s.dtype, (4,)) else f" (it is {s.dtype})"))
        elif scale_key in members:
            fail(path, f"array {scale_key}", f"encoder weights w{i} are {w.dtype} with a scale; expected a scale "
                                              f"only with int8 weights")
        b = declared(f"b{i}", f"the biases of layer {i}")
        if b.shape != (cols,) or not _is_real(b.dtype):
            fail(path, f"array b{i}", f"biases b{i} have shape {b.shape} ({b.dtype}); expected ({cols},) of "
                                       f"floating-point numbers (the columns of w{i})")
        inputs = cols
    d = f.geometry.decoder_px
    for wl in f.wavelengths:
        key = f"decoder_{wl:g}nm"
        phase = declared(key, f"the decoder phase at {wl:g} nm, {d}x{d} radians")
        if phase.shape != (d, d) or not _is_real(phase.dtype):
            fail(path, f"array {key}", f"the decoder phase at {wl:g} nm is not a finite {d}x{d} array of real "
                                        f"phases (it is {phase.dtype}, shape {phase.shape}; expected {d}x{d} "
                                        f"floating-point radians, geometry.decoder_px)")
    samples = declared("teacher_samples", "", required=False)
    p = f.geometry.output_pixels
    if samples is not None and (len(samples.shape) != 3 or samples.shape[1:] != (p, p)
                                or not 1 <= samples.shape[0] <= MAX_TEACHER_SAMPLES or not _is_real(samples.dtype)):
        fail(path, "array teacher_samples", f"teacher_samples have shape {samples.shape} ({samples.dtype}); "
                                             f"expected (N, {p}, {p}) floating-point images (geometry."
                                             f"output_pixels), N from 1 to {MAX_TEACHER_SAMPLES}")
    noise = declared("teacher_noise", "", required=False)
    if noise is not None:
        expected = (samples.shape[0] if samples is not None else 0, noise_values)
        if noise.shape != expected or not _is_real(noise.dtype):
            fail(path, "array teacher_noise", f"teacher_noise has shape {noise.shape}; expected {expected} of "
                                               f"finite values (one noise vector per teacher sample), floating-point "
                                               f"(it is {noise.dtype})")
    return plan


# -- the values ------------------------------------------------------------------------------------


def _largest(a: np.ndarray) -> float:
    """max |a| (NaN if any is NaN); 0 for an empty array."""
    if a.size == 0:
        return 0.0
    return float(max(a.max(), -a.min()))


def _check_values(path: str, f: _Fields, arrays: dict[str, np.ndarray], digest: str) -> ModelFileContents:
    weights = []
    for i in range(f.layers):
        w = arrays[f"w{i}"]
        if w.dtype.kind == "i":
            scale = arrays[f"w{i}_scale"]
            if not (np.isfinite(scale).all() and (scale > 0).all() and _largest(scale) <= MAX_WEIGHT):
                fail(path, f"array w{i}_scale", f"scale w{i}_scale has shape {scale.shape}; expected "
                                                 f"{scale.shape} of finite positive values (at most {MAX_WEIGHT:g})")
            w = w.astype(np.float32) * scale
        else:
            w = w.astype(np.float32, copy=False)
        b = arrays[f"b{i}"].astype(np.float32, copy=False)
        for key, a, what in ((f"w{i}", w, "weights"), (f"b{i}", b, "biases")):
            largest = _largest(a)
            if not math.isfinite(largest):
                fail(path, f"array {key}", f"encoder {what} contain NaN or infinite values; expected finite numbers")
            if largest > MAX_WEIGHT:
                fail(path, f"array {key}", f"encoder {what} reach |{key[0]}| = {largest:.3g}; expected at most "
                                            f"{MAX_WEIGHT:g} (a trained encoder's stay below 1)")
        weights.append((w, b))
    decoder = {}
    d = f.geometry.decoder_px
    for wl in f.wavelengths:
        key = f"decoder_{wl:g}nm"
        phase = arrays[key]
        phase = phase if phase.dtype == np.float32 else phase.astype(np.float32)
        if not _largest(phase) <= MAX_PHASE_RAD:   # NaN fails too
            fail(path, f"array {key}", f"the decoder phase at {wl:g} nm is not a finite {d}x{d} array of real "
                                        f"phases (it holds NaN, infinite or |values| above {MAX_PHASE_RAD:g} rad)")
        decoder[wl] = phase
    samples = arrays.get("teacher_samples")
    if samples is not None:
        samples = samples.astype(np.float32)
        if not _largest(samples) <= MAX_TEACHER_VALUE:
            fail(path, "array teacher_samples", f"teacher_samples hold NaN, infinite or |values| above "
                                                 f"{MAX_TEACHER_VALUE:g}; expected images")
    noise = arrays.get("teacher_noise")
    if noise is not None:
        noise = noise.astype(np.float32, copy=False)
        if not _largest(noise) <= MAX_TEACHER_NOISE:
            fail(path, "array teacher_noise", f"teacher_noise has shape {noise.shape}; expected {noise.shape} of "
                                               f"finite values (at most {MAX_TEACHER_NOISE:g} in size)")
    return ModelFileContents(name=f.name, geometry=f.geometry, noise_shape=f.noise_shape, wavelengths_nm=f.wavelengths,
                             weights=weights, decoder_phase=decoder, log_scale_offset=f.log_scale_offset, info=f.info,
                             sha256=digest, teacher_samples=samples, teacher_noise=noise)
