"""Seeds from a model's encoder for given noise vectors (the teacher pairs' noise), frame by frame."""

from __future__ import annotations

import numpy as np

from optgen.lab.model.shipped import OpticalModel
from optgen.lab.run.model_seeds import ModelSeedSource
from optgen.lab.run.seeds import Seed

__all__ = ["NoiseSeedSource"]


class NoiseSeedSource(ModelSeedSource):
    """Frame ``i`` shows the encoder's seed for ``noise[i]`` instead of noise drawn from a random seed;
    ``labels[i]`` names that noise (its teacher pair's index), so every stored frame says which
    target it is compared with."""

    def __init__(self, model: OpticalModel, noise: np.ndarray, labels: list[int], name: str = "refine"):
        super().__init__(model, model.wavelengths_nm[0])
        if len(noise) != len(labels):
            raise ValueError(f"{len(noise)} noise vectors but {len(labels)} labels")
        self._noise = np.asarray(noise, np.float32)
        self._labels = [int(v) for v in labels]
        self.name = f"{name}:{model.name}"

    def __len__(self) -> int:
        return len(self._labels)

    def noise(self, index: int) -> np.ndarray:
        return self._noise[index]

    def seed(self, index: int) -> Seed:
        seed = super().seed(index)
        return Seed(index, f"{self.name}/pair{self._labels[index]}", seed.phase)

    def describe(self) -> dict:
        described = {k: v for k, v in super().describe().items() if k != "random_seed"}
        return {**described, "teacher_pairs": self._labels}
