"""What a plan's start document says of the bench: the bench file, calibration ids, a device snapshot.

The same facts ``optgen run`` writes into run.h5 (bench file, calibration ids, every device's
settings and identity, software versions), as plain JSON values so any document consumer
(a Tiled server, the queue server's msgpack) can take them; keys name calibrations as
``encoding_slm:lut`` (the start document's schema allows no '.' in a key).
"""

from __future__ import annotations

import json
from importlib import metadata

__all__ = ["bench_metadata"]


def _versions() -> dict[str, str]:
    from optgen.lab.run.generate import software_versions

    versions = software_versions()
    for dist in ("bluesky", "ophyd-async"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:     # pragma: no cover - the extra is installed to get here
            versions[dist] = "not installed"
    return versions


def bench_metadata(devices) -> dict:
    """``{"optgen": {...}}`` for a start document; asks the devices on the device thread."""
    cfg = devices.config
    snapshot = devices.describe_bench()
    facts = {
        "bench_name": cfg.name,
        "bench_source": str(cfg.source),
        "bench_file": cfg.text,
        "calibrations": snapshot.get("calibrations", {}),
        "devices": snapshot,
        "simulated": bool(snapshot.get("simulated", False)),
        "software": _versions(),
    }
    return {"optgen": _keys_without_dots(json.loads(json.dumps(facts, default=_plain)))}


def _keys_without_dots(value):
    """The start document's schema allows no '.' or '/' in a key: ``encoding_slm.lut`` becomes
    ``encoding_slm:lut``."""
    if isinstance(value, dict):
        return {str(k).replace(".", ":").replace("/", ":"): _keys_without_dots(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys_without_dots(v) for v in value]
    return value


def _plain(value):
    """numpy scalars and arrays, paths and the like as JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
