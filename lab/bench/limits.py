"""The ranges a bench file's values must keep to (the errors quote them)."""

from __future__ import annotations

MAX_BENCH_BYTES = 1_000_000      # a bench file is a page of text: anything larger is refused unread
MAX_SIDE_PX = 16384              # the most pixels along one side of an SLM, a camera, the twin's grid
# Upper bounds of the other keys: wide enough for any bench, small enough that no later step
# allocates, waits or computes anything absurd (a 1e6 ms settle kept the laser on for 70 s).
MAX_DISTANCE_MM = 10_000.0       # d1, d2
MAX_OFFSET_UM = 100_000.0        # sensor and SLM placements
MAX_PITCH_UM = 1000.0
MAX_POWER_MW = 100_000.0         # laser setpoint and ceilings
MAX_WALL_PLUG_W = 10_000.0
MAX_REFRESH_HZ = 10_000.0
MAX_LATENCY_FRAMES = 32
MAX_SETTLE_MS = 2000.0
MAX_EXPOSURE_MS = 10_000.0
MAX_READOUT_MS = 2000.0
MAX_GAIN_DN_PER_E = 1000.0
MAX_J_PER_GFLOP = 1e6
MAX_BEAM_MM = 1000.0             # twin beam waist and aperture
MAX_ELECTRONS = 1e9              # twin read noise and full well
MAX_DN = 65535.0                 # twin dark offset (a 16-bit sensor's top count)
MAX_COLOURS = 16
MAX_TIMEOUT_S = 60.0             # a device's reply timeout
MAX_ZERNIKE = 36                 # Noll terms of a planted wavefront
MAX_TILT_URAD = 50_000.0         # a beam's angle (and its drift per hour)
MAX_KEY_PARTS = 16               # a dotted key costs tomllib time and memory as the square of its parts
SERIAL_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
