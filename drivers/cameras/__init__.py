"""Real camera drivers: GenICam (GenTL producers through harvesters), OpenCV ``VideoCapture``, and
every camera class slmsuite drives.

Importing this package imports neither harvesters nor cv2 nor a vendor SDK: each driver imports its
back end when a camera is opened.
"""

from optgen.drivers.cameras.genicam import TRIGGER_MODES, GenICamCamera
from optgen.drivers.cameras.opencv import OpenCVCamera
from optgen.drivers.cameras.slmsuite_camera import SLMSUITE_CAMERAS, SlmsuiteCamera

__all__ = ["GenICamCamera", "OpenCVCamera", "SLMSUITE_CAMERAS", "SlmsuiteCamera", "TRIGGER_MODES"]
