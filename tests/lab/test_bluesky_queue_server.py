"""optgen behind bluesky-queueserver: a real Redis and a real RE Manager on 127.0.0.1 (``optgen
queue-server``), a generate plan submitted through the queue server's API, its frames bit for bit
those of ``Bench.generate`` on the twin, and the bench closed when the manager stops."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("bluesky_queueserver", reason="the bluesky extra is not installed (pip install -e '.[bluesky]')")
pytest.importorskip("ophyd_async", reason="the bluesky extra is not installed")
from tests.lab.queue_servers import REDIS, START_S, RedisServer, start_queue_server  # noqa: E402

pytestmark = pytest.mark.skipif(REDIS is None, reason="Debian's redis-server is not installed (.ci/run installs it)")

PLAN_S = 120.0


@pytest.fixture
def redis_port(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server.port
    server.stop()


@pytest.fixture
def small_bench_file(tmp_path) -> Path:
    from optgen.lab.bench.examples import small_bench_text

    path = tmp_path / "small-queue.toml"
    # the twin's laser power noise off: Bench.generate's own frames are reproducible only so (decision 0023)
    path.write_text(small_bench_text({("twin.laser", "power_noise_rms"): "0.0"}))
    return path


def test_a_generate_plan_through_the_queue_server_gives_the_frames_of_bench_generate(tmp_path, redis_port,
                                                                                   small_bench_file):
    from bluesky_queueserver_api import BPlan

    import optgen

    manager, api = start_queue_server(tmp_path, small_bench_file, redis_port)
    try:
        api.environment_open()
        api.wait_for_idle(timeout=START_S)
        assert api.status()["worker_environment_exists"]
        allowed = api.plans_allowed()["plans_allowed"]
        assert {"generate", "scan_exposure", "dark", "lut_sweep", "alignment"} <= set(allowed)
        assert not any(name.startswith("_") for name in allowed)
        assert "bench" in api.devices_allowed()["devices_allowed"]

        api.item_add(BPlan("generate", count=3, seed=1))
        api.queue_start()
        api.wait_for_idle(timeout=PLAN_S)
        result = api.history_get()["items"][-1]["result"]
        assert result["exit_status"] == "completed", result
        assert len(result["run_uids"]) == 1

        api.environment_close()
        api.wait_for_idle(timeout=START_S)
        assert api.send_request(method="manager_stop")["success"]
        assert manager.wait(30) == 0
    finally:
        if manager.poll() is None:
            manager.send_signal(signal.SIGINT)
            manager.wait(30)
        api.close()

    stacks = []
    for path in sorted((tmp_path / "frames").glob("*.h5")):
        with h5py.File(path, "r") as f:
            stacks += [d[...] for _, d in _datasets(f) if d.ndim == 3 and d.shape == (3, 256, 320)]
    assert len(stacks) == 1, f"expected one file of 3 frames, found {len(stacks)}"
    with optgen.open_bench(small_bench_file) as bench:
        run = bench.generate(3, seed=1, out=tmp_path / "reference")
        reference = np.stack([run.frame(i) for i in range(3)])
    assert np.array_equal(stacks[0], reference)


@pytest.mark.parametrize("trial", range(2))
def test_killing_the_queue_server_mid_plan_leaves_the_laser_off(tmp_path, redis_port, trial):
    """The manager and its worker killed (SIGKILL to the process group, as a service manager
    stops a unit) while a plan emits: the laser watchdog, a process of its own, turns the laser off."""
    import os
    import random

    from bluesky_queueserver_api import BPlan

    from optgen.lab.bench.examples import external_laser_bench_text
    from tests.safety.conftest import ExternalLaser

    laser = ExternalLaser("obis", tmp_path / "laser-state.json")
    manager = api = None
    try:
        bench_file = tmp_path / "external.toml"
        bench_file.write_text(external_laser_bench_text(laser.port))
        manager, api = start_queue_server(tmp_path, bench_file, redis_port, start_new_session=True)
        api.environment_open()
        api.wait_for_idle(timeout=START_S)
        api.item_add(BPlan("generate", count=400, seed=trial))
        api.queue_start()
        assert laser.wait_for(True, 60.0), "the laser never came on"
        time.sleep(random.Random(trial).uniform(0.0, 0.3))
        os.killpg(manager.pid, signal.SIGKILL)
        manager.wait(30)
        assert laser.wait_for(False, 10.0), "the laser stayed on after the queue server was killed"
    finally:
        if manager is not None and manager.poll() is None:
            os.killpg(manager.pid, signal.SIGKILL)
            manager.wait(30)
        if api is not None:
            api.close()
        laser.close()


def test_three_benches_queue_runs_into_one_tiled_server_and_every_frame_arrives_once(tmp_path, redis_port):
    """Issue 23, items 4 and 5: three twin benches, each its own RE Manager (one Redis, a prefix each),
    run generate(200) at once into one Tiled server; each run is found there with its 200 frames,
    equal to the frames its camera wrote, in order, each once, and every event row."""
    pytest.importorskip("tiled.server", reason="tiled[server] is not installed (the dev extra has it)")
    from bluesky_queueserver_api import BPlan

    from optgen.lab.bench.examples import small_bench_text
    from optgen.lab.bluesky.tiled_data import tiled_client
    from tests.lab.postgres_server import PostgresServer, postgres_bin
    from tests.lab.tiled_server import TiledServer, camera_frames

    count = 200
    if postgres_bin() is None:
        pytest.skip("Debian's postgresql is not installed (.ci/run installs it): the Tiled server's event tables "
                    "need it for three writers at once")
    database = PostgresServer().start()
    server = TiledServer(tmp_path / "tiled", readable=[tmp_path], tables=database.uri).start()
    benches = []
    try:
        for k in range(3):
            folder = tmp_path / f"bench{k}"
            folder.mkdir()
            bench_file = folder / "bench.toml"
            bench_file.write_text(small_bench_text({("bench", "name"): f'"twin bench {k}"'}))
            manager, api = start_queue_server(folder, bench_file, redis_port, "--redis-prefix", f"bench{k}",
                                              "--tiled-uri", server.uri, "--tiled-api-key", server.api_key)
            benches.append((folder, manager, api))
        for _, _, api in benches:
            api.environment_open()
        for _, _, api in benches:
            api.wait_for_idle(timeout=START_S)
            api.item_add(BPlan("generate", count=count, seed=3))
        for _, _, api in benches:
            api.queue_start()
        uids = []
        for _, _, api in benches:
            api.wait_for_idle(timeout=4 * PLAN_S)
            result = api.history_get()["items"][-1]["result"]
            assert result["exit_status"] == "completed", result
            uids += result["run_uids"]
        for _, _, api in benches:
            api.environment_close()           # the worker's Tiled writer sends what it holds as it ends
            api.wait_for_idle(timeout=START_S)
        client = tiled_client(server.uri, server.api_key)
        assert len(set(uids)) == 3
        for (folder, _, _), uid in zip(benches, uids):
            run = whole_run(client, uid, count)
            assert run.metadata["start"]["optgen"]["bench_name"] == f"twin bench {uids.index(uid)}"
            assert run.metadata["stop"]["exit_status"] == "success"
            # each event row once (a SQL table reads back in storage order, not seq_num order)
            assert sorted(run["primary"]["seq_num"].read()) == list(range(1, count + 1))
            frames = camera_frames(run)
            stacks = []
            for path in sorted((folder / "frames").glob("*.h5")):
                with h5py.File(path, "r") as f:
                    stacks += [d[...] for _, d in _datasets(f) if d.ndim == 3 and d.shape[0] == count]
            assert len(stacks) == 1 and np.array_equal(frames, stacks[0])
        assert sum(1 for _ in client) >= 3
    finally:
        for _, manager, api in benches:
            try:
                api.send_request(method="manager_stop")
                manager.wait(60)
            except Exception:
                manager.kill()
                manager.wait(30)
            api.close()
        server.stop()
        database.stop()


def whole_run(client, uid: str, rows: int, looks: int = 120):
    """The run ``uid`` once its stop document and ``rows`` event rows are in Tiled (at most ``looks`` looks,
    0.5 s apart): a worker sends what its writer still holds as it ends, which the manager's join (0.5 s)
    may not wait for."""
    for _ in range(looks):
        run = client[uid]
        if "stop" in run.metadata and len(run["primary"]["seq_num"].read()) >= rows:
            return run
        time.sleep(0.5)
    return client[uid]                   # the assertions that follow say what is missing


def _datasets(group, prefix=""):
    for name, item in group.items():
        if isinstance(item, h5py.Dataset):
            yield prefix + name, item
        else:
            yield from _datasets(item, prefix + name + "/")
