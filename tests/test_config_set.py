"""`face-edge config set`: in-place edits that keep comments, validated before writing,
atomic with a backup."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from edge.config.edit import set_value
from edge.config.load import load_config
from edge.config.yaml_lines import load_yaml_with_lines

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


def write(tmp_path, text: str):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    return cfg


CAMERA = 'cameras:\n  - name: a\n    source: "demo:"\n'


def test_value_with_hash_reads_back_exactly(tmp_path):
    # Bug: the line editor cut the value at "#" and left a stray quote that still validated.
    cfg = write(tmp_path, CAMERA)
    res = run(str(cfg), 'cameras[0].source="rtsp://cam2/live#main"')
    assert res.returncode == 0, res.stderr
    assert load_config(cfg)["cameras"][0]["source"] == "rtsp://cam2/live#main"
    assert yaml.safe_load(cfg.read_text())["cameras"][0]["source"] == "rtsp://cam2/live#main"

    cfg = write(tmp_path, 'cameras:\n  - name: a\n    source: "rtsp://cam1/live#sub"  # main\n')
    res = run(str(cfg), 'cameras[0].source="rtsp://cam2/live#main"')
    assert res.returncode == 0, res.stderr
    # quotes and the comment kept (ruamel keeps its column, or one space after a longer value)
    assert re.fullmatch(
        r'cameras:\n  - name: a\n    source: "rtsp://cam2/live#main" +# main\n', cfg.read_text()
    )
    assert load_config(cfg)["cameras"][0]["source"] == "rtsp://cam2/live#main"


def test_key_added_under_flow_mapping(tmp_path):
    # Bug: the new key went on its own line under "detector: {backend: onnx}".
    cfg = write(tmp_path, CAMERA + "detector: {backend: onnx}  # small device\n")
    res = run(str(cfg), "detector.threads=2")
    assert res.returncode == 0, res.stderr
    assert cfg.read_text().endswith("detector: {backend: onnx, threads: 2} # small device\n")
    detector = load_config(cfg)["detector"]
    assert detector["backend"] == "onnx" and detector["threads"] == 2


COMMENTED = """\
# site 7, door camera
cameras:
  - name: door      # the front door
    source: "demo:"
    # slow camera:
    capture:
      reconnect_max_s: 30.0   # it reboots slowly

# The detector, tuned on site.
detector:
  backend: onnx     # tflite is slower here
  threads: 1        # one core left

# Keep the tracker loose.
tracker:
  max_missed_s: 2.0
"""


def test_comments_and_layout_are_kept(tmp_path):
    cfg = write(tmp_path, COMMENTED)
    res = run(
        str(cfg),
        "detector.threads=2",
        "detector.score_threshold=0.7",
        "cameras[0].capture.reconnect_min_s=2.0",
        "cameras[0].detector.min_face_px=16",
    )
    assert res.returncode == 0, res.stderr
    # Changed values in place, new keys at the end of their section, above the comment
    # lines that introduce the next one; nothing else moves.
    assert (
        cfg.read_text()
        == """\
# site 7, door camera
cameras:
  - name: door      # the front door
    source: "demo:"
    # slow camera:
    capture:
      reconnect_max_s: 30.0   # it reboots slowly
      reconnect_min_s: 2.0
    detector:
      min_face_px: 16

# The detector, tuned on site.
detector:
  backend: onnx     # tflite is slower here
  threads: 2        # one core left
  score_threshold: 0.7

# Keep the tracker loose.
tracker:
  max_missed_s: 2.0
"""
    )


def test_example_config_changes_only_the_set_line(tmp_path):
    cfg = tmp_path / "config.yaml"
    shutil.copy(REPO / "config" / "example.yaml", cfg)
    before = cfg.read_text().splitlines()
    assert run(str(cfg), "mqtt.tls.verify=false", "device_id=door-7").returncode == 0
    after = cfg.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert [b.split("#")[0].strip() for _, b in changed] == ["device_id: door-7", "verify: false"]
    for a, b in changed:  # the end-of-line comment stays in its column
        assert "#" not in a or a.index("#") == b.index("#")


ANCHORED = """\
cameras:
  - name: a
    source: "demo:"
    detector: &far {min_face_px: 14, threads: 2, score_threshold: 0.7}  # far cameras
  - name: b
    source: "demo:"
    detector:
      <<: *far
      threads: 3
"""


def test_anchor_and_merge_key_survive_an_edit(tmp_path):
    cfg = write(tmp_path, ANCHORED)
    res = run(str(cfg), "cameras[1].detector.threads=4", "cameras[1].detector.min_face_px=18")
    assert res.returncode == 0, res.stderr
    text = cfg.read_text()
    assert "detector: &far {min_face_px: 14, threads: 2, score_threshold: 0.7}" in text
    assert "<<: *far" in text
    loaded = load_config(cfg)
    a, b = loaded["cameras"]
    assert a["detector"] == {"min_face_px": 14, "threads": 2, "score_threshold": 0.7}
    assert b["detector"] == {"min_face_px": 18, "threads": 4, "score_threshold": 0.7}


def test_edit_that_would_reach_through_an_anchor_is_refused(tmp_path):
    cfg = write(tmp_path, ANCHORED)
    before = cfg.read_bytes()
    res = run(str(cfg), "cameras[0].detector.score_threshold=0.9")
    assert res.returncode == 2
    assert "cameras[1].detector.score_threshold" in res.stderr and "anchor" in res.stderr
    assert cfg.read_bytes() == before


def test_quoted_strings_keep_their_quotes(tmp_path):
    cfg = write(
        tmp_path,
        "cameras:\n  - name: 'door'\n    source: \"demo:\"\nmqtt:\n  topic_prefix: 'site-7'\n",
    )
    res = run(str(cfg), "cameras[0].source=demo:crowd", 'mqtt.username="on"')
    assert res.returncode == 0, res.stderr
    assert cfg.read_text() == (
        "cameras:\n  - name: 'door'\n    source: \"demo:crowd\"\n"
        "mqtt:\n  topic_prefix: 'site-7'\n  username: 'on'\n"
    )
    # "on" is quoted so that a YAML 1.1 reader (PyYAML) does not take it for true either
    assert load_config(cfg)["mqtt"]["username"] == "on"
    assert yaml.safe_load(cfg.read_text())["mqtt"]["username"] == "on"


def test_invalid_existing_key_names_key_and_line_and_keeps_the_file(tmp_path):
    cfg = write(tmp_path, COMMENTED)
    before = cfg.read_bytes()
    res = run(str(cfg), "detector.threads=3", "detector.backend=tensorrt")
    assert res.returncode == 2
    assert "refused, the file is unchanged" in res.stderr
    assert "detector.backend: 'tensorrt' is not one of onnx, tflite (line 11)" in res.stderr
    assert cfg.read_bytes() == before and not (tmp_path / "config.yaml.bak").exists()


def test_broken_file_or_missing_list_item_is_refused(tmp_path):
    cfg = write(tmp_path, CAMERA + "detector:\n  threads: 1\n  threads: 2\n")
    before = cfg.read_bytes()
    res = run(str(cfg), "detector.backend=onnx")
    assert res.returncode == 2 and "duplicate key (first given on line 5) (line 6)" in res.stderr
    assert cfg.read_bytes() == before
    cfg = write(tmp_path, CAMERA)
    before = cfg.read_bytes()
    res = run(str(cfg), "cameras[1].source=demo:")
    assert res.returncode == 2 and "no list item cameras[1] (the list has 1)" in res.stderr
    res = run(str(cfg), "cameras[0].source.x=1")
    assert res.returncode == 2 and "cameras[0].source is a value" in res.stderr
    res = run(str(cfg), "cameras=[]")
    assert res.returncode == 2 and "cameras is a section" in res.stderr
    assert cfg.read_bytes() == before and not (tmp_path / "config.yaml.bak").exists()


def test_missing_nested_sections_are_created(tmp_path):
    cfg = write(tmp_path, CAMERA + "\n# broker\nmqtt:\n  host: null   # local\n  tls: null\n")
    res = run(
        str(cfg),
        "cameras[0].enhance.low_light.target_mean=0.5",
        "mqtt.tls.enabled=true",
        "spool.max_mb=50",
    )
    assert res.returncode == 0, res.stderr
    assert cfg.read_text() == (
        'cameras:\n  - name: a\n    source: "demo:"\n'
        "    enhance:\n      low_light:\n        target_mean: 0.5\n"
        "\n# broker\nmqtt:\n  host: null   # local\n  tls:\n    enabled: true\n"
        "spool:\n  max_mb: 50\n"
    )
    loaded = load_config(cfg)
    assert loaded["cameras"][0]["enhance"] == {"low_light": {"target_mean": 0.5}}
    assert loaded["mqtt"]["tls"]["enabled"] is True and loaded["spool"]["max_mb"] == 50


def test_yaml11_booleans_are_refused_with_a_hint_and_fixable(tmp_path):
    # The file is read as YAML 1.2: "yes" is text there, and the checker says so.
    cfg = write(tmp_path, CAMERA + "    enabled: yes\n")
    res = run(str(cfg), "detector.threads=2")
    assert res.returncode == 2
    assert "cameras[0].enabled: expected boolean" in res.stderr
    assert "write true or false" in res.stderr and "(line 4)" in res.stderr
    # On the command line yes/no still mean true/false (one YAML scalar, as before).
    res = run(str(cfg), "cameras[0].enabled=no")
    assert res.returncode == 0, res.stderr
    assert cfg.read_text().endswith("    enabled: false\n")
    assert load_config(cfg)["cameras"][0]["enabled"] is False


def test_set_value_keeps_line_endings_and_untouched_scalars():
    text = "# a\r\nmqtt:\r\n  host: ~\r\n  port: 0x75B\r\n  keepalive_s: +30\r\nspool: {}\r\n"
    new = set_value(text, ("spool", "max_mb"), 50)
    assert new == (
        "# a\r\nmqtt:\r\n  host: ~\r\n  port: 0x75B\r\n  keepalive_s: +30\r\n"
        "spool:\r\n  max_mb: 50\r\n"
    )
    for noop in ("a: 1\n", "---\n# doc\nb: [1, 2]  # list\n", "c:\n- 1\n- 2\nd: True\n"):
        assert set_value(noop, ("z",), 1) == noop + "z: 1\n"


def test_set_value_on_example_touches_one_line_only():
    text = (REPO / "config" / "example.yaml").read_text()
    data, lines, _ = load_yaml_with_lines(text)

    def leaves(node, path=()):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            if isinstance(v, dict | list):
                yield from leaves(v, path + (k,))
            else:
                yield path + (k,), v

    for path, value in list(leaves(data))[::4]:  # a sample across sections and depths
        assert set_value(text, path, value) == text, path
        changed = value + "x" if isinstance(value, str) else 7
        before, after = text.splitlines(), set_value(text, path, changed).splitlines()
        assert len(after) == len(before), path
        assert [n + 1 for n, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [
            lines[path]
        ]
