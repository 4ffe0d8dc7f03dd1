"""Seeds from a model's encoder for given noise vectors (the teacher pairs' noise), frame by frame."""

from __future__ import annotations

import numpy as np

from optgen.lab.model.shipped import OpticalModel
from optgen.lab.run.seeds import Seed, SeedSource, values_to_phase

__all__ = ["NoiseSeedSource"]


class NoiseSeedSource(SeedSource):
    """Frame ``i`` shows the encoder's seed for ``noise[i]``; ``labels[i]`` names that noise (its
    teacher pair's index), so every stored frame says which target it is compared with."""

    def __init__(self, model: OpticalModel, noise: np.ndarray, labels: list[int], name: str = "refine"):
        super().__init__(model.geometry.seed_superpixels)
        if len(noise) != len(labels):
            raise ValueError(f"{len(noise)} noise vectors but {len(labels)} labels")
        values, _ = model.encode(np.asarray(noise, np.float32))
        self._phases = values_to_phase(values[:, 0])
        self._labels = [int(v) for v in labels]
        self.model_id = model.id
        self.name = f"{name}:{model.name}"

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def flops_per_seed(self) -> float:
        return 0.0            # computed once for the round, before the light comes on

    def seed(self, index: int) -> Seed:
        return Seed(index, f"{self.name}/pair{self._labels[index]}", self._phases[index])

    def describe(self) -> dict:
        return {**super().describe(), "model": self.model_id, "teacher_pairs": self._labels}
