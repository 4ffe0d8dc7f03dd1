"""optgen under bluesky: ophyd-async devices for an open bench and plans for the RunEngine.

Needs the extra ``bluesky`` (``pip install -e '.[bluesky]'``)::

    from bluesky import RunEngine
    import optgen, optgen.bluesky

    RE = RunEngine()
    with optgen.open_bench() as bench:
        devices = optgen.bluesky.devices(bench)             # laser, encoding_slm, decoding_slm, camera
        optgen.bluesky.suspend_on_laser_fault(RE, devices)  # a fault or open interlock suspends
        RE(optgen.bluesky.plans.generate(devices, 20, seed=1))
        RE(optgen.bluesky.calibration_plans.lut_sweep(devices, "encoding_slm"))   # also: alignment(devices)
        devices.close()

See docs/api.md and decision 0023 (threads, safety).
"""

from __future__ import annotations

from optgen.drivers.errors import OptgenError

__all__ = ["LaserFaultSuspender", "MissingExtraError", "OptgenBench", "TiledRefused", "TiledUnreachable",
           "calibration_plans", "devices", "plans", "send_documents", "send_runs_to_tiled", "send_runs_to_tiled_from_environment",
           "suspend_on_laser_fault", "tiled_client"]


class MissingExtraError(OptgenError, ImportError):
    """optgen.bluesky was imported without the packages of its extra."""


try:
    import bluesky  # noqa: F401 - checked here so the message names the extra
    import ophyd_async  # noqa: F401
except ImportError as exc:
    raise MissingExtraError(f"optgen.bluesky needs bluesky and ophyd-async ({exc}); install the extra: "
                            f"pip install -e '.[bluesky]'") from None

from optgen.lab.bluesky import calibration_plans, plans  # noqa: E402 - after the check above
from optgen.lab.bluesky.bench import OptgenBench, devices  # noqa: E402
from optgen.lab.bluesky.suspenders import LaserFaultSuspender, suspend_on_laser_fault  # noqa: E402
from optgen.lab.bluesky.tiled_data import (  # noqa: E402
    TiledRefused,
    TiledUnreachable,
    send_documents,
    send_runs_to_tiled,
    send_runs_to_tiled_from_environment,
    tiled_client,
)
