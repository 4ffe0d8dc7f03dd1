"""Trained optical generative models as files: save, load (numpy only), check against a bench.

A model file is one ``.npz`` holding the encoder weights (float32, float16, or int8 with a
float32 scale per output column: :func:`save_model`), the decoder phase per wavelength,
and a JSON header: format version, model version, the geometry it was trained for, the
noise shape, the wavelengths, and how it was trained. Loading checks all of it and says
what is missing or differs (:mod:`.model_file`: a damaged or hostile file is refused with a
:class:`ModelFileError` before anything is built from it); inference needs numpy only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from optgen.lab.model.class_input import class_inputs, with_class_inputs
from optgen.lab.model.errors import ModelError, ModelFileError
from optgen.lab.model.geometry import OpticalGeometry
from optgen.lab.model.model_file import READABLE_VERSIONS, WEIGHT_FORMATS, read_model_file, shown_path  # noqa: F401 - READABLE_VERSIONS: as before

__all__ = ["ModelError", "ModelFileError", "OpticalModel", "load_model", "save_model", "SHIPPED_MODEL", "FORMAT_VERSION",
           "check_model_name", "shipped_models"]

FORMAT_VERSION = 2           # 2: encoder weights may be int8 with a scale per column (``w{i}_scale``)
SHIPPED_MODEL = "digits-v7"
REPLACED_MODELS = {"digits-v2": "digits-v7", "digits-v4": "digits-v7", "digits-v5": "digits-v7", "digits-v6": "digits-v7",
                   "digits-rgb": "digits-rgb-v3",
                   "digits-rgb-v2": "digits-rgb-v3"}   # shipped once: a bench file naming one is told what replaced it


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

    @property
    def classes(self) -> int:
        """How many classes the model generates on request (0: none). A class-conditional teacher
        reads a sample's class from its noise, the quantile of its first component (decision 0004),
        so the student learned the same: every model optgen trained on labelled images (the digits
        models: 10) records ``info["classes"]``; models from before that record their settings."""
        info = self.info or {}
        if "classes" in info:
            return int(info["classes"])
        return 10 if isinstance(info.get("settings"), dict) and "guidance" in info["settings"] else 0

    def encode(self, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise (B, noise_dim) -> (seed values (B, colours, n, n) in [-1, 1] after clipping, scale (B, colours))."""
        x = np.asarray(noise, dtype=np.float32)
        if class_inputs(self.info):       # trained with the class as one-hot inputs beside the noise
            x = with_class_inputs(x, self.classes)
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


def check_model_name(name: str) -> None:
    """ValueError unless ``name`` can name a model file: letters, digits, '.', '_' or '-'."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
        raise ValueError(f"name {name!r}: expected letters, digits, '.', '_' or '-' (it names the model file)")


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


def _model_path(spec: str | Path) -> Path:
    """A model file: a path, or the name of a model shipped with optgen ("shipped": the default one)."""
    name = SHIPPED_MODEL if str(spec) == "shipped" else str(spec)
    shipped = Path(str(resources.files("optgen.lab.model").joinpath(f"{name}.npz")))
    if "/" not in name and not name.endswith(".npz") and _is_file(shipped):
        return shipped
    return Path(spec)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):   # a name with a NUL byte, a path too long
        return False


def shipped_models() -> list[str]:
    """Names of the models shipped with optgen."""
    return sorted(p.name[:-4] for p in resources.files("optgen.lab.model").iterdir() if p.name.endswith(".npz"))


def load_model(spec: str | Path = SHIPPED_MODEL) -> OpticalModel:
    """Load a model file (or the shipped model by name) and check it is whole and sane.

    Anything wrong with the file raises :class:`ModelFileError` naming the file and the field,
    before anything is built from it (see :mod:`lab.model.model_file` for the checks and their
    limits). Last, the encoder runs on a few fixed noise vectors: a model whose seeds are not
    finite, not different for different noise, or far out of the SLM's range is refused too.
    """
    path = _model_path(spec)
    if not _is_file(path):
        if "/" not in str(spec) and not str(spec).endswith(".npz"):
            replaced = REPLACED_MODELS.get(str(spec))
            raise ModelFileError(f"model {str(spec)!r}: no such model file, and optgen does not ship one of that "
                                 f"name (it ships {', '.join(shipped_models())}"
                                 + (f"; {spec} was replaced by {replaced}" if replaced else "") + ")")
        raise ModelFileError(f"{shown_path(path)}: model file not found")
    contents = read_model_file(path)
    model = OpticalModel(name=contents.name, geometry=contents.geometry, noise_shape=contents.noise_shape,
                         wavelengths_nm=contents.wavelengths_nm, weights=contents.weights,
                         decoder_phase=contents.decoder_phase, log_scale_offset=contents.log_scale_offset,
                         info=contents.info, id=f"{contents.name}:{contents.sha256[:12]}",
                         teacher_samples=contents.teacher_samples, teacher_noise=contents.teacher_noise)
    _check_encoder_output(path, model)
    return model


PROBE_NOISE_VECTORS = 8
MIN_SEED_SPREAD = 1e-3        # mean std of the clipped seed values across the probe noise (an SLM step: 0.008)
MAX_MEDIAN_SEED_VALUE = 100.0  # the seed range is [-1, 1]; the shipped models' median |value|: about 0.2


def _check_encoder_output(path: Path, model: OpticalModel) -> None:
    """The encoder on a few fixed noise vectors: finite seeds and scales, seeds that differ with the noise
    and are not far out of the SLM's range (a model with weights scaled by 1e30, or all zero, fails)."""
    rng = np.random.default_rng(20250101)
    noise = rng.standard_normal((PROBE_NOISE_VECTORS, int(np.prod(model.noise_shape))), dtype=np.float32)
    with np.errstate(all="ignore"):
        values, scale = model.encode(noise)
    field = f"{shown_path(path)}: encoder (w0 ... w{len(model.weights) - 1}, log_scale_offset)"
    if not (np.isfinite(values).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise ModelFileError(f"{field}: on {PROBE_NOISE_VECTORS} fixed noise vectors it gives non-finite seed values "
                             f"or scales that are not finite and positive; expected finite seeds and scales")
    for c, wl in enumerate(model.wavelengths_nm):
        seeds = values[:, c]
        spread = float(np.clip(seeds, -1.0, 1.0).std(axis=0, dtype=np.float64).mean())
        if spread < MIN_SEED_SPREAD:
            raise ModelFileError(f"{field}: at {wl:g} nm it gives (nearly) the same seed for {PROBE_NOISE_VECTORS} "
                                 f"different noise vectors (spread {spread:.2g}); expected seeds that change with "
                                 f"the noise (at least {MIN_SEED_SPREAD:g})")
        median = float(np.median(np.abs(seeds)))
        if median > MAX_MEDIAN_SEED_VALUE:
            raise ModelFileError(f"{field}: at {wl:g} nm its seed values are far out of range (median |value| "
                                 f"{median:.3g}); expected values about the SLM's range -1 to 1 (at most "
                                 f"{MAX_MEDIAN_SEED_VALUE:g})")
