"""Coherent OBIS driver: the exact bytes of each command (scripted port), then end to end on the pty twin."""

from __future__ import annotations

import pytest

from optgen.drivers.errors import DeviceError, LaserSafetyError, PowerCeilingError
from optgen.drivers.lasers import DeviceRefused, LaserReadback, LinkTimeout, ObisLaser
from optgen.simulators.protocol import ObisTwin

from .protocol import expected_protocol, small_world

IDN = b"Coherent, Inc - OBIS 520nm 100mW LX - V1.0.1 - Dec 14 2010"


def connect(emission=b"OFF", setpoint=b"0.00000", idn=IDN, serial=b"190612345"):
    """The connect handshake: framing, identity, device maximum, CW power mode, state read back."""
    return [
        (b"SYST:COMM:HAND ON\r\n", b"OK\r\n"),
        (b"*IDN?\r\n", idn + b"\r\nOK\r\n"),
        (b"SYST:INF:SNUM?\r\n", serial + b"\r\nOK\r\n"),
        (b"SOUR:POW:LIM:HIGH?\r\n", b"0.10000\r\nOK\r\n"),
        (b"SOUR:AM:INT CWP\r\n", b"OK\r\n"),
        (b"SOUR:AM:STAT?\r\n", emission + b"\r\nOK\r\n"),
        (b"SOUR:POW:LEV:IMM:AMPL?\r\n", setpoint + b"\r\nOK\r\n"),
        (b"SYST:FAUL?\r\n", b"00000000\r\nOK\r\n"),
        (b"SYST:LOCK?\r\n", b"ON\r\nOK\r\n"),
    ]


def obis(max_power_w=0.05, **kwargs):
    return lambda opener: ObisLaser("/dev/ttyFAKE0", "obis", 520.0, max_power_w, timeout_s=0.1,
                                    opener=opener, **kwargs)


# --- exact bytes, scripted replies ------------------------------------------------------
def test_connect_checks_identity_reads_the_maximum_selects_cw_power_and_reads_state_back():
    with expected_protocol(obis(), connect(emission=b"ON", setpoint=b"0.01000")) as laser:
        assert laser.identity.vendor == "Coherent, Inc"
        assert laser.identity.model == "OBIS 520nm 100mW LX"
        assert laser.identity.serial == "190612345"
        assert laser.identity.firmware == "V1.0.1 - Dec 14 2010"
        assert laser.device_max_power_w == pytest.approx(0.1)
        assert laser.ceiling_w == pytest.approx(0.05)
        assert laser.readback == LaserReadback(emission=True, setpoint_w=0.01, faults=())


def test_set_power_writes_watts_and_returns_the_read_back_setpoint():
    with expected_protocol(obis(), connect() + [
        (b"SOUR:POW:LEV:IMM:AMPL 0.025000\r\n", b"OK\r\n"),
        (b"SOUR:POW:LEV:IMM:AMPL?\r\n", b"0.02499\r\nOK\r\n"),
    ]) as laser:
        assert laser.set_power(0.025) == pytest.approx(0.02499)


def test_measured_power_is_sour_pow_lev():
    with expected_protocol(obis(), connect() + [(b"SOUR:POW:LEV?\r\n", b"0.02487\r\nOK\r\n")]) as laser:
        assert laser.measured_power() == pytest.approx(0.02487)


@pytest.mark.parametrize("on, word", [(True, b"ON"), (False, b"OFF")])
def test_emission_is_sour_am_stat_and_returns_the_read_back(on, word):
    with expected_protocol(obis(), connect() + [
        (b"SOUR:AM:STAT " + word + b"\r\n", b"OK\r\n"),
        (b"SOUR:AM:STAT?\r\n", word + b"\r\nOK\r\n"),
    ]) as laser:
        assert laser.set_emission(on) is on


def test_faults_decode_the_fault_bits_and_the_interlock():
    with expected_protocol(obis(), connect() + [
        (b"SYST:FAUL?\r\n", b"00000201\r\nOK\r\n"),
        (b"SYST:LOCK?\r\n", b"OFF\r\nOK\r\n"),
    ]) as laser:
        assert laser.faults() == ["base plate temperature fault", "warm-up time limit exceeded",
                                  "interlock open or key switch off (SYST:LOCK? = OFF)"]


def test_an_error_reply_raises_naming_the_command_and_the_code():
    with expected_protocol(obis(), connect() + [(b"SOUR:POW:LEV?\r\n", b"ERR-100\r\n")]) as laser:
        with pytest.raises(DeviceRefused, match=r"refused 'SOUR:POW:LEV\?': it answered 'ERR-100' "
                                                 r"\(unrecognised command or query\)"):
            laser.measured_power()


@pytest.mark.parametrize("reply, match", [
    (b"0.0#5\r\nOK\r\n", r"garbled reply to 'SOUR:POW:LEV\?': '0.0#5' is not a number"),
    (b"0.025\r\nOX\r\n", r"expected 'OK' after '0.025', got 'OX'"),
])
def test_a_garbled_reply_raises(reply, match):
    with expected_protocol(obis(), connect() + [(b"SOUR:POW:LEV?\r\n", reply)]) as laser:
        with pytest.raises(DeviceError, match=match):
            laser.measured_power()


def test_no_reply_times_out_and_says_what_to_check():
    with expected_protocol(obis(), connect() + [(b"SOUR:AM:STAT?\r\n", None)]) as laser:
        with pytest.raises(LinkTimeout, match=r"'SOUR:AM:STAT\?' on /dev/ttyFAKE0 within 0.1 s.*baud rate.*terminator"):
            laser.emission


def test_power_above_the_ceiling_never_reaches_the_wire():
    with expected_protocol(obis(max_power_w=0.05), connect()) as laser:  # any write would fail the script
        with pytest.raises(PowerCeilingError, match="above the ceiling of 50 mW"):
            laser.set_power(0.06)


def test_the_ceiling_is_never_above_the_device_maximum():
    with expected_protocol(obis(max_power_w=0.5), connect()) as laser:
        assert laser.ceiling_w == pytest.approx(0.1)
        with pytest.raises(PowerCeilingError, match="device maximum = 100 mW"):
            laser.set_power(0.2)


def test_an_unexpected_identity_is_refused_before_anything_is_changed():
    script = connect(idn=b"Coherent, Inc - Sapphire 488-50 - V2 - 2019")[:2]  # nothing after *IDN?
    with pytest.raises(DeviceError, match=r"unexpected identity: \*IDN\? 'Coherent, Inc - Sapphire.*"
                                          r"does not contain 'OBIS'"):
        with expected_protocol(obis(), script):
            pass


def test_a_laser_of_another_wavelength_is_refused():
    script = connect(idn=b"Coherent, Inc - OBIS 405nm 100mW LX - V1.0.1 - Dec 14 2010")[:2]
    with pytest.raises(DeviceError, match=r"reports 405 nm.*bench file says wavelength 520 nm"):
        with expected_protocol(obis(), script):
            pass


def test_a_laser_left_with_handshaking_off_is_still_connected():
    script = connect()
    script[0] = (b"SYST:COMM:HAND ON\r\n", None)  # no acknowledgement for this one command
    with expected_protocol(obis(), script) as laser:
        assert laser.readback.emission is False


def test_safe_off_retries_until_the_device_confirms_off():
    with expected_protocol(obis(), connect() + [
        (b"SOUR:AM:STAT OFF\r\n", None),  # lost
        (b"SOUR:AM:STAT OFF\r\n", b"OK\r\n"),
        (b"SOUR:AM:STAT?\r\n", b"ON\r\nOK\r\n"),  # not off yet
        (b"SOUR:AM:STAT OFF\r\n", b"OK\r\n"),
        (b"SOUR:AM:STAT?\r\n", b"OFF\r\nOK\r\n"),
    ]) as laser:
        laser.safe_off()


def test_safe_off_raises_when_off_cannot_be_verified():
    stuck = [(b"SOUR:AM:STAT OFF\r\n", b"OK\r\n"), (b"SOUR:AM:STAT?\r\n", b"ON\r\nOK\r\n")] * 3
    blind = [(b"SOUR:AM:STAT OFF\r\n", b"OK\r\n")]          # sent again, no reply awaited
    with expected_protocol(obis(), connect() + stuck + blind + connect(emission=b"ON") + stuck) as laser:
        with pytest.raises(LaserSafetyError, match="still reports emission on.*sent blind.*reconnecting failed"):
            laser.safe_off()


def test_reconnect_reads_the_state_back_instead_of_assuming_it():
    with expected_protocol(obis(), connect() + connect(emission=b"ON", setpoint=b"0.03000")) as laser:
        assert laser.readback.emission is False
        readback = laser.reconnect()
        assert readback == LaserReadback(emission=True, setpoint_w=0.03, faults=())
        assert laser.readback is readback


def test_reconnect_refuses_a_different_laser_on_the_same_port():
    with expected_protocol(obis(), connect() + connect(serial=b"999")[:3]) as laser:
        with pytest.raises(DeviceError, match="refusing to drive a different laser"):
            laser.reconnect()


# --- end to end: the real driver on the pty twin ----------------------------------------
@pytest.fixture
def twin():
    world = small_world()
    with ObisTwin(world) as device:
        yield device


def open_obis(port, max_power_w=0.05, timeout_s=1.0):
    return ObisLaser(port, "obis", 520.0, max_power_w, timeout_s=timeout_s)


def test_end_to_end_power_and_emission_drive_the_physics_twin(twin):
    laser = open_obis(twin.port)
    assert laser.set_power(0.02) == pytest.approx(0.02)
    assert laser.set_emission(True) is True
    assert (twin.world.laser_emission, twin.world.laser_setpoint_w) == (True, pytest.approx(0.02))
    assert laser.measured_power() == pytest.approx(0.02)
    laser.close()
    assert twin.emission is False and twin.world.laser_emission is False


def test_an_exception_in_use_still_leaves_the_laser_verified_off(twin):
    with pytest.raises(RuntimeError, match="run failed"):
        with open_obis(twin.port) as laser:
            laser.set_emission(True)
            raise RuntimeError("run failed")
    assert twin.emission is False and twin.received[-2:] == ["SOUR:AM:STAT OFF", "SOUR:AM:STAT?"]


def test_safe_off_gets_through_a_lost_reply(twin):
    laser = open_obis(twin.port, timeout_s=0.2)
    laser.set_emission(True)
    twin.inject("no_reply", match="SOUR:AM:STAT OFF")
    laser.safe_off()
    assert twin.emission is False


def test_injected_error_and_garbled_replies_are_reported(twin):
    laser = open_obis(twin.port)
    twin.inject("error", match="SOUR:POW:LEV:IMM:AMPL")
    with pytest.raises(DeviceRefused, match="ERR-102"):
        laser.set_power(0.01)
    twin.inject("garbled", match="SOUR:POW:LEV?")
    with pytest.raises(DeviceError, match="garbled reply"):
        laser.measured_power()
    assert laser.set_power(0.01) == pytest.approx(0.01)  # the link recovers


def test_an_open_interlock_is_a_fault_and_keeps_the_laser_dark(twin):
    laser = open_obis(twin.port)
    twin.set_interlock(False)
    assert laser.set_emission(True) is False
    assert laser.faults() == ["interlock open or key switch off (SYST:LOCK? = OFF)"]
    assert twin.world.laser_faults == ["interlock open"]


def test_reconnect_after_a_power_cycle_reads_the_new_state(twin):
    laser = open_obis(twin.port)
    laser.set_power(0.02)
    laser.set_emission(True)
    twin.power_cycle()
    assert laser.reconnect() == LaserReadback(emission=False, setpoint_w=0.0, faults=())
    assert laser.power_setpoint() == 0.0


def test_a_twin_left_with_handshaking_off_is_restored():
    with ObisTwin(handshake=False) as device:
        laser = open_obis(device.port)
        assert device.handshake is True
        assert laser.set_power(0.01) == pytest.approx(0.01)


def test_a_laser_whose_replies_are_lost_still_hears_the_blind_off(twin):
    laser = open_obis(twin.port, timeout_s=0.05)
    laser.set_power(0.01)
    laser.set_emission(True)
    twin.inject("mute", times=None)            # commands still arrive and act; no reply ever comes back
    with pytest.raises(DeviceError):
        laser.reconnect()                       # the run's guard tries once: the handshake times out, port closed
    assert twin.emission is True
    sent = len(twin.received)
    with pytest.raises(LaserSafetyError, match="not open.*sent blind.*reconnecting failed"):
        laser.safe_off()
    assert twin.emission is False               # retrying the handshake alone would have left it on
    assert twin.received[sent:sent + 2] == ["SOUR:AM:STAT OFF", "SYST:COMM:HAND ON"]   # blind first


def test_a_dropped_link_fails_loudly_and_safe_off_says_it_could_not_verify(twin):
    laser = open_obis(twin.port)
    twin.inject("drop")
    with pytest.raises(DeviceError, match="reconnect"):
        laser.emission
    with pytest.raises(LaserSafetyError, match="could not be verified off"):
        laser.safe_off()
    with pytest.raises(DeviceError, match=f"cannot open serial port '{twin.port}'"):
        laser.reconnect()


def test_a_port_that_does_not_exist_is_named_and_nothing_stays_registered():
    from optgen.drivers.laser import open_lasers
    before = len(open_lasers())
    with pytest.raises(DeviceError, match=r"obis: cannot open serial port '/dev/optgen-no-such-port'"):
        open_obis("/dev/optgen-no-such-port")
    assert len(open_lasers()) == before
