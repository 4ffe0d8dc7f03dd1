"""Trained optical generative models as files: save, load (numpy only), check against a bench.

A model file is one ``.npz`` holding the encoder weights (float32, float16, or int8 with a
float32 scale per output column: :func:`save_model`), the decoder phase per wavelength,
and a JSON header: format version, model version, the geometry it was trained for, the
noise shape, the wavelengths, and how it was trained. Loading checks all of it and says
what is missing or differs; inference needs numpy only.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from drivers.errors import OptgenError

from .geometry import OpticalGeometry

__all__ = ["ModelError", "OpticalModel", "load_model", "save_model", "SHIPPED_MODEL", "FORMAT_VERSION", "shipped_models"]

FORMAT_VERSION = 2           # 2: encoder weights may be int8 with a scale per column (``w{i}_scale``)
READABLE_VERSIONS = (1, 2)   # version 1 files (float32 or float16 weights) read as before
WEIGHT_FORMATS = ("float32", "float16", "int8")
SHIPPED_MODEL = "digits-v6"
REPLACED_MODELS = {"digits-v2": "digits-v6", "digits-v4": "digits-v6", "digits-v5": "digits-v6", "digits-rgb": "digits-rgb-v2"}   # shipped once: a bench file naming one is told what replaced it


class ModelError(OptgenError, ValueError):
    """A model file that is missing, corrupt, or made for another bench."""


@dataclass
class OpticalModel:
    """A digital encoder (MLP, LeakyReLU 0.2) plus a decoder phase per wavelength."""

    name: str
    geometry: OpticalGeometry
    noise_shape: tuple[int, int]
    wavelengths_nm: tuple[float, ...]
    weights: list[tuple[np.ndarray, np.ndarray]]      # (W (in, out), b (out,)) per layer
    decoder_phase: dict[float, np.ndarray]            # radians, (decoder_px, decoder_px) per wavelength
    log_scale_offset: float = 0.0
    info: dict | None = None
    id: str = ""
    teacher_samples: np.ndarray | None = None       # (N, n_out, n_out) teacher images, for evaluation
    teacher_noise: np.ndarray | None = None         # (N, noise values) the noise each teacher sample came from

    @property
    def seed_shape(self) -> tuple[int, int]:
        n = self.geometry.seed_superpixels
        return (n, n)

    def encode(self, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise (B, noise_dim) -> (seed values (B, colours, n, n) in [-1, 1] after clipping, scale (B, colours))."""
        x = np.asarray(noise, dtype=np.float32)
        for i, (w, b) in enumerate(self.weights):
            x = x @ w + b
            if i < len(self.weights) - 1:
                np.maximum(x, 0.2 * x, out=x)  # LeakyReLU(0.2)
        colours = len(self.wavelengths_nm)
        n = self.geometry.seed_superpixels
        values = x[:, : colours * n * n].reshape(-1, colours, n, n)
        scale = np.exp(x[:, colours * n * n:] + self.log_scale_offset)
        return values, scale

    def check_bench(self, bench_geometry: OpticalGeometry, wavelength_nm: float | None = None) -> None:
        """Raise ModelError naming every difference between the trained and the bench geometry."""
        ref = self.geometry
        if wavelength_nm is not None:
            self.colour_index(wavelength_nm)
            ref = OpticalGeometry(**{**ref.as_dict(), "wavelength_nm": bench_geometry.wavelength_nm})
        diffs = ref.differences(bench_geometry)
        if diffs:
            raise ModelError(f"model {self.name!r} was trained for another geometry: " + "; ".join(diffs))

    def colour_index(self, wavelength_nm: float) -> int:
        for i, wl in enumerate(self.wavelengths_nm):
            if abs(wl - wavelength_nm) < 1.0:
                return i
        have = ", ".join(f"{w:g} nm" for w in self.wavelengths_nm)
        raise ModelError(f"model {self.name!r} has no colour at {wavelength_nm:g} nm (it has {have})")


def save_model(path: Path, model: OpticalModel, weights: str = "float32") -> Path:
    """Write ``model`` to ``path`` (.npz), the encoder's weight matrices stored as ``weights``:

    - ``float32``: as trained;
    - ``float16``: half the file; a relative rounding of 5e-4;
    - ``int8``: a quarter of the file; each output column scaled by its largest weight / 127
      (the scales kept in float32). On digits-v5 (6 x 1024) the seeds move by 0.25 of an 8-bit
      SLM's phase step on average (p99 1.3 steps) against float32.

    Biases and decoder phases stay float32; the weights are computed with in float32 again when
    loaded, so inference costs the same in every format.
    """
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights = {weights!r}: expected one of {', '.join(WEIGHT_FORMATS)}")
    header = {
        "format_version": FORMAT_VERSION, "name": model.name, "geometry": model.geometry.as_dict(),
        "noise_shape": list(model.noise_shape), "wavelengths_nm": list(model.wavelengths_nm),
        "layers": len(model.weights), "log_scale_offset": model.log_scale_offset, "info": model.info or {},
        "weights": weights,
    }
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for i, (w, b) in enumerate(model.weights):
        if weights == "int8":
            scale = np.maximum(np.abs(w).max(axis=0, keepdims=True), 1e-30).astype(np.float32) / 127.0
            arrays[f"w{i}"] = np.round(w / scale).astype(np.int8)
            arrays[f"w{i}_scale"] = scale
        else:
            arrays[f"w{i}"] = w.astype(np.float16 if weights == "float16" else np.float32)
        arrays[f"b{i}"] = b.astype(np.float32)
    for wl, phase in model.decoder_phase.items():
        arrays[f"decoder_{wl:g}nm"] = phase.astype(np.float32)
    if model.teacher_samples is not None:
        arrays["teacher_samples"] = model.teacher_samples.astype(np.float16)
    if model.teacher_noise is not None:
        arrays["teacher_noise"] = np.asarray(model.teacher_noise, dtype=np.float32)
    np.savez_compressed(path, **arrays)
    return Path(path)


def _weight_matrix(path: Path, arrays: dict, i: int) -> np.ndarray:
    """Layer ``i``'s weights in float32, scaled back from int8 where stored so."""
    w = arrays[f"w{i}"]
    scale = arrays.get(f"w{i}_scale")
    if w.ndim != 2:
        raise ModelError(f"{path}: encoder weights w{i} have shape {w.shape}; expected a matrix (inputs, outputs)")
    if w.dtype == np.int8:
        if scale is None:
            raise ModelError(f"{path}: encoder weights w{i} are int8 without their scale w{i}_scale")
        if scale.shape != (1, w.shape[1]) or not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ModelError(f"{path}: scale w{i}_scale has shape {scale.shape}; expected (1, {w.shape[1]}) "
                             "of finite positive values")
        return w.astype(np.float32) * scale
    if scale is not None or w.dtype not in (np.float32, np.float16):
        raise ModelError(f"{path}: encoder weights w{i} are {w.dtype}"
                         + (" with a scale" if scale is not None else "") + "; expected float32, float16 or int8")
    return w.astype(np.float32, copy=False)


def _model_path(spec: str | Path) -> Path:
    """A model file: a path, or the name of a model shipped with optgen ("shipped": the default one)."""
    name = SHIPPED_MODEL if str(spec) == "shipped" else str(spec)
    shipped = Path(str(resources.files("lab.model").joinpath(f"{name}.npz")))
    if "/" not in name and not name.endswith(".npz") and shipped.is_file():
        return shipped
    return Path(spec)


def shipped_models() -> list[str]:
    """Names of the models shipped with optgen."""
    return sorted(p.name[:-4] for p in resources.files("lab.model").iterdir() if p.name.endswith(".npz"))


def load_model(spec: str | Path = SHIPPED_MODEL) -> OpticalModel:
    """Load a model file (or the shipped model by name) and check it is whole."""
    path = _model_path(spec)
    if not path.is_file():
        if "/" not in str(spec) and not str(spec).endswith(".npz"):
            replaced = REPLACED_MODELS.get(str(spec))
            raise ModelError(f"model {str(spec)!r}: no such model file, and optgen does not ship one of that name "
                             f"(it ships {', '.join(shipped_models())}"
                             + (f"; {spec} was replaced by {replaced}" if replaced else "") + ")")
        raise ModelError(f"{path}: model file not found")
    raw = path.read_bytes()
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"{path}: not a readable model file ({exc})") from None
    if "header" not in arrays:
        raise ModelError(f"{path}: no header; not an optgen model file")
    try:
        header = json.loads(arrays["header"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: corrupt header ({exc})") from None
    if header.get("format_version") not in READABLE_VERSIONS:
        raise ModelError(f"{path}: format version {header.get('format_version')!r}; this optgen reads "
                         f"{' and '.join(str(v) for v in READABLE_VERSIONS)}")
    try:
        geometry = OpticalGeometry.from_dict(header["geometry"])
        wavelengths = tuple(float(w) for w in header["wavelengths_nm"])
        layers = int(header["layers"])
        weights = [(_weight_matrix(path, arrays, i), arrays[f"b{i}"].astype(np.float32, copy=False))
                   for i in range(layers)]
        decoder = {wl: arrays[f"decoder_{wl:g}nm"] for wl in wavelengths}
        noise_shape = tuple(int(v) for v in header["noise_shape"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: incomplete model file (missing {exc})") from None
    n = geometry.seed_superpixels
    expected_out = len(wavelengths) * (n * n + 1)
    if weights[0][0].shape[0] != int(np.prod(noise_shape)) or weights[-1][0].shape[1] != expected_out:
        raise ModelError(f"{path}: encoder maps {weights[0][0].shape[0]} -> {weights[-1][0].shape[1]} values; "
                         f"expected {int(np.prod(noise_shape))} -> {expected_out}")
    for wl, phase in decoder.items():
        if phase.shape != (geometry.decoder_px, geometry.decoder_px) or not np.isfinite(phase).all():
            raise ModelError(f"{path}: decoder phase at {wl:g} nm is not a finite "
                             f"{geometry.decoder_px}x{geometry.decoder_px} array")
    for w, b in weights:
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ModelError(f"{path}: encoder weights contain NaN or infinite values")
    samples = arrays["teacher_samples"].astype(np.float32) if "teacher_samples" in arrays else None
    noise = arrays.get("teacher_noise")
    if noise is not None:
        expected = (len(samples) if samples is not None else 0, int(np.prod(noise_shape)))
        if noise.shape != expected or not np.isfinite(noise).all():
            raise ModelError(f"{path}: teacher_noise has shape {noise.shape}; expected {expected} of finite "
                             f"values (one noise vector per teacher sample)")
    return OpticalModel(name=header["name"], geometry=geometry, noise_shape=noise_shape, wavelengths_nm=wavelengths,
                        weights=weights, decoder_phase=decoder, log_scale_offset=float(header["log_scale_offset"]),
                        info=header.get("info", {}), id=f"{header['name']}:{hashlib.sha256(raw).hexdigest()[:12]}",
                        teacher_samples=samples,
                        teacher_noise=None if noise is None else noise.astype(np.float32, copy=False))
