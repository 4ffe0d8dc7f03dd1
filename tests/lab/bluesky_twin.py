"""Shared set-up of the bluesky tests: a small twin bench, its devices, a RunEngine, a document log.

Imported by tests/lab/test_bluesky_*.py after they skip themselves when bluesky is missing.
"""

from __future__ import annotations

from collections import defaultdict

import h5py
import numpy as np
import pytest
from bluesky import RunEngine

import optgen
import optgen.bluesky
from optgen.lab.bench.examples import small_bench_text
from optgen.lab.bench.parse import parse_bench


def bench_config(extra: dict | None = None):
    return parse_bench(small_bench_text(extra), "x.toml")


class Documents:
    """Every document the RunEngine emits, by name, in order."""

    def __init__(self):
        self.all: list[tuple[str, dict]] = []

    def __call__(self, name: str, doc: dict) -> None:
        self.all.append((name, doc))

    def of(self, name: str) -> list[dict]:
        return [doc for n, doc in self.all if n == name]

    def events(self, stream: str = "primary") -> list[dict]:
        descriptors = {d["uid"] for d in self.of("descriptor") if d["name"] == stream}
        return [e for e in self.of("event") if e["descriptor"] in descriptors]

    def frames(self, stream: str = "primary") -> np.ndarray:
        """The frames the stream's StreamDatum documents point to, read from the HDF5 files."""
        descriptors = {d["uid"] for d in self.of("descriptor") if d["name"] == stream}
        resources = {r["uid"]: r for r in self.of("stream_resource")}
        rows = defaultdict(list)
        for datum in self.of("stream_datum"):
            if datum["descriptor"] in descriptors:
                rows[datum["stream_resource"]].extend(range(datum["indices"]["start"], datum["indices"]["stop"]))
        out = []
        for uid, indices in rows.items():
            resource = resources[uid]
            path = resource["uri"].removeprefix("file://localhost")
            with h5py.File(path, "r") as f:
                data = f[resource["parameters"]["dataset"]]
                assert data.shape[0] == len(indices) == max(indices) + 1, "rows of the file are the events' frames"
                out.extend(data[i] for i in indices)
        return np.stack(out) if out else np.zeros((0,))

    def exit_status(self) -> str:
        return self.of("stop")[-1]["exit_status"]


@pytest.fixture(scope="module")
def RE():
    engine = RunEngine()
    yield engine


@pytest.fixture
def docs(RE):
    log = Documents()
    token = RE.subscribe(log)
    yield log
    RE.unsubscribe(token)


@pytest.fixture
def twin(RE):
    """(bench, devices) on the small twin (its laser's power noise on, as the bench file plants it)."""
    bench = optgen.open_bench(bench_config())
    devices = optgen.bluesky.devices(bench, "frames")
    yield bench, devices
    try:
        if RE.state != "idle":      # a test that failed while the RunEngine was paused
            RE.abort()
        devices.close()
    finally:
        bench.close()
