"""The stop control of a run (see :mod:`drivers.stop`, where it lives so every layer's waits can see it)."""

from optgen.drivers.stop import StopControl

__all__ = ["StopControl"]
