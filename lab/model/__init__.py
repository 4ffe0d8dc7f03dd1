"""The optical generative model: shipped weights and numpy inference; training (torch) in train.py."""

from .geometry import OpticalGeometry
from .seed_source import ModelSeedSource
from .shipped import SHIPPED_MODEL, ModelError, OpticalModel, load_model, save_model

__all__ = ["ModelError", "ModelSeedSource", "OpticalGeometry", "OpticalModel", "SHIPPED_MODEL", "load_model",
           "save_model"]
