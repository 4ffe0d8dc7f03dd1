"""``optgen queue-server``: bluesky-queueserver's RE Manager with optgen's bench and plans (extra ``bluesky``)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from optgen.drivers.errors import OptgenError
from optgen.lab.cli.live import port_number

__all__ = ["add_queue_server_parser", "cmd_queue_server"]

STOP_WAIT_S = 30.0


def add_queue_server_parser(sub) -> None:
    qs = sub.add_parser(
        "queue-server", help="serve the bench's bluesky plans through a queue (bluesky-queueserver; extra bluesky)",
        description="Start bluesky-queueserver's RE Manager whose worker opens the bench and offers the plans "
                    "generate(count, seed), scan_exposure(exposures_ms), dark(), lut_sweep(slm) and alignment() and the "
                    "device 'bench'. Clients "
                    "(qserver, bluesky-queueserver-api, bluesky-widgets) open the environment, queue plans and "
                    "start the queue. The queue lives in Redis (redis-server must run). With --tiled-uri (or "
                    "$OPTGEN_TILED_URI) every run is also written into that Tiled server. Ctrl-C stops the manager: the worker closes the "
                    "bench, the laser off.")
    qs.add_argument("--bench", type=Path, default=None, help="bench file (default: the simulated bench)")
    qs.add_argument("--calibrations", type=Path, default=None,
                    help="calibration store (default: the bench file's [calibration] store)")
    qs.add_argument("--frames-dir", type=Path, default=Path("bluesky-frames"),
                    help="where the camera writes its HDF5 frame files (default ./bluesky-frames)")
    qs.add_argument("--redis", default="localhost:6379", help="Redis address HOST:PORT (default localhost:6379)")
    qs.add_argument("--redis-prefix", default="qs_default",
                    help="the names this queue server keeps in Redis start with this (one per bench sharing a "
                         "Redis; default qs_default)")
    qs.add_argument("--control-port", type=port_number, default=60615,
                    help="ZeroMQ control port on 127.0.0.1 (default 60615, the queue server's own)")
    qs.add_argument("--info-port", type=port_number, default=60625,
                    help="ZeroMQ console publishing port on 127.0.0.1 (default 60625)")
    qs.add_argument("--state-dir", type=Path, default=Path("queue-server"),
                    help="the manager's list of plans and devices (default ./queue-server)")
    qs.add_argument("--tiled-uri", default=None,
                    help="write every run into this Tiled server too (default: $OPTGEN_TILED_URI, else none)")
    qs.add_argument("--tiled-api-key", default=None, help="the Tiled server's API key (default: $TILED_API_KEY)")
    qs.set_defaults(func=cmd_queue_server)


def cmd_queue_server(args: argparse.Namespace) -> int:
    from optgen.lab.bench.parse import load_bench
    from optgen.lab.bluesky.queue_server import QueueServerSettings, manager_command, manager_environment
    from optgen.lab.cli.checks import check_file_to_read

    if args.bench is not None:
        check_file_to_read(args.bench, "--bench")
    load_bench(args.bench)                       # a bad bench file is refused here, not in the worker
    if args.control_port == args.info_port:
        raise OptgenError(f"--control-port and --info-port are both {args.control_port}; give two ports")
    if args.tiled_uri is not None:
        from optgen.lab.bluesky.tiled_data import tiled_client

        if not args.tiled_uri.startswith(("http://", "https://")):
            raise OptgenError(f"--tiled-uri {args.tiled_uri!r}: expected an http:// or https:// address")
        args.tiled_api_key = args.tiled_api_key or os.environ.get("TILED_API_KEY") or None
        tiled_client(args.tiled_uri, args.tiled_api_key)       # a wrong key or no server: refused here
    if ":" not in args.redis:
        raise OptgenError(f"--redis {args.redis!r}: expected HOST:PORT (e.g. localhost:6379)")
    settings = QueueServerSettings(bench=args.bench, calibrations=args.calibrations, frames_dir=args.frames_dir,
                                   redis=args.redis, redis_prefix=args.redis_prefix,
                                   control_port=args.control_port, info_port=args.info_port,
                                   state_dir=args.state_dir, tiled_uri=args.tiled_uri,
                                   tiled_api_key=args.tiled_api_key)
    command = manager_command(settings)
    print(f"queue server: control {settings.control_address}, Redis {settings.redis}; Ctrl-C stops it",
          flush=True)
    manager = subprocess.Popen(command, env=manager_environment(settings))
    try:
        return manager.wait()
    except KeyboardInterrupt:
        manager.send_signal(signal.SIGINT)
        try:
            manager.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            manager.kill()
            manager.wait(STOP_WAIT_S)
        print("optgen queue-server: stopped; the worker closed the bench", file=sys.stderr)
        return 130
