"""SCPI laser-diode controller driver: exact messages (scripted VISA resource), then the pyvisa-sim twin."""

from __future__ import annotations

import pytest

from optgen.drivers.errors import DeviceError, LaserSafetyError, PowerCeilingError
from optgen.drivers.laser import open_lasers
from optgen.drivers.lasers import DeviceRefused, LaserReadback, ScpiLaserDiodeController
from optgen.simulators.protocol import LDC_RESOURCE, ldc_visa_library

from .protocol import TIMEOUT, ExpectedVisaResource, expected_visa_protocol

NO_ERROR = '+0,"No error"'


def connect(output="0", current="0.000000", idn="Thorlabs,CLD1015,M00000001,1.1.0", serial_changed=False):
    """The connect handshake: identity, current limit, constant-current mode, state read back."""
    if serial_changed:
        idn = "Thorlabs,CLD1015,M99999999,1.1.0"
    return [
        (b"*IDN?\n", idn),
        (b"SOUR:CURR:LIM?\n", "0.150000"),
        (b"SOUR:FUNC:MODE CURR\n", None),
        (b"SYST:ERR?\n", NO_ERROR),
        (b"OUTP?\n", output),
        (b"SOUR:CURR?\n", current),
        (b"OUTP:PROT:INTL:TRIP?\n", "0"),
        (b"OUTP:PROT:KEYL:TRIP?\n", "0"),
    ]


def ldc(max_power_w=0.05, **kwargs):
    options = dict(slope_w_per_a=0.5, threshold_a=0.03)
    options.update(kwargs)
    return lambda open_resource: ScpiLaserDiodeController(
        "USB0::0x1313::0x804F::M00000001::INSTR", "ldc", 520.0, max_power_w, timeout_s=0.25,
        open_resource=open_resource, **options)


# --- exact messages, scripted replies ---------------------------------------------------
def test_connect_reads_identity_and_limit_selects_current_mode_and_reads_state_back():
    with expected_visa_protocol(ldc(), connect(output="1", current="0.070000")) as laser:
        assert (laser.identity.vendor, laser.identity.model, laser.identity.serial, laser.identity.firmware) == \
            ("Thorlabs", "CLD1015", "M00000001", "1.1.0")
        # device maximum = slope x (current limit - threshold) = 0.5 W/A x 0.12 A
        assert laser.device_max_power_w == pytest.approx(0.06)
        assert laser.readback == LaserReadback(emission=True, setpoint_w=pytest.approx(0.02), faults=())


def test_the_resource_is_opened_with_the_termination_and_a_finite_timeout():
    resource = ExpectedVisaResource(connect())
    laser = ldc()(resource)
    assert resource.opened == [("USB0::0x1313::0x804F::M00000001::INSTR",
                                {"read_termination": "\n", "write_termination": "\n", "timeout": 250})]
    resource.assert_done()
    laser.closed = True


def test_set_power_sets_the_current_of_the_stated_slope_and_returns_the_read_back():
    with expected_visa_protocol(ldc(), connect() + [
        (b"SOUR:CURR 0.070000\n", None), (b"SYST:ERR?\n", NO_ERROR), (b"SOUR:CURR?\n", "0.070000"),
    ]) as laser:
        assert laser.set_power(0.02) == pytest.approx(0.02)  # 0.03 A + 0.02 W / 0.5 W/A


def test_zero_power_is_zero_current():
    with expected_visa_protocol(ldc(), connect() + [
        (b"SOUR:CURR 0.000000\n", None), (b"SYST:ERR?\n", NO_ERROR), (b"SOUR:CURR?\n", "0.000000"),
    ]) as laser:
        assert laser.set_power(0.0) == 0.0


def test_measured_power_is_the_photodiode_reading():
    with expected_visa_protocol(ldc(), connect() + [(b"MEAS:POW2?\n", "0.0195")]) as laser:
        assert laser.measured_power() == pytest.approx(0.0195)


def test_without_a_power_query_the_measured_current_goes_through_the_slope():
    with expected_visa_protocol(ldc(power_query=None), connect() + [(b"MEAS:CURR?\n", "0.069")]) as laser:
        assert laser.measured_power() == pytest.approx(0.5 * (0.069 - 0.03))


@pytest.mark.parametrize("on, word, state", [(True, b"ON", "1"), (False, b"OFF", "0")])
def test_emission_is_outp_and_returns_the_read_back(on, word, state):
    with expected_visa_protocol(ldc(), connect() + [
        (b"OUTP " + word + b"\n", None), (b"SYST:ERR?\n", NO_ERROR), (b"OUTP?\n", state),
    ]) as laser:
        assert laser.set_emission(on) is on


def test_faults_report_interlock_and_key_lock():
    with expected_visa_protocol(ldc(), connect() + [
        (b"OUTP:PROT:INTL:TRIP?\n", "1"), (b"OUTP:PROT:KEYL:TRIP?\n", "1"),
    ]) as laser:
        assert laser.faults() == ["interlock tripped (OUTP:PROT:INTL:TRIP? = 1)",
                                  "key lock tripped (OUTP:PROT:KEYL:TRIP? = 1)"]


def test_an_error_in_the_queue_raises_naming_the_command():
    with expected_visa_protocol(ldc(), connect() + [
        (b"OUTP ON\n", None), (b"SYST:ERR?\n", '-221,"Settings conflict"'),
    ]) as laser:
        with pytest.raises(DeviceRefused, match=r"refused 'OUTP ON': it answered '-221,\"Settings conflict\"'"):
            laser.set_emission(True)


def test_a_garbled_reply_raises():
    with expected_visa_protocol(ldc(), connect() + [(b"OUTP?\n", "maybe")]) as laser:
        with pytest.raises(DeviceError, match=r"garbled reply to 'OUTP\?': 'maybe'"):
            laser.emission


def test_no_reply_times_out_and_says_what_to_check():
    with expected_visa_protocol(ldc(), connect() + [(b"SOUR:CURR?\n", TIMEOUT)]) as laser:
        with pytest.raises(DeviceError, match=r"no reply to 'SOUR:CURR\?' from USB0.* within 0.25 s.*termination"):
            laser.power_setpoint()


def test_power_above_the_ceiling_never_reaches_the_controller():
    with expected_visa_protocol(ldc(max_power_w=1.0), connect()) as laser:
        assert laser.ceiling_w == pytest.approx(0.06)
        with pytest.raises(PowerCeilingError, match="device maximum = 60 mW"):
            laser.set_power(0.07)


@pytest.mark.parametrize("idn, expected, match", [
    ("Keysight Technologies,E36312A,MY1,2.1", "CLD", r"does not contain 'CLD'"),
    ("Thorlabs CLD1015", None, r"expected 'vendor,model,serial,firmware'"),
])
def test_an_unexpected_identity_is_refused_before_anything_is_changed(idn, expected, match):
    with pytest.raises(DeviceError, match=match):
        with expected_visa_protocol(ldc(expected_model=expected), [(b"*IDN?\n", idn)]):
            pass


def test_a_current_limit_at_or_below_threshold_is_refused():
    script = connect()[:2]
    script[1] = (b"SOUR:CURR:LIM?\n", "0.020000")
    with pytest.raises(DeviceError, match="not above the threshold"):
        with expected_visa_protocol(ldc(), script):
            pass


@pytest.mark.parametrize("slope, threshold", [(0.0, 0.0), (float("nan"), 0.0), (0.5, -0.01)])
def test_the_light_current_model_must_be_stated(slope, threshold):
    before = len(open_lasers())
    with pytest.raises(DeviceError, match="expected a finite number"):
        ldc(slope_w_per_a=slope, threshold_a=threshold)(lambda *a, **k: pytest.fail("opened"))
    assert len(open_lasers()) == before


def test_safe_off_and_reconnect_read_the_state_back():
    with expected_visa_protocol(ldc(), connect() + [
        (b"OUTP OFF\n", None), (b"SYST:ERR?\n", NO_ERROR), (b"OUTP?\n", "0"),
    ] + connect(output="1", current="0.090000") + connect(serial_changed=True)[:1]) as laser:
        laser.safe_off()
        assert laser.reconnect() == LaserReadback(emission=True, setpoint_w=pytest.approx(0.03), faults=())
        with pytest.raises(DeviceError, match="refusing to drive a different laser"):
            laser.reconnect()


# --- end to end: the real driver on the pyvisa-sim twin ---------------------------------
@pytest.fixture
def library(tmp_path):
    return ldc_visa_library(tmp_path)  # a fresh copy: pyvisa-sim keeps state per file


def open_ldc(library, **kwargs):
    return ScpiLaserDiodeController(LDC_RESOURCE, "ldc", 520.0, 0.05, timeout_s=0.2, slope_w_per_a=0.5,
                                    threshold_a=0.03, visa_library=library, **kwargs)


def plant(library, command):
    """Send a twin-only SIM:... command through a second session on the same simulated device."""
    import pyvisa
    session = pyvisa.ResourceManager(library).open_resource(LDC_RESOURCE, write_termination="\n",
                                                            read_termination="\n")
    session.write(command)
    session.close()  # (closing that ResourceManager would end the driver's session too)


def test_end_to_end_on_the_visa_twin(library):
    laser = open_ldc(library)
    assert laser.identity.model == "CLD1015"
    assert laser.set_power(0.02) == pytest.approx(0.02)
    assert laser.set_emission(True) is True
    plant(library, "SIM:POW2 0.0193")
    assert laser.measured_power() == pytest.approx(0.0193)
    laser.close()
    assert open_ldc(library).readback.emission is False  # close() left the controller's output off


def test_the_twin_reports_a_tripped_interlock(library):
    laser = open_ldc(library)
    plant(library, "SIM:INTL 1")
    assert laser.faults() == ["interlock tripped (OUTP:PROT:INTL:TRIP? = 1)"]


def test_reconnect_on_the_twin_reads_back_what_another_session_changed(library):
    laser = open_ldc(library)
    plant(library, "OUTP ON")
    plant(library, "SOUR:CURR 0.09")
    assert laser.reconnect() == LaserReadback(emission=True, setpoint_w=pytest.approx(0.03), faults=())
    laser.safe_off()
    assert laser.emission is False


def test_an_exception_in_use_still_leaves_the_output_verified_off(library):
    with pytest.raises(RuntimeError):
        with open_ldc(library) as laser:
            laser.set_emission(True)
            raise RuntimeError("run failed")
    assert open_ldc(library).readback.emission is False


def test_a_query_the_controller_does_not_know_times_out_with_a_hint(library):
    laser = open_ldc(library, power_query="MEAS:POW?")
    with pytest.raises(DeviceError, match=r"no reply to 'MEAS:POW\?'.*a command the controller does not know"):
        laser.measured_power()


def test_a_resource_that_does_not_exist_is_named():
    with pytest.raises(DeviceError, match=r"ldc: cannot open VISA resource 'ASRL/dev/optgen-no-such-port::INSTR' "
                                          r"\(library '@py'\)"):
        ScpiLaserDiodeController("ASRL/dev/optgen-no-such-port::INSTR", "ldc", 520.0, 0.05, slope_w_per_a=0.5)


def test_safe_off_on_a_vanished_controller_raises(library, mocker):
    laser = open_ldc(library)
    laser._close_transport()  # as if the USB cable were pulled, and it stays pulled
    mocker.patch.object(laser, "_open_transport", side_effect=DeviceError("ldc", "cannot open VISA resource"))
    with pytest.raises(LaserSafetyError, match="not open.*sent blind.*cannot open VISA resource"):
        laser.safe_off()


def test_safe_off_after_a_dropped_link_sends_off_blind_then_reconnects_and_verifies(library):
    laser = open_ldc(library)
    laser.set_power(0.01)
    laser.set_emission(True)
    laser._close_transport()  # the link dropped; the controller is still there and still emitting
    laser.safe_off()
    assert laser.emission is False and laser.verified_off
