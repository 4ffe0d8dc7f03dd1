"""optgen's bluesky runs into a real Tiled server (`tiled serve` on 127.0.0.1 with an API key):
the start document carries the bench, the frames read through Tiled are the frames the camera wrote,
a wrong key is refused before any light, a server that goes away mid-run loses no frame."""
# ruff: noqa: F811 - the fixtures RE, docs and twin come from tests.lab.bluesky_twin

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bluesky", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")
pytest.importorskip("ophyd_async", reason="the extra 'bluesky' is not installed (pip install -e '.[bluesky]')")
pytest.importorskip("tiled.client", reason="tiled is not installed (pip install 'tiled[server,client]>=0.2')")
pytest.importorskip("tiled.server", reason="the Tiled server is not installed (pip install 'tiled[server,client]>=0.2')")

import tiled.client.utils  # noqa: E402

from optgen.drivers.errors import OptgenError  # noqa: E402
from optgen.lab.bluesky import plans  # noqa: E402
from optgen.lab.bluesky.tiled_data import (  # noqa: E402
    TiledRefused,
    TiledRuns,
    TiledUnreachable,
    send_documents,
    send_runs_to_tiled,
    send_runs_to_tiled_from_environment,
    tiled_client,
    tiled_writer_class,
)
from tests.lab.bluesky_twin import RE, Documents, docs, twin  # noqa: E402,F401
from tests.lab.tiled_server import TiledServer, camera_frames, free_port  # noqa: E402


@pytest.fixture(scope="module")
def tiled_server(tmp_path_factory):
    """One server for the module; it may read every test's folder (the camera's frame files)."""
    base = tmp_path_factory.getbasetemp()
    server = TiledServer(tmp_path_factory.mktemp("tiled"), readable=[base]).start()
    yield server
    server.stop()


@pytest.fixture
def bounded_retries(monkeypatch):
    """The Tiled client retries a refused connection for up to 45 s per request; 2 s here."""
    monkeypatch.setattr(tiled.client.utils, "TILED_RETRY_TIMEOUT", 2.0)
    monkeypatch.setattr(tiled.client.utils, "TILED_RETRY_ATTEMPTS", 3)


def test_a_generate_run_reaches_tiled_with_the_bench_and_the_frames_bit_for_bit(RE, twin, docs, tiled_server,
                                                                              caplog):
    bench, devices = twin
    client = tiled_client(tiled_server.uri, tiled_server.api_key)
    link = send_runs_to_tiled(RE, devices, client, documents_dir="documents")
    try:
        with caplog.at_level(logging.WARNING):
            RE(plans.generate(devices, 4, seed=3))
    finally:
        link.detach()
    # the writer has nothing to warn about (a list-valued reading, [] when no fault, made it warn each batch)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("bluesky_tiled_plugins")] == []
    assert docs.exit_status() == "success"
    uid = docs.of("start")[0]["uid"]
    run = client[uid]                                         # a fresh read, through the server
    start = run.metadata["start"]
    assert start["optgen"]["bench_file"] == bench.config.text
    ids = bench.devices.calibration_ids()
    assert ids and {k.replace(".", ":"): v for k, v in ids.items()} == start["optgen"]["calibrations"]
    assert start["optgen"]["devices"]["camera"]["resolution"] == [320, 256]
    assert run.metadata["stop"]["exit_status"] == "success"

    written = docs.frames()                                   # what the camera wrote to its HDF5 file
    through_tiled = camera_frames(run)
    assert written.shape[0] == 4 and written.std() > 0
    assert through_tiled.dtype == written.dtype and np.array_equal(through_tiled, written)
    assert np.array_equal(camera_frames(run, "dark"), docs.frames("dark"))
    assert list(run["primary"]["seq_num"].read()) == [1, 2, 3, 4]
    assert list(run["primary"]["bench-laser-faults"].read()) == [""] * 4     # text: no fault at any frame
    assert "notes" not in run.metadata or not run.metadata["notes"]

    delivery = link.deliveries[uid]
    assert delivery.complete and delivery.frames == delivery.frames_sent == 5      # 4 lit + 1 dark
    assert "5 of 5 frames in Tiled" in delivery.summary()
    assert [name for name, _ in docs.all] == [line.split('"')[1] for line in
                                              delivery.documents_file.read_text().splitlines()]


def test_a_plan_without_the_bench_facts_gets_them(RE, twin, docs, tiled_server):
    """bluesky's own count plan over the camera: its start document gets the bench file too."""
    import bluesky.plans as bp

    bench, devices = twin
    client = tiled_client(tiled_server.uri, tiled_server.api_key)
    link = send_runs_to_tiled(RE, devices, client, documents_dir=None)
    try:
        RE(bp.count([devices.camera], 2))
    finally:
        link.detach()
    run = client[docs.of("start")[0]["uid"]]
    assert run.metadata["start"]["plan_name"] == "count"
    assert run.metadata["start"]["optgen"]["bench_file"] == bench.config.text
    assert np.array_equal(camera_frames(run), docs.frames())
    assert link.last.complete and link.last.documents_file is None


def test_the_environment_points_optgen_at_its_server(RE, twin, docs, tiled_server, monkeypatch):
    bench, devices = twin
    monkeypatch.delenv("OPTGEN_TILED_URI", raising=False)
    assert send_runs_to_tiled_from_environment(RE, devices) is None
    monkeypatch.setenv("OPTGEN_TILED_URI", tiled_server.uri)
    monkeypatch.setenv("TILED_API_KEY", "wrongkey0")
    with pytest.raises(TiledRefused, match="refused the API key"):
        send_runs_to_tiled_from_environment(RE, devices)
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    monkeypatch.setenv("OPTGEN_TILED_DOCUMENTS", "kept")
    link = send_runs_to_tiled_from_environment(RE, devices)
    try:
        RE(plans.generate(devices, 2, seed=0))
    finally:
        link.detach()
    uid = docs.of("start")[0]["uid"]
    assert link.last.complete and link.last.documents_file == Path("kept").resolve() / f"{uid}.jsonl"
    client = tiled_client(tiled_server.uri, tiled_server.api_key)
    assert np.array_equal(camera_frames(client[uid]), docs.frames())


def test_the_plan_never_waits_for_the_server(RE, twin, docs, tiled_server, monkeypatch):
    """The writer runs on its own thread: the run ends while the server has not taken its start yet."""
    TiledWriter = tiled_writer_class()

    bench, devices = twin
    gate, released = threading.Event(), []
    write = TiledWriter.__call__

    def held_back(self, name, doc):
        if name == "start":
            released.append(gate.wait(20))            # bounded: a writer on the RunEngine's thread waits here
        return write(self, name, doc)

    monkeypatch.setattr(TiledWriter, "__call__", held_back)
    client = tiled_client(tiled_server.uri, tiled_server.api_key)
    link = send_runs_to_tiled(RE, devices, client, documents_dir=None)
    try:
        RE(plans.generate(devices, 3, seed=0))
        assert docs.exit_status() == "success" and link.last.frames == 4 and not link.last.ended
        gate.set()
    finally:
        gate.set()
        assert link.detach(60)
    assert released == [True] and link.last.complete and link.last.frames_sent == 4
    assert np.array_equal(camera_frames(client[docs.of("start")[0]["uid"]]), docs.frames())


def test_a_server_that_falls_too_far_behind_gets_no_more_of_the_run(RE, twin, docs, tiled_server, tmp_path,
                                                                   monkeypatch, caplog):
    """A hung server holds the writer at the run's start document: past ``max_backlog`` documents
    waiting, the run stops queuing them (memory stays bounded), goes on to the end, keeps every
    document on local disk, and its delivery says what did not reach the server."""
    TiledWriter = tiled_writer_class()

    bench, devices = twin
    gate, released = threading.Event(), []
    write = TiledWriter.__call__

    def hung(self, name, doc):
        if name == "start":
            released.append(gate.wait(30))
        return write(self, name, doc)

    monkeypatch.setattr(TiledWriter, "__call__", hung)
    client = tiled_client(tiled_server.uri, tiled_server.api_key)
    link = send_runs_to_tiled(RE, devices, client, documents_dir=tmp_path / "documents", max_backlog=8)
    try:
        with caplog.at_level(logging.WARNING, logger="optgen.bluesky"):
            RE(plans.generate(devices, 12, seed=1))
        delivery = link.last
        assert docs.exit_status() == "success" and len(docs.frames()) == 12
        assert "fell 8 documents behind" in delivery.error and delivery.frames == 13 and not delivery.ended
        assert link._unfinished <= 9                      # 8 waiting + the stop document
        assert any("fell 8 documents behind" in r.getMessage() for r in caplog.records)
        kept = (tmp_path / "documents" / f"{delivery.run_uid}.jsonl").read_text().splitlines()
        assert len(kept) == len(docs.all)                 # every document on local disk
    finally:
        gate.set()
        assert link.detach(60)
    assert released == [True] and link.last.ended and not link.last.complete
    assert link.last.frames_sent < link.last.frames
    assert "did not reach the Tiled server" in link.last.summary() and "send_documents" in link.last.summary()
    with pytest.raises(OptgenError, match="max_backlog = 0"):
        TiledRuns(client, max_backlog=0)


def test_a_wrong_api_key_is_refused_before_any_light(RE, twin, docs, tiled_server):
    bench, devices = twin
    with pytest.raises(TiledRefused, match="refused the API key.*TILED_API_KEY"):
        tiled_client(tiled_server.uri, "wrongkey0")
    with pytest.raises(TiledRefused, match="refused the API key"):
        send_runs_to_tiled(RE, devices, uri=tiled_server.uri, api_key="wrongkey0")
    with pytest.raises(TiledUnreachable, match="no Tiled server answers"):
        tiled_client(f"http://127.0.0.1:{free_port()}", tiled_server.api_key, timeout_s=5)

    # a key that was good when subscribed and is not any more (revoked, changed): the check before
    # the plan refuses it, before the plan's first message
    client = tiled_client(tiled_server.uri, tiled_server.api_key)
    link = send_runs_to_tiled(RE, devices, client)
    lit: list[bool] = []
    bench.devices.laser.observers.append(lambda emission=None, setpoint_w=None: emission and lit.append(emission))
    client.context.api_key = "wrongkey0"
    try:
        with pytest.raises(TiledRefused, match="refused the API key"):
            RE(plans.generate(devices, 2, seed=0))
    finally:
        link.detach()
    assert docs.all == [] and lit == [] and link.deliveries == {}
    assert bench.devices.laser.emission is False


@pytest.mark.parametrize("batch_size, sent", [(1, 3), (2, 2)])
def test_a_server_that_goes_away_mid_run_loses_no_frame(RE, twin, docs, tmp_path, bounded_retries, caplog,
                                                        batch_size, sent):
    """The run goes on (its frames stay on disk), the operator is told what did not reach the server,
    and the kept documents send the whole run once the server is back. With batches of 2 frames,
    only the first batch of the primary stream reached it (the dark frame's batch waits for the end)."""
    bench, devices = twin
    server = TiledServer(tmp_path / "tiled", readable=[tmp_path]).start()
    try:
        client = tiled_client(server.uri, server.api_key)
        link = TiledRuns(client, uri=server.uri, devices=devices, documents_dir="documents",
                         batch_size=batch_size).attach(RE)
        seen = Documents()

        def stop_server_after_two_frames(name, doc):
            seen(name, doc)
            if name == "stream_datum" and len(seen.of("stream_datum")) == 3:      # the dark frame, then two lit
                assert link.wait(30)                          # the writer thread has written what it had
                server.stop()

        token = RE.subscribe(stop_server_after_two_frames)     # after the link: frame 3 went to the writer first
        try:
            with caplog.at_level(logging.WARNING, logger="optgen.bluesky"):
                RE(plans.generate(devices, 6, seed=1))
        finally:
            RE.unsubscribe(token)
            link.detach()

        assert docs.exit_status() == "success"                # the run was not aborted for the server
        written = docs.frames()
        assert written.shape[0] == 6 and written.std() > 0    # every frame on local disk
        delivery = link.last
        assert not delivery.complete and delivery.ended
        assert delivery.frames == 7 and delivery.frames_sent == sent and delivery.failed_at != "start"
        summary = delivery.summary()
        assert f"{7 - sent} of 7 frames did not reach the Tiled server" in summary
        assert all(path in summary for path in delivery.frame_files) and delivery.frame_files
        assert str(delivery.documents_file) in summary and delivery.documents_file.exists()
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "did not reach" in errors[0].getMessage()
        assert bench.devices.laser.emission is False

        # the server is back (same catalog): the kept documents send the whole run, replacing its part
        server.start()
        client = tiled_client(server.uri, server.api_key)
        uid = docs.of("start")[0]["uid"]
        assert uid in client                                  # the part that reached it before
        resent = send_documents(delivery.documents_file, client)
        assert resent.complete and resent.frames_sent == 7
        assert np.array_equal(camera_frames(client[uid]), written)
        assert all(Path(path).exists() for path in delivery.frame_files)     # registered, never deleted
        assert list(client[uid]["primary"]["seq_num"].read()) == [1, 2, 3, 4, 5, 6]
        assert client[uid].metadata["start"]["optgen"]["bench_file"] == bench.config.text
    finally:
        server.stop()


ENDS_WHILE_WRITING = '''
import multiprocessing, sys, time
from pathlib import Path


def run_and_end(uri, key, folder):
    """Send a run to Tiled whose stop document the writer is slow to take, and end the process at once."""
    from bluesky import RunEngine

    import optgen
    import optgen.bluesky
    from optgen.lab.bench.examples import small_bench_text
    from optgen.lab.bench.parse import parse_bench
    from optgen.lab.bluesky import plans
    from optgen.lab.bluesky.tiled_data import send_runs_to_tiled, tiled_writer_class

    writer = tiled_writer_class()
    write = writer.__call__

    def slow_at_stop(self, name, doc):
        if name == "stop":
            time.sleep(1.5)
        return write(self, name, doc)

    writer.__call__ = slow_at_stop
    RE = RunEngine({})
    bench = optgen.open_bench(parse_bench(small_bench_text(), "x.toml"))
    devices = optgen.bluesky.devices(bench, Path(folder) / "frames")
    send_runs_to_tiled(RE, devices, uri=uri, api_key=key, documents_dir=None)
    (uid,) = RE(plans.generate(devices, 3, seed=0))
    print("uid", uid, flush=True)                      # no detach, no close: the process ends here


if __name__ == "__main__":
    mode, uri, key, folder = sys.argv[1:]
    if mode == "script":
        run_and_end(uri, key, folder)
    else:                                              # a forked worker, as a queue server's RE worker is
        worker = multiprocessing.get_context("fork").Process(target=run_and_end, args=(uri, key, folder))
        worker.start()
        worker.join(120)
        sys.exit(worker.exitcode)
'''


@pytest.mark.parametrize("mode", ["script", "forked worker"])
def test_a_process_that_ends_after_its_run_sends_what_the_writer_still_holds(tiled_server, tmp_path, mode):
    """A script that ends right after ``RE(...)``, or a forked worker that ends (os._exit: no atexit there),
    while the writer still holds the run's stop document: the run reaches the server whole."""
    import subprocess
    import sys

    script = tmp_path / "ends_while_writing.py"
    script.write_text(ENDS_WHILE_WRITING)
    done = subprocess.run([sys.executable, str(script), mode.split()[0], tiled_server.uri, tiled_server.api_key,
                           str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    (uid,) = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("uid ")]
    run = tiled_client(tiled_server.uri, tiled_server.api_key)[uid]
    assert run.metadata["stop"]["exit_status"] == "success"
    assert camera_frames(run).shape[0] == 3 and list(run["primary"]["seq_num"].read()) == [1, 2, 3]
