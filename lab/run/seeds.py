"""Seed sources: where the encoding SLM's phase seeds come from.

A seed is a (32, 32) array of phases in radians, in [0, 2 pi]. Sources are reproducible:
the same (random seed, index) always gives the same seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optgen.lab.run.patterns import check_model_phase

__all__ = ["DigitalEncoder", "EncoderSeedSource", "FileSeedSource", "PlaceholderEncoder", "Seed",
           "SeedSource", "values_to_phase"]


@dataclass(frozen=True)
class Seed:
    index: int
    id: str
    phase: np.ndarray  # (n, n) float32 radians


def values_to_phase(values: np.ndarray) -> np.ndarray:
    """The published seed mapping: phi = clip(pi * (H + 1), 0, 2 pi) for encoder outputs H in [-1, 1]."""
    return np.clip(np.pi * (np.asarray(values, dtype=np.float32) + 1.0), 0.0, 2.0 * np.pi).astype(np.float32)


class SeedSource(ABC):
    """Gives the seed for frame ``index``."""

    name: str = "seed source"

    def __init__(self, seed_superpixels: int):
        self.shape = (seed_superpixels, seed_superpixels)

    @abstractmethod
    def seed(self, index: int) -> Seed: ...

    def __len__(self) -> int:
        """How many seeds the source holds (a very large number for generators)."""
        return 2**62

    @property
    def flops_per_seed(self) -> float:
        """Arithmetic operations spent making one seed (0 for seeds read from a file)."""
        return 0.0

    def describe(self) -> dict:
        return {"name": self.name, "shape": list(self.shape)}


class DigitalEncoder(ABC):
    """Turns Gaussian noise (batch, n*n) into seed values H (batch, n*n) in about [-1, 1]."""

    name: str = "encoder"
    version: str = "0"

    @abstractmethod
    def encode(self, noise: np.ndarray) -> np.ndarray: ...

    @property
    def flops(self) -> float:
        """Multiply-adds x 2 for one noise vector."""
        return 0.0


class PlaceholderEncoder(DigitalEncoder):
    """NOT a trained model: a fixed random two-layer network, so the bench has seeds to show.

    Its seeds make speckle, not images. It stands in until the trained encoder ships; it uses
    the same noise -> values -> phase path the trained encoder will.
    """

    name = "placeholder-random-mlp"
    version = "1"

    def __init__(self, size: int, hidden: int = 256, weights_seed: int = 1234):
        rng = np.random.default_rng(weights_seed)
        self.w1 = (rng.standard_normal((size, hidden)) / np.sqrt(size)).astype(np.float32)
        self.w2 = (rng.standard_normal((hidden, size)) / np.sqrt(hidden)).astype(np.float32)

    @property
    def flops(self) -> float:
        return 2.0 * (self.w1.size + self.w2.size)

    def encode(self, noise: np.ndarray) -> np.ndarray:
        h = np.tanh(np.asarray(noise, dtype=np.float32) @ self.w1)
        return np.tanh(h @ self.w2)


class EncoderSeedSource(SeedSource):
    """Seeds from a digital encoder fed with noise drawn from (random_seed, index)."""

    def __init__(self, encoder: DigitalEncoder, seed_superpixels: int, random_seed: int = 0):
        super().__init__(seed_superpixels)
        self.encoder = encoder
        self.random_seed = int(random_seed)
        self.name = f"encoder:{encoder.name}"

    @property
    def flops_per_seed(self) -> float:
        return self.encoder.flops

    def noise(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.random_seed, int(index)])
        return rng.standard_normal(self.shape[0] * self.shape[1], dtype=np.float32)

    def seed(self, index: int) -> Seed:
        values = self.encoder.encode(self.noise(index)[None, :])[0].reshape(self.shape)
        return Seed(index, f"{self.name}/rs{self.random_seed}/i{index}", values_to_phase(values))

    def describe(self) -> dict:
        return {**super().describe(), "encoder": self.encoder.name, "encoder_version": self.encoder.version,
                "random_seed": self.random_seed}


class FileSeedSource(SeedSource):
    """Seeds read from a .npy file of shape (N, n, n), radians."""

    def __init__(self, path: str | Path, seed_superpixels: int):
        super().__init__(seed_superpixels)
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path}: seed file not found")
        try:
            data = np.load(self.path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{self.path}: not a .npy array of seed phases ({exc})") from None
        if data.ndim != 3 or data.shape[1:] != self.shape:
            raise ValueError(f"{self.path}: seeds have shape {data.shape}; expected (N, {self.shape[0]}, "
                             f"{self.shape[1]}) radians")
        self.phases = check_model_phase(str(self.path), data, data.shape)
        self.name = f"file:{self.path.name}"

    def __len__(self) -> int:
        return self.phases.shape[0]

    def seed(self, index: int) -> Seed:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.path}: seed {index} requested; the file holds {len(self)}")
        return Seed(index, f"{self.name}/i{index}", self.phases[index])

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), "count": len(self)}
