"""The shared serial link: finite timeouts with a useful message, refusals, garbage, missing ports."""

from __future__ import annotations

import pytest

from optgen.drivers.errors import DeviceError, LinkLost
from optgen.drivers.lasers._serial_link import DeviceRefused, LinkTimeout, SerialLink
from optgen.simulators.protocol import CoboltTwin

from .protocol import ExpectedSerialPort


def link(port: ExpectedSerialPort, **kwargs) -> SerialLink:
    options = dict(device="laser", baudrate=115200, write_terminator=b"\r", timeout_s=0.1, opener=port)
    options.update(kwargs)
    serial_link = SerialLink("/dev/ttyFAKE0", **options)
    serial_link.open()
    return serial_link


def test_exchange_writes_the_command_with_its_terminator_and_strips_the_reply():
    port = ExpectedSerialPort([(b"l?\r", b"1\r\n"), (b"sn?\r", b"21345\n")])
    serial_link = link(port)
    assert serial_link.exchange("l?", 1) == ["1"]
    assert serial_link.exchange("sn?", 1) == ["21345"]  # LF-only line ends are accepted too
    port.assert_done()


def test_no_reply_is_a_timeout_naming_port_command_baud_rate_and_terminator():
    serial_link = link(ExpectedSerialPort([(b"l?\r", None)]))
    with pytest.raises(LinkTimeout) as info:
        serial_link.exchange("l?", 1)
    message = str(info.value)
    for words in ("/dev/ttyFAKE0", "'l?'", "0.1 s", "baud rate", "115200", "terminator", "b'\\r'", "wrong port"):
        assert words in message
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, LinkLost)   # a run reconnects once


def test_a_partial_line_is_a_timeout_that_shows_what_arrived():
    serial_link = link(ExpectedSerialPort([(b"p?\r", b"0.05")]))
    with pytest.raises(LinkTimeout, match=r"received only b'0.05'"):
        serial_link.exchange("p?", 1)


def test_every_read_is_finite_on_a_real_port():
    with CoboltTwin() as twin:
        twin.inject("no_reply")
        serial_link = SerialLink(twin.port, device="laser", baudrate=115200, write_terminator=b"\r",
                                 timeout_s=0.1)
        serial_link.open()
        with pytest.raises(LinkTimeout, match="within 0.1 s"):
            serial_link.exchange("l?", 1)
        assert serial_link.exchange("l?", 1) == ["0"]  # the link still works afterwards
        serial_link.close()


def test_an_error_reply_raises_naming_the_command_and_the_device_error():
    serial_link = link(ExpectedSerialPort([(b"bogus\r", b"Syntax error: illegal command\r\n")]))
    with pytest.raises(DeviceRefused, match=r"refused 'bogus': it answered 'Syntax error: illegal command'") as info:
        serial_link.exchange("bogus", 1, is_error=lambda line: line.startswith("Syntax error"))
    assert info.value.command == "bogus" and info.value.reply == "Syntax error: illegal command"


def test_bytes_that_are_not_text_are_reported_as_garbled():
    serial_link = link(ExpectedSerialPort([(b"l?\r", b"\xf3\x9c\xff\r\n")]))
    with pytest.raises(DeviceError, match=r"garbled reply to 'l\?'.*baud rate"):
        serial_link.exchange("l?", 1)


def test_stale_input_is_discarded_before_each_command():
    port = ExpectedSerialPort([(b"l?\r", b"1\r\nOK\r\n"), (b"p?\r", b"0.0500\r\n")])
    serial_link = link(port)
    assert serial_link.exchange("l?", 1) == ["1"]  # the stray 'OK' is left behind...
    assert serial_link.exchange("p?", 1) == ["0.0500"]  # ...and dropped, not read as the next reply


def test_a_dropped_link_says_so_and_points_to_reconnect():
    serial_link = link(ExpectedSerialPort([(b"l?\r", OSError(5, "Input/output error"))]))
    with pytest.raises(LinkLost, match=r"serial link on /dev/ttyFAKE0 failed while sending 'l\?'.*reconnect"):
        serial_link.exchange("l?", 1)


def test_a_port_that_does_not_exist_is_named():
    serial_link = SerialLink("/dev/optgen-no-such-port", device="laser", baudrate=115200,
                             write_terminator=b"\r", timeout_s=0.1)
    with pytest.raises(DeviceError, match=r"laser: cannot open serial port '/dev/optgen-no-such-port'"):
        serial_link.open()
    assert not serial_link.is_open


@pytest.mark.parametrize("timeout_s", [0, -1, float("inf"), float("nan")])
def test_the_timeout_must_be_finite_and_positive(timeout_s):
    with pytest.raises(DeviceError, match="expected a finite number > 0"):
        SerialLink("/dev/ttyFAKE0", device="laser", baudrate=115200, write_terminator=b"\r", timeout_s=timeout_s)


def test_a_closed_link_refuses_to_send():
    serial_link = link(ExpectedSerialPort([]))
    serial_link.close()
    serial_link.close()  # twice is fine
    with pytest.raises(DeviceError, match="not open"):
        serial_link.exchange("l?", 1)
