"""Real laser drivers: Coherent OBIS and Cobolt over serial, SCPI laser-diode controllers over VISA.

Importing this package needs neither pyserial nor pyvisa: each is imported when a laser
is opened.
"""

from optgen.drivers.lasers._common import LaserReadback
from optgen.drivers.lasers._serial_link import DeviceRefused, LinkTimeout
from optgen.drivers.lasers.cobolt import CoboltLaser
from optgen.drivers.lasers.obis import ObisLaser
from optgen.drivers.lasers.scpi_ldc import ScpiLaserDiodeController

# bench-file driver name -> class
LASER_DRIVERS = {"obis": ObisLaser, "cobolt": CoboltLaser, "scpi-ldc": ScpiLaserDiodeController}

__all__ = ["CoboltLaser", "DeviceRefused", "LASER_DRIVERS", "LaserReadback", "LinkTimeout", "ObisLaser",
           "ScpiLaserDiodeController"]
