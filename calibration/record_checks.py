"""What a calibration record's content must be: for any bench (:func:`check_content`: finite,
in range, of the right shapes) and for the bench about to use it (:func:`check_for_bench`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from optgen.calibration.lut import response_problem
from optgen.calibration.record import (
    KINDS,
    MAX_RAW_ELEMENTS,
    MAX_RAW_NDIM,
    RAW_NAME,
    CalibrationFileError,
    CalibrationRecord,
    check_json_depth,
)

__all__ = ["BenchSpec", "check_content", "check_for_bench"]

_PATH_KEY = re.compile(r"^d1=(\d{1,9}\.\d{3})mm;d2=(\d{1,9}\.\d{3})mm$")


# content limits (what a measurement can produce, with room to spare)
MAX_ROTATION_DEG = 5.0           # SLM2 in the beam, and the sensor against the bench file's placement


PITCH_RATIO_RANGE = (0.5, 2.0)   # the measurement refuses a sensor scale outside it


MAX_CROSSTALK_SIGMA_PX = 3.0     # the response fit's bound


MAX_EXPOSURE_S = 3600.0


_RESIDUALS = {"lut": ("fit_rms",), "alignment": ("sensor_residual_px", "decoder_residual_m"),
              "camera": ("linearity_rms",), "wavefront": ("misfit",), "distances": ("spread_m",)}


_NAN_RESIDUALS = {("camera", "linearity_rms")}   # not measured when every exposure step clipped


# result arrays of each kind: name -> (shape, ``None`` for any 2-D frame)
_RESULTS = {
    "lut": {"phase_rad": (-1,), "crosstalk_sigma_px": ()},
    "alignment": {"output_to_sensor": (2, 3), "sensor_offset_m": (2,), "sensor_rotation_deg": (),
                  "sensor_pitch_ratio": (), "decoder_shift_m": (2,), "decoder_rotation_deg": (),
                  "decoder_pitch_m": (), "decoder_slm_centre_px": (2,)},
    "camera": {"dark_frame": None, "dark_level_dn": (), "saturation_dn": (), "exposure_s": ()},
    "wavefront": {"noll": (-1,), "coefficients_waves": (-1,), "radius_m": (), "corrected_from": (), "extent_m": (),
                  "unmodulated_fraction": (), "beam_centre_m": (2,), "beam_waist_m": ()},
    "distances": {"d1_m": (), "d2_m": ()},
}

# result arrays a kind may hold (newer measurements; older files lack them)
_OPTIONAL_RESULTS = {"camera": {"hot_pixel_map": None}}


MAX_WAVEFRONT_WAVES = 10.0       # per Zernike term: the measurement refuses a fit beyond 4
MAX_NOLL = 36


_ALIGNMENT_RAW = ("sensor_expected_m", "sensor_detected_px", "decoder_centres_px", "decoder_detected_m")


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
    expected, optional = _RESULTS[kind], _OPTIONAL_RESULTS.get(kind, {})
    for name in sorted(set(record.results) - set(expected) - set(optional)):
        raise _bad(record, f"result/{name}", "not a result of this kind", f"only {sorted({*expected, *optional})}")
    for name, shape in expected.items():
        _array(record, "result", name, shape)
    for name, shape in optional.items():
        if name in record.results:
            _array(record, "result", name, shape)
    for name, value in record.raw.items():
        a = np.asarray(value)
        if not isinstance(name, str) or not RAW_NAME.match(name):
            raise _bad(record, f"raw/{name}", "an odd name", "letters, digits and _")
        if a.dtype.kind not in "biuf" or a.dtype.fields is not None or a.ndim > MAX_RAW_NDIM \
                or a.size > MAX_RAW_ELEMENTS:
            raise _bad(record, f"raw/{name}", f"dtype {a.dtype}, shape {a.shape}",
                       f"numbers, at most {MAX_RAW_NDIM} dimensions and {MAX_RAW_ELEMENTS} values")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise _bad(record, f"raw/{name}", "NaN or infinite values", "finite measurements")
    for name in _RESIDUALS[kind]:
        if name not in record.residuals:
            raise _bad(record, "residuals", f"no {name!r}", f"the {kind} calibration's {', '.join(_RESIDUALS[kind])}")
    for name, value in record.residuals.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isinf(value) \
                or value < 0 or (math.isnan(value) and (kind, name) not in _NAN_RESIDUALS):
            raise _bad(record, f"residuals[{name!r}]", repr(value)[:40], "a finite number >= 0")
    check_json_depth(where, "info", record.info)
    _check_identity(record)
    {"lut": _check_lut, "alignment": _check_alignment, "camera": _check_camera,
     "wavefront": _check_wavefront, "distances": _check_distances}[kind](record)


def _check_identity(record: CalibrationRecord) -> None:
    check_json_depth(record.path, "device_identity", record.device_identity, 3)
    tables = record.device_identity.items() if record.kind in ("alignment", "distances") \
        else [(None, record.device_identity)]
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
    if "hot_pixel_map" in record.results:
        hot = np.asarray(record.results["hot_pixel_map"])
        if hot.shape != dark.shape:
            raise _bad(record, "result/hot_pixel_map", f"shape {hot.shape}", f"the dark frame's {dark.shape}")
        if not np.isin(hot, (0.0, 1.0)).all():
            raise _bad(record, "result/hot_pixel_map", "values other than 0 and 1", "1 for a hot pixel, 0 elsewhere")


def _check_wavefront(record: CalibrationRecord) -> None:
    noll = _array(record, "result", "noll", (-1,))
    coefficients = _array(record, "result", "coefficients_waves", (-1,))
    if noll.size == 0 or noll.size != coefficients.size or (noll != np.round(noll)).any() or noll.min() < 1 \
            or noll.max() > MAX_NOLL or np.unique(noll).size != noll.size:
        raise _bad(record, "result/noll", str(noll.tolist())[:80],
                   f"distinct Noll indices 1..{MAX_NOLL}, one per coefficient ({coefficients.size})")
    if np.abs(coefficients).max() > MAX_WAVEFRONT_WAVES:
        raise _bad(record, "result/coefficients_waves", f"a term of {np.abs(coefficients).max():.3g} waves",
                   f"at most {MAX_WAVEFRONT_WAVES:g} waves a term")
    _scalar(record, "radius_m", 0.0, 0.1, "a Zernike radius within 0..100 mm", lo_open=True)
    _scalar(record, "extent_m", 0.0, 0.1, "a corrected square's half side within 0..100 mm")
    _scalar(record, "corrected_from", 1.0, float(MAX_NOLL), f"a Noll index within 1..{MAX_NOLL}")
    _scalar(record, "unmodulated_fraction", 0.0, 1.0, "a fraction within 0..1")
    _scalar(record, "beam_waist_m", 0.0, 1.0, "a beam waist within 0..1 m")
    centre = _array(record, "result", "beam_centre_m", (2,))
    if np.abs(centre).max() > 0.1:
        raise _bad(record, "result/beam_centre_m", str(centre.tolist()), "a centre within 100 mm of the SLM's")


def _check_distances(record: CalibrationRecord) -> None:
    for name in ("d1_m", "d2_m"):
        _scalar(record, name, 0.0, 10.0, "a distance within 0..10 m", lo_open=True)


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
    elif kind == "alignment":
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
