"""`face-edge config set`: in-place edits that keep comments, validated before writing,
atomic with a backup."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from edge.config.load import load_config

REPO = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge", "config", "set", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_set_keeps_comments_and_validates(tmp_path):
    cfg = tmp_path / "config.yaml"
    shutil.copy(REPO / "config" / "example.yaml", cfg)
    before = cfg.read_text()
    res = run(str(cfg), "detector.score_threshold=0.9", "cameras[0].best_shot.min_quality=0.4")
    assert res.returncode == 0, res.stderr
    after = cfg.read_text()
    assert (tmp_path / "config.yaml.bak").read_text() == before
    assert after.count("#") == before.count("#"), "comments are kept"
    loaded = load_config(cfg)
    assert loaded["detector"]["score_threshold"] == 0.9
    assert loaded["cameras"][0]["best_shot"]["min_quality"] == 0.4
    assert [ln for ln in after.splitlines() if "score_threshold" in ln][0].split("#")[1].strip()


def test_invalid_value_is_refused_and_file_unchanged(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("cameras:\n  - name: a\n    source: 'demo:'  # the built-in clip\n")
    before = cfg.read_text()
    res = run(str(cfg), "detector.backend=tensorrt")
    assert res.returncode == 2
    assert "detector.backend" in res.stderr and "unchanged" in res.stderr
    assert cfg.read_text() == before and not (tmp_path / "config.yaml.bak").exists()
    res = run(str(cfg), "detector.bakend=onnx")
    assert res.returncode == 2 and "backend" in res.stderr  # the hint names the real key


def test_new_section_is_created(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("cameras:\n  - name: a\n    source: 'demo:'\n")
    assert run(str(cfg), "mqtt.topic_prefix=site-7").returncode == 0
    assert yaml.safe_load(cfg.read_text())["mqtt"] == {"topic_prefix": "site-7"}
