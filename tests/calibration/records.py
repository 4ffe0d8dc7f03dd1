"""Plausible calibration records for the small twin bench, and ways to damage the files they make."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from optgen.calibration.record import CalibrationRecord, seal
from optgen.simulators import DECODING, ENCODING

PATH = "d1=40.000mm;d2=30.000mm"      # the small twin bench's optical path
BENCH_TEXT = "[bench]\nname = 'test'\n"


def identity(serial: str, model: str = "simulated phase SLM") -> dict:
    return {"vendor": "optgen", "model": model, "serial": serial, "firmware": "twin"}


def lut_record(phase: np.ndarray | None = None, wavelength_nm: float = 520.0, device: str = "encoding_slm",
               serial: str | None = None, path_key: str = PATH) -> CalibrationRecord:
    phase = np.linspace(0.0, 6.5, 256) if phase is None else phase
    serial = serial if serial is not None else (ENCODING if device == "encoding_slm" else DECODING)
    return CalibrationRecord(kind="lut", device=device, wavelength_nm=wavelength_nm, optical_path=path_key,
                             results={"phase_rad": phase, "crosstalk_sigma_px": 0.6},
                             raw={"ratio": np.linspace(0, 1, 8), "grays": np.arange(8)},
                             residuals={"fit_rms": 0.01}, info={"rounds": 2}, bench_name="test",
                             bench_text=BENCH_TEXT, device_identity={"serial": serial})


def alignment_record(wavelength_nm: float = 520.0, path_key: str = PATH, shift_m=(2e-6, -1e-6),
                     rotation_deg: float = 0.05, serials: dict | None = None) -> CalibrationRecord:
    pitch = 4.8e-6                       # the small bench's camera pitch
    grid = np.array([(x, y) for y in (-1, 0, 1) for x in (-1, 0, 1)], dtype=float)
    serials = serials or {"encoding_slm": ENCODING, "decoding_slm": DECODING, "camera": "twin"}
    return CalibrationRecord(
        kind="alignment", device="bench", wavelength_nm=wavelength_nm, optical_path=path_key,
        results={"output_to_sensor": np.array([[1 / pitch, 0.0, 159.5], [0.0, 1 / pitch, 127.5]]),
                 "sensor_offset_m": np.zeros(2), "sensor_rotation_deg": 0.0, "sensor_pitch_ratio": 1.0,
                 "decoder_shift_m": np.asarray(shift_m, dtype=float), "decoder_rotation_deg": rotation_deg,
                 "decoder_pitch_m": 8e-6, "decoder_slm_centre_px": np.array([159.5, 127.5])},
        raw={"sensor_expected_m": grid * 3e-4, "sensor_detected_px": grid * 62.5 + [159.5, 127.5],
             "decoder_centres_px": grid * 29 + [159.5, 127.5], "decoder_detected_m": grid * 2.3e-4},
        residuals={"sensor_residual_px": 0.01, "decoder_residual_m": 2e-7},
        info={"decoder_shift_um": [2.0, -1.0]}, bench_name="test", bench_text=BENCH_TEXT,
        device_identity={k: identity(v) for k, v in serials.items()})


def camera_record(wavelength_nm: float = 520.0, saturation_dn: float = 3775.0, serial: str = "twin",
                  linearity_rms: float = 0.003) -> CalibrationRecord:
    return CalibrationRecord(
        kind="camera", device="camera", wavelength_nm=wavelength_nm, optical_path=PATH,
        results={"dark_frame": np.full((256, 320), 100.0, dtype=np.float32), "dark_level_dn": 100.0,
                 "saturation_dn": saturation_dn, "exposure_s": 1e-4},
        raw={"exposures_s": np.geomspace(1e-6, 3.2e-5, 6), "spot_counts": np.linspace(5e4, 9e5, 6),
             "peak_counts": np.linspace(600, 3775, 6)},
        residuals={"linearity_rms": linearity_rms}, info={"saturation_dn": saturation_dn, "laser_power_w": float("nan")},
        bench_name="test", bench_text=BENCH_TEXT, device_identity=identity(serial, "simulated camera"))


def edit(path: Path, change, reseal: bool = True) -> None:
    """Change the HDF5 content of ``path`` (``change(f)`` on the open file), then write a valid header
    for what is now there (``reseal``: someone who knows the scheme) or leave the old one."""
    with h5py.File(path, "r+") as f:
        change(f)
    if reseal:
        seal(path)


def set_attr(name: str, value, dtype=None):
    def change(f):
        if name in f.attrs:
            del f.attrs[name]
        if dtype is None:
            f.attrs[name] = value
        else:
            f.attrs.create(name, value, dtype=dtype)
    return change


def set_dataset(name: str, value=None, **kwargs):
    def change(f):
        if name in f:
            del f[name]
        if value is not None or kwargs:
            f.create_dataset(name, data=value, **kwargs)
    return change


def write_version_1(path: Path, record: CalibrationRecord, created: str) -> None:
    """A file as the format-1 writer made it (checksum attribute over some fields, no header)."""
    with h5py.File(path, "w-") as f:
        f.attrs.update({"format_version": 1, "kind": record.kind, "device": record.device,
                        "wavelength_nm": float(record.wavelength_nm), "optical_path": record.optical_path,
                        "created": created, "bench_name": record.bench_name, "bench_text": record.bench_text,
                        "device_identity": json.dumps(record.device_identity),
                        "residuals": json.dumps(record.residuals), "info": json.dumps(record.info)})
        for group, arrays in (("result", record.results), ("raw", record.raw)):
            g = f.create_group(group)
            for name, value in arrays.items():
                g.create_dataset(name, data=np.asarray(value))
        digest = hashlib.sha256()
        for key in ("kind", "device", "wavelength_nm", "optical_path", "created", "residuals", "info"):
            digest.update(repr(f.attrs[key]).encode())
        for group in ("result", "raw"):
            for name in sorted(f[group]):
                digest.update(f"{group}/{name}".encode())
                digest.update(np.ascontiguousarray(f[group][name][()]).tobytes())
        f.attrs["checksum"] = digest.hexdigest()
