"""The iBeam smart and LuxX protocol twins: the exact bytes of their replies on the pty, with pyserial."""

from __future__ import annotations

import numpy as np
import pytest
import serial

from optgen.simulators import LaserTruth, OpticalWorld, SensorTruth, SLMTruth, VirtualClock
from optgen.simulators.protocol import TABLE_TWINS, CoboltTwin, IBeamSmartTwin, LuxxTwin

IBEAM_OK = b"[OK]\r\n"


def small_world() -> OpticalWorld:
    response = np.linspace(0.02, 6.3, 256)
    return OpticalWorld(wavelength_m=520e-9, pitch_m=8e-6, grid_shape=(32, 32), d1_m=0.01, d2_m=0.01,
                        encoding=SLMTruth(response), decoding=SLMTruth(response),
                        sensor=SensorTruth(resolution=(32, 32), pitch_m=8e-6),
                        laser=LaserTruth(device_max_power_w=0.1), clock=VirtualClock())


class Port:
    """pyserial on a twin's pty; every read has a timeout."""

    def __init__(self, twin, baudrate: int):
        self.serial = serial.Serial(twin.port, baudrate, timeout=0.5)

    def ask(self, command: bytes, until: bytes) -> bytes:
        self.serial.write(command)
        return self.serial.read_until(until)

    def silence(self) -> bytes:
        """Whatever arrives within a short timeout (expected: nothing)."""
        self.serial.timeout = 0.2
        try:
            return self.serial.read(100)
        finally:
            self.serial.timeout = 0.5

    def close(self) -> None:
        self.serial.close()


# --- TOPTICA iBeam smart ------------------------------------------------------------------
@pytest.fixture
def ibeam():
    with IBeamSmartTwin(small_world(), max_power_w=0.1, wavelength_nm=520.0) as twin:
        port = Port(twin, 115200)
        yield twin, port
        port.close()


def quiet(port: Port) -> None:
    """The drivers' set-up: echo off, prompt off, talk usual."""
    assert port.ask(b"echo off\r\n", b"CMD> ") == b"echo off\r\nCMD> "
    assert port.ask(b"prompt off\r\n", IBEAM_OK) == b"\r\n[OK]\r\n"
    assert port.ask(b"talk usual\r\n", IBEAM_OK) == b"\r\n[OK]\r\n"


def ask_ibeam(port: Port, command: str) -> bytes:
    return port.ask(command.encode() + b"\r\n", IBEAM_OK)


def test_ibeam_powers_up_echoing_with_the_prompt_then_answers_plainly(ibeam):
    twin, port = ibeam
    assert port.ask(b"ver\r\n", b"CMD> ") == b"ver\r\niBPs-001A01-05\r\nCMD> "
    assert port.ask(b"prom off\r\n", IBEAM_OK) == b"prom off\r\n[OK]\r\n"   # echoed, and already [OK]
    assert port.ask(b"echo off\r\n", IBEAM_OK) == b"echo off\r\n[OK]\r\n"
    assert ask_ibeam(port, "ver") == b"\r\niBPs-001A01-05\r\n[OK]\r\n"
    assert ask_ibeam(port, "") == b"\r\n[OK]\r\n"                           # the empty command: a ping
    assert port.ask(b"prom on\r\n", b"CMD> ") == b"\r\nCMD> "
    assert port.ask(b"echo on\r\n", b"CMD> ") == b"\r\nCMD> "
    assert port.ask(b"sta la\r\n", b"CMD> ") == b"sta la\r\nOFF\r\nCMD> "


def test_ibeam_identity_and_talk_levels(ibeam):
    twin, port = ibeam
    quiet(port)
    serial_line = b"\r\nSN: iBEAM-SMART-520-S-A3-15384\r\n[OK]\r\n"
    for command in ("show serial", "sh serial", "serial"):
        assert ask_ibeam(port, command) == serial_line
    assert ask_ibeam(port, "id") == b"\r\niBEAM-SMART-520-S\r\n[OK]\r\n"
    assert ask_ibeam(port, "version") == b"\r\niBPs-001A01-05\r\n[OK]\r\n"
    assert ask_ibeam(port, "talk quiet") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "sh serial") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "talk gabby") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "sh serial") == serial_line
    assert ask_ibeam(port, "talk loud") == b"\r\n%SYS-W-003, Invalid parameter\r\n[OK]\r\n"


def test_ibeam_serial_and_model_follow_the_wavelength():
    with IBeamSmartTwin(max_power_w=0.04, wavelength_nm=640.2, firmware="iBPs-XYZ") as twin:
        port = Port(twin, 115200)
        quiet(port)
        assert ask_ibeam(port, "sh serial") == b"\r\nSN: iBEAM-SMART-640-S-A3-15384\r\n[OK]\r\n"
        assert ask_ibeam(port, "ver") == b"\r\niBPs-XYZ\r\n[OK]\r\n"
        assert b"  Pmax: 40 mW\r\n" in ask_ibeam(port, "sh sat")
        port.close()


def test_ibeam_channels_levels_and_emission_reach_the_world(ibeam):
    twin, port = ibeam
    quiet(port)
    assert ask_ibeam(port, "sta ch 1") == b"\r\nON\r\n[OK]\r\n"
    assert ask_ibeam(port, "sta ch 2") == b"\r\nOFF\r\n[OK]\r\n"
    assert ask_ibeam(port, "ch 2 pow 12.5") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "sh level pow") == b"\r\nCH1, PWR: 0.000 mW\r\nCH2, PWR: 12.500 mW\r\n[OK]\r\n"
    assert ask_ibeam(port, "channel 2 power 30000 micro") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "ch 1 pow 100.000000 mic") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "show level power") == b"\r\nCH1, PWR: 0.100 mW\r\nCH2, PWR: 30.000 mW\r\n[OK]\r\n"
    assert ask_ibeam(port, "la on") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "status laser") == b"\r\nON\r\n[OK]\r\n"
    # channel 2 is still disabled: only the bias comes out
    assert (twin.emission, twin.setpoint_w) == (True, pytest.approx(0.0001))
    assert ask_ibeam(port, "en 2") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "status channel 2") == b"\r\nON\r\n[OK]\r\n"
    assert (twin.emission, twin.setpoint_w) == (True, pytest.approx(0.0301))
    assert (twin.world.laser_emission, twin.world.laser_setpoint_w) == (True, pytest.approx(0.0301))
    assert ask_ibeam(port, "sh pow") == b"\r\nPIC  = 030100 uW  \r\n[OK]\r\n"
    assert ask_ibeam(port, "di 1") == b"\r\n[OK]\r\n"
    assert twin.setpoint_w == pytest.approx(0.030)
    assert ask_ibeam(port, "laser off") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "sta la") == b"\r\nOFF\r\n[OK]\r\n"
    assert ask_ibeam(port, "sh pow") == b"\r\nPIC  = 000000 uW  \r\n[OK]\r\n"
    assert twin.emission is False and twin.world.laser_emission is False
    assert ask_ibeam(port, "disable 0") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "sta ch 2") == b"\r\nOFF\r\n[OK]\r\n"
    assert ask_ibeam(port, "enable 2") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "sta ch 9") == b"\r\n%SYS-W-004, No such channel\r\n[OK]\r\n"


def test_ibeam_satellite_table_gives_pmax(ibeam):
    twin, port = ibeam
    quiet(port)
    reply = ask_ibeam(port, "show satellite")
    assert reply.startswith(b"\r\n") and reply.endswith(b"\r\n[OK]\r\n")
    assert b"\r\n  Pmax: 100 mW\r\n" in reply and b"\r\n  CH2 setp: 0.000 mW\r\n" in reply


@pytest.mark.parametrize("command", ["ch 2 pow 100.5", "ch 2 pow -1", "ch 2 pow 100001 mic", "ch 2 pow nan"])
def test_ibeam_refuses_out_of_range_power_and_keeps_the_level(ibeam, command):
    twin, port = ibeam
    quiet(port)
    assert ask_ibeam(port, "ch 2 pow 20") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, "en 2") == b"\r\n[OK]\r\n"
    assert ask_ibeam(port, command) == b"\r\n%SYS-W-010, Value out of range\r\n[OK]\r\n"
    assert ask_ibeam(port, "sh level pow") == b"\r\nCH1, PWR: 0.000 mW\r\nCH2, PWR: 20.000 mW\r\n[OK]\r\n"
    assert twin.setpoint_w == pytest.approx(0.02)
    assert ask_ibeam(port, "ch 2 pow 100") == b"\r\n[OK]\r\n"                # the maximum itself is allowed
    assert twin.setpoint_w == pytest.approx(0.1)


def test_ibeam_errors_are_one_sys_line_then_ok(ibeam):
    twin, port = ibeam
    quiet(port)
    assert ask_ibeam(port, "frobnicate") == b"\r\n%SYS-W-002, Unknown command\r\n[OK]\r\n"
    assert ask_ibeam(port, "la maybe") == b"\r\n%SYS-W-003, Invalid parameter\r\n[OK]\r\n"
    assert ask_ibeam(port, "ch two pow 1") == b"\r\n%SYS-W-003, Invalid parameter\r\n[OK]\r\n"
    assert ask_ibeam(port, "ch 7 pow 1") == b"\r\n%SYS-W-004, No such channel\r\n[OK]\r\n"
    assert port.ask(b"prom on\r\n", b"CMD> ") == b"\r\nCMD> "
    assert port.ask(b"xyz\r\n", b"CMD> ") == b"\r\n%SYS-W-002, Unknown command\r\nCMD> "
    assert twin.error_reply("la on").startswith("%SYS-W-")


def test_ibeam_clip_failure_stops_emission_until_cleared(ibeam):
    twin, port = ibeam
    quiet(port)
    assert ask_ibeam(port, "sta clip") == b"\r\nPASS\r\n[OK]\r\n"
    ask_ibeam(port, "ch 2 pow 10")
    ask_ibeam(port, "en 2")
    ask_ibeam(port, "la on")
    assert twin.emission is True
    twin.set_clip_fail(True)
    assert twin.emission is False and twin.world.laser_emission is False
    assert "clip check FAIL" in twin.active_faults() and "clip check FAIL" in twin.world.laser_faults
    assert ask_ibeam(port, "sta clip") == b"\r\nFAIL\r\n[OK]\r\n"
    assert ask_ibeam(port, "sta la") == b"\r\nOFF\r\n[OK]\r\n"
    assert ask_ibeam(port, "la on") == b"\r\n%SYS-E-020, Laser cannot be switched on: clip check failed\r\n[OK]\r\n"
    twin.set_clip_fail(False)
    assert ask_ibeam(port, "la on") == b"\r\n[OK]\r\n"
    assert twin.emission is True and twin.active_faults() == []


def test_ibeam_open_interlock_switches_off_and_refuses_la_on(ibeam):
    twin, port = ibeam
    quiet(port)
    ask_ibeam(port, "en 2")
    ask_ibeam(port, "la on")
    twin.set_interlock(False)
    assert twin.emission is False
    assert ask_ibeam(port, "sta la") == b"\r\nOFF\r\n[OK]\r\n"
    assert ask_ibeam(port, "la on") == b"\r\n%SYS-E-020, Laser cannot be switched on: interlock open\r\n[OK]\r\n"
    twin.set_interlock(True)
    assert ask_ibeam(port, "la on") == b"\r\n[OK]\r\n" and twin.emission is True


def test_ibeam_power_cycle_restores_the_power_up_state(ibeam):
    twin, port = ibeam
    quiet(port)
    ask_ibeam(port, "ch 2 pow 10")
    ask_ibeam(port, "en 2")
    ask_ibeam(port, "la on")
    twin.set_clip_fail(True)
    twin.power_cycle()
    assert (twin.emission, twin.setpoint_w, twin.clip_fail) == (False, 0.0, False)
    assert port.ask(b"sh level pow\r\n", b"CMD> ") == b"sh level pow\r\nCH1, PWR: 0.000 mW\r\nCH2, PWR: 0.000 mW\r\nCMD> "
    assert port.ask(b"sta ch 2\r\n", b"CMD> ") == b"sta ch 2\r\nOFF\r\nCMD> "


def test_ibeam_injected_faults_go_through_the_framing(ibeam):
    twin, port = ibeam
    quiet(port)
    twin.inject("error", match="sta")
    assert ask_ibeam(port, "sta la") == b"\r\n%SYS-W-030, Command not executed\r\n[OK]\r\n"
    twin.inject("garbled", match="la")
    reply = ask_ibeam(port, "la on")
    assert b"[OK]" not in reply and reply == b"#~?\r\n#]KO[~?\r\n"
    assert twin.emission is True                         # carried out, only the reply is mangled
    twin.inject("garbled", match="ver")
    assert port.ask(b"ver\r\n", b"~?\r\n#]KO[~?\r\n") == b"#~?\r\n#50-10A100-sPBi~?\r\n#]KO[~?\r\n"
    twin.inject("mute", match="la")
    port.serial.write(b"la off\r\n")
    assert port.silence() == b""
    assert twin.emission is False
    twin.inject("no_reply")
    port.serial.write(b"la on\r\n")
    assert port.silence() == b""
    assert twin.emission is False
    assert ask_ibeam(port, "sta la") == b"\r\nOFF\r\n[OK]\r\n"


def test_ibeam_accepts_a_lone_cr_as_terminator(ibeam):
    twin, port = ibeam
    quiet(port)
    assert port.ask(b"sta la\r", IBEAM_OK) == b"\r\nOFF\r\n[OK]\r\n"
    assert port.ask(b"ver\r", IBEAM_OK) == b"\r\niBPs-001A01-05\r\n[OK]\r\n"
    assert port.silence() == b""


# --- Omicron LuxX ------------------------------------------------------------------------
@pytest.fixture
def luxx():
    with LuxxTwin(small_world(), max_power_w=0.1, wavelength_nm=520.0) as twin:
        port = Port(twin, 500000)
        yield twin, port
        port.close()


def ask_luxx(port: Port, command: str) -> bytes:
    return port.ask(command.encode("ascii") + b"\r", b"\r")


def light_up(port: Port) -> None:
    assert ask_luxx(port, "?SOM0118") == b"!SOM>\r"          # ad-hoc off, APC, levels released
    assert ask_luxx(port, "?POn") == b"!POn>\r"


def test_luxx_identity_uses_the_0xa7_separator(luxx):
    twin, port = luxx
    reply = ask_luxx(port, "?GFw")
    assert reply == b"!GFwLuxX 520-100\xa74\xa72.51\r"
    assert reply.count(0xA7) == 2 and "§".encode("latin-1") == b"\xa7"
    assert ask_luxx(port, "?GSN") == b"!GSNLX-123456\r"
    assert ask_luxx(port, "?GSI") == b"!GSI520\xa7100\r"
    assert ask_luxx(port, "?GMP") == b"!GMP100\r"
    assert ask_luxx(port, "?GWH") == b"!GWH1234\r"


def test_luxx_power_up_state(luxx):
    twin, port = luxx
    assert ask_luxx(port, "?GOM") == b"!GOM2118\r"
    assert ask_luxx(port, "?GAS") == b"!GAS00C0\r"          # enable pin, key; not powered, laser off
    assert ask_luxx(port, "?GFB") == b"!GFB0000\r"
    assert ask_luxx(port, "?GLF") == b"!GLF0000\r"
    assert ask_luxx(port, "?GLP") == b"!GLP000\r"
    assert ask_luxx(port, "?MDP") == b"!MDP0.0\r"
    assert ask_luxx(port, "?LOn") == b"$MDP0.0\r"            # ad-hoc line first
    assert port.serial.read_until(b"\r") == b"!LOnx\r"       # not powered
    assert twin.emission is False


def test_luxx_level_round_trip_and_emission(luxx):
    twin, port = luxx
    light_up(port)
    assert ask_luxx(port, "?SLP7ff") == b"!SLP>\r"
    assert ask_luxx(port, "?GLP") == b"!GLP7FF\r"
    assert ask_luxx(port, "?SLPA") == b"!SLP>\r"
    assert ask_luxx(port, "?GLP") == b"!GLP00A\r"
    assert ask_luxx(port, "?SLPFFF") == b"!SLP>\r"
    assert ask_luxx(port, "?GLP") == b"!GLPFFF\r"
    assert twin.setpoint_w == pytest.approx(0.1)
    assert ask_luxx(port, "?SLP800") == b"!SLP>\r"
    assert twin.setpoint_w == pytest.approx(0x800 / 4095 * 0.1)
    assert twin.emission is False
    assert ask_luxx(port, "?LOn") == b"!LOn>\r"
    assert ask_luxx(port, "?GAS") == b"!GAS02C2\r"
    assert (twin.emission, twin.world.laser_emission) == (True, True)
    assert twin.world.laser_setpoint_w == pytest.approx(0x800 / 4095 * 0.1)
    assert ask_luxx(port, "?MDP") == f"!MDP{0x800 / 4095 * 100:.1f}\r".encode()
    assert ask_luxx(port, "?LOf") == b"!LOf>\r"
    assert ask_luxx(port, "?GAS") == b"!GAS02C0\r"
    assert twin.emission is False and twin.world.laser_emission is False


@pytest.mark.parametrize("argument", ["1000", "", "G00", "-1", "7f f", "0x7"])
def test_luxx_refuses_a_bad_level_and_keeps_the_old_one(luxx, argument):
    twin, port = luxx
    light_up(port)
    assert ask_luxx(port, "?SLP123") == b"!SLP>\r"
    assert ask_luxx(port, "?SLP" + argument) == b"!SLPx\r"
    assert ask_luxx(port, "?GLP") == b"!GLP123\r"


def test_luxx_standby_mode_accepts_lon_but_gives_no_light(luxx):
    twin, port = luxx
    light_up(port)
    assert ask_luxx(port, "?SOM0100") == b"!SOM>\r"          # bits 3 and 4 clear: standby
    assert ask_luxx(port, "?LOn") == b"!LOn>\r"
    assert ask_luxx(port, "?GAS") == b"!GAS02C2\r"
    assert twin.emission is False
    assert ask_luxx(port, "?SOM0118") == b"!SOM>\r"
    assert twin.emission is True
    assert ask_luxx(port, "?GOM") == b"!GOM0118\r"
    assert ask_luxx(port, "?SOMxyz") == b"!SOMx\r"
    assert ask_luxx(port, "?SOM12345") == b"!SOMx\r"
    assert ask_luxx(port, "?GOM") == b"!GOM0118\r"


def test_luxx_adhoc_lines_only_while_gom_bit_13_is_set(luxx):
    twin, port = luxx
    assert ask_luxx(port, "?POn") == b"!POn>\r"
    assert port.ask(b"?SLP400\r", b"!SLP>\r") == b"$MDP0.0\r!SLP>\r"
    assert port.ask(b"?LOn\r", b"!LOn>\r") == f"$MDP{0x400 / 4095 * 100:.1f}\r!LOn>\r".encode()
    assert twin.emission is True
    assert ask_luxx(port, "?GAS") == b"!GAS02C2\r"             # queries bring no ad-hoc line
    assert ask_luxx(port, "?SOM0118") == b"!SOM>\r"
    assert ask_luxx(port, "?SLP400") == b"!SLP>\r"
    assert ask_luxx(port, "?LOn") == b"!LOn>\r"
    assert port.silence() == b""


def test_luxx_open_interlock_latches_until_reset(luxx):
    twin, port = luxx
    light_up(port)
    ask_luxx(port, "?SLP400")
    assert ask_luxx(port, "?LOn") == b"!LOn>\r" and twin.emission is True
    twin.set_interlock(False)
    assert twin.emission is False and twin.world.laser_emission is False
    assert ask_luxx(port, "?GFB") == b"!GFB0201\r"
    assert ask_luxx(port, "?GLF") == b"!GLF0200\r"
    assert ask_luxx(port, "?GAS") == b"!GAS02C1\r"
    assert ask_luxx(port, "?LOn") == b"!LOnx\r"
    assert ask_luxx(port, "?RsC") == b"!RsC>\r"
    assert ask_luxx(port, "?GLF") == b"!GLF0200\r"             # still open: the reset does not clear it
    twin.set_interlock(True)
    assert ask_luxx(port, "?GFB") == b"!GFB0001\r"
    assert ask_luxx(port, "?GLF") == b"!GLF0200\r"
    assert ask_luxx(port, "?LOn") == b"!LOnx\r"
    assert twin.active_faults() == ["latched failure GLF 0200"]
    assert ask_luxx(port, "?RsC") == b"!RsC>\r"
    assert ask_luxx(port, "?GFB") == b"!GFB0000\r"
    assert ask_luxx(port, "?GLF") == b"!GLF0000\r"
    assert ask_luxx(port, "?GAS") == b"!GAS02C0\r"
    assert ask_luxx(port, "?LOn") == b"!LOn>\r" and twin.emission is True


def test_luxx_key_switch_enable_pin_and_system_power(luxx):
    twin, port = luxx
    light_up(port)
    twin.set_key_switch(False)
    assert ask_luxx(port, "?GAS") == b"!GAS0240\r"
    assert ask_luxx(port, "?LOn") == b"!LOnx\r"
    twin.set_key_switch(True)
    twin.set_enable_pin(False)
    assert ask_luxx(port, "?GAS") == b"!GAS0280\r"
    assert ask_luxx(port, "?LOn") == b"!LOnx\r"
    twin.set_enable_pin(True)
    assert ask_luxx(port, "?LOn") == b"!LOn>\r" and twin.emission is True
    assert ask_luxx(port, "?POf") == b"!POf>\r"
    assert ask_luxx(port, "?GAS") == b"!GAS00C0\r" and twin.emission is False


def test_luxx_unknown_and_malformed_commands(luxx):
    twin, port = luxx
    assert ask_luxx(port, "?XYZ") == b"!UK\r"
    assert ask_luxx(port, "?gfw") == b"!UK\r"                   # mnemonics are case-sensitive
    assert ask_luxx(port, "GFw") == b"!UK\r"
    assert ask_luxx(port, "?G") == b"!UK\r"
    assert ask_luxx(port, "?GLP1") == b"!GLPx\r"
    assert ask_luxx(port, "?LOf0") == b"!LOfx\r"
    assert twin.error_reply("?GLP") == "!UK"


def test_luxx_power_cycle_restores_the_power_up_state_but_keeps_the_level(luxx):
    twin, port = luxx
    light_up(port)
    ask_luxx(port, "?SLP400")
    ask_luxx(port, "?LOn")
    twin.power_cycle()
    assert twin.emission is False and twin.world.laser_emission is False
    assert ask_luxx(port, "?GOM") == b"!GOM2118\r"
    assert ask_luxx(port, "?GAS") == b"!GAS00C0\r"
    assert ask_luxx(port, "?GLP") == b"!GLP400\r"


def test_luxx_auto_power_up_and_auto_start_modes():
    with LuxxTwin(operating_mode=0xC118) as twin:
        assert twin.powered and twin.laser_on and twin.emission
        port = Port(twin, 500000)
        assert ask_luxx(port, "?GAS") == b"!GAS02C2\r"
        port.close()


def test_luxx_nul_before_replies():
    with LuxxTwin(nul_before_replies=True) as twin:
        port = Port(twin, 500000)
        assert ask_luxx(port, "?GLP") == b"\x00!GLP000\r"
        assert port.ask(b"?SLP001\r", b"!SLP>\r") == b"\x00$MDP0.0\r!SLP>\r"
        port.close()


def test_luxx_injected_faults_go_through_the_encoding(luxx):
    twin, port = luxx
    light_up(port)
    twin.inject("error", match="?GSI")
    assert ask_luxx(port, "?GSI") == b"!UK\r"
    twin.inject("garbled", match="?GSI")
    assert ask_luxx(port, "?GSI") == b"#001\xa7025ISG!~?\r"
    twin.inject("mute", match="?LOn")
    port.serial.write(b"?LOn\r")
    assert port.silence() == b""
    assert twin.emission is True                                 # carried out, reply lost
    twin.inject("no_reply")
    port.serial.write(b"?LOf\r")
    assert port.silence() == b""
    assert twin.emission is True
    assert ask_luxx(port, "?GSI") == b"!GSI520\xa7100\r"


# --- the bench's construction, and the base unchanged for the CR LF twins ----------------
@pytest.mark.parametrize("name", ["toptica-ibeam-smart", "omicron-luxx"])
def test_table_twins_build_as_the_bench_builds_them(name):
    world = small_world()
    with TABLE_TWINS[name](world, max_power_w=0.05, wavelength_nm=488.0) as twin:
        assert twin.max_power_w == 0.05 and twin.wavelength_nm == 488.0
        assert (world.laser_emission, world.laser_setpoint_w) == (False, 0.0)


def test_the_default_encoding_is_ascii_lines_ending_in_cr_lf():
    with CoboltTwin() as twin:
        port = Port(twin, 115200)
        assert port.ask(b"l?\r\n", b"\r\n") == b"0\r\n"
        assert port.ask(b"sn?\r", b"\r\n") == b"21345\r\n"
        twin.inject("mute")
        port.serial.write(b"l0\r")
        assert port.silence() == b""
        port.close()
