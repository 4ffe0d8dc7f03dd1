"""What the real laser drivers share: connect, read the state back, reconnect, close."""

from __future__ import annotations

import math
import threading
from abc import abstractmethod

from optgen.drivers.errors import DeviceError
from optgen.drivers.identity import DeviceIdentity
from optgen.drivers.laser import Laser
from optgen.drivers.lasers._common import LaserReadback

__all__ = ["ConnectedLaser"]


class ConnectedLaser(Laser):
    """A laser behind a connection that can drop.

    A subclass opens its transport in ``_open_transport`` and, in ``_handshake``, checks the
    identity (calling :meth:`_accept_identity` before it sends anything that changes the
    device), reads the device's maximum power and reads the state back. Nothing about the
    emission or setpoint is assumed: :attr:`readback` holds what the device reported.
    """

    driver = ""

    def __init__(self, name: str, wavelength_nm: float, max_power_w: float, address: str):
        # held by a reconnect and by safe_off: the run's storage worker may reconnect while the
        # main thread switches the laser off, and the off must not land on a half-open link
        self._link_lock = threading.RLock()
        super().__init__(name, wavelength_nm, max_power_w)
        self.address = str(address)
        self._identity: DeviceIdentity | None = None
        self._device_max_w = math.inf
        self.readback: LaserReadback | None = None

    def _start(self) -> None:
        """Open and handshake; on any failure the half-made laser is closed and leaves the registry."""
        try:
            self._open_transport()
            self.readback = self._handshake(None)
        except BaseException:
            self.closed = True
            self._close_transport()
            raise

    @property
    def identity(self) -> DeviceIdentity:
        if self._identity is None:
            raise DeviceError(self.name, "not connected: the identity has not been read")
        return self._identity

    @property
    def device_max_power_w(self) -> float:
        """The maximum the device reported when it was (re)connected."""
        return self._device_max_w

    def safe_off(self) -> None:
        with self._link_lock:
            self._off_with_recovery()

    def reconnect(self) -> LaserReadback:
        """Reopen the connection and read the device's state back (emission, setpoint, faults).

        Refuses a different laser (model or serial changed) on the same address. A
        :meth:`safe_off` from another thread waits until the link is whole again.
        """
        with self._link_lock:
            self._require_open()
            previous = self._identity
            self._close_transport()
            try:
                self._open_transport()
                self.readback = self._handshake(previous)
            except BaseException:
                self._close_transport()
                raise
            return self.readback

    def _accept_identity(self, identity: DeviceIdentity, previous: DeviceIdentity | None) -> None:
        """Record the identity; on reconnect it must be the same laser as before."""
        if previous is not None and (identity.model, identity.serial) != (previous.model, previous.serial):
            raise DeviceError(self.name, f"after reconnecting, {self.address} answers as {identity} "
                                         f"instead of {previous}: refusing to drive a different laser")
        self._identity = identity

    def _covered_once_free_text(self) -> str:
        """What the watchdog covers for a laser on a VISA resource, which only one process may hold."""
        return (f"covered if optgen dies (the watchdog opens the VISA resource once it is free); a stalled "
                f"optgen still holds the resource, so a stall of over {self.watchdog_s:g} s is covered only "
                f"where the bench has a hardware interlock")

    def _close_hw(self) -> None:
        self._close_transport()

    def describe(self) -> dict:
        return {"driver": self.driver, "address": self.address, **super().describe()}

    # --- transport hooks ------------------------------------------------------------
    @abstractmethod
    def _open_transport(self) -> None: ...

    @abstractmethod
    def _close_transport(self) -> None: ...

    @abstractmethod
    def _handshake(self, previous: DeviceIdentity | None) -> LaserReadback: ...
