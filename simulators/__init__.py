"""Twins of every device: the physics world model and the simulated devices that share it."""

from .camera import SimulatedCamera
from .clock import Clock, VirtualClock, WallClock
from .laser import SimulatedLaser
from .slm import SimulatedPhaseSLM
from .truth import LaserTruth, SensorTruth, SLMTruth, planted_response
from .world import DECODING, ENCODING, OpticalWorld

__all__ = [
    "Clock", "DECODING", "ENCODING", "LaserTruth", "OpticalWorld", "SLMTruth", "SensorTruth",
    "SimulatedCamera", "SimulatedLaser", "SimulatedPhaseSLM", "VirtualClock", "WallClock",
    "planted_response",
]
