"""Pattern ids: what an SLM device shows, named by a short string a plan sets and an event records.

    flat                                   zero phase
    seed:seed=S,index=I                    seed I of the bench's seed source for random seed S,
                                           shown exactly as a run shows it (same LUT path)
    decoder                                the decoder phase, placed as a run places it
    lens:focal_mm=F                        a lens (either sign, 1 mm .. 100 m), centred
    grating:period_px=P[,angle_deg=A]      a blazed grating
    array:sha=H[,key=value...]             an array a calibration plan registered (``register``);
                                           the other keys describe it (e.g. ref, test, period_px)

The SLM device's ``pattern`` signal holds the id of the pattern it shows; setting it resolves the id
here (:meth:`PatternLibrary.resolve`), uploads and waits for the liquid crystal to settle. A seed's
followers are prepared ahead on a thread of their own (:mod:`optgen.lab.bluesky.seeds_ahead`), as
``optgen run`` prepares them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from optgen.drivers.errors import OptgenError
from optgen.lab.bluesky.seeds_ahead import SeedsAhead
from optgen.lab.run.placement import place_decoder

__all__ = ["KINDS", "PatternError", "PatternLibrary", "Upload", "parse_pattern_id", "seed_pattern_id"]

KINDS = ("flat", "seed", "decoder", "lens", "grating", "array")


class PatternError(OptgenError):
    """A pattern id that names no pattern this bench can show."""


@dataclass(frozen=True)
class Upload:
    """What to hand ``set_phase``: gray levels (a seed, as the run loop sends them) or radians."""

    data: np.ndarray
    pattern_id: str


def seed_pattern_id(random_seed: int, index: int) -> str:
    """The id of seed ``index`` for ``random_seed``."""
    return f"seed:seed={int(random_seed)},index={int(index)}"


def parse_pattern_id(pattern_id: str) -> tuple[str, dict[str, str]]:
    """``"kind:key=value,..."`` -> (kind, {key: value}); PatternError if it is not of that form."""
    if not isinstance(pattern_id, str) or not pattern_id:
        raise PatternError(f"pattern {pattern_id!r}: expected a pattern id such as 'flat' or 'lens:focal_mm=200'")
    kind, _, rest = pattern_id.partition(":")
    if kind not in KINDS:
        raise PatternError(f"pattern {pattern_id!r}: kind {kind!r} is not known; expected one of {', '.join(KINDS)}")
    params: dict[str, str] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise PatternError(f"pattern {pattern_id!r}: {part!r} is not key=value")
        params[key.strip()] = value.strip()
    return kind, params


def _whole(pattern_id: str, params: dict[str, str], key: str) -> int:
    value = params.get(key)
    if value is None or not value.isdigit():
        raise PatternError(f"pattern {pattern_id!r}: {key} = {value!r}; expected a whole number >= 0")
    return int(value)


class PatternLibrary:
    """Resolves pattern ids for the SLMs of one open bench (``optgen.Bench``)."""

    def __init__(self, bench, ahead: SeedsAhead | None = None):
        self.bench = bench
        self._seed_sources: dict[int, object] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self.ahead = ahead if ahead is not None else SeedsAhead()

    def register(self, array: np.ndarray, description: str = "") -> str:
        """An id for ``array`` (gray levels or radians, as ``set_phase`` takes them), shown by that id
        until :meth:`forget`; ``description`` (``key=value,...``) is appended to the id."""
        array = np.ascontiguousarray(array)
        sha = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()[:12]
        self._arrays[sha] = array
        return f"array:sha={sha}" + (f",{description}" if description else "")

    def forget(self) -> None:
        """Drop every registered array."""
        self._arrays.clear()

    def close(self) -> None:
        """End the thread that prepares seeds ahead."""
        self.ahead.close()

    @property
    def _sources(self):
        # what the bench's runs show (lab.run.sources.RunSources), loaded and checked when the bench opened
        return self.bench._sources

    def seeds(self, random_seed: int):
        """The bench's seed source for ``random_seed`` (the one ``Bench.generate`` uses)."""
        if random_seed not in self._seed_sources:
            self._seed_sources[random_seed] = self._sources.seeds(random_seed)
        return self._seed_sources[random_seed]

    def resolve(self, slm, pattern_id: str) -> Upload:
        """What ``slm`` (a PhaseSLM) is given for ``pattern_id``. Runs on the device thread: a seed's
        gray levels go through the SLM's LUT (``phase_to_gray``), as the run loop prepares them."""
        kind, params = parse_pattern_id(pattern_id)
        cfg = self.bench.config
        if kind == "seed":
            random_seed, index = _whole(pattern_id, params, "seed"), _whole(pattern_id, params, "index")
            if set(params) - {"seed", "index"}:
                raise PatternError(f"pattern {pattern_id!r}: a seed takes seed= and index= only")
            seeds = self.seeds(random_seed)
            if index >= len(seeds):
                raise PatternError(f"pattern {pattern_id!r}: the seed source {seeds.name} holds {len(seeds)} seeds")
            gray = self.ahead.gray(slm, seeds, index, cfg.geometry.superpixel_px)
            return Upload(gray, seed_pattern_id(random_seed, index))
        if kind == "decoder":
            if params:
                raise PatternError(f"pattern {pattern_id!r}: the decoder takes no parameters")
            cals = self.bench.devices.calibrations
            placement = cals.decoder_placement() if cals else None
            phase = place_decoder(self._sources.decoder_phase, slm.shape, placement, cfg.decoding_slm.pitch_um * 1e-6)
            return Upload(phase, "decoder")
        if kind == "array":
            array = self._arrays.get(params.get("sha", ""))
            if array is None:
                raise PatternError(f"pattern {pattern_id!r}: no such array is registered (a calibration plan "
                                   f"registers the arrays it shows, for its own run)")
            return Upload(array, pattern_id)
        from optgen.lab.live.patterns import make_pattern

        phase = make_pattern(kind, params, slm_name=slm.name, shape=tuple(slm.shape), pitch_m=float(slm.pitch_um[0]) * 1e-6,
                             wavelength_m=cfg.laser.wavelength_nm * 1e-9, superpixel_px=cfg.geometry.superpixel_px,
                             seed_phase=None, seed_count=0, decoder=None)
        return Upload(phase, pattern_id)
