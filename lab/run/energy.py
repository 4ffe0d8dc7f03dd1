"""Energy per generated image, as separate terms (never one number): where the joules go.

- laser_optical: laser power x emission time, per image;
- sensor_optical: optical energy that reached the sensor, from the counts above dark
  (counts / gain / QE x photon energy), per image;
- wall_plug: each device's rated electrical power x the time the bench spent per image;
- encoder_compute: the encoder's operations per seed x an estimated host energy per operation.
"""

from __future__ import annotations

from optgen.simulators.noise import photon_energy_j

__all__ = ["energy_per_image"]


def energy_per_image(config, frames: int, laser_setpoint_w: float, laser_on_s: float, bench_time_s: float,
                     counts_above_dark: float, flops_per_seed: float) -> dict:
    """The energy terms (joules per image) for ``frames`` images; empty if none were made."""
    if frames <= 0:
        return {}
    cam = config.camera
    photons = counts_above_dark / cam.gain_dn_per_e / cam.qe
    period = bench_time_s / frames
    return {
        "laser_optical_j": laser_setpoint_w * laser_on_s / frames,
        "sensor_optical_j": max(photons, 0.0) * photon_energy_j(config.wavelength_m) / frames,
        "wall_plug_j": {
            "laser": config.laser.wall_plug_w * period,
            "encoding_slm": config.encoding_slm.wall_plug_w * period,
            "decoding_slm": config.decoding_slm.wall_plug_w * period,
            "camera": cam.wall_plug_w * period,
        },
        "encoder_compute_j_estimate": flops_per_seed * 1e-9 * config.run.host_j_per_gflop,
        "bench_time_per_image_s": period,
    }
