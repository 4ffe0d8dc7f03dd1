"""Seeds from a trained model's encoder, in numpy: reproducible from (random seed, index)."""

from __future__ import annotations

import numpy as np

from optgen.lab.model.shipped import OpticalModel
from optgen.lab.run.seeds import Seed, SeedSource, values_to_phase

__all__ = ["ModelSeedSource"]


class ModelSeedSource(SeedSource):
    """The trained encoder fed with Gaussian noise drawn from (random_seed, index)."""

    def __init__(self, model: OpticalModel, wavelength_nm: float, random_seed: int = 0):
        super().__init__(model.geometry.seed_superpixels)
        self.model = model
        self.colour = model.colour_index(wavelength_nm)
        self.random_seed = int(random_seed)
        self.name = f"model:{model.name}"

    @property
    def flops_per_seed(self) -> float:
        return float(sum(2 * w.size for w, _ in self.model.weights))

    def noise(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.random_seed, int(index)])
        return rng.standard_normal(int(np.prod(self.model.noise_shape)), dtype=np.float32)

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
        return {**super().describe(), "model": self.model.id, "random_seed": self.random_seed,
                "wavelength_nm": self.model.wavelengths_nm[self.colour]}
