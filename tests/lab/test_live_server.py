"""The live view's web server: the token, the Host check, the routes and bad requests (a fake app),
and ``optgen live`` / ``optgen show`` end to end in a subprocess on the small twin."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from optgen.drivers.errors import OptgenError
from optgen.lab.live.server import LiveServer

SMALL_BENCH = "small-live.toml"


class FakeApp:
    def __init__(self):
        self.commands, self.touched = [], 0

    def describe(self):
        return {"mode": "fake"}

    def state(self):
        return {"laser": {"on": False}}

    def frame(self, query):
        if query.get("after") == "9":
            return None
        if query.get("after") == "bad":
            raise OptgenError("after = 'bad': expected a whole number >= 0")
        return 3, b"\xff\xd8jpeg"

    def image(self, query):
        return None

    def command(self, name, params):
        self.commands.append((name, params))
        return {"ok": name == "good", "message" if name == "good" else "error": name}

    def touch(self):
        self.touched += 1


@pytest.fixture
def served():
    app = FakeApp()
    with LiveServer(app, port=0) as server:
        yield app, server


def request(server, method, path, body=None, token=True, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Host": host or f"127.0.0.1:{server.port}"}
    if token:
        headers["X-Optgen-Token"] = server.token if token is True else token
    if body is not None:
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def test_the_page_is_served_without_a_token_and_reads_its_token_from_the_address(served):
    _, server = served
    status, headers, page = request(server, "GET", "/", token=False)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"X-Optgen-Token" in page and b'get("token")' in page
    assert server.url == f"http://127.0.0.1:{server.port}/?token={server.token}"


@pytest.mark.parametrize("token", [False, "wrong"])
def test_the_api_refuses_a_missing_or_wrong_token(served, token):
    app, server = served
    for method, path, body in (("GET", "/api/state", None), ("POST", "/api/command", {"name": "good"})):
        status, _, data = request(server, method, path, body, token=token)
        assert status == 403 and b"X-Optgen-Token" in data
    assert app.commands == [] and app.touched == 0


def test_a_request_naming_another_host_is_refused(served):
    app, server = served
    status, _, data = request(server, "POST", "/api/command", {"name": "good"}, host="evil.example:80")
    assert status == 403 and b"answers only as" in data and app.commands == []


def test_frames_come_with_their_number_and_no_content_when_nothing_newer(served):
    app, server = served
    status, headers, data = request(server, "GET", "/api/frame?after=0")
    assert status == 200 and headers["X-Frame-Seq"] == "3" and data == b"\xff\xd8jpeg"
    assert headers["Content-Type"] == "image/jpeg" and headers["Cache-Control"] == "no-store"
    assert request(server, "GET", "/api/frame?after=9")[0] == 204
    status, _, data = request(server, "GET", "/api/frame?after=bad")
    assert status == 400 and b"after = 'bad'" in data
    assert app.touched == 3


def test_commands_reach_the_app_and_bad_bodies_are_refused(served):
    app, server = served
    status, _, data = request(server, "POST", "/api/command", {"name": "good", "params": {"x": 1}})
    assert status == 200 and json.loads(data) == {"ok": True, "message": "good"}
    status, _, data = request(server, "POST", "/api/command", {"name": "bad"})
    assert status == 422 and json.loads(data)["error"] == "bad"
    assert app.commands == [("good", {"x": 1}), ("bad", {})]
    for body, words in ((b"{not json", b"not JSON"), ({"params": {}}, b'expected {'),
                        ({"name": "good", "params": [1]}, b'expected {')):
        status, _, data = request(server, "POST", "/api/command", body)
        assert status == 400 and words in data
    status, _, data = request(server, "POST", "/api/elsewhere", {"name": "good"})
    assert status == 404 and len(app.commands) == 2
    assert request(server, "GET", "/api/nothing")[0] == 404
    assert request(server, "GET", "/api/image?index=0")[0] == 404


def test_a_port_in_use_is_refused_naming_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(OptgenError, match=f"--port {port}: 127.0.0.1:{port} is already in use"):
            LiveServer(FakeApp(), port=port)


# --- the commands, end to end ---------------------------------------------------------------
def _start(args: list[str], cwd: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "optgen.lab.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()                     # the address comes first; readline ends with the process
    match = re.search(r"open (http://\S+)", line)
    if match is None:
        proc.kill()
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"no address printed: {line!r} {out!r} {err!r}")
    return proc, match.group(1)


class Client:
    def __init__(self, url: str):
        m = re.match(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", url)
        self.port, self.token = int(m.group(1)), m.group(2)

    def call(self, method: str, path: str, body: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers={"X-Optgen-Token": self.token})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data


@pytest.fixture
def small_bench_file(tmp_path) -> Path:
    from optgen.lab.bench.examples import small_bench_text

    path = tmp_path / SMALL_BENCH
    path.write_text(small_bench_text())
    return path


def test_optgen_live_serves_the_camera_takes_commands_and_closes_with_the_laser_off(tmp_path, small_bench_file):
    proc, url = _start(["live", "--bench", str(small_bench_file), "--port", "0"], tmp_path)
    try:
        client = Client(url)
        status, data = client.call("POST", "/api/command", {"name": "laser", "params": {"on": True}})
        assert status == 200 and json.loads(data)["ok"]
        status, data = client.call("GET", "/api/frame?after=0")
        assert status == 200 and data[:2] == b"\xff\xd8"
        state = json.loads(client.call("GET", "/api/state")[1])
        assert state["laser"]["on"] is True and state["captured"] >= 1
        status, data = client.call("POST", "/api/command", {"name": "power", "params": {"mw": 50}})
        assert status == 422 and b"above the ceiling" in data
        assert client.call("POST", "/api/command", {"name": "quit", "params": {}})[0] == 200
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "the laser is off" in out and "Traceback" not in err


@pytest.mark.parametrize("sig, code, words", [(signal.SIGINT, 0, "the laser is off"),
                                             (signal.SIGTERM, 143, "the laser is off")])
def test_optgen_live_ends_on_a_signal_with_the_laser_off(tmp_path, small_bench_file, sig, code, words):
    proc, url = _start(["live", "--bench", str(small_bench_file), "--port", "0"], tmp_path)
    try:
        client = Client(url)
        assert client.call("POST", "/api/command", {"name": "laser", "params": {"on": True}})[0] == 200
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert words in out + err and "Traceback" not in err


def test_optgen_show_serves_a_runs_frames_and_images(tmp_path, small_bench_file):
    import optgen

    with optgen.open_bench(small_bench_file) as bench:
        bench.generate(3, out=tmp_path / "run3")
    proc, url = _start(["show", str(tmp_path / "run3"), "--port", "0"], tmp_path)
    try:
        client = Client(url)
        described = json.loads(client.call("GET", "/api/describe")[1])
        assert described["mode"] == "show" and described["frames"] == [0, 1, 2]
        assert described["sensor"]["saturation_dn"] < 4095       # the twin's full well, as the run recorded it
        assert described["status"] == "complete: 3 of 3 frames stored"
        status, data = client.call("GET", "/api/frame?index=2")
        assert status == 200 and data[:2] == b"\xff\xd8"
        status, data = client.call("GET", "/api/image?index=1")
        assert status == 200 and data[:4] == b"\x89PNG"
        status, data = client.call("GET", "/api/frame?index=7")
        assert status == 400 and b"frame 7 is not stored" in data
        stats = json.loads(client.call("POST", "/api/command", {"name": "stats", "params": {"index": 0}})[1])
        assert stats["frame"]["width"] == 320
        status, data = client.call("POST", "/api/command", {"name": "laser", "params": {"on": True}})
        assert status == 422 and b"only browses a run" in data
        assert client.call("POST", "/api/command", {"name": "quit", "params": {}})[0] == 200
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


def test_optgen_show_refuses_a_folder_without_a_run(tmp_path):
    result = subprocess.run([sys.executable, "-m", "optgen.lab.cli", "show", str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "no run.h5 here" in result.stderr and "Traceback" not in result.stderr


def test_optgen_live_on_a_port_in_use_says_so_in_one_line_and_leaves_the_laser_off(small_bench_file, capsys):
    from optgen.drivers.laser import all_lasers_safe
    from optgen.lab.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["live", "--bench", str(small_bench_file), "--port", str(port), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"--port {port}" in err and "already in use" in err and "Traceback" not in err
    assert all_lasers_safe()
