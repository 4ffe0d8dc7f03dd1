"""Seeds from a trained model's encoder, in numpy: reproducible from (random seed, index)."""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.special

from optgen.drivers.errors import OptgenError
from optgen.lab.model.shipped import OpticalModel
from optgen.lab.run.seeds import Seed, SeedSource, values_to_phase

__all__ = ["ModelSeedSource", "check_class"]


class ModelSeedSource(SeedSource):
    """The trained encoder fed with Gaussian noise drawn from (random_seed, index), or with the rows of
    ``noise`` (given noise vectors, for example the teacher's own: ``OpticalModel.teacher_noise``)."""

    def __init__(self, model: OpticalModel, wavelength_nm: float, random_seed: int = 0,
                 class_index: int | None = None, noise: np.ndarray | None = None):
        super().__init__(model.geometry.seed_superpixels)
        self.model = model
        self.colour = model.colour_index(wavelength_nm)
        self.random_seed = int(random_seed)
        self.class_index = check_class(model, class_index)
        self.given = None if noise is None else _given_noise(model, noise, class_index)
        self.name = f"model:{model.name}" + (f"/class{class_index}" if class_index is not None else "") + \
            ("/given-noise" if noise is not None else "")

    @property
    def flops_per_seed(self) -> float:
        return float(sum(2 * w.size for w, _ in self.model.weights))

    def noise(self, index: int) -> np.ndarray:
        """The noise of seed ``index``; for a requested class, its first component is drawn from the
        standard normal within that class's quantile (the rest as for any seed); with given noise, its
        row ``index``."""
        if self.given is not None:
            if not 0 <= int(index) < len(self.given):
                raise OptgenError(f"seed {index}: the given noise holds {len(self.given)} vectors (0 to "
                                  f"{len(self.given) - 1})")
            return self.given[int(index)]
        rng = np.random.default_rng([self.random_seed, int(index)])
        noise = rng.standard_normal(int(np.prod(self.model.noise_shape)), dtype=np.float32)
        if self.class_index is not None:
            u = (self.class_index + rng.uniform(0.001, 0.999)) / self.model.classes
            noise[0] = np.float32(scipy.special.ndtri(u))
        return noise

    def seed(self, index: int) -> Seed:
        values, _ = self.model.encode(self.noise(index)[None, :])
        phase = values_to_phase(values[0, self.colour])
        return Seed(index, f"{self.name}/rs{self.random_seed}/i{index}", phase)

    def scale(self, index: int) -> float:
        """The encoder's intensity scale for this seed and colour: the trained image is scale x
        the output irradiance per watt of beam (used to put colours back together)."""
        _, scale = self.model.encode(self.noise(index)[None, :])
        return float(scale[0, self.colour])

    def describe(self) -> dict:
        out = {**super().describe(), "model": self.model.id, "random_seed": self.random_seed,
               "wavelength_nm": self.model.wavelengths_nm[self.colour]}
        if self.class_index is not None:
            out["class"] = self.class_index
        if self.given is not None:
            out["noise"] = {"count": len(self.given), "sha256": hashlib.sha256(self.given.tobytes()).hexdigest()}
        return out


def _given_noise(model: OpticalModel, noise: np.ndarray, class_index: int | None) -> np.ndarray:
    """``noise`` as (N, noise size) float32, checked against ``model``."""
    if class_index is not None:
        raise OptgenError(f"class {class_index}: given noise vectors carry their own classes; ask for one or the other")
    size = int(np.prod(model.noise_shape))
    noise = np.asarray(noise)
    if noise.ndim != 2 or noise.shape[1] != size or len(noise) == 0 or not np.isfinite(noise).all():
        raise OptgenError(f"given noise of shape {noise.shape}: model {model.name!r} expects finite vectors of "
                          f"{size} values, (N, {size}) with N >= 1")
    return np.ascontiguousarray(noise, dtype=np.float32)


def check_class(model: OpticalModel, class_index: int | None) -> int | None:
    """``class_index`` checked against what ``model`` can generate on request."""
    if class_index is None:
        return None
    if model.classes == 0:
        raise OptgenError(f"class {class_index}: model {model.name!r} was trained without labels; it generates "
                          f"no class on request")
    if not 0 <= int(class_index) < model.classes:
        raise OptgenError(f"class {class_index}: model {model.name!r} has classes 0 to {model.classes - 1}")
    return int(class_index)
