"""The optical generative model: shipped weights and numpy inference; training (torch) in train.py."""

from optgen.lab.model.errors import ModelError, ModelFileError
from optgen.lab.model.geometry import OpticalGeometry
from optgen.lab.model.shipped import SHIPPED_MODEL, OpticalModel, load_model, save_model

__all__ = ["ModelError", "ModelFileError", "OpticalGeometry", "OpticalModel", "SHIPPED_MODEL",
           "load_model", "save_model"]
