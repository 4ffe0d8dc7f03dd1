"""Small simulated benches (the default bench shrunk to a 256 x 256 grid, same physics) for
tests and benchmarks that must run in milliseconds per frame, and a bench-text editor."""

from __future__ import annotations

import re

from optgen.lab.bench.parse import default_bench_text, parse_bench

__all__ = ["EMBEDDED_COLOURS", "REALISTIC", "RGB_COLOURS", "SMALL", "add_to_bench_text", "edit_bench_text",
           "embedded_colour_bench", "external_laser_bench_text", "one_panel_bench_text", "realistic_bench_text",
           "rgb_bench_text", "second_realistic_bench_text", "small_bench_text"]


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


def add_to_bench_text(text: str, additions: dict[str, list[str]]) -> str:
    """Add ``key = value`` lines at the end of the given [section]s of bench-file text."""
    lines, section, out = text.splitlines(), "", []
    pending = {k: list(v) for k, v in additions.items()}

    def flush() -> None:
        while out and not out[-1].strip():        # before the blank lines that end the section
            blanks.append(out.pop())
        out.extend(pending.pop(section, []))
        out.extend(reversed(blanks))
        blanks.clear()

    blanks: list[str] = []
    for line in lines:
        header = re.match(r"^\[([^\]]+)\]\s*$", line)
        if header:
            flush()
            section = header.group(1)
        out.append(line)
    flush()
    if pending:
        raise KeyError(f"no such sections in the bench text: {sorted(pending)}")
    return "\n".join(out) + "\n"


# What a real two-SLM bench gets wrong, planted at plausible sizes (decision 0012 argues each).
REALISTIC = {
    "twin": ["d1_mm = 121.3                 # the true distances: [geometry] says 120.1 and 96.4",
             "d2_mm = 95.4"],
    "twin.laser": ["centre_um = [40.0, -25.0]     # the Gaussian beam's centre on SLM1",
                   "tilt_urad = [150.0, -80.0]    # its angle of incidence",
                   "pointing_drift_urad_per_h = [20.0, 10.0]"],
    "twin.encoding_slm": [
        "wavefront_waves = [0.0, 0.05, -0.03, 0.40, 0.19, -0.16, 0.08, -0.06, 0.03, 0.0, 0.05]  # panel bow (Noll)",
        "wavefront_radius_mm = 2.5",
        "unmodulated_fraction = 0.03",
        "response_drift_per_h = 0.01"],
    "twin.decoding_slm": [
        "wavefront_waves = [0.0, -0.02, 0.04, -0.20, -0.08, 0.14, -0.03, 0.06, 0.0, -0.02, 0.04]",
        "wavefront_radius_mm = 2.5",
        "unmodulated_fraction = 0.04",
        "response_drift_per_h = -0.007"],
    "twin.camera": ["hot_pixel_fraction = 0.0002        # stuck-bright pixels",
                    "hot_pixel_e_per_s = 2.0e6",
                    "prnu_rms = 0.01",
                    "dsnu_dn_rms = 2.0",
                    "background_w_per_m2 = 0.002      # stray light"],
}
REALISTIC_TWIN = {("twin.laser", "beam"): '"gaussian"', ("twin.laser", "waist_mm"): "3.0"}

# A second realistic bench with other values of the same sizes, for figures no one tuned on.
REALISTIC_2 = {
    "twin": ["d1_mm = 118.8                 # the true distances: [geometry] says 120.1 and 96.4",
             "d2_mm = 97.5"],
    "twin.laser": ["centre_um = [-35.0, 50.0]", "tilt_urad = [-120.0, 90.0]", "pointing_drift_urad_per_h = [-15.0, 25.0]"],
    "twin.encoding_slm": [
        "wavefront_waves = [0.0, -0.04, 0.06, -0.32, 0.12, 0.21, -0.05, 0.07, -0.04, 0.03, -0.04]",
        "wavefront_radius_mm = 2.5",
        "unmodulated_fraction = 0.05",
        "response_drift_per_h = -0.012"],
    "twin.decoding_slm": [
        "wavefront_waves = [0.0, 0.03, -0.02, 0.26, 0.10, -0.09, 0.05, -0.04, 0.03, 0.02, -0.05]",
        "wavefront_radius_mm = 2.5",
        "unmodulated_fraction = 0.025",
        "response_drift_per_h = 0.009"],
    "twin.camera": ["hot_pixel_fraction = 0.0003", "hot_pixel_e_per_s = 1.5e6", "prnu_rms = 0.015",
                    "dsnu_dn_rms = 1.5", "background_w_per_m2 = 0.003"],
}
REALISTIC_2_TWIN = {("twin.laser", "beam"): '"gaussian"', ("twin.laser", "waist_mm"): "2.6"}


def second_realistic_bench_text() -> str:
    """A second realistic bench: the same effects as :func:`realistic_bench_text` at other values."""
    text = edit_bench_text(default_bench_text(), REALISTIC_2_TWIN)
    return add_to_bench_text(text, REALISTIC_2)


def realistic_bench_text() -> str:
    """The default bench with what real benches get wrong planted (optgen config --dump --realistic)."""
    text = edit_bench_text(default_bench_text(), REALISTIC_TWIN).replace(
        "# The twin: planted truths of the simulated bench (what calibration has to find).",
        "# The twin: planted truths of the simulated bench (what calibration has to find). A realistic\n"
        "# bench: wavefront errors, unmodulated light, a tilted Gaussian beam, distances off, drift and\n"
        "# camera defects, at sizes decision 0012 argues.", 1)
    return add_to_bench_text(text, REALISTIC)


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
    ("run", "model"): '"digits-rgb-v3"',
}


def rgb_bench_text(extra: dict[tuple[str, str], str] | None = None, small: bool = False) -> str:
    """The default bench with three colours (638/520/450 nm lasers) and SLMs that reach 2 pi in red."""
    base = edit_bench_text(default_bench_text(), {**(SMALL if small else {}), **RGB_TWIN, **(extra or {})})
    red_mw, blue_mw = ("0.00012", "0.00008") if small else ("0.0015", "0.0008")
    return base + RGB_COLOURS + _colour_laser(638, red_mw, 6.0) + _colour_laser(450, blue_mw, 5.0)


EMBEDDED_COLOURS = "<embedded three-colour bench>"


def embedded_colour_bench():
    """The embedded three-colour twin: the bench of ``optgen run --colours`` and ``optgen calibrate
    --colour NM`` without --bench (its calibrations in the user data folder, under its identity)."""
    return parse_bench(rgb_bench_text(), EMBEDDED_COLOURS)


# the keys of a twin SLM that one panel has once (its liquid crystal and electronics)
_ONE_LC = ("response_max_rad", "response_exponent", "response_wobble_rad", "crosstalk_sigma_px", "latency_frames",
           "settle_ms", "response_drift_per_h")

ONE_PANEL = """
# One SLM panel shows both patterns (a folded path: the encoding region -> a mirror -> the decoding
# region -> the camera; d1 is the path between the two regions, via the mirror). [encoding_slm]
# names the panel's device; each SLM table is its region (same pitch, bit depth, refresh, latency
# and settle, LUT; [decoding_slm.connection] empty). Regions are [x, y, width, height] in panel pixels.
[panel]
resolution = [{width}, {height}]
encoding_region = [0, 0, {half}, {height}]
decoding_region = [{half}, 0, {half}, {height}]
"""


def one_panel_bench_text(text: str | None = None) -> str:
    """``text`` (default: the embedded bench) with its two SLMs made the two halves of the encoding
    SLM's panel (``optgen config --dump --one-panel``): the twin's decoding region gets the encoding
    region's liquid crystal (response, crosstalk, timing, drift); its placement and wavefront stay its own."""
    import tomllib

    from optgen.lab.bench.parse import parse_bench

    text = text if text is not None else default_bench_text()
    cfg = parse_bench(text, "one-panel bench")
    width, height = cfg.encoding_slm.resolution
    half = width // 2
    text = edit_bench_text(text, {("encoding_slm", "resolution"): f"[{half}, {height}]",
                                  ("decoding_slm", "resolution"): f"[{half}, {height}]"})
    twin = tomllib.loads(text).get("twin", {})
    encoding, decoding = twin.get("encoding_slm", {}), twin.get("decoding_slm", {})
    shared = {key: value for key, value in encoding.items() if key in _ONE_LC}
    text = edit_bench_text(text, {("twin.decoding_slm", key): repr(value) for key, value in shared.items()
                                  if key in decoding})
    text = add_to_bench_text(text, {"twin.decoding_slm": [f"{key} = {value!r}" for key, value in shared.items()
                                                          if key not in decoding]})
    return text.rstrip("\n") + "\n" + ONE_PANEL.format(width=width, height=height, half=half)
