"""``optgen live`` (the camera live, test patterns, the laser within its ceiling) and ``optgen show``
(a run's frames and images), both as a page served on 127.0.0.1 (decision 0022)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from optgen.drivers.errors import OptgenError
from optgen.lab.cli.checks import positive_number

__all__ = ["add_live_parsers", "cmd_live", "cmd_show"]

log = logging.getLogger("optgen.live")

DEFAULT_PORT = 8750


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port number from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port}: expected a port number from 0 to 65535 (0: any free port)")
    return port


def add_live_parsers(sub) -> None:
    live = sub.add_parser(
        "live", help="show the camera live in a browser page; test patterns, the laser, the exposure",
        description="Open the bench and serve a page on 127.0.0.1 that shows the camera live with the output "
                    "window and the sensor grid over it (calibrated when an alignment is in force), saturated "
                    "pixels in red, a histogram and the frame rate. From the page: a test pattern on either SLM "
                    "(flat, lens, grating, a seed of the model, the decoder), the laser on or off within its "
                    "ceiling, the exposure. The laser goes off when the page closes the view, when no page has "
                    "looked for --lease seconds, at Ctrl-C, and on any fault. A twin runs on the wall clock here.")
    live.add_argument("--bench", type=Path, default=None, help="bench file (default: the simulated bench)")
    live.add_argument("--calibrations", type=Path, default=None,
                      help="calibration store (default: the bench file's [calibration] store)")
    live.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                      help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free port)")
    live.add_argument("--lease", type=positive_number, default=15.0, metavar="S",
                      help="switch the laser off when no page has looked for S seconds (default 15)")
    live.add_argument("--minutes", type=positive_number, default=None, help="close the live view after M minutes")
    live.add_argument("--browser", action="store_true", help="also open the page in the default web browser")
    live.set_defaults(func=cmd_live)

    show = sub.add_parser(
        "show", help="browse a run's frames and images in a browser page",
        description="Serve a page on 127.0.0.1 that steps through a run folder's raw frames (with the output "
                    "window and grid the run's alignment gives, saturated pixels in red, a histogram) beside "
                    "each generated image. No device is opened.")
    show.add_argument("run", type=Path, help="run folder (from optgen run)")
    show.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                      help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free port)")
    show.add_argument("--minutes", type=positive_number, default=None, help="stop serving after M minutes")
    show.add_argument("--browser", action="store_true", help="also open the page in the default web browser")
    show.set_defaults(func=cmd_show)


def live_config(bench: Path | None):
    """The bench file, with a twin on the wall clock (a live view is in real time)."""
    from optgen.lab.bench.parse import load_bench

    cfg = load_bench(bench)
    if cfg.twin is not None and cfg.run.timing != "wall":
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, timing="wall"))
    return cfg


def _sources(cfg, base_dir: Path | None):
    """What the bench's [run] shows (seeds, decoder) for the seed and decoder patterns; None, with a
    warning, when it cannot be read (the live view still aligns a bench without a model)."""
    from optgen.lab.run.sources import RunSources

    try:
        return RunSources(cfg, base_dir)
    except OptgenError as exc:
        print(f"optgen live: warning: the seed and decoder patterns are unavailable: {exc}", file=sys.stderr)
        return None


def _announce(what: str, url: str, browser: bool) -> None:
    print(f"{what}: open {url}", flush=True)
    if browser:
        import webbrowser

        webbrowser.open(url)


def cmd_live(args: argparse.Namespace) -> int:
    from optgen.drivers import stop as stopping
    from optgen.lab.api import Bench
    from optgen.lab.cli.run import say_calibrations
    from optgen.lab.live.apps import LiveSessionApp
    from optgen.lab.live.renderer import FrameRenderer
    from optgen.lab.live.server import LiveServer
    from optgen.lab.live.session import LiveSession

    cfg = live_config(args.bench)
    sources = _sources(cfg, args.bench.parent if args.bench is not None else None)
    control = stopping.active()
    if control is not None:
        control.graceful = True          # the first Ctrl-C closes the view; a second one stops at once
    with Bench.open(cfg, sources, args.calibrations) as bench:
        if not args.quiet:
            say_calibrations(bench.devices.calibrations)
        session = LiveSession(bench, sources, lease_s=args.lease)
        renderer = FrameRenderer(session.frames, bitdepth=int(bench.devices.camera.bitdepth),
                                 saturation_dn=session.saturation_dn, scale=lambda: session.scale)
        server = None
        try:
            renderer.start()
            server = LiveServer(LiveSessionApp(session, renderer), port=args.port).start()
            _announce(f"live view of {cfg.name!r}", server.url, args.browser)
            session.run(args.minutes)
        finally:
            try:
                session.close()                  # the laser off (verified) before anything else
            finally:
                if server is not None:
                    server.close()
                renderer.stop()
    print(f"live view closed after {session.captured} frames; the laser is off")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from optgen.lab.live.apps import RunBrowser
    from optgen.lab.live.server import LiveServer
    from optgen.lab.run.colour_run import is_colour_run

    if is_colour_run(args.run):
        colours = sorted(p.name for p in args.run.iterdir() if (p / "run.h5").is_file())
        raise OptgenError(f"{args.run}: a multi-colour run; show one colour's folder: "
                          + ", ".join(f"optgen show {args.run / c}" for c in colours))
    browser = RunBrowser(args.run)
    try:
        with LiveServer(browser, port=args.port) as server:
            _announce(f"{browser.folder}: {len(browser.indices)} frames", server.url, args.browser)
            end = time.monotonic() + args.minutes * 60.0 if args.minutes is not None else float("inf")
            while time.monotonic() < end and not browser.quit.is_set():
                browser.quit.wait(0.2)
    finally:
        browser.close()
    return 0
