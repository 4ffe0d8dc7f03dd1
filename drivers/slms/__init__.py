"""Real SLM drivers: HDMI/DVI screens (slmsuite ScreenMirrored, pyglet) and vendor SDKs.

Importing this package imports neither pyglet nor any vendor SDK: each driver imports its
back end when an SLM is opened.
"""

from optgen.drivers.slms.screen import ScreenSLM, screens
from optgen.drivers.slms.vendor import VENDORS, SDKMissingError, VendorSLM

__all__ = ["SDKMissingError", "ScreenSLM", "VENDORS", "VendorSLM", "screens"]
