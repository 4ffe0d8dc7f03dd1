"""Real camera drivers: GenICam (GenTL producers through harvesters) and OpenCV ``VideoCapture``.

Importing this package imports neither harvesters nor cv2: each driver imports its back end
when a camera is opened.
"""

from .genicam import TRIGGER_MODES, GenICamCamera
from .opencv import OpenCVCamera

__all__ = ["GenICamCamera", "OpenCVCamera", "TRIGGER_MODES"]
