"""Seeds from a trained model's encoder, in numpy: reproducible from (random seed, index)."""

from __future__ import annotations

import numpy as np
import scipy.special

from optgen.drivers.errors import OptgenError
from optgen.lab.model.shipped import OpticalModel
from optgen.lab.run.seeds import Seed, SeedSource, values_to_phase

__all__ = ["ModelSeedSource", "check_class"]


class ModelSeedSource(SeedSource):
    """The trained encoder fed with Gaussian noise drawn from (random_seed, index)."""

    def __init__(self, model: OpticalModel, wavelength_nm: float, random_seed: int = 0,
                 class_index: int | None = None):
        super().__init__(model.geometry.seed_superpixels)
        self.model = model
        self.colour = model.colour_index(wavelength_nm)
        self.random_seed = int(random_seed)
        self.class_index = check_class(model, class_index)
        self.name = f"model:{model.name}" + (f"/class{class_index}" if class_index is not None else "")

    @property
    def flops_per_seed(self) -> float:
        return float(sum(2 * w.size for w, _ in self.model.weights))

    def noise(self, index: int) -> np.ndarray:
        """The noise of seed ``index``; for a requested class, its first component is drawn from the
        standard normal within that class's quantile (the rest as for any seed)."""
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
        return out


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
