"""A generated corpus of bad calibration files against the loader a bench runs before any device opens.

One real `optgen calibrate all` on the small twin makes a good store (four files: both LUTs, the
alignment, the camera). Each case copies that store, damages one file (a field edited with the
checksum left as it was; a field made implausible, of the wrong type or shape, or absurdly large
with the checksum made valid again; bytes truncated, flipped or replaced; another format version;
a folder, a FIFO or a link to a device under the file's name; a file for another wavelength,
light path or device) with a fixed seed, and loads the store as ``build_bench`` does. Each bad
file must be refused with CalibrationFileError naming it; the few that are legitimately not for
this bench (another colour, another light path, an odd name) must be passed over and named in
``BenchCalibrations.skipped``; a file made on another device (serial) must be refused once the
devices are open. Never another exception, never a bad file accepted without a word.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

import optgen.calibration.record as record_module
from optgen.calibration.record import CalibrationFileError
from optgen.calibration.store import load_record
from optgen.lab.bench.assemble import build_bench
from optgen.lab.bench.calibrations import load_bench_calibrations
from optgen.lab.bench.parse import parse_bench
from optgen.lab.cli import main

from ..conftest import small_bench_text
from .records import write_version_1

SEED = 20261205
KEYS = ("lut-encoding_slm", "lut-decoding_slm", "alignment-bench", "camera-camera", "wavefront-encoding_slm",
        "wavefront-decoding_slm", "distances-bench")
REFUSED, SKIPPED, AFTER_OPEN = "refused", "skipped", "refused once open"


@dataclass
class Case:
    name: str
    key: str                                   # which file of the store is damaged
    damage: Callable[[Path, np.random.Generator], Path]   # damages the file in place; returns its path now
    expect: str = REFUSED


@pytest.fixture(scope="module")
def good_store(tmp_path_factory):
    """A store made by a real calibration of the small twin, and the bench file it is for."""
    folder = tmp_path_factory.mktemp("fuzz-good")
    bench = folder / "bench.toml"
    text = small_bench_text()
    bench.write_text(text, encoding="utf-8")
    assert main(["calibrate", "all", "--bench", str(bench)]) == 0
    config = parse_bench(text, str(bench))
    files = {}
    for path in sorted((folder / "calibrations").glob("*.h5")):
        key = "-".join(path.name.split("-")[:2])
        assert key not in files
        files[key] = path
    assert sorted(files) == sorted(KEYS)
    cals = load_bench_calibrations(config)
    assert cals.skipped == [] and len(cals.lut_records) == 2 and cals.alignment and cals.camera
    assert len(cals.wavefronts) == 2 and cals.distances
    return config, files


# --- ways to damage a file ----------------------------------------------------------------------
def _h5(change, reseal: bool):
    def damage(path: Path, rng) -> Path:
        with h5py.File(path, "r+") as f:
            change(f, rng)
        if reseal:
            record_module.seal(path)
        return path
    return damage


def resealed(change):
    """``change(f, rng)`` on the open file, then a valid header: only the content checks can refuse it."""
    return _h5(change, True)


def stale(change):
    """``change(f, rng)`` on the open file, the checksum left as it was."""
    return _h5(change, False)


def put(name: str, value=None, **kwargs):
    def change(f, rng):
        if name in f:
            del f[name]
        f.create_dataset(name, data=value, **kwargs)
    return change


def drop(name: str):
    def change(f, rng):
        del f[name]
    return change


def attr(name: str, value, dtype=None):
    def change(f, rng):
        if name in f.attrs:
            del f.attrs[name]
        if dtype is None:
            f.attrs[name] = value
        else:
            f.attrs.create(name, value, dtype=dtype)
    return change


def drop_attr(name: str):
    def change(f, rng):
        del f.attrs[name]
    return change


def json_attr(name: str, edit):
    def change(f, rng):
        obj = json.loads(f.attrs[name])
        edit(obj)
        f.attrs[name] = json.dumps(obj)
    return change


def poke(name: str):
    """One element of dataset ``name`` changed in place (same dtype, shape and layout)."""
    def change(f, rng):
        ds = f[name]
        data = np.array(ds[()])
        flat = data.reshape(-1)
        i = int(rng.integers(0, max(flat.size, 1)))
        if data.dtype.kind == "b":
            flat[i] = not flat[i]
        else:
            flat[i] = flat[i] + 1
        ds[...] = data.reshape(ds.shape)
    return change


def nudge_attr(name: str):
    """Attribute ``name`` rewritten with a plausible other value of the same type."""
    def change(f, rng):
        value = f.attrs[name]
        if isinstance(value, str):
            value = value + " " if name not in ("device_identity", "residuals", "info") else \
                json.dumps({**json.loads(value), "edited": True})
        elif isinstance(value, np.floating):
            value = value + 1.0
        else:
            value = value + 1
        f.attrs[name] = value
    return change


def truncate(fraction: float):
    def damage(path: Path, rng) -> Path:
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * fraction)])
        return path
    return damage


def flip_bytes(count: int, region: str):
    def damage(path: Path, rng) -> Path:
        data = bytearray(path.read_bytes())
        lo, hi = {"header": (0, 512), "superblock": (512, 1024), "anywhere": (0, len(data))}[region]
        for _ in range(count):
            k = int(rng.integers(lo, hi))
            data[k] = (data[k] + int(rng.integers(1, 256))) % 256
        path.write_bytes(bytes(data))
        return path
    return damage


def replace_bytes(make):
    def damage(path: Path, rng) -> Path:
        path.write_bytes(make(path.read_bytes(), rng))
        return path
    return damage


def rename(make_name, wavelength: float | None = None):
    """Rename the file (``make_name(name)``); with ``wavelength``, a genuine file for that wavelength."""
    def damage(path: Path, rng) -> Path:
        if wavelength is not None:
            with h5py.File(path, "r+") as f:
                f.attrs["wavelength_nm"] = wavelength
            record_module.seal(path)
        new = path.with_name(make_name(path.name))
        path.rename(new)
        return new
    return damage


def as_folder(path: Path, rng) -> Path:
    path.unlink()
    path.mkdir()
    (path / "inside.h5").write_bytes(b"x")
    return path


def as_fifo(path: Path, rng) -> Path:
    path.unlink()
    os.mkfifo(path)
    return path


def as_link(target: str):
    def damage(path: Path, rng) -> Path:
        path.unlink()
        path.symlink_to(target)
        return path
    return damage


def as_version_1(path: Path, rng) -> Path:
    record = load_record(path)
    path.unlink()
    write_version_1(path, record, record.created)
    return path


def header_version(version: int):
    def damage(path: Path, rng) -> Path:
        data = bytearray(path.read_bytes())
        digest = hashlib.sha256(bytes(data[512:])).hexdigest()
        data[:512] = record_module.header_bytes(version, digest)
        path.write_bytes(bytes(data))
        return path
    return damage


def serial(device: str | None):
    def edit(identity):
        (identity[device] if device else identity)["serial"] = "SN-SOMEONE-ELSES"
    return edit


# --- the corpus -----------------------------------------------------------------------------------
N = 256                                   # gray levels of the small bench's SLMs
RAMP = np.linspace(0.0, 6.5, N)


def _with(value, index: int, array=RAMP):
    a = np.array(array, dtype=float)
    a[index] = value
    return a


def _dip():
    a = RAMP.copy()
    a[100:110] -= 1.0
    return a


def _step():
    a = np.zeros(N)
    a[-1] = 6.5
    return a


LUT_CONTENT = {
    "zeros": put("result/phase_rad", np.zeros(N)),
    "reversed": put("result/phase_rad", RAMP[::-1].copy()),
    "negative": put("result/phase_rad", -RAMP),
    "7 entries": put("result/phase_rad", np.linspace(0, 6.5, 7)),
    "255 entries": put("result/phase_rad", np.linspace(0, 6.5, 255)),
    "257 entries": put("result/phase_rad", np.linspace(0, 6.5, 257)),
    "512 entries (a 9-bit SLM's)": put("result/phase_rad", np.linspace(0, 6.5, 512)),
    "1 entry": put("result/phase_rad", np.array([0.0])),
    "no entries": put("result/phase_rad", np.zeros(0)),
    "a scalar": put("result/phase_rad", 6.5),
    "2-D": put("result/phase_rad", RAMP.reshape(16, 16)),
    "NaN": put("result/phase_rad", _with(np.nan, 77)),
    "+inf": put("result/phase_rad", _with(np.inf, 200)),
    "-inf": put("result/phase_rad", _with(-np.inf, 3)),
    "huge": put("result/phase_rad", RAMP * 1e300),
    "constant": put("result/phase_rad", np.full(N, 3.0)),
    "step": put("result/phase_rad", _step()),
    "tiny range": put("result/phase_rad", RAMP * 0.05),
    "dip": put("result/phase_rad", _dip()),
    "integers": put("result/phase_rad", np.arange(N, dtype=np.int64)),
    "complex": put("result/phase_rad", RAMP + 0j),
    "text": put("result/phase_rad", np.array([b"0.0"] * N)),
    "bool": put("result/phase_rad", np.ones(N, dtype=bool)),
    "declared 10**9 values": put("result/phase_rad", shape=(10**9,), dtype="f8", chunks=(1 << 16,),
                                 compression="gzip"),
    "sigma NaN": put("result/crosstalk_sigma_px", np.nan),
    "sigma negative": put("result/crosstalk_sigma_px", -1.0),
    "sigma 50 px": put("result/crosstalk_sigma_px", 50.0),
    "sigma shape (2,)": put("result/crosstalk_sigma_px", np.array([0.6, 0.6])),
    "no phase_rad": drop("result/phase_rad"),
    "no crosstalk_sigma_px": drop("result/crosstalk_sigma_px"),
    "an extra result": put("result/lut_override", np.arange(N, dtype=float)),
    "raw NaN": put("raw/ratios", _with(np.nan, 5, np.linspace(0, 1, 64))),
    "raw text": put("raw/grays", np.array([b"a", b"b"])),
    "raw 5-D": put("raw/grays", np.zeros((1, 1, 1, 1, 2))),
    "raw declared 10**10": put("raw/ratios", shape=(10**10,), dtype="f4", chunks=(1 << 16,), compression="gzip"),
    "raw odd name": put("raw/odd name!", np.zeros(2)),
}
ALIGNMENT_CONTENT = {
    "map NaN": put("result/output_to_sensor", np.full((2, 3), np.nan)),
    "map inf": put("result/output_to_sensor", np.array([[np.inf, 0, 160], [0, 2e5, 128]])),
    "map zeros": put("result/output_to_sensor", np.zeros((2, 3))),
    "map 3x3": put("result/output_to_sensor", np.eye(3)),
    "map 2x2": put("result/output_to_sensor", np.eye(2)),
    "map 1000x scale": put("result/output_to_sensor", np.array([[2e8, 0, 160], [0, 2e8, 128]])),
    "map off the sensor": put("result/output_to_sensor", np.array([[2.08e5, 0, 1e6], [0, 2.08e5, 128]])),
    "map integers": put("result/output_to_sensor", np.array([[208333, 0, 160], [0, 208333, 128]])),
    "shift 1 m": put("result/decoder_shift_m", np.array([1.0, 0.0])),
    "shift NaN": put("result/decoder_shift_m", np.array([np.nan, 0.0])),
    "shift shape (3,)": put("result/decoder_shift_m", np.zeros(3)),
    "rotation 30 deg": put("result/decoder_rotation_deg", 30.0),
    "rotation -45 deg": put("result/decoder_rotation_deg", -45.0),
    "rotation NaN": put("result/decoder_rotation_deg", np.nan),
    "sensor turned 20 deg": put("result/sensor_rotation_deg", 20.0),
    "sensor turned 1e6 deg": put("result/sensor_rotation_deg", 1e6),
    "pitch ratio 0": put("result/sensor_pitch_ratio", 0.0),
    "pitch ratio 10": put("result/sensor_pitch_ratio", 10.0),
    "pitch ratio NaN": put("result/sensor_pitch_ratio", np.nan),
    "sensor 1 m off": put("result/sensor_offset_m", np.array([1.0, 1.0])),
    "SLM2 pitch 0": put("result/decoder_pitch_m", 0.0),
    "SLM2 pitch negative": put("result/decoder_pitch_m", -8e-6),
    "SLM2 pitch of another SLM": put("result/decoder_pitch_m", 16e-6),
    "SLM2 centre of another SLM": put("result/decoder_slm_centre_px", np.array([959.5, 539.5])),
    "raw centres NaN": put("raw/decoder_centres_px", np.full((9, 2), np.nan)),
    "raw centres (9, 3)": put("raw/decoder_centres_px", np.zeros((9, 3))),
    "raw centres one point": put("raw/decoder_centres_px", np.zeros((1, 2))),
    "raw centres off the SLM": put("raw/decoder_centres_px", np.full((9, 2), 5000.0)),
    "raw spots fewer than shown": put("raw/decoder_detected_m", np.zeros((4, 2))),
    "no map": drop("result/output_to_sensor"),
    "no raw centres": drop("raw/decoder_centres_px"),
    "residual NaN": json_attr("residuals", lambda r: r.update(decoder_residual_m=float("nan"))),
    "residual negative": json_attr("residuals", lambda r: r.update(sensor_residual_px=-1.0)),
    "residual missing": json_attr("residuals", lambda r: r.pop("decoder_residual_m")),
    "identity not a table": json_attr("device_identity", lambda r: r.update(camera="twin")),
}
CAMERA_CONTENT = {
    "saturation NaN": put("result/saturation_dn", np.nan),
    "saturation inf": put("result/saturation_dn", np.inf),
    "saturation 0": put("result/saturation_dn", 0.0),
    "saturation negative": put("result/saturation_dn", -1.0),
    "saturation above 12 bits": put("result/saturation_dn", 5000.0),
    "saturation 1e300": put("result/saturation_dn", 1e300),
    "saturation below the dark level": put("result/saturation_dn", 50.0),
    "saturation text": put("result/saturation_dn", np.bytes_(b"4095")),
    "dark frame 10x10": put("result/dark_frame", np.zeros((10, 10), np.float32)),
    "dark frame transposed": put("result/dark_frame", np.zeros((320, 256), np.float32)),
    "dark frame NaN": put("result/dark_frame", _with(np.nan, 7, np.full(256 * 320, 100.0)).reshape(256, 320)),
    "dark frame negative": put("result/dark_frame", np.full((256, 320), -3.0, np.float32)),
    "hot-pixel map of twos": put("result/hot_pixel_map", np.full((256, 320), 2.0, np.float32)),
    "hot-pixel map 10x10": put("result/hot_pixel_map", np.zeros((10, 10), np.float32)),
    "hot-pixel map NaN": put("result/hot_pixel_map", np.full((256, 320), np.nan, np.float32)),
    "hot-pixel map of booleans": put("result/hot_pixel_map", np.zeros((256, 320), bool)),
    "dark frame above 12 bits": put("result/dark_frame", np.full((256, 320), 1e6, np.float32)),
    "dark frame integers": put("result/dark_frame", np.full((256, 320), 100, np.uint16)),
    "dark frame 3-D": put("result/dark_frame", np.zeros((2, 256, 320), np.float32)),
    "dark level NaN": put("result/dark_level_dn", np.nan),
    "dark level negative": put("result/dark_level_dn", -1.0),
    "dark level above 12 bits": put("result/dark_level_dn", 4090.0),
    "exposure 0": put("result/exposure_s", 0.0),
    "exposure negative": put("result/exposure_s", -1e-4),
    "exposure NaN": put("result/exposure_s", np.nan),
    "exposure 1e9 s": put("result/exposure_s", 1e9),
    "no saturation": drop("result/saturation_dn"),
    "linearity inf": json_attr("residuals", lambda r: r.update(linearity_rms=float("inf"))),
    "linearity text": json_attr("residuals", lambda r: r.update(linearity_rms="fine")),
    "linearity negative": json_attr("residuals", lambda r: r.update(linearity_rms=-0.1)),
    "raw peaks inf": put("raw/peak_counts", np.array([1.0, np.inf])),
}


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


ANY_CONTENT = {
    "kind an integer": attr("kind", 5),
    "kind unknown": attr("kind", "flat_field"),
    "device unknown": attr("device", "third_slm"),
    "wavelength contradicts the name": attr("wavelength_nm", 638.0),
    "wavelength NaN": attr("wavelength_nm", np.nan),
    "wavelength text": attr("wavelength_nm", "520"),
    "wavelength negative": attr("wavelength_nm", -520.0),
    "wavelength an integer": attr("wavelength_nm", 520),
    "wavelength an array": attr("wavelength_nm", np.array([520.0, 520.0])),
    "optical path free text": attr("optical_path", "the usual one"),
    "optical path bytes": attr("optical_path", np.bytes_(b"d1=40.000mm;d2=30.000mm")),
    "created not a time": attr("created", "yesterday"),
    "created another time": attr("created", "2020-01-01T00:00:00.000000+00:00"),
    "created without a zone": attr("created", "2026-12-05T15:06:05.949659"),
    "bench text not UTF-8": attr("bench_text", b"\xff\xfe[bench]", dtype=h5py.string_dtype("utf-8")),
    "bench text bytes": attr("bench_text", np.bytes_(b"[bench]")),
    "bench text 2 MB": attr("bench_text", "#" * (2 << 20)),
    "bench name 1 MB": attr("bench_name", "n" * (1 << 20)),
    "bench name a float": attr("bench_name", 1.5),
    "identity a list": attr("device_identity", "[1, 2]"),
    "identity not JSON": attr("device_identity", "{serial: twin"),
    "identity nested 100000 deep": attr("device_identity", _deep(100_000)),
    "identity serial a number": attr("device_identity", '{"serial": 5}'),
    "residuals a list": attr("residuals", "[0.01]"),
    "residuals empty": attr("residuals", "{}"),
    "residuals nested 50 deep": attr("residuals", '{"a": ' * 50 + "1" + "}" * 50),
    "info nested 100000 deep": attr("info", _deep(100_000)),
    "info a list": attr("info", "[1, 2]"),
    "info not JSON": attr("info", "{'rounds': 2}"),
    "info 2 MB": attr("info", json.dumps({"x": "y" * (2 << 20)})),
    "format version 1 in the attribute": attr("format_version", 1),
    "format version text": attr("format_version", "2"),
    "format version bool": attr("format_version", True),
    "no kind attribute": drop_attr("kind"),
    "no created attribute": drop_attr("created"),
    "no info attribute": drop_attr("info"),
    "an extra attribute": attr("signed_by", "the lab"),
    "an extra group": lambda f, rng: f.create_group("extra"),
    "no raw group": drop("raw"),
    "result a dataset": lambda f, rng: (f.__delitem__("result"), f.create_dataset("result", data=np.zeros(3))),
    "a soft link": lambda f, rng: f["result"].__setitem__("alias", h5py.SoftLink("/raw")),
    "an external link": lambda f, rng: f["raw"].__setitem__("ext", h5py.ExternalLink("/etc/passwd", "/x")),
    "a nested group": lambda f, rng: f["result"].create_group("more"),
    "an attribute on a group": lambda f, rng: f["raw"].attrs.__setitem__("unit", "rad"),
    "an attribute on a dataset": lambda f, rng: f[f"result/{min(f['result'])}"].attrs.__setitem__("x", 1),
}
WAVEFRONT_CONTENT = {
    "a term of 50 waves": put("result/coefficients_waves", np.full(14, 50.0)),
    "a NaN term": put("result/coefficients_waves", _with(np.nan, 3, np.zeros(14))),
    "fewer terms than Noll indices": put("result/coefficients_waves", np.zeros(5)),
    "a Noll index twice": put("result/noll", np.array([2.0, 2.0] + list(range(4, 16)), dtype=float)),
    "Noll index 0": put("result/noll", np.arange(0, 14, dtype=float)),
    "Noll index 2.5": put("result/noll", np.arange(2, 16, dtype=float) + 0.5),
    "Noll index 99": put("result/noll", np.arange(86, 100, dtype=float)),
    "Noll indices as text": put("result/noll", np.bytes_(b"2..15")),
    "radius 0": put("result/radius_m", 0.0),
    "radius 5 m": put("result/radius_m", 5.0),
    "unmodulated 2": put("result/unmodulated_fraction", 2.0),
    "waist negative": put("result/beam_waist_m", -1e-3),
    "beam centre 1 m off": put("result/beam_centre_m", np.array([1.0, 0.0])),
    "beam centre 3 values": put("result/beam_centre_m", np.zeros(3)),
    "corrected from Noll 0": put("result/corrected_from", 0.0),
}
DISTANCES_CONTENT = {
    "d1 0": put("result/d1_m", 0.0),
    "d1 negative": put("result/d1_m", -0.04),
    "d2 NaN": put("result/d2_m", np.nan),
    "d2 1 km": put("result/d2_m", 1000.0),
    "d2 a pair": put("result/d2_m", np.array([0.03, 0.03])),
}
CONTENT = {"lut-encoding_slm": LUT_CONTENT, "lut-decoding_slm": LUT_CONTENT, "alignment-bench": ALIGNMENT_CONTENT,
           "camera-camera": CAMERA_CONTENT, "wavefront-encoding_slm": WAVEFRONT_CONTENT,
           "wavefront-decoding_slm": WAVEFRONT_CONTENT, "distances-bench": DISTANCES_CONTENT}
ATTRS = ("format_version", "kind", "device", "wavelength_nm", "optical_path", "created", "bench_name", "bench_text",
         "device_identity", "residuals", "info")
DATASETS = {
    "lut-encoding_slm": ["result/phase_rad", "result/crosstalk_sigma_px", "raw/grays", "raw/ratios", "raw/order_powers",
                         "raw/sweep_grays", "raw/exposure_s", "raw/phase_points_rad", "raw/order_centres_yx_p16"],
    "lut-decoding_slm": ["result/phase_rad", "result/crosstalk_sigma_px", "raw/references", "raw/order_leak",
                         "raw/zero_order_tail", "raw/fit_periods_px", "raw/uniform_frame_peak"],
    "alignment-bench": ["result/output_to_sensor", "result/sensor_offset_m", "result/sensor_rotation_deg",
                        "result/sensor_pitch_ratio", "result/decoder_shift_m", "result/decoder_rotation_deg",
                        "result/decoder_pitch_m", "result/decoder_slm_centre_px", "raw/sensor_expected_m",
                        "raw/sensor_detected_px", "raw/decoder_centres_px", "raw/decoder_detected_m"],
    "camera-camera": ["result/dark_frame", "result/dark_level_dn", "result/saturation_dn", "result/exposure_s",
                      "raw/exposures_s", "raw/spot_counts", "raw/peak_counts"],
    "wavefront-encoding_slm": ["result/coefficients_waves", "result/noll", "result/radius_m", "result/beam_waist_m",
                               "raw/pictures", "raw/diversity_waves"],
    "wavefront-decoding_slm": ["result/coefficients_waves", "result/noll", "result/unmodulated_fraction",
                               "result/beam_centre_m", "raw/model"],
    "distances-bench": ["result/d1_m", "result/d2_m", "raw/spots_px"],
}
IDENTITY = {"lut-encoding_slm": [None], "lut-decoding_slm": [None], "camera-camera": [None],
            "alignment-bench": ["encoding_slm", "decoding_slm", "camera"], "wavefront-encoding_slm": [None],
            "wavefront-decoding_slm": [None], "distances-bench": ["encoding_slm", "decoding_slm", "camera"]}


def corpus() -> list[Case]:
    cases: list[Case] = []
    for key in KEYS:
        kind = key.split("-")[0]
        # the checksum: any field edited, the header left as it was
        cases += [Case(f"{key}: {name} edited", key, stale(nudge_attr(name))) for name in ATTRS]
        cases += [Case(f"{key}: {name} edited", key, stale(poke(name))) for name in DATASETS[key]]
        cases += [Case(f"{key}: {name} removed", key, stale(drop(name))) for name in DATASETS[key][:2]]
        cases += [Case(f"{key}: attribute {name} removed", key, stale(drop_attr(name))) for name in ATTRS[1:3]]
        cases.append(Case(f"{key}: identity of another device, checksum unchanged", key,
                          stale(json_attr("device_identity", serial(IDENTITY[key][0])))))
        # the content: implausible, of the wrong type or shape, absurdly large, with a valid checksum
        cases += [Case(f"{key}: {name} (resealed)", key, resealed(change)) for name, change in CONTENT[key].items()]
        cases += [Case(f"{key}: {name} (resealed)", key, resealed(change)) for name, change in ANY_CONTENT.items()]
        # bytes
        cases += [Case(f"{key}: truncated to {f:.1%}", key, truncate(f)) for f in (0.0, 0.001, 0.05, 0.3, 0.7, 0.999)]
        cases += [Case(f"{key}: {n} bytes flipped in the {region} ({i})", key, flip_bytes(n, region))
                  for region in ("header", "superblock", "anywhere") for n, i in ((1, 1), (8, 2))]
        cases += [
            Case(f"{key}: random bytes", key, replace_bytes(lambda d, rng: rng.bytes(len(d)))),
            Case(f"{key}: JSON instead", key, replace_bytes(lambda d, rng: b'{"phase_rad": [0, 1]}')),
            Case(f"{key}: header only", key, replace_bytes(lambda d, rng: d[:512])),
            Case(f"{key}: HDF5 without the header", key, replace_bytes(lambda d, rng: d[512:])),
            Case(f"{key}: garbage appended", key, replace_bytes(lambda d, rng: d + b"\0garbage")),
            Case(f"{key}: header zeroed", key, replace_bytes(lambda d, rng: bytes(512) + d[512:])),
            Case(f"{key}: a copy of another file's header", key,
                 replace_bytes(lambda d, rng: record_module.header_bytes(2, "f" * 64) + d[512:])),
            Case(f"{key}: format version 1 (the older writer)", key, as_version_1),
            Case(f"{key}: format version 3 in the header", key, header_version(3)),
            Case(f"{key}: format version 0 in the header", key, header_version(0)),
            Case(f"{key}: a folder under its name", key, as_folder),
            Case(f"{key}: a FIFO under its name", key, as_fifo),
            Case(f"{key}: a link to /dev/zero", key, as_link("/dev/zero")),
            Case(f"{key}: a dangling link", key, as_link("/nonexistent/calibration.h5")),
            Case(f"{key}: renamed to a newer time", key, rename(lambda n: n[:-10] + "999999Z.h5")),
        ]
        # the file name: the store passes over what is not for this bench, and names it
        cases += [
            Case(f"{key}: renamed to 638 nm", key, rename(lambda n: n.replace("-520nm-", "-638nm-")), SKIPPED),
            Case(f"{key}: made at 638 nm", key, rename(lambda n: n.replace("-520nm-", "-638nm-"), 638.0), SKIPPED),
            Case(f"{key}: made at 450 nm", key, rename(lambda n: n.replace("-520nm-", "-450nm-"), 450.0), SKIPPED),
            Case(f"{key}: an odd name", key, rename(lambda n: "backup-" + n), SKIPPED),
            Case(f"{key}: renamed to another device", key,
                 rename(lambda n: n.replace(n.split("-")[1], "third_slm", 1)), SKIPPED),
        ]
        if kind in ("alignment", "distances"):
            cases.append(Case(f"{key}: made on another optical path", key,
                              resealed(attr("optical_path", "d1=45.000mm;d2=30.000mm")), SKIPPED))
        else:
            cases.append(Case(f"{key}: renamed to the alignment", key,
                              rename(lambda n: "alignment-bench-520nm-29990101T000000000000Z.h5")))
        # another device: only known once the devices are open
        cases += [Case(f"{key}: made on another {device or 'device'} (resealed)", key,
                       resealed(json_attr("device_identity", serial(device))), AFTER_OPEN)
                  for device in IDENTITY[key]]
    return cases


def _fingerprint(path: Path) -> str:
    try:
        if path.is_file() and not path.is_symlink():
            return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        pass
    return f"{path.name}:{'link' if path.is_symlink() else 'folder' if path.is_dir() else 'other'}"


def _outcome(config, folder: Path, mutant: Path) -> tuple[str, str]:
    """(what loading the store did with the mutant, the message)."""
    try:
        cals = load_bench_calibrations(config, folder)     # what build_bench runs before any device opens
    except CalibrationFileError as exc:
        return (REFUSED if mutant.name in str(exc) else "refused without naming it"), str(exc)
    except Exception as exc:   # noqa: BLE001 - the test counts them
        return "traceback", f"{type(exc).__name__}: {exc}"
    named = [line for line in cals.skipped if mutant.name in line]
    if named:
        return SKIPPED, named[0]
    try:
        with build_bench(config, folder) as bench:
            bench.calibrations.check_devices(bench)
    except CalibrationFileError as exc:
        return (AFTER_OPEN if mutant.name in str(exc) else "refused without naming it"), str(exc)
    except Exception as exc:   # noqa: BLE001
        return "traceback", f"{type(exc).__name__}: {exc}"
    return "accepted", ""


def test_every_bad_calibration_file_is_refused_or_named_and_never_a_traceback(good_store, tmp_path):
    config, files = good_store
    cases = corpus()
    assert len({c.name for c in cases}) == len(cases)
    rng = np.random.default_rng(SEED)
    outcomes: Counter = Counter()
    failures, fingerprints = [], set()
    for i, case in enumerate(cases):
        folder = tmp_path / f"case{i:03d}"
        folder.mkdir()
        for key, path in files.items():
            if key == case.key:
                shutil.copyfile(path, folder / path.name)
            else:
                os.link(path, folder / path.name)           # untouched: shared
        mutant = case.damage(folder / files[case.key].name, rng)
        fingerprints.add(_fingerprint(mutant))
        got, message = _outcome(config, folder, mutant)
        outcomes[got] += 1
        if got != case.expect:
            failures.append(f"{case.name}: expected {case.expect}, got {got} ({message[:300]})")
        if mutant.is_dir() and not mutant.is_symlink():
            shutil.rmtree(mutant)
        shutil.rmtree(folder)
    assert len(fingerprints) >= 200, len(fingerprints)
    assert outcomes["traceback"] == 0 and outcomes["accepted"] == 0 and not failures, \
        f"{dict(outcomes)}\n" + "\n".join(failures)
    assert outcomes[REFUSED] > 400 and outcomes[SKIPPED] >= 20
    assert outcomes[AFTER_OPEN] == sum(len(devices) for devices in IDENTITY.values())
