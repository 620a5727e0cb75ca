"""`face-edge doctor` against real parts: a video camera, a real mosquitto (plain and with
password + TLS), the shipped models and a corrupted copy of them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.capture.demo import make_demo_clip
from edge.runtime.manifest import default_models_dir


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_demo_clip(
        tmp_path_factory.mktemp("v") / "c.mp4", seconds=3.0, fps=25, size=(640, 360)
    )


def doctor(cfg: Path) -> tuple[int, dict]:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "doctor",
            "--config",
            str(cfg),
            "--json",
            "--seconds",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return res.returncode, json.loads(res.stdout)


def by_name(report: dict) -> dict:
    return {c["name"]: c for c in report["checks"]}


def write(tmp_path: Path, cfg: dict) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def base(clip: Path, tmp_path: Path, mqtt: dict) -> dict:
    return {
        "device_id": "doc",
        "cameras": [{"name": "door", "source": f"file://{clip}"}],
        "mqtt": mqtt,
        "spool": {"path": str(tmp_path / "spool" / "spool.sqlite")},
    }


def test_all_pass_with_real_broker(tmp_path, clip, mosquitto):
    rc, rep = doctor(
        write(tmp_path, base(clip, tmp_path, {"host": "127.0.0.1", "port": mosquitto.port}))
    )
    checks = by_name(rep)
    assert checks["broker"]["result"] == "pass", checks["broker"]
    assert (
        checks["camera door"]["result"] == "pass" and "640x360" in checks["camera door"]["detail"]
    )
    assert checks["models"]["result"] == "pass" and checks["spool"]["result"] == "pass"
    assert rc == max({"pass": 0, "warn": 1, "fail": 2}[c["result"]] for c in rep["checks"])
    assert rc in (0, 1)


def test_wrong_password_broken_camera_and_corrupt_model_fail_with_fixes(
    tmp_path, clip, mosquitto_auth_tls
):
    b = mosquitto_auth_tls
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    models = tmp_path / "models"
    shutil.copytree(default_models_dir(), models)
    for name in ("mtcnn_pnet_int8.onnx", "mtcnn_pnet_int8_vnni.onnx"):  # the CPU picks one
        victim = models / name
        victim.write_bytes(victim.read_bytes()[:-10])
    cfg = base(
        clip,
        tmp_path,
        {
            "host": "127.0.0.1",
            "port": b.tls_port,
            "username": b.username,
            "password_file": str(wrong),
            "tls": {"enabled": True, "ca_file": str(b.ca_file)},
        },
    )
    cfg["cameras"].append({"name": "gone", "source": f"file://{tmp_path}/missing.mp4"})
    cfg["detector"] = {"models_dir": str(models)}
    rc, rep = doctor(write(tmp_path, cfg))
    checks = by_name(rep)
    assert rc == 2 and rep["result"] == "fail"
    assert checks["broker"]["result"] == "fail" and checks["broker"]["fix"]
    assert checks["models"]["result"] == "fail" and "corrupt" in checks["models"]["detail"]
    assert checks["camera gone"]["result"] == "fail" and checks["camera gone"]["fix"]
    assert checks["camera door"]["result"] == "pass"


def test_tls_and_password_pass(tmp_path, clip, mosquitto_auth_tls):
    b = mosquitto_auth_tls
    pw = tmp_path / "pw"
    pw.write_text(b.password + "\n")
    pw.chmod(0o600)
    cfg = base(
        clip,
        tmp_path,
        {
            "host": "127.0.0.1",
            "port": b.tls_port,
            "username": b.username,
            "password_file": str(pw),
            "tls": {"enabled": True, "ca_file": str(b.ca_file)},
        },
    )
    _, rep = doctor(write(tmp_path, cfg))
    assert by_name(rep)["broker"]["result"] == "pass", by_name(rep)["broker"]
    assert "TLS" in by_name(rep)["broker"]["detail"]
