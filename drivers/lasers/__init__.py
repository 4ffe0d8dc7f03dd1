"""Real laser drivers: Coherent OBIS and Cobolt over serial, SCPI laser-diode controllers over VISA,
and any laser a command table describes (TOPTICA iBeam smart and Omicron LuxX tables shipped).

Importing this package needs neither pyserial nor pyvisa: each is imported when a laser
is opened.
"""

from optgen.drivers.lasers._common import LaserReadback
from optgen.drivers.lasers._serial_link import DeviceRefused, LinkTimeout
from optgen.drivers.lasers.cobolt import CoboltLaser
from optgen.drivers.lasers.obis import ObisLaser
from optgen.drivers.lasers.scpi_ldc import ScpiLaserDiodeController
from optgen.drivers.lasers.table_laser import TableLaser

# bench-file driver name -> class
LASER_DRIVERS = {"obis": ObisLaser, "cobolt": CoboltLaser, "scpi-ldc": ScpiLaserDiodeController,
                 "table": TableLaser}

__all__ = ["CoboltLaser", "DeviceRefused", "LASER_DRIVERS", "LaserReadback", "LinkTimeout", "ObisLaser",
           "ScpiLaserDiodeController", "TableLaser"]
