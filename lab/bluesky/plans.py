"""bluesky plans over an optgen bench (``optgen.bluesky.plans``).

    generate(devices, count, seed=0)       the images Bench.generate / optgen run make, as bluesky runs
    scan(devices, setting, values)         one frame (or more) per value of a setting: the camera's
                                           exposure, the laser's power, an SLM's pattern id
    capturing(devices, plan)               the laser lit for ``plan`` only, off (verified) after it
    dark_frame(devices)                    a frame with the laser verified off
    lit_frame(devices, readers)            one event of a frame the laser was confirmed on for

Every argument is checked when the plan is made, before the RunEngine runs it: a power above the
laser's ceiling, an exposure outside the camera's bounds or a pattern id the bench cannot show is
refused before any device hears of it.

Emission only inside a plan that captures: ``capturing`` stages the laser (which arms it), lights
it, runs the plan and, in a finalize wrapper, turns it off and verifies it, then unstages it; the
RunEngine unstages a laser a plan left staged (abort, halt, failure), and pauses turn it off too
(``optgen.lab.bluesky.laser``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterable
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg

from optgen.drivers.errors import OptgenError
from optgen.lab.bluesky.laser import LaserFaulted, fault_list
from optgen.lab.bluesky.metadata import bench_metadata
from optgen.lab.bluesky.patterns import parse_pattern_id, seed_pattern_id

__all__ = ["capturing", "dark_frame", "generate", "lit_frame", "scan", "staged"]

Plan = Generator[Msg, Any, Any]

FAULT_WAIT_S = 60.0     # how long a frame waits for a faulted laser to be fine again before the plan fails
FAULT_POLL_S = 0.1


def capturing(devices, plan: Iterable[Msg]) -> Plan:
    """Run ``plan`` with the laser staged and emitting; off (verified) and unstaged after it, however
    it ends. The laser emits at the power set before (``bps.mv(devices.laser.power, W)``)."""
    laser = devices.laser

    def lit() -> Plan:
        yield from bps.stage(laser, wait=True)
        yield from bps.mv(laser.emission, True)
        return (yield from plan)

    def off() -> Plan:
        yield from bps.mv(laser.emission, False)     # safe_off: off and read back off
        yield from bps.unstage(laser, wait=True)

    return (yield from bpp.finalize_wrapper(lit(), off()))


def staged(device, plan: Iterable[Msg]) -> Plan:
    """Run ``plan`` with ``device`` itself staged (``bpp.stage_wrapper`` stages the root device,
    the whole bench, which stages nothing); unstaged after it, however it ends."""
    def inner() -> Plan:
        yield from bps.stage(device, wait=True)
        return (yield from plan)

    def unstaged() -> Plan:          # a plain generator: a halt never iterates it, and bluesky would warn
        yield from bps.unstage(device, wait=True)

    return (yield from bpp.finalize_wrapper(inner(), unstaged()))


def dark_frame(devices, stream: str = "dark") -> Plan:
    """One frame with the laser verified off, in its own stream (and its own frame file)."""
    yield from bps.mv(devices.laser.emission, False)
    yield from staged(devices.camera, bps.trigger_and_read([devices.camera, devices.laser], name=stream))


def lit_frame(devices, readers: Iterable = (), *, move: tuple | None = None, stream: str = "primary",
              fault_wait_s: float | None = None) -> Plan:
    """One event of a lit frame: ``move`` (a ``(setting, value)`` to set first), capture, then read
    the laser, the camera and ``readers``.

    The event is kept only if the laser, read right after the exposure, emits and reports no fault
    (the run loop's rule: keep only frames the laser was confirmed on for). Otherwise it is dropped,
    its frame rolled back, and the plan waits, at most ``fault_wait_s``, for the laser to report no
    fault (a :class:`~optgen.lab.bluesky.suspenders.LaserFaultSuspender` suspends the RunEngine
    meanwhile: laser off, verified); it is lit again and the frame taken again; LaserFaulted after that
    (``fault_wait_s`` None: ``FAULT_WAIT_S``).
    """
    camera, laser = devices.camera, devices.laser
    fault_wait_s = FAULT_WAIT_S if fault_wait_s is None else float(fault_wait_s)
    while True:
        yield from bps.checkpoint()
        if move is not None:
            yield from bps.mv(*move)
        yield from bps.trigger(camera, wait=True)
        yield from bps.create(stream)
        reading = yield from bps.read(laser)
        # None: the RunEngine suspended here (a fault) and replayed the messages since the checkpoint;
        # the frame is not confirmed, so it is dropped and taken again like a frame lit by a faulty laser
        if reading is not None and reading[laser.emission.name]["value"] \
                and not reading[laser.faults.name]["value"]:
            yield from bps.read(camera)
            for reader in readers:
                yield from bps.read(reader)
            yield from bps.save()
            return
        yield from bps.drop()
        yield from bps.trigger(camera.discard_unread, wait=True)
        yield from _relight_when_fine(devices, fault_wait_s)


def _relight_when_fine(devices, wait_s: float) -> Plan:
    """Wait (bounded) until the laser reports no fault, then light it again."""
    laser = devices.laser
    deadline = time.monotonic() + wait_s
    while True:
        # a checkpoint each turn: a suspension here (the fault suspender trips) rewinds only this read
        # and sleep, not the dropped frame's messages before it (bluesky failed to resume those,
        # "can't send non-None value to a just-started generator", about 1 in 10 under load)
        yield from bps.checkpoint()
        faults = fault_list((yield from bps.rd(laser.faults)) or "")
        if not faults:
            yield from bps.mv(laser.emission, True)
            return
        if time.monotonic() >= deadline:
            raise LaserFaulted(laser.driver.name, f"reports {', '.join(faults)} for over {wait_s:g} s during a "
                                                  f"capture; the frames after the last good one are not kept")
        yield from bps.sleep(FAULT_POLL_S)


def generate(devices, count: int, seed: int = 0, *, power_w: float | None = None, md: dict | None = None) -> Plan:
    """Generate ``count`` images as ``Bench.generate(count, seed)`` does, as one bluesky run.

    The same seeds (the bench file's seed source for ``seed``), the same decoder placed the same way,
    the same order of device operations: a dark frame (stream ``dark``), the decoder, the power,
    then per frame the seed pattern, the latency and settle wait, one capture (stream ``primary``:
    the camera frame by StreamDatum into HDF5, the seed pattern's id, the laser's read-backs). On
    the twin's virtual clock the raw frames are those of ``Bench.generate`` bit for bit.

    Parameters
    ----------
    devices : OptgenBench
        From ``optgen.bluesky.devices(bench)``.
    count : int
        Frames to take (>= 1).
    seed : int, default 0
        The random seed of the encoder's noise (>= 0).
    power_w : float, optional
        Laser power (default: the bench file's); above the ceiling it is refused here.
    md : dict, optional
        More metadata for the start document.
    """
    count, seed = _whole("count", count, 1), _whole("seed", seed, 0)
    cfg = devices.config
    power = devices.laser.driver.check_power(cfg.laser.power_w if power_w is None else power_w)
    seeds = devices.patterns.seeds(seed)
    if count > len(seeds):
        raise OptgenError(f"count = {count}: the seed source {seeds.name} holds only {len(seeds)} seeds")
    plan_md = {"plan_name": "generate", "plan_args": {"count": count, "seed": seed, "power_w": power},
               "seed_source": seeds.describe(), "decoder_phase": devices.bench._sources.decoder_id,
               "num_points": count, **(md or {})}
    return _generate(devices, count, seed, power, plan_md)


def _generate(devices, count: int, seed: int, power: float, plan_md: dict) -> Plan:
    camera, laser, encoding = devices.camera, devices.laser, devices.encoding_slm

    def frames() -> Plan:
        for index in range(count):
            yield from lit_frame(devices, [encoding], move=(encoding.pattern, seed_pattern_id(seed, index)))

    def run() -> Plan:
        yield from dark_frame(devices)
        yield from bps.mv(devices.decoding_slm.pattern, "decoder")
        yield from bps.mv(laser.power, power)
        yield from capturing(devices, staged(camera, frames()))

    metadata = {**bench_metadata(devices), **plan_md}
    return (yield from bpp.run_wrapper(run(), md=metadata))


def scan(devices, setting, values: Iterable, *, frames_per_point: int = 1, power_w: float | None = None,
         md: dict | None = None) -> Plan:
    """One frame (``frames_per_point``) per value of ``setting``, with the laser lit throughout.

    ``setting`` is ``devices.camera.exposure`` (seconds), ``devices.laser.power`` (watts, each
    value within the ceiling) or an SLM's ``pattern`` (pattern ids, e.g. ``"lens:focal_mm=200"``).
    Every value is checked here, before the RunEngine starts. The laser emits at ``power_w``
    (default: the bench file's power) unless the power is scanned; the SLMs keep what they show
    unless the setting is one of their patterns.
    """
    values = list(values)
    if not values:
        raise OptgenError("scan: no values to scan")
    frames_per_point = _whole("frames_per_point", frames_per_point, 1)
    laser, camera = devices.laser, devices.camera
    power = laser.driver.check_power(devices.config.laser.power_w if power_w is None else power_w)
    if setting is laser.power:
        values = [laser.driver.check_power(v) for v in values]
    elif setting is camera.exposure:
        values = [_exposure(camera, v) for v in values]
    elif setting in (devices.encoding_slm.pattern, devices.decoding_slm.pattern):
        for value in values:
            parse_pattern_id(value)
    else:
        raise OptgenError(f"scan: setting {getattr(setting, 'name', setting)!r} is not one this plan scans; "
                          f"expected the camera's exposure, the laser's power or an SLM's pattern")
    plan_md = {"plan_name": "scan", "plan_args": {"setting": setting.name, "values": values,
                                                  "frames_per_point": frames_per_point},
               "motors": [setting.name], "num_points": len(values) * frames_per_point, **(md or {})}
    if setting is not laser.power:
        plan_md["plan_args"]["power_w"] = power
    return _scan(devices, setting, values, frames_per_point, power, plan_md)


def _scan(devices, setting, values: list, frames_per_point: int, power: float, plan_md: dict) -> Plan:
    readers = [devices.encoding_slm, devices.decoding_slm]
    if setting is devices.camera.exposure:
        readers.append(setting)

    def points() -> Plan:
        for value in values:
            for _ in range(frames_per_point):
                yield from lit_frame(devices, readers, move=(setting, value))

    def run() -> Plan:
        if setting is not devices.laser.power:
            yield from bps.mv(devices.laser.power, power)
        yield from capturing(devices, staged(devices.camera, points()))

    metadata = {**bench_metadata(devices), **plan_md}
    return (yield from bpp.run_wrapper(run(), md=metadata))


def _whole(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptgenError(f"{name} = {value!r}: expected a whole number >= {minimum}")
    return int(value)


def _exposure(camera, value) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise OptgenError(f"{camera.driver.name}: exposure {value!r}: expected seconds") from None
    bounds = camera.driver.exposure_bounds_s
    if not math.isfinite(seconds) or seconds <= 0 or (bounds is not None and not bounds[0] <= seconds <= bounds[1]):
        raise OptgenError(f"{camera.driver.name}: exposure {value!r} s is outside the camera's bounds {bounds}")
    return seconds
