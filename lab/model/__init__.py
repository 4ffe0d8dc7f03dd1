"""The optical generative model: shipped weights and numpy inference; training (torch) in train.py."""

from .errors import ModelError, ModelFileError
from .geometry import OpticalGeometry
from .seed_source import ModelSeedSource
from .shipped import SHIPPED_MODEL, OpticalModel, load_model, save_model

__all__ = ["ModelError", "ModelFileError", "ModelSeedSource", "OpticalGeometry", "OpticalModel", "SHIPPED_MODEL",
           "load_model", "save_model"]
