"""Twins of every device: the physics world model and the simulated devices that share it."""

from optgen.drivers.common.clock import Clock, VirtualClock, WallClock
from optgen.simulators.camera import SimulatedCamera
from optgen.simulators.laser import SimulatedLaser
from optgen.simulators.slm import SimulatedPhaseSLM
from optgen.simulators.truth import LaserTruth, SensorTruth, SLMTruth, planted_response
from optgen.simulators.world import DECODING, ENCODING, OpticalWorld

__all__ = [
    "Clock", "DECODING", "ENCODING", "LaserTruth", "OpticalWorld", "SLMTruth", "SensorTruth",
    "SimulatedCamera", "SimulatedLaser", "SimulatedPhaseSLM", "VirtualClock", "WallClock",
    "planted_response",
]
