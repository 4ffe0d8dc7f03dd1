"""The laser watchdog: a process of its own that turns a laser off when the optgen process that
drives it dies or stalls without saying goodbye.

Started by :class:`optgen.drivers.watchdog.LaserWatchdog` as ``python <this file>``: it imports
nothing of optgen (it must start fast and depend on nothing that could be broken in the process it
watches), only the standard library and, when it has to act, pyserial or pyvisa.

Its standard input is a pipe from the optgen process: a first line with the laser's spec (JSON:
how to reach it and the bytes that turn emission off and ask for it), then one line per event:

- ``beat``: the optgen process is alive and its main thread makes progress;
- ``state on`` / ``state off``: emission asked on, or verified off;
- ``report {json}``: where to write what it did (a run folder or a calibration store);
- ``bye``: the laser was closed after a verified safe-off; the watchdog ends without acting.

The pipe closing without ``bye`` (the process died: SIGKILL, OOM killer, a crash), or no ``beat``
for ``heartbeat_s`` (stalled: SIGSTOP, a hung call), makes it act: open the link itself (a serial
port is opened without the exclusive lock the driver holds, so this works while a stalled process
still has it), send emission-off blind, then ask and verify, retrying for up to ``retry_s``. It
writes what it did into the run's log and summary (or the calibration store), on standard error,
and, for a process still alive, ``acted {json}`` on standard output. SIGINT and SIGTERM are
ignored (it runs in a session of its own, so a Ctrl-C or ``kill`` of the process group does not end
it before the laser is off).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

READY_LINE = "ready"


class SerialTransport:
    """The laser's serial port, opened without the exclusive lock."""

    def __init__(self, spec: dict):
        import serial  # pyserial

        self.spec = spec
        flow = spec.get("flow_control", "none")
        self.port = serial.serial_for_url(spec["port"], baudrate=int(spec["baudrate"]), bytesize=8, parity="N",
                                          stopbits=1, timeout=0.2, write_timeout=1.0, exclusive=False,
                                          rtscts=flow == "rtscts", dsrdtr=flow == "dsrdtr", xonxoff=flow == "xonxoff")
        self.term = spec["write_terminator"].encode("ascii")

    def send(self, command: str) -> None:
        self.port.write(command.encode("ascii") + self.term)
        self.port.flush()

    def lines(self, wait_s: float) -> list[str]:
        """Reply lines that arrive within ``wait_s``."""
        deadline = time.monotonic() + wait_s
        out, buf = [], b""
        while time.monotonic() < deadline:
            chunk = self.port.read(256)
            if chunk:
                buf += chunk
                *done, buf = buf.replace(b"\r", b"\n").split(b"\n")
                out += [d.decode("ascii", "replace").strip() for d in done if d.strip()]
                if any(emission_in(self.spec, line) is not None for line in out):
                    break
        return out

    def drain(self) -> None:
        self.port.reset_input_buffer()

    def close(self) -> None:
        self.port.close()


class VisaTransport:
    """A VISA instrument (possible once the optgen process has let go of it)."""

    def __init__(self, spec: dict):
        import pyvisa

        self.spec = spec
        self.rm = pyvisa.ResourceManager(spec.get("visa_library") or "@py")
        self.res = self.rm.open_resource(spec["resource"], read_termination=spec["read_terminator"],
                                         write_termination=spec["write_terminator"], timeout=500)

    def send(self, command: str) -> None:
        self.res.write(command)

    def lines(self, wait_s: float) -> list[str]:
        """Reply lines up to the first that answers the emission query (replies to the commands
        before it, an empty line, an acknowledgement, are read past), within ``wait_s``."""
        deadline = time.monotonic() + wait_s
        out: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = str(self.res.read()).strip()
            except Exception:  # noqa: BLE001 - a timeout: nothing more is coming
                break
            out.append(line)
            if emission_in(self.spec, line) is not None:
                break
        return out

    def drain(self) -> None:
        pass

    def close(self) -> None:
        try:
            self.res.close()
        finally:
            self.rm.close()


def _word(line: str) -> str:
    return line.strip().upper()


def emission_in(spec: dict, line: str) -> bool | None:
    """What one reply line says of the emission: True (on), False (off) or None (not an answer).

    The spec's optional ``reply_pattern`` (a regular expression with a ``value`` group) finds the
    value in the line; ``on_bit`` reads it as a hexadecimal status word with that bit meaning on;
    otherwise the value is compared with ``off_replies`` / ``on_replies`` (upper case).
    """
    value = line.strip().strip("\x00").strip()
    if spec.get("reply_pattern"):
        import re

        match = re.search(spec["reply_pattern"], value)
        if match is None:
            return None
        value = match.group("value").strip()
    if spec.get("on_bit") is not None:
        try:
            return bool(int(value, 16) >> int(spec["on_bit"]) & 1)
        except ValueError:
            return None
    word = _word(value)
    if word in spec["off_replies"]:
        return False
    if word in spec["on_replies"]:
        return True
    return None


def _open(spec: dict):
    return (VisaTransport if spec["transport"] == "visa" else SerialTransport)(spec)


def turn_off(spec: dict) -> tuple[bool, int, str]:
    """Send emission-off blind, then ask; retry for ``retry_s``. (verified, attempts, last error)."""
    deadline = time.monotonic() + float(spec.get("retry_s", 60.0))
    attempts, last_error, transport = 0, "", None
    while True:
        attempts += 1
        try:
            if transport is None:
                transport = _open(spec)
            for _ in range(2):                       # blind: the reply may never come
                transport.send(spec["off"])
                time.sleep(0.02)
            transport.drain()
            transport.send(spec["query"])
            replies = transport.lines(1.0)
            if any(emission_in(spec, r) is False for r in replies):
                return True, attempts, ""
            last_error = f"asked {spec['query']!r}, got {replies!r}"
        except Exception as exc:  # noqa: BLE001 - keep trying until the deadline
            last_error = f"{type(exc).__name__}: {exc}"
            if transport is not None:
                try:
                    transport.close()
                except Exception:  # noqa: BLE001
                    pass
                transport = None
        if time.monotonic() > deadline:
            if transport is not None:
                transport.close()
            return False, attempts, last_error
        time.sleep(0.2)


def _stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"


def write_reports(reports: list[dict], record: dict) -> None:
    """The run's log and summary (or the calibration store's watchdog log), and watchdog.json."""
    line = f"{_stamp()} CRITICAL watchdog: {record['message']}\n"
    for target in reports:
        try:
            folder = target["folder"]
            if not os.path.isdir(folder):
                continue
            log_name = "run.log" if target.get("kind") == "run" else "watchdog.log"
            with open(os.path.join(folder, log_name), "a", encoding="utf-8") as f:
                f.write(line)
            _write_json(os.path.join(folder, "watchdog.json"), record)
            if target.get("kind") == "run":
                _update_summary(os.path.join(folder, "summary.json"), record)
        except Exception as exc:  # noqa: BLE001 - one unwritable folder must not stop the others
            print(f"optgen laser watchdog: could not write the report into {target}: {exc}", file=sys.stderr)


def _update_summary(path: str, record: dict) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError):
        summary = {"status": "died", "stop_reason": record["message"]}
    summary["laser_verified_off"] = bool(record["verified_off"])
    summary["watchdog"] = record
    _write_json(path, summary)


def _write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def act(spec: dict, cause: str, emission: str, reports: list[dict]) -> dict:
    """Turn the laser off, verify, and say so everywhere."""
    t0 = time.time()
    verified, attempts, error = turn_off(spec)
    what = {"died": f"the optgen process (pid {spec['parent_pid']}) ended without saying goodbye (killed, "
                    f"crashed or out of memory)",
            "stalled": f"the optgen process (pid {spec['parent_pid']}) sent no heartbeat for "
                       f"{spec['heartbeat_s']:g} s (stalled)"}[cause]
    done = ("turned emission off and verified it off" if verified else
            f"could NOT verify emission off after {attempts} attempts ({error}): switch the laser off by hand")
    record = {"cause": cause, "laser": spec["laser"], "emission_last_reported": emission,
              "verified_off": verified, "attempts": attempts, "error": error, "acted_at_unix_s": t0,
              "took_s": round(time.time() - t0, 3), "message": f"{what}; the laser watchdog {done} "
                                                                f"({spec['laser']})"}
    if cause == "died" and emission == "off" and verified:
        return record                      # nothing to report: it was off, and still is
    print(f"optgen laser watchdog: {record['message']}", file=sys.stderr, flush=True)
    write_reports(reports, record)
    return record


def watch(spec: dict, fd: int) -> tuple[str, str, list[dict]]:
    """Read events until the process dies, stalls or says bye: (cause, last emission state, reports)."""
    heartbeat_s = float(spec["heartbeat_s"])
    last_beat = time.monotonic()
    emission, reports, buffer = "off", list(spec.get("reports", [])), b""
    while True:
        left = heartbeat_s - (time.monotonic() - last_beat)
        if left <= 0:
            return "stalled", emission, reports
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        data = os.read(fd, 4096)
        if not data:
            return "died", emission, reports
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if line == "beat":
                last_beat = time.monotonic()
            elif line == "bye":
                return "bye", emission, reports
            elif line.startswith("state "):
                emission = line.split(" ", 1)[1]
            elif line.startswith("report "):
                reports = json.loads(line.split(" ", 1)[1])


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd = sys.stdin.fileno()
    first = b""
    while not first.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            return 2
        first += chunk
    spec = json.loads(first.decode("utf-8"))
    try:                                     # what acting will need is importable now, not only when needed
        __import__("pyvisa" if spec["transport"] == "visa" else "serial")
    except ImportError as exc:
        print(f"error {exc}", flush=True)
        return 2
    print(READY_LINE, flush=True)
    cause, emission, reports = watch(spec, fd)
    if cause == "bye":
        return 0
    record = act(spec, cause, emission, reports)
    try:
        print("acted " + json.dumps(record), flush=True)
    except (BrokenPipeError, OSError):
        pass
    return 0 if record["verified_off"] else 3


if __name__ == "__main__":
    sys.exit(main())
