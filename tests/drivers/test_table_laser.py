"""The command-table laser: the exact bytes each shipped table puts on the wire (scripted port),
the optgen laser contract on top of it, and the watchdog's reading of the table's replies."""

from __future__ import annotations

import pytest

from optgen.drivers.errors import DeviceError, LaserSafetyError, PowerCeilingError
from optgen.drivers.lasers import DeviceRefused, LaserReadback, TableLaser
from optgen.drivers.watchdog_process import emission_in

from .protocol import expected_protocol

OK = b"\r\n[OK]\r\n"


def ibeam_reply(*lines: bytes) -> bytes:
    """An iBeam reply after echo off, prompt off, talk usual: an empty line, the answer, [OK]."""
    return b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"[OK]\r\n"


def ibeam_connect(emission=b"OFF", level=b"0.000", serial=b"iBEAM-SMART-520-S-A3-15384"):
    return [
        (b"echo off\r\n", OK), (b"prompt off\r\n", OK), (b"talk usual\r\n", OK),
        (b"id\r\n", ibeam_reply(b"iBEAM-SMART-520-S")),
        (b"sh serial\r\n", ibeam_reply(b"SN: " + serial)),          # the wavelength, and the serial number
        (b"ver\r\n", ibeam_reply(b"iBPs-001A01-05")),
        (b"en 2\r\n", OK),
        (b"sh sat\r\n", ibeam_reply(b"  Pmax: 100 mW", b"  CH2 setp: 0.000 mW")),
        (b"sta la\r\n", ibeam_reply(emission)),
        (b"sh level pow\r\n", ibeam_reply(b"CH1, PWR: 0.000 mW", b"CH2, PWR: " + level + b" mW")),
        (b"sta clip\r\n", ibeam_reply(b"PASS")),
    ]


def ibeam(max_power_w=0.05, wavelength_nm=520.0):
    return lambda opener: TableLaser("/dev/ttyFAKE1", "ibeam", wavelength_nm, max_power_w, timeout_s=0.1,
                                     table="toptica-ibeam-smart", opener=opener)


def luxx_connect(status=b"02C0", level=b"000", model=b"LuxX 520-100"):
    return [
        (b"?GFw\r", b"!GFw" + model + b"\xa74\xa7V1.2\r"),
        (b"?GSI\r", b"!GSI520\xa7100\r"),
        (b"?GSN\r", b"!GSN123456\r"),                                  # the firmware: ?GFw's reply again
        (b"?SOM0118\r", b"!SOM>\r"),
        (b"?POn\r", b"!POn>\r"),
        (b"?GMP\r", b"!GMP100\r"),
        (b"?GAS\r", b"!GAS" + status + b"\r"),
        (b"?GLP\r", b"!GLP" + level + b"\r"),
        (b"?GFB\r", b"!GFB0000\r"),                  # key switch and enable pin: the emission's ?GAS reply again
    ]


def luxx(max_power_w=0.05):
    return lambda opener: TableLaser("/dev/ttyFAKE2", "luxx", 520.0, max_power_w, timeout_s=0.1,
                                     table="omicron-luxx", opener=opener)


# --- TOPTICA iBeam smart ------------------------------------------------------------------
def test_ibeam_connect_makes_the_dialogue_line_based_then_checks_identity_and_reads_state_back():
    with expected_protocol(ibeam(), ibeam_connect(emission=b"ON", level=b"12.500")) as laser:
        assert (laser.identity.vendor, laser.identity.model) == ("TOPTICA Photonics", "iBEAM-SMART-520-S")
        assert (laser.identity.serial, laser.identity.firmware) == ("iBEAM-SMART-520-S-A3-15384", "iBPs-001A01-05")
        assert laser.device_max_power_w == pytest.approx(0.1)
        assert laser.readback == LaserReadback(emission=True, setpoint_w=pytest.approx(0.0125), faults=())


def test_ibeam_setup_tolerates_the_power_up_prompt_and_echo():
    """At power-up the laser echoes and ends replies with 'CMD> ' and no newline: the first setup
    commands get no [OK] line; the driver goes on, and the stale bytes are discarded."""
    script = ibeam_connect()
    script[0] = (b"echo off\r\n", b"echo off\r\n\r\nCMD> ")
    with expected_protocol(ibeam(), script) as laser:
        assert laser.identity.model == "iBEAM-SMART-520-S"


def test_ibeam_set_power_is_channel_2_in_mw_and_returns_the_read_back():
    with expected_protocol(ibeam(), ibeam_connect() + [
        (b"ch 2 pow 25.000\r\n", OK),
        (b"sh level pow\r\n", ibeam_reply(b"CH1, PWR: 0.000 mW", b"CH2, PWR: 25.000 mW")),
    ]) as laser:
        assert laser.set_power(0.025) == pytest.approx(0.025)


def test_ibeam_read_back_in_microwatts_is_converted():
    with expected_protocol(ibeam(), ibeam_connect() + [
        (b"sh level pow\r\n", ibeam_reply(b"CH1, PWR: 0 uW", b"CH2, PWR: 500 uW")),
        (b"sh pow\r\n", ibeam_reply(b"PIC  = 000480 uW  ")),
    ]) as laser:
        assert laser.power_setpoint() == pytest.approx(0.0005)
        assert laser.measured_power() == pytest.approx(0.00048)


def test_ibeam_power_is_never_rounded_above_the_ceiling():
    """A ceiling of 10.0004 mW: 10.0004 mW would print as 10.000 (fine), but a ceiling of
    9.9996 mW asked 9.9996 mW must not be sent as 10.000 mW."""
    with expected_protocol(ibeam(max_power_w=0.0099996), ibeam_connect() + [
        (b"ch 2 pow 9.999\r\n", OK),
        (b"sh level pow\r\n", ibeam_reply(b"CH2, PWR: 9.999 mW")),
    ]) as laser:
        assert laser.set_power(0.0099996) == pytest.approx(0.009999)


def test_ibeam_above_the_ceiling_is_refused_before_any_byte():
    with expected_protocol(ibeam(max_power_w=0.02), ibeam_connect()) as laser:
        with pytest.raises(PowerCeilingError, match="above the ceiling"):
            laser.set_power(0.03)


@pytest.mark.parametrize("on, command, state", [(True, b"la on\r\n", b"ON"), (False, b"la off\r\n", b"OFF")])
def test_ibeam_emission_and_its_read_back(on, command, state):
    with expected_protocol(ibeam(), ibeam_connect() + [(command, OK), (b"sta la\r\n", ibeam_reply(state))]) as laser:
        if on:
            laser.watchdog_spec = lambda: None   # a scripted port: no watchdog process can reach it
        assert laser.set_emission(on) is on


def test_ibeam_an_error_line_is_a_refusal_naming_the_command():
    with expected_protocol(ibeam(), ibeam_connect() + [
        (b"ch 2 pow 25.000\r\n", ibeam_reply(b"%SYS-W-113, Value out of range")),
    ]) as laser:
        with pytest.raises(DeviceRefused, match=r"refused 'ch 2 pow 25.000': it answered '%SYS-W-113"):
            laser.set_power(0.025)


def test_ibeam_an_information_line_is_not_an_error():
    with expected_protocol(ibeam(), ibeam_connect() + [
        (b"sta la\r\n", ibeam_reply(b"%SYS-I-046, service level", b"OFF")),
    ]) as laser:
        assert laser.emission is False


def test_ibeam_a_failed_clip_is_a_fault():
    with expected_protocol(ibeam(), ibeam_connect() + [(b"sta clip\r\n", ibeam_reply(b"FAIL"))]) as laser:
        assert laser.faults() == ["laser clip failed (sta clip = FAIL): the laser needs a reset"]


def test_ibeam_wrong_wavelength_is_refused_before_anything_changes_the_device():
    script = ibeam_connect()[:5]     # nothing after the wavelength is read: no "en 2"
    with pytest.raises(DeviceError, match=r"reports 638 nm .* says wavelength 520 nm"):
        with expected_protocol(ibeam(), script[:4] + [
            (b"sh serial\r\n", ibeam_reply(b"SN: iBEAM-SMART-638-S-A3-15384")),
        ]):
            pass


def test_ibeam_another_model_is_refused():
    with pytest.raises(DeviceError, match=r"unexpected identity: 'id' answered \['Hello'\], not a TOPTICA iBeam smart"):
        with expected_protocol(ibeam(), ibeam_connect()[:3] + [(b"id\r\n", ibeam_reply(b"Hello"))]):
            pass


@pytest.mark.parametrize("reply, match", [
    (ibeam_reply(b"MAYBE"), r"garbled reply to 'sta la': \['MAYBE'\] has no match"),
    (ibeam_reply(), r"garbled reply to 'sta la': \[\] has no match"),
])
def test_ibeam_garbled_emission_replies_raise(reply, match):
    with expected_protocol(ibeam(), ibeam_connect() + [(b"sta la\r\n", reply)]) as laser:
        with pytest.raises(DeviceError, match=match):
            _ = laser.emission


def test_ibeam_safe_off_with_lost_replies_sends_off_blind_and_verifies_after_reconnecting():
    lost = [(b"la off\r\n", None)] * 3
    with expected_protocol(ibeam(), ibeam_connect() + lost + [(b"la off\r\n", None)] + ibeam_connect(emission=b"ON")
                           + [(b"la off\r\n", OK), (b"sta la\r\n", ibeam_reply(b"OFF"))]) as laser:
        laser.safe_off()
        assert laser.verified_off


def test_ibeam_safe_off_that_cannot_be_verified_raises():
    lost = [(b"la off\r\n", None)] * 3
    with expected_protocol(ibeam(), ibeam_connect() + lost + [(b"la off\r\n", None), (b"echo off\r\n", None),
                                                              (b"prompt off\r\n", None), (b"talk usual\r\n", None),
                                                              (b"id\r\n", None)]) as laser:
        with pytest.raises(LaserSafetyError, match="could not be verified off"):
            laser.safe_off()


def test_ibeam_reconnect_refuses_another_laser():
    other = ibeam_connect(serial=b"iBEAM-SMART-520-S-A3-99999")[:6]   # up to the firmware: then refused
    with expected_protocol(ibeam(), ibeam_connect() + other) as laser:
        with pytest.raises(DeviceError, match="refusing to drive a different laser"):
            laser.reconnect()


def test_ibeam_watchdog_spec_carries_the_off_command_and_the_query():
    with expected_protocol(ibeam(), ibeam_connect()) as laser:
        laser._link._opener = None       # as if opened on a real port
        spec = laser.watchdog_spec()
        laser._link._opener = lambda: None
    assert (spec["off"], spec["query"], spec["write_terminator"]) == ("la off", "sta la", "\r\n")
    assert (spec["off_replies"], spec["on_replies"]) == (["OFF"], ["ON"])
    assert [emission_in(spec, line) for line in ("OFF", "ON", "[OK]", "")] == [False, True, None, None]


# --- Omicron LuxX -------------------------------------------------------------------------
def test_luxx_connect_reads_identity_then_sets_the_mode_and_powers_up():
    with expected_protocol(luxx(), luxx_connect(status=b"02C2", level=b"7FF")) as laser:
        assert (laser.identity.vendor, laser.identity.model) == ("Omicron-Laserage", "LuxX 520-100")
        assert (laser.identity.serial, laser.identity.firmware) == ("123456", "V1.2")
        assert laser.device_max_power_w == pytest.approx(0.1)
        assert laser.readback == LaserReadback(emission=True, setpoint_w=pytest.approx(0.1 * 0x7FF / 4095),
                                               faults=())


def test_luxx_ad_hoc_lines_and_stray_nul_bytes_are_skipped():
    script = luxx_connect()
    script[0] = (b"?GFw\r", b"$MDP0.0\r\x00!GFwLuxX 520-100\xa74\xa7V1.2\r")
    with expected_protocol(luxx(), script) as laser:
        assert laser.identity.model == "LuxX 520-100"


def test_luxx_setpoint_is_a_hex_fraction_of_the_maximum_never_above_the_ceiling():
    # ceiling 50 mW of a 100 mW laser: 0x7FF = 49.99 mW (0x800 would be 50.01 mW)
    with expected_protocol(luxx(), luxx_connect() + [(b"?SLP7FF\r", b"!SLP>\r"), (b"?GLP\r", b"!GLP7FF\r")]) as laser:
        assert laser.set_power(0.05) == pytest.approx(0.1 * 2047 / 4095)


def test_luxx_refused_setpoint_raises():
    with expected_protocol(luxx(), luxx_connect() + [(b"?SLP199\r", b"!SLPx\r")]) as laser:
        with pytest.raises(DeviceRefused, match=r"refused '\?SLP199': it answered '!SLPx'"):
            laser.set_power(0.01)


def test_luxx_emission_needs_the_laser_to_confirm():
    with expected_protocol(luxx(), luxx_connect() + [(b"?LOn\r", b"!LOn\r")]) as laser:
        laser.watchdog_spec = lambda: None
        with pytest.raises(DeviceError, match=r"did not confirm '\?LOn': it answered \['!LOn'\]"):
            laser.set_emission(True)


def test_luxx_emission_state_is_bit_1_of_the_status_word():
    with expected_protocol(luxx(), luxx_connect() + [(b"?LOn\r", b"!LOn>\r"), (b"?GAS\r", b"!GAS02C2\r"),
                                                      (b"?LOf\r", b"!LOf>\r"), (b"?GAS\r", b"!GAS02C0\r")]) as laser:
        laser.watchdog_spec = lambda: None
        assert laser.set_emission(True) is True
        assert laser.set_emission(False) is False


def test_luxx_faults_decode_the_failure_word_and_the_status_bits():
    with expected_protocol(luxx(), luxx_connect() + [(b"?GFB\r", b"!GFB0201\r"), (b"?GAS\r", b"!GAS0241\r")]) as laser:
        assert laser.faults() == ["error latched (a reset clears it)", "interlock loop open",
                                  "key switch off (?GAS bit 7)"]


def test_luxx_measured_power_is_mdp_in_mw():
    with expected_protocol(luxx(), luxx_connect() + [(b"?MDP\r", b"!MDP24.8\r")]) as laser:
        assert laser.measured_power() == pytest.approx(0.0248)


def test_luxx_unknown_command_reply_is_a_refusal():
    with expected_protocol(luxx(), luxx_connect() + [(b"?MDP\r", b"!UK\r")]) as laser:
        with pytest.raises(DeviceRefused, match=r"refused '\?MDP': it answered '!UK'"):
            laser.measured_power()


def test_luxx_another_family_is_refused_before_the_mode_is_set():
    with pytest.raises(DeviceError, match=r"'PhoxX 488' does not contain 'LuxX'"):
        with expected_protocol(luxx(), [(b"?GFw\r", b"!GFwPhoxX 488\xa73\xa7V1\r")]):
            pass


def test_luxx_watchdog_reads_bit_1_of_the_status_word():
    with expected_protocol(luxx(), luxx_connect()) as laser:
        laser._link._opener = None
        spec = laser.watchdog_spec()
        laser._link._opener = lambda: None
    assert (spec["off"], spec["query"], spec["on_bit"]) == ("?LOf", "?GAS", 1)
    assert [emission_in(spec, line) for line in ("!GAS02C0", "!GAS02C2", "\x00!GAS0002", "$MDP1.0", "!LOf>")] == [
        False, True, True, None, None]


# --- the watchdog process's own off, on the protocol twins --------------------------------
@pytest.mark.parametrize("transport", ["serial", "visa"])
@pytest.mark.parametrize("table", ["toptica-ibeam-smart", "omicron-luxx"])
def test_the_watchdog_turns_a_table_laser_off_with_the_table_alone(tmp_path, table, transport):
    """What the watchdog process does when optgen stalls while the laser emits: it opens the link
    itself (the driver still holds it), sends the table's off command and verifies it with the
    table's query, on each shipped table's protocol twin, over serial and over VISA (pyvisa-py's
    ASRL session on the same pseudo-terminal)."""
    pytest.importorskip("serial")
    from importlib.resources import files

    from optgen.drivers.watchdog_process import turn_off
    from optgen.simulators.protocol import TABLE_TWINS

    source = files("optgen.drivers.lasers").joinpath("tables", f"{table}.toml").read_text("utf-8")
    path = tmp_path / f"{table}.toml"
    path.write_text(source.replace('transport = "serial"', f'transport = "{transport}"'), encoding="utf-8")
    if transport == "visa":
        pytest.importorskip("pyvisa_py")
    with TABLE_TWINS[table](None, max_power_w=0.1, wavelength_nm=520.0) as twin:
        address = twin.port if transport == "serial" else f"ASRL{twin.port}::INSTR"
        laser = TableLaser(address, "laser", 520.0, 0.05, timeout_s=0.5, table=path)
        try:
            laser.light_ends_with_process = True          # no watchdog process: this test is one
            laser.set_power(0.01)
            assert laser.set_emission(True) and twin.emission
            spec = {**laser.watchdog_spec(), "retry_s": 5.0}
            verified, attempts, error = turn_off(spec)
            assert (verified, error) == (True, "") and not twin.emission
            assert twin.received[-1] == laser.table.emission.query
            assert laser.table.emission_off.send in twin.received[-4:]
        finally:
            laser.close()


@pytest.mark.parametrize("table", ["toptica-ibeam-smart", "omicron-luxx"])
def test_on_the_twin_a_laser_whose_replies_are_lost_is_still_verified_off(table):
    """The twin carries out the next commands but their replies never arrive (a half-dead link):
    safe-off sends the table's off command blind, reconnects, and verifies it by the query."""
    pytest.importorskip("serial")
    from optgen.simulators.protocol import TABLE_TWINS

    with TABLE_TWINS[table](None, max_power_w=0.1, wavelength_nm=520.0) as twin:
        laser = TableLaser(twin.port, "laser", 520.0, 0.05, timeout_s=0.3, table=table)
        try:
            laser.light_ends_with_process = True
            laser.set_power(0.01)
            assert laser.set_emission(True) and twin.emission
            twin.inject("mute", times=3)
            laser.safe_off()
            assert laser.verified_off and not twin.emission
            off = laser.table.emission_off.send
            assert twin.received.count(off) >= 4          # three muted tries, the blind one, the verified one
            assert laser.readback is not None and laser.readback.emission is False
        finally:
            laser.close()


def test_a_tables_serial_handshake_reaches_pyserial_and_the_watchdog(tmp_path, monkeypatch):
    serial = pytest.importorskip("serial")
    from importlib.resources import files

    source = files("optgen.drivers.lasers").joinpath("tables", "omicron-luxx.toml").read_text("utf-8")
    path = tmp_path / "luxx-rtscts.toml"
    path.write_text(source.replace('flow_control = "none"', 'flow_control = "rtscts"'), encoding="utf-8")
    opened = []

    def refuse(port, **kwargs):
        opened.append((port, kwargs))
        raise OSError("no such port")

    monkeypatch.setattr(serial, "serial_for_url", refuse)
    with pytest.raises(DeviceError, match=r"cannot open serial port '/dev/ttyLUXX'"):
        TableLaser("/dev/ttyLUXX", "luxx", 520.0, 0.05, table=path)
    assert opened == [("/dev/ttyLUXX", {"baudrate": 500000, "bytesize": 8, "parity": "N", "stopbits": 1, "timeout": 1.0,
                                        "write_timeout": 1.0, "exclusive": True, "rtscts": True, "dsrdtr": False,
                                        "xonxoff": False})]
    with expected_protocol(lambda opener: TableLaser("/dev/ttyFAKE2", "luxx", 520.0, 0.05, timeout_s=0.1, table=path,
                                                     opener=opener), luxx_connect()) as laser:
        laser._link._opener = None
        assert laser.watchdog_spec()["flow_control"] == "rtscts"
        laser._link._opener = lambda: None


def test_luxx_a_late_reply_to_an_earlier_command_is_read_past():
    """A reply to an off sent blind arrives after the next query was written: the query's own
    reply is the next line (lines answer in order), not an identity failure or a garbled reply."""
    with expected_protocol(luxx(), luxx_connect() + [(b"?GAS\r", b"!LOf>\r!GAS02C0\r"),
                                                      (b"?GAS\r", b"!LOf>\r!LOf>\r!LOf>\r!GAS02C0\r")]) as laser:
        assert laser.emission is False
        with pytest.raises(DeviceError, match=r"garbled reply to '\?GAS': \['!LOf>', '!LOf>', '!LOf>'\] has no"):
            _ = laser.emission      # three lines is the most it reads for one query


def test_garbled_setpoints_raise():
    with expected_protocol(luxx(), luxx_connect() + [(b"?GLP\r", b"!GLP0G1\r")]) as laser:
        with pytest.raises(DeviceError, match=r"garbled reply to '\?GLP': \['!GLP0G1'\] has no match for"):
            laser.power_setpoint()
    garbled = [(b"sh level pow\r\n", ibeam_reply(b"CH2, PWR: 1.2.3 mW"))]
    with expected_protocol(ibeam(), ibeam_connect() + garbled) as laser:
        with pytest.raises(DeviceError, match=r"garbled reply to 'sh level pow': '1.2.3' is not a number"):
            laser.power_setpoint()


def test_every_command_and_reply_line_is_logged_at_debug(caplog):
    """optgen --log-level debug shows the conversation: what a lab writing a table needs to see."""
    import logging

    with caplog.at_level(logging.DEBUG, logger="optgen.drivers.lasers.wire"):
        with expected_protocol(luxx(), luxx_connect()):
            pass
    wire = [r.getMessage() for r in caplog.records if r.name == "optgen.drivers.lasers.wire"]
    assert wire[:4] == ["luxx /dev/ttyFAKE2 > '?GFw'", "luxx /dev/ttyFAKE2 < '!GFwLuxX 520-100\u00a74\u00a7V1.2'",
                        "luxx /dev/ttyFAKE2 > '?GSI'", "luxx /dev/ttyFAKE2 < '!GSI520\u00a7100'"]
    assert len(wire) == 2 * len(luxx_connect())
