"""Small simulated benches (the default bench shrunk to a 256 x 256 grid, same physics) for
tests and benchmarks that must run in milliseconds per frame, and a bench-text editor."""

from __future__ import annotations

import re

from optgen.lab.bench.parse import default_bench_text

__all__ = ["RGB_COLOURS", "SMALL", "edit_bench_text", "external_laser_bench_text", "rgb_bench_text",
           "small_bench_text"]


def edit_bench_text(text: str, changes: dict[tuple[str, str], str]) -> str:
    """Replace ``key = value`` lines of the given [section]s in bench-file text (values as TOML)."""
    out, section, seen = [], "", set()
    for line in text.splitlines():
        header = re.match(r"^\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1)
        match = re.match(r"^(\s*)([A-Za-z_0-9]+)(\s*=\s*)", line)
        if match and (section, match.group(2)) in changes:
            line = f"{match.group(2)} = {changes[(section, match.group(2))]}"
            seen.add((section, match.group(2)))
        out.append(line)
    missing = set(changes) - seen
    if missing:
        raise KeyError(f"no such keys in the bench text: {sorted(missing)}")
    return "\n".join(out) + "\n"


SMALL = {
    ("geometry", "d1_mm"): "40.0",
    ("geometry", "d2_mm"): "30.0",
    ("geometry", "seed_superpixels"): "16",
    ("geometry", "superpixel_px"): "6",
    ("geometry", "decoder_px"): "128",
    ("geometry", "output_window_px"): "96",
    ("geometry", "output_pixels"): "16",
    ("encoding_slm", "resolution"): "[320, 256]",
    ("decoding_slm", "resolution"): "[320, 256]",
    ("camera", "resolution"): "[320, 256]",
    ("twin", "grid_px"): "[256, 256]",
    ("run", "seed_source"): '"placeholder-encoder"',  # the shipped model is for the full-size geometry
    ("run", "decoder_phase"): '"flat"',
    ("twin.laser", "aperture_mm"): "0.768",
    ("laser", "power_mw"): "0.0001",  # a 9x smaller beam area: keep the sensor below saturation
}


def small_bench_text(extra: dict[tuple[str, str], str] | None = None) -> str:
    """The default bench shrunk to a 256 x 256 grid (same physics, fast)."""
    return edit_bench_text(default_bench_text(), {**SMALL, **(extra or {})})


def external_laser_bench_text(port: str, extra: dict[tuple[str, str], str] | None = None) -> str:
    """The small twin bench on the wall clock, lit by an OBIS driver on the pty of a protocol twin
    in another process (:class:`simulators.protocol.serve.ExternalTwinLaser`): 10 uW, which the
    driver's 1 uW resolution can set, on a twin sensor 100 x less sensitive."""
    text = small_bench_text({("laser", "driver"): '"obis"', ("laser", "power_mw"): "0.01",
                             ("twin.camera", "qe"): "0.007", ("run", "timing"): '"wall"', **(extra or {})})
    return text.replace("[laser.connection]", f'[laser.connection]\nport = "{port}"', 1)


RGB_COLOURS = """
[colours]
order_nm = [638.0, 520.0, 450.0]
camera_qe = [0.55, 0.7, 0.6]
"""


def _colour_laser(nm: int, power_mw: str, wall_plug_w: float) -> str:
    """A [colours.lasers.<nm>] table of a simulated laser."""
    return (f"\n[colours.lasers.{nm}]\ndriver = \"simulated\"\nwavelength_nm = {nm:.1f}\npower_mw = {power_mw}\n"
            f"max_power_mw = 1.0\nwall_plug_w = {wall_plug_w}\n\n[colours.lasers.{nm}.connection]\n")


# an SLM with 2 pi of stroke at its longest colour: 8 rad at 520 nm is 6.5 rad at 638 nm, 9.2 at 450 nm
RGB_TWIN = {
    ("twin.encoding_slm", "response_max_rad"): "8.0",
    ("twin.decoding_slm", "response_max_rad"): "7.9",
    ("run", "model"): '"digits-rgb-v2"',
}


def rgb_bench_text(extra: dict[tuple[str, str], str] | None = None, small: bool = False) -> str:
    """The default bench with three colours (638/520/450 nm lasers) and SLMs that reach 2 pi in red."""
    base = edit_bench_text(default_bench_text(), {**(SMALL if small else {}), **RGB_TWIN, **(extra or {})})
    red_mw, blue_mw = ("0.00012", "0.00008") if small else ("0.0015", "0.0008")
    return base + RGB_COLOURS + _colour_laser(638, red_mw, 6.0) + _colour_laser(450, blue_mw, 5.0)
