"""Trained optical generative models as files: save, load (numpy only), check against a bench.

A model file is one ``.npz`` holding the encoder weights, the decoder phase per wavelength,
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

FORMAT_VERSION = 1
SHIPPED_MODEL = "digits-v5"
REPLACED_MODELS = {"digits-v2": "digits-v5", "digits-v4": "digits-v5"}   # shipped once: a bench file naming one is told what replaced it


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


def save_model(path: Path, model: OpticalModel, half_weights: bool = False) -> Path:
    """Write ``model`` to ``path`` (.npz). ``half_weights`` stores the encoder's weight matrices in
    float16 (half the file; they are computed with in float32 again when loaded: a relative
    rounding of 5e-4, far below the SLM's phase steps)."""
    header = {
        "format_version": FORMAT_VERSION, "name": model.name, "geometry": model.geometry.as_dict(),
        "noise_shape": list(model.noise_shape), "wavelengths_nm": list(model.wavelengths_nm),
        "layers": len(model.weights), "log_scale_offset": model.log_scale_offset, "info": model.info or {},
    }
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for i, (w, b) in enumerate(model.weights):
        arrays[f"w{i}"] = w.astype(np.float16 if half_weights else np.float32)
        arrays[f"b{i}"] = b.astype(np.float32)
    for wl, phase in model.decoder_phase.items():
        arrays[f"decoder_{wl:g}nm"] = phase.astype(np.float32)
    if model.teacher_samples is not None:
        arrays["teacher_samples"] = model.teacher_samples.astype(np.float16)
    np.savez_compressed(path, **arrays)
    return Path(path)


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
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: format version {header.get('format_version')!r}; this optgen reads {FORMAT_VERSION}")
    try:
        geometry = OpticalGeometry.from_dict(header["geometry"])
        wavelengths = tuple(float(w) for w in header["wavelengths_nm"])
        layers = int(header["layers"])
        weights = [(arrays[f"w{i}"].astype(np.float32, copy=False), arrays[f"b{i}"].astype(np.float32, copy=False))
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
    return OpticalModel(name=header["name"], geometry=geometry, noise_shape=noise_shape, wavelengths_nm=wavelengths,
                        weights=weights, decoder_phase=decoder, log_scale_offset=float(header["log_scale_offset"]),
                        info=header.get("info", {}), id=f"{header['name']}:{hashlib.sha256(raw).hexdigest()[:12]}",
                        teacher_samples=arrays["teacher_samples"].astype(np.float32) if "teacher_samples" in arrays else None)
