"""Real camera drivers: GenICam (GenTL producers through harvesters) and OpenCV ``VideoCapture``.

Importing this package imports neither harvesters nor cv2: each driver imports its back end
when a camera is opened.
"""

from optgen.drivers.cameras.genicam import TRIGGER_MODES, GenICamCamera
from optgen.drivers.cameras.opencv import OpenCVCamera

__all__ = ["GenICamCamera", "OpenCVCamera", "TRIGGER_MODES"]
