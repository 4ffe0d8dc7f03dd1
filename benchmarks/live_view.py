"""The live view keeps up with the twin's camera at 1280 x 1024 (issue 22, item 2).

Three figures from one run on the embedded twin (1280 x 1024 sensor, 12 bits) on the wall clock,
laser on, a lens on SLM1 so part of the frame saturates:

1. the baseline: the twin's camera alone, frames captured per second with nothing else running;
2. the view's own cost: rendering one frame for the page (JPEG, histogram, saturated cells) per second;
3. end to end: ``optgen live``'s session, renderer and web server in this process, and a client in
   another process that asks for frames as the page does (``GET /api/frame?after=N``): frames
   captured per second, frames received by the client per second, and the share of the captured
   frames the client received.

The figure: frames received >= 20 per second, and the ratio received / camera alone.

Usage:  python benchmarks/live_view.py [--seconds S]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import subprocess
import sys
import time

import numpy as np

from optgen.lab.bench.parse import default_bench_text, parse_bench


def client(port: int, token: str, seconds: float) -> None:
    """The page's frame loop, in its own process: prints the frames received and their numbers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    got, seqs, last = 0, [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        conn.request("GET", f"/api/frame?after={last}", headers={"X-Optgen-Token": token})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status == 200 and body[:2] == b"\xff\xd8":
            last = int(resp.getheader("X-Frame-Seq"))
            seqs.append(last)
            got += 1
    print(json.dumps({"received": got, "first": seqs[0] if seqs else 0, "last": seqs[-1] if seqs else 0}))


def open_twin():
    from optgen import open_bench
    from optgen.lab.run.sources import RunSources

    cfg = parse_bench(default_bench_text(), "live-benchmark.toml")
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, timing="wall"))
    return cfg, open_bench(cfg), RunSources(cfg)


def camera_alone(seconds: float) -> tuple[float, np.ndarray]:
    from optgen.lab.live.session import LiveSession

    cfg, bench, sources = open_twin()
    with bench:
        session = LiveSession(bench, sources)
        session._do("laser", {"on": True})
        session._do("pattern", {"slm": "encoding_slm", "kind": "lens", "focal_mm": 400})
        camera = bench.devices.camera
        for _ in range(3):
            camera.capture()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            frame = camera.capture()
            n += 1
        rate = n / (time.perf_counter() - t0)
        session.close()
    return rate, frame


def render_rate(frame: np.ndarray, seconds: float) -> float:
    from optgen.lab.live.picture import render_frame

    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        render_frame(frame, n, bitdepth=12, saturation_dn=3774)
        n += 1
    return n / (time.perf_counter() - t0)


def end_to_end(seconds: float) -> dict:
    from optgen.lab.live.apps import LiveSessionApp
    from optgen.lab.live.renderer import FrameRenderer
    from optgen.lab.live.server import LiveServer
    from optgen.lab.live.session import LiveSession

    cfg, bench, sources = open_twin()
    with bench:
        session = LiveSession(bench, sources)
        renderer = FrameRenderer(session.frames, bitdepth=12, saturation_dn=session.saturation_dn).start()
        try:
            with LiveServer(LiveSessionApp(session, renderer), port=0) as server:
                session._do("laser", {"on": True})
                session._do("pattern", {"slm": "encoding_slm", "kind": "lens", "focal_mm": 400})
                for _ in range(3):
                    session.step()
                proc = subprocess.Popen([sys.executable, __file__, "--client", str(server.port), server.token,
                                         str(seconds)], stdout=subprocess.PIPE, text=True)
                start_seq, t0 = session.frames.seq, time.perf_counter()
                while proc.poll() is None:
                    session.touch()
                    session.step()
                elapsed = time.perf_counter() - t0
                captured = session.frames.seq - start_seq
                out = json.loads(proc.stdout.read())
        finally:
            renderer.stop()
            session.close()
    return {"captured_fps": captured / elapsed, "received_fps": out["received"] / seconds,
            "received_share": out["received"] / max(out["last"] - out["first"] + 1, 1)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measurement (default 20)")
    args = parser.parse_args()
    alone, frame = camera_alone(args.seconds)
    print(f"twin camera alone (baseline), 1280 x 1024:     {alone:6.1f} frames/s")
    saturated = int((frame >= 3774).sum())
    print(f"rendering a frame for the page (JPEG, histogram, {saturated} saturated px): "
          f"{render_rate(frame, min(args.seconds, 5.0)):6.1f} frames/s")
    e2e = end_to_end(args.seconds)
    print(f"live view end to end: camera {e2e['captured_fps']:6.1f} frames/s, page received "
          f"{e2e['received_fps']:6.1f} frames/s ({e2e['received_share']:.0%} of the frames taken meanwhile)")
    print(f"ratio received / camera alone: {e2e['received_fps'] / alone:.2f}   "
          f"(target: >= 20 frames/s received: {'met' if e2e['received_fps'] >= 20 else 'NOT met'})")


if __name__ == "__main__":
    main()
