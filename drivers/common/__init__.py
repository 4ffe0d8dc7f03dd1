"""The bench's shared vocabulary: what the drivers, the twin, the calibrations and the lab all speak.

- :mod:`~optgen.drivers.common.roles`: the two SLMs' role keys;
- :mod:`~optgen.drivers.common.light_path`: the light path as one frozen dataclass, and its digest;
- :mod:`~optgen.drivers.common.clock`: wall and virtual clocks;
- :mod:`~optgen.drivers.common.schedule`: when an SLM upload is safe and when its frames are due;
- :mod:`~optgen.drivers.common.patterns`: the standard phase patterns (lens, gratings, centring).

It sits on the ground floor (it imports nothing of optgen but the drivers' timing records), so
that calibration and lab can share it without importing each other.
"""
