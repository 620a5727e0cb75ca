"""`face-edge doctor`: checks a technician runs on site. Each check says pass, warn or fail,
what it measured, and for a failure what to do. The exit code is the worst result
(0 pass, 1 warn, 2 fail)."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import logging
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.settings import CameraSettings, MqttSettings, Settings, SpoolSettings

LEVEL = {"pass": 0, "warn": 1, "fail": 2}


@dataclass
class Check:
    name: str
    result: str  # pass | warn | fail
    detail: str
    fix: str = ""


def check_config(path: str | None) -> tuple[Settings | None, Check]:
    from edge.config.load import ConfigError, load_settings

    try:
        cfg = load_settings(path)
    except ConfigError as e:
        return None, Check(
            "config", "fail", "; ".join(e.problems[:3]), f"face-edge config check {path}"
        )
    except OSError as e:
        return None, Check("config", "fail", str(e), "give the path of a readable YAML config")
    return cfg, Check("config", "pass", path or "embedded defaults (demo camera, local broker)")


def check_models(settings: CameraSettings) -> Check:
    from edge.pipeline.build import build_detector, build_enhancer
    from edge.runtime.manifest import ModelIntegrityError

    d = settings.detector
    try:
        det = build_detector(settings)
        enhancer = build_enhancer(settings)
    except ModelIntegrityError as e:
        return Check(
            "models",
            "fail",
            str(e),
            "reinstall: sudo systemd/install.sh (or restore models/quantized)",
        )
    except Exception as e:  # noqa: BLE001 - any runtime failure is the finding
        return Check(
            "models",
            "fail",
            f"{d.backend} {d.precision}: {e}",
            "install the runtime extra, e.g. pip install 'face-edge[tflite]'",
        )
    info = det.info(with_files=True)
    first = info.get("first_stage_precision", info["precision"])
    first_stage = ""  # said only where P-Net runs in another precision than the cascade
    if first != info["precision"]:
        timed = info.get("first_stage_ms")
        why = f" ({timed['fp32']} ms against {timed['int8']} ms int8 here)" if timed else ""
        first_stage = f", first stage (P-Net) {first}{why}"
    restorer = next((s for s in enhancer.describe() if s["kind"] == "model"), None)
    restored = (
        f"; restorer {restorer['version']} in {restorer['params']['backend']} "
        f"{restorer['params']['precision']}"
        if restorer
        else "; restoration network disabled"
    )
    if restorer and restorer["params"].get("multi_frame"):
        restored += f", multi-frame by {restorer['params']['multi_frame']}"
    if d.backend == "onnx" and d.precision == "int8":
        from edge.runtime.int8_variant import describe_choice

        restored += f"; {describe_choice()}"
    return Check(
        "models",
        "pass",
        f"detector {info['name']} {info['version']} loads in {info['backend']} "
        f"{info['precision']}{first_stage}{restored}, checksums match",
    )


def check_camera(cam: CameraSettings, seconds: float) -> Check:
    from edge.capture import open_source

    name = f"camera {cam.name}"
    try:
        options = dataclasses.replace(cam.capture, loop=True)
        src = open_source(cam.source, camera=cam.name, options=options)
    except Exception as e:  # noqa: BLE001
        return Check(name, "fail", str(e), "check the source URI in cameras[].source")
    src.start()
    frames, shape = 0, None
    deadline = time.monotonic() + seconds
    t0 = None
    try:
        while time.monotonic() < deadline:
            f = src.read(timeout=0.5)
            if f is not None:
                frames += 1
                shape = f.image.shape
                t0 = t0 or time.monotonic()
        stats = src.stats()
    finally:
        src.stop()
    if frames == 0:
        return Check(
            name,
            "fail",
            f"no frame in {seconds:.0f} s (state {stats.get('state')}, {stats.get('last_error') or 'no error'})",
            "check the cable/stream URL/credentials; v4l2: ls /dev/video*; is the user in group video?",
        )
    fps = (frames - 1) / max(time.monotonic() - t0, 1e-3) if t0 else 0.0
    h, w = shape[:2]
    want_w, want_h = cam.capture.width, cam.capture.height
    detail = f"{w}x{h} at {fps:.1f} fps, {stats.get('broken', 0)} broken, {stats.get('dropped', 0)} dropped"
    if want_w and want_h and (w, h) != (want_w, want_h):
        return Check(
            name,
            "warn",
            f"{detail}; configured {want_w}x{want_h}",
            "the camera does not offer that size: set capture.width/height to one it does",
        )
    if fps < 5:
        return Check(
            name,
            "warn",
            detail,
            "low frame rate: check lighting (long exposure), bandwidth or capture.fps",
        )
    return Check(name, "pass", detail)


def check_broker(m: MqttSettings, device_id: str) -> Check:
    from edge.publish.client import make_client
    from edge.publish.credentials import read_password

    if not m.host:
        return Check(
            "broker",
            "warn",
            "mqtt.host not set: the daemon starts a private local broker (demo mode)",
            "set mqtt.host to the central broker",
        )
    got = threading.Event()
    topic = f"{m.topic_prefix}/{device_id}/doctor/{uuid.uuid4().hex[:8]}"
    client = None
    result: dict = {}
    try:
        client = make_client(
            f"face-edge-doctor-{uuid.uuid4().hex[:6]}",
            tls=m.tls if m.tls.enabled else None,
            username=m.username,
            password=read_password(m.password_file) if m.username else None,
        )
        client.on_connect = lambda c, u, f, rc, p=None: result.setdefault("rc", rc)
        client.on_message = lambda c, u, msg: got.set()
        t0 = time.monotonic()
        client.connect(m.host, int(m.port), keepalive=10)
        client.loop_start()
        deadline = time.monotonic() + 5
        while "rc" not in result and time.monotonic() < deadline:
            time.sleep(0.02)
        rc = result.get("rc")
        if rc is None or getattr(rc, "is_failure", False):
            return Check(
                "broker",
                "fail",
                f"{m.host}:{m.port}: connection refused ({rc})",
                "check mqtt.username / password_file and the broker's ACL",
            )
        client.subscribe(topic, qos=1)
        time.sleep(0.2)
        client.publish(topic, b"ping", qos=1)
        if not got.wait(5):
            return Check(
                "broker",
                "fail",
                f"{m.host}:{m.port}: no publish round-trip in 5 s",
                "the broker ACL must allow this device's topics",
            )
        ms = (time.monotonic() - t0) * 1000
        return Check(
            "broker",
            "pass",
            f"{m.host}:{m.port}{' TLS' if m.tls.enabled else ''}: connected, round-trip in {ms:.0f} ms",
        )
    except Exception as e:  # noqa: BLE001
        return Check(
            "broker",
            "fail",
            f"{m.host}:{m.port}: {e}",
            "check mqtt.host/port, the network, TLS files (mqtt.tls.*) and the certificate's validity",
        )
    finally:
        if client is not None:  # None: the settings failed before a client existed
            client.loop_stop()
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001
                pass


def check_spool(spool: SpoolSettings) -> Check:
    from edge.publish.spool import default_spool_path

    path = default_spool_path(spool.path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".doctor-{uuid.uuid4().hex[:6]}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        return Check(
            "spool",
            "fail",
            f"{folder} not writable: {e}",
            "set spool.path to a writable folder (systemd: StateDirectory)",
        )
    free_mb = shutil.disk_usage(folder).free / 1e6
    need = float(spool.max_mb)
    detail = f"{path}: writable, {free_mb:.0f} MB free (spool.max_mb {need:.0f})"
    if free_mb < need:
        return Check("spool", "warn", detail, "free disk space or lower spool.max_mb")
    return Check("spool", "pass", detail)


def check_temperature() -> Check:
    temps = []
    for zone in glob.glob("/sys/class/thermal/thermal_zone*/temp"):
        try:
            temps.append(int(Path(zone).read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    throttled = None
    if shutil.which("vcgencmd"):
        out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True).stdout
        throttled = out.strip().split("=")[-1] if "=" in out else None
    if not temps and throttled is None:
        return Check("temperature", "pass", "no thermal sensor exposed (not a Pi/Jetson?)")
    hot = max(temps) if temps else 0.0
    detail = f"max {hot:.1f} °C" + (f", throttled={throttled}" if throttled else "")
    if (throttled and throttled not in ("0x0", "0")) or hot >= 80:
        return Check(
            "temperature",
            "warn",
            detail,
            "add a heatsink/fan or lower the frame size: a throttled CPU drops frames",
        )
    return Check("temperature", "pass", detail)


def run_doctor(path: str | None, seconds: float = 3.0) -> list[Check]:
    from edge.config.load import resolve_device_id

    settings, c = check_config(path)
    checks = [c]
    if settings is None:
        return checks
    cams = [cam for cam in settings.cameras if cam.enabled]
    checks.append(check_models(cams[0] if cams else settings.cameras[0]))
    for cam in cams:
        checks.append(check_camera(cam, seconds))
    checks.append(check_broker(settings.mqtt, resolve_device_id(settings.device_id)))
    checks.append(check_spool(settings.spool))
    checks.append(check_temperature())
    return checks


def doctor_main(path: str | None, as_json: bool, seconds: float) -> int:
    checks = run_doctor(path, seconds)
    worst = max(LEVEL[c.result] for c in checks)
    if as_json:
        print(
            json.dumps(
                {
                    "result": [k for k, v in LEVEL.items() if v == worst][0],
                    "checks": [asdict(c) for c in checks],
                },
                indent=2,
            )
        )
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{c.result.upper():4}  {c.name:<{width}}  {c.detail}")
            if c.fix and c.result != "pass":
                print(f"{'':4}  {'':<{width}}  fix: {c.fix}")
    return worst


def add_arguments(d: argparse.ArgumentParser) -> None:
    d.add_argument("--config")
    d.add_argument("--json", action="store_true")
    d.add_argument("--seconds", type=float, default=3.0, help="how long to watch each camera")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    return doctor_main(args.config, args.json, args.seconds)
