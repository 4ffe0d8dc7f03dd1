"""The generators of a frame drawn in bands, and each band's read-noise normals drawn ahead.

Each banded frame takes one batch of child generators spawned from the world's generator (one
batch a frame, whatever its band count). Within a steady stream of frames of the same shape,
the next frame's batch is spawned as a frame ends and its bands' normals (a band's first draw,
one per pixel) are drawn on the sensor's threads while the twin computes the next frame's
light, whose single-threaded parts leave a core idle. The next frame of the same shape takes
them; one of another shape takes the same batch's generators afresh. A band's generator always
starts its stream with its normals, so a frame is the same whether or not they were drawn ahead
(a test).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from concurrent.futures import Executor, Future

import numpy as np

__all__ = ["BandGenerators"]

Shapes = tuple[tuple[int, int], ...]


@dataclasses.dataclass
class _Ahead:
    seeds: list[np.random.SeedSequence]
    shapes: Shapes
    generators: list[np.random.Generator]
    normals: list[Future]


@dataclasses.dataclass
class _Stream:
    rng: np.random.Generator            # held, so that its id cannot name another generator
    last_shapes: Shapes | None = None
    ahead: _Ahead | None = None


class BandGenerators:
    """Per world generator: the batch of band generators for its next banded frame."""

    def __init__(self, streams_kept: int = 2) -> None:
        self._lock = threading.Lock()
        self._streams: OrderedDict[int, _Stream] = OrderedDict()
        self._kept = streams_kept
        self.draw_ahead_enabled = True

    def take(self, rng: np.random.Generator, shapes: Shapes, batch: int
             ) -> tuple[list[np.random.Generator], list[Future | None], bool]:
        """(a generator per band, its normals drawn ahead or None, whether the stream is steady:
        this frame's shapes are the last one's)."""
        with self._lock:
            stream = self._stream(rng)
            ahead, stream.ahead = stream.ahead, None
            steady = stream.last_shapes == shapes
            stream.last_shapes = shapes
        if ahead is not None and ahead.shapes == shapes:
            return ahead.generators, list(ahead.normals), steady
        seeds = ahead.seeds if ahead is not None else rng.bit_generator.seed_seq.spawn(batch)
        return _generators(rng, seeds[:len(shapes)]), [None] * len(shapes), steady

    def draw_ahead(self, rng: np.random.Generator, shapes: Shapes, batch: int, pool: Executor) -> None:
        """Spawn the next frame's batch and draw its bands' normals on ``pool``."""
        if not self.draw_ahead_enabled:
            return
        seeds = rng.bit_generator.seed_seq.spawn(batch)
        generators = _generators(rng, seeds[:len(shapes)])
        normals = [pool.submit(generator.standard_normal, shape, dtype=np.float32)
                   for generator, shape in zip(generators, shapes)]
        with self._lock:
            self._stream(rng).ahead = _Ahead(seeds, shapes, generators, normals)

    def _stream(self, rng: np.random.Generator) -> _Stream:
        stream = self._streams.get(id(rng))
        if stream is None:
            stream = self._streams[id(rng)] = _Stream(rng)
            while len(self._streams) > self._kept:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(id(rng))
        return stream


def _generators(rng: np.random.Generator, seeds: list[np.random.SeedSequence]) -> list[np.random.Generator]:
    """Generators of ``rng``'s kind on ``seeds`` (what ``rng.spawn`` makes)."""
    kind = type(rng.bit_generator)
    return [np.random.Generator(kind(seed)) for seed in seeds]
