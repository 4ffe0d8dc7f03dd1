"""Real laser drivers: Coherent OBIS and Cobolt over serial, SCPI laser-diode controllers over VISA.

Importing this package needs neither pyserial nor pyvisa: each is imported when a laser
is opened.
"""

from ._common import LaserReadback
from ._serial_link import DeviceRefused, LinkTimeout
from .cobolt import CoboltLaser
from .obis import ObisLaser
from .scpi_ldc import ScpiLaserDiodeController

# bench-file driver name -> class
LASER_DRIVERS = {"obis": ObisLaser, "cobolt": CoboltLaser, "scpi-ldc": ScpiLaserDiodeController}

__all__ = ["CoboltLaser", "DeviceRefused", "LASER_DRIVERS", "LaserReadback", "LinkTimeout", "ObisLaser",
           "ScpiLaserDiodeController"]
