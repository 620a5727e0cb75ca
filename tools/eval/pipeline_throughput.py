"""End-to-end throughput of the daemon path on real videos: decode -> detect -> track ->
select -> enhance -> publish to a real mosquitto -> acknowledged and received by a subscriber.
Each video is played once, as fast as possible (no frame dropped).

    python -m tools.eval.pipeline_throughput --videos '../shared/data/video/*.mp4' --json var/eval/pipeline.json
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import tempfile
import threading
import time
from pathlib import Path

import cv2

from edge.config import load_config_text
from edge.daemon import Daemon
from edge.mqtt.broker import LocalBroker
from edge.mqtt.subscriber import run_subscriber


def run_one(video: Path, broker: LocalBroker, workdir: Path) -> dict:
    cfg = load_config_text(
        json.dumps(
            {
                "device_id": "bench",
                "cameras": [{"name": video.stem, "source": f"file://{video.resolve()}"}],
                "capture": {"loop": False, "realtime": False},
                "mqtt": {"host": broker.host, "port": broker.port, "stats_interval_s": 3600},
                "spool": {"path": str(workdir / f"{video.stem}.sqlite")},
            }
        )
    )
    received: list[str] = []
    stop = threading.Event()
    ready = threading.Event()
    sub = threading.Thread(
        target=run_subscriber,
        args=(broker.host, broker.port, "face-edge", workdir / "received"),
        kwargs={"stop_event": stop, "ready": ready, "emit": received.append, "validate": False},
        daemon=True,
    )
    sub.start()
    ready.wait(10)
    frames = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    daemon = Daemon(cfg, show=False)
    t0 = time.monotonic()
    daemon.start()
    while any(w.is_alive() for w in daemon.cameras.values()):
        time.sleep(0.05)
    processed = sum(w.processor.frames for w in daemon.cameras.values())
    detect_ms = [w.processor.detect_ms.mean for w in daemon.cameras.values()][0]
    enhance_ms = [w.builder.enhance_ms.mean for w in daemon.cameras.values()][0]
    daemon.stop(timeout=30)
    events = daemon.worker.events
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(ln.startswith("EVENT ") for ln in received) < events:
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    stop.set()
    sub.join(10)
    got = sum(ln.startswith("EVENT ") for ln in received)
    return {
        "video": video.name,
        "frames": frames,
        "frames_processed": processed,
        "seconds": round(elapsed, 2),
        "fps": round(processed / elapsed, 2),
        "events_published": events,
        "events_received": got,
        "events_per_s": round(got / elapsed, 3),
        "detect_ms_mean": round(detect_ms, 1),
        "enhance_ms_mean": round(enhance_ms, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--videos", default="../shared/data/video/*.mp4")
    ap.add_argument("--json", type=Path, default=Path("var/eval/pipeline.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory() as tmp, LocalBroker() as broker:
        for v in sorted(glob.glob(args.videos)):
            r = run_one(Path(v), broker, Path(tmp))
            results.append(r)
            print(json.dumps(r), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": "2 vCPU x86-64", "results": results}, indent=2))
    print(
        "\n| video | frames | fps (whole path) | events received | events/s | detect ms | enhance ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['video']} | {r['frames_processed']} | {r['fps']} | {r['events_received']}/{r['events_published']} | "
            f"{r['events_per_s']} | {r['detect_ms_mean']} | {r['enhance_ms_mean']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
