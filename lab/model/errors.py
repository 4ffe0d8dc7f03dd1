"""The model's errors: a model that does not fit, and a model file that cannot be used."""

from __future__ import annotations

from optgen.drivers.errors import OptgenError

__all__ = ["ModelError", "ModelFileError"]


class ModelError(OptgenError, ValueError):
    """A model file that is missing, corrupt, or made for another bench."""


class ModelFileError(ModelError):
    """A model file refused on load: unreadable, incomplete, inconsistent or implausible.

    Raised by :func:`lab.model.load_model` before anything is built from the file (and so before
    any device opens); the message names the file and the field, and says what was expected.
    """
