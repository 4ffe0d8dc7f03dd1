"""The one place optgen imports slmsuite's base classes.

slmsuite warns that cupy is missing (optgen runs on numpy) and installs a console log
handler on its logger when imported; both are quietened here so that importing optgen
prints nothing.
"""

from __future__ import annotations

import logging
import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="cupy is not installed")
    from slmsuite.hardware.cameras.camera import Camera as SlmsuiteCamera
    from slmsuite.hardware.slms.slm import SLM as SlmsuiteSLM

_slmsuite_log = logging.getLogger("slmsuite")
for _handler in list(_slmsuite_log.handlers):
    _slmsuite_log.removeHandler(_handler)
_slmsuite_log.propagate = True
_slmsuite_log.setLevel(logging.WARNING)

__all__ = ["SlmsuiteCamera", "SlmsuiteSLM"]
