"""Configuration: schema, loader with line numbers, semantic checks, secrets, docs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import textwrap
from pathlib import Path

import pytest
import yaml

from edge.commands import config as config_cmd
from edge.config import load as C
from edge.config.schema import description_of, schema_text, settings_schema
from edge.config.validate import SUPPORTED_KEYWORDS, SchemaValidator
from edge.config.yaml_lines import load_yaml_with_lines
from edge.settings import (
    CAMERA_SECTIONS,
    CameraSettings,
    DetectorSettings,
    EnhanceSettings,
    LowLightSettings,
    RegionsSettings,
    Settings,
    TrackerSettings,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example.yaml"
DEFAULT = ROOT / "config" / "default.yaml"
SCHEMA = ROOT / "edge" / "schemas" / "config.schema.json"


def load_text(text: str, **kw) -> dict:
    return C.load_config_text(textwrap.dedent(text), "test.yaml", **kw)


def problems_of(text: str) -> list:
    with pytest.raises(C.ConfigError) as info:
        C.check_config_text(textwrap.dedent(text), "test.yaml")
    return info.value.details


def schema_paths(schema: dict) -> set[tuple[str, ...]]:
    """Every key path the schema defines ("[]" for list items), override sections excluded."""
    v = SchemaValidator(schema)
    out: set[tuple[str, ...]] = set()

    def walk(s: dict, prefix: tuple[str, ...]) -> None:
        s = v.resolve(s)
        for name, sub in s.get("properties", {}).items():
            r = v.resolve(sub)
            out.add(prefix + (name,))
            if r.get("x-partial"):
                continue
            if r.get("type") == "object":
                walk(r, prefix + (name,))
            elif r.get("type") == "array":
                walk(r["items"], prefix + (name, "[]"))

    walk(schema, ())
    return out


def data_paths(data, prefix=()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            out.add(prefix + (k,))
            out |= data_paths(v, prefix + (k,))
    elif isinstance(data, list):
        for item in data:
            out |= data_paths(item, prefix + ("[]",))
    return out


# -- defaults, shipped files -----------------------------------------------------------------


def test_defaults_load():
    cfg = C.load_config(None)
    assert [c["name"] for c in cfg["cameras"]] == ["demo"]
    assert cfg["cameras"][0]["source"] == "demo:"
    assert cfg["cameras"][0]["enabled"] is True
    assert cfg["mqtt"]["host"] is None
    assert cfg["mqtt"]["port"] == 1883
    assert cfg["detector"] == {
        "backend": "onnx",
        "precision": "int8",
        "first_stage_precision": "auto",
        "threads": 1,
        "min_face_px": 20,
        "score_threshold": 0.8,
        "follow_faces": True,
        "regions": {
            "enabled": True,
            "full_frame_every_s": 2.0,
            "motion_threshold": 25,
            "min_region_px": 160,
            "max_area_fraction": 0.6,
        },
        "models_dir": None,
    }
    assert cfg["enhance"]["low_light"] == {"enabled": True, "clahe_clip": 2.0, "target_mean": 0.45}
    assert cfg["spool"] == {"path": None, "max_mb": 200, "max_age_hours": 168, "memory_max_mb": 32}
    assert cfg["log_level"] == "info" and cfg["device_id"] is None


def test_default_yaml_matches_embedded_defaults():
    assert C.load_config(DEFAULT) == C.load_config(None)


def test_empty_file_is_defaults():
    assert C.load_config_text("# nothing here\n") == C.load_config(None)


def test_defaults_are_independent_copies():
    a = C.load_config(None)
    a["detector"]["threads"] = 8
    assert C.load_config(None)["detector"]["threads"] == 1


def test_example_validates():
    cfg, warnings = C.check_config(EXAMPLE)
    assert [c["name"] for c in cfg["cameras"]] == ["front-door", "lobby"]
    # the only acceptable warning: the example's RTSP password in a world-readable file
    assert all("URI holds a password" in w.message for w in warnings)


def test_example_mentions_every_key_and_every_override_section():
    schema = json.loads(SCHEMA.read_text())
    example = yaml.safe_load(EXAMPLE.read_text())
    missing = schema_paths(schema) - data_paths(example)
    assert not missing, f"config/example.yaml lacks: {sorted(missing)}"
    overridden = set().union(*(set(c) & set(C.CAMERA_SECTIONS) for c in example["cameras"]))
    assert overridden == set(C.CAMERA_SECTIONS)


def test_example_comments_every_key():
    lines = EXAMPLE.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":"):
            continue  # blank, comment, or a section header (explained by the comment above it)
        has_comment = "  #" in line or lines[n - 2].strip().startswith("#")
        assert has_comment, f"example.yaml line {n} has no comment: {line!r}"


def gen_config_docs():
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", ROOT / "tools" / "gen_config_docs.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_is_current():
    mod = gen_config_docs()
    expected = mod.render()
    actual = (ROOT / "config" / "README.md").read_text(encoding="utf-8")
    assert actual == expected, "config/README.md is stale: run python tools/gen_config_docs.py"
    for path in schema_paths(json.loads(SCHEMA.read_text())):
        assert "`" + ".".join(path).replace(".[]", "[]") + "`" in actual


def test_schema_files_are_generated_from_the_settings():
    expected = schema_text()
    for path in (SCHEMA, ROOT / "config" / "config.schema.json"):
        assert path.read_text(encoding="utf-8") == expected, (
            f"{path} is stale: run python tools/gen_config_docs.py"
        )
    assert gen_config_docs().stale() == []


def test_gen_config_docs_check_fails_on_a_stale_file_and_rewrites_it(tmp_path, monkeypatch):
    mod = gen_config_docs()
    schema, readme = tmp_path / "config.schema.json", tmp_path / "README.md"
    link = tmp_path / "link.schema.json"
    link.symlink_to(schema.name)
    monkeypatch.setattr(mod, "SCHEMA_PATH", schema)
    monkeypatch.setattr(mod, "SCHEMA_LINK", link)
    monkeypatch.setattr(mod, "README_PATH", readme)
    schema.write_text(SCHEMA.read_text().replace("Logging verbosity.", "Log level."))
    readme.write_text("old\n")
    assert mod.main(["--check"]) == 1
    assert sorted(mod.stale()) == sorted([schema, link, readme])
    assert mod.main([]) == 0
    assert mod.main(["--check"]) == 0
    assert link.is_symlink() and json.loads(schema.read_text()) == settings_schema()
    assert readme.read_text() == mod.render()


def test_schema_symlink():
    link = ROOT / "config" / "config.schema.json"
    assert link.is_symlink()
    assert os.readlink(link) == "../edge/schemas/config.schema.json"
    assert link.resolve() == SCHEMA.resolve()


def test_schema_is_complete_and_strict():
    schema = json.loads(SCHEMA.read_text())
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    v = SchemaValidator(schema)  # raises on keywords the small validator would ignore

    def walk(s: dict, where: str, required: set[str]) -> None:
        s = v.resolve(s)
        if s.get("type") == "object":
            assert s.get("additionalProperties") is False, where
        for name, sub in s.get("properties", {}).items():
            r = v.resolve(sub)
            assert r.get("description"), f"{where}.{name} has no description"
            assert "type" in r, f"{where}.{name} has no type"
            if name not in required:
                assert "default" in r, f"{where}.{name} has no default"
            walk(sub, f"{where}.{name}", set(r.get("required", ())))
        if isinstance(s.get("items"), dict):
            walk(s["items"], where + "[]", set(v.resolve(s["items"]).get("required", ())))

    walk(schema, "", set())
    keywords = set()

    def collect(node):
        if isinstance(node, dict):
            keywords.update(
                k for k in node if not isinstance(node.get("properties"), dict) or k != "properties"
            )
            for k, val in node.items():
                if k in ("properties", "$defs"):
                    for sub in val.values():
                        collect(sub)
                elif isinstance(val, dict):
                    collect(val)

    collect(schema)
    assert keywords <= SUPPORTED_KEYWORDS | {"properties"}


# -- problems with key path and line ----------------------------------------------------------


BAD_CASES = {
    "wrong enum": (
        """\
        cameras:
          - name: a
            source: "demo:"
            detector:
              backend: x
        """,
        "cameras[0].detector.backend",
        5,
        "'x' is not one of onnx, tflite",
    ),
    "unknown key with hint": (
        """\
        detector:
          threads: 2
          score_treshold: 0.9
        """,
        "detector.score_treshold",
        3,
        "unknown key (did you mean 'score_threshold'?)",
    ),
    "unknown top-level key": (
        """\
        log_level: debug
        mqqt:
          host: broker
        """,
        "mqqt",
        2,
        "did you mean 'mqtt'?",
    ),
    "wrong type": (
        """\
        mqtt:
          port: "1883"
        """,
        "mqtt.port",
        2,
        "expected integer, got string '1883'",
    ),
    "boolean is not a number": (
        """\
        tracker:
          min_hits: true
        """,
        "tracker.min_hits",
        2,
        "expected integer",
    ),
    "below minimum": (
        """\
        best_shot:
          crop_size: 8
        """,
        "best_shot.crop_size",
        2,
        "must be >= 32, got 8",
    ),
    "exclusive minimum": (
        """\
        spool:
          max_mb: 0
        """,
        "spool.max_mb",
        2,
        "must be > 0",
    ),
    "missing required": (
        """\
        cameras:
          - name: a
            source: "demo:"
          - name: b
        """,
        "cameras[1].source",
        4,
        "required key missing",
    ),
    "empty camera list": (
        """\
        log_level: info
        cameras: []
        """,
        "cameras",
        2,
        "needs at least 1 item",
    ),
    "YAML syntax error": (
        """\
        log_level: info
        detector:
          threads: 2
         backend: onnx
        """,
        "(yaml)",
        4,
        "YAML syntax error",
    ),
    "tab indentation": (
        "log_level: info\ndetector:\n\tthreads: 2\n",
        "(yaml)",
        3,
        "YAML syntax error",
    ),
    "duplicate camera names": (
        """\
        cameras:
          - name: door
            source: "demo:"
          - name: door
            source: "0"
        """,
        "cameras[1].name",
        4,
        "duplicate camera name 'door' (also cameras[0])",
    ),
    "duplicate topic level from two camera names": (
        """\
        cameras:
          - name: front/door
            source: "demo:"
          - name: front+door
            source: "0"
        """,
        "cameras[1].name",
        4,
        "become the same MQTT topic level 'front_door'",
    ),
    "bad URI scheme": (
        """\
        cameras:
          - name: a
            source: ftp://cam/stream
        """,
        "cameras[0].source",
        3,
        "unsupported source scheme 'ftp:'",
    ),
    "demo URI with an unknown scene": (
        """\
        cameras:
          - name: a
            source: "demo:mall"
        """,
        "cameras[0].source",
        3,
        "unknown demo scene 'mall': use demo:corridor, demo:crowd",
    ),
    "bare device path": (
        """\
        cameras:
          - name: a
            source: /dev/video0
        """,
        "cameras[0].source",
        3,
        "did you mean 'v4l2:///dev/video0'?",
    ),
    "rtsp without host": (
        """\
        cameras:
          - {name: a, source: "rtsp:///stream"}
        """,
        "cameras[0].source",
        2,
        "needs a host",
    ),
    "duplicate key": (
        """\
        detector:
          threads: 2
          threads: 3
        """,
        "detector.threads",
        3,
        "duplicate key (first given on line 2)",
    ),
    "reconnect min > max": (
        """\
        mqtt:
          reconnect_min_s: 90
        """,
        "mqtt.reconnect_min_s",
        2,
        "must not exceed reconnect_max_s (60.0)",
    ),
    "per-camera reconnect min > max": (
        """\
        capture:
          reconnect_max_s: 5
        cameras:
          - name: a
            source: "demo:"
            capture:
              reconnect_min_s: 10
        """,
        "cameras[0].capture.reconnect_min_s",
        7,
        "must not exceed",
    ),
    "cert without key": (
        """\
        mqtt:
          tls:
            enabled: true
            cert_file: /etc/face-edge/client.pem
        """,
        "mqtt.tls.key_file",
        2,
        "needed together with tls.cert_file",
    ),
    "password over plain TCP": (
        """\
        mqtt:
          host: broker.lan
          password_file: /etc/face-edge/mqtt-password
        """,
        "mqtt.password_file",
        3,
        "unencrypted",
    ),
    "pattern": (
        """\
        mqtt:
          topic_prefix: /faces/
        """,
        "mqtt.topic_prefix",
        2,
        "does not match the pattern",
    ),
    "unknown key in override": (
        """\
        cameras:
          - name: a
            source: "demo:"
            enhance:
              denoise: {strenght: 3}
        """,
        "cameras[0].enhance.denoise.strenght",
        5,
        "did you mean 'strength'?",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES), ids=list(BAD_CASES))
def test_bad_config_reports_key_path_and_line(case):
    text, key, line, fragment = BAD_CASES[case]
    found = problems_of(text)
    match = [p for p in found if p.key == key]
    assert match, f"no problem for {key}: {[str(p) for p in found]}"
    assert match[0].line == line, str(match[0])
    assert fragment in match[0].message, str(match[0])
    assert str(match[0]).endswith(f"(line {line})")


def test_all_problems_reported_at_once():
    found = problems_of(
        """\
        log_level: loud
        cameras:
          - name: a
            source: gopher://x
          - name: a
            source: "demo:"
        detector:
          backend: tpu
          threads: zero
        tracker:
          iou: 0.5
        """
    )
    keys = [p.key for p in found]
    assert keys == [
        "log_level",
        "cameras[0].source",
        "cameras[1].name",
        "detector.backend",
        "detector.threads",
        "tracker.iou",
    ]
    assert [p.line for p in found] == [1, 4, 5, 8, 9, 11]


def test_problem_strings_match_design_format():
    with pytest.raises(C.ConfigError) as info:
        load_text(
            """\
            cameras:
              - name: a
                source: "demo:"
                detector: {backend: x}
            """
        )
    assert info.value.problems == [
        "cameras[0].detector.backend: 'x' is not one of onnx, tflite (line 4)"
    ]
    assert "test.yaml" in str(info.value)


@pytest.mark.parametrize(
    "source",
    [
        "picamera2:0",
        "picamera2:",
        "v4l2:///dev/video0",
        0,
        "2",
        "rtsp://user:pw@10.0.0.2:554/s",
        "rtsps://cam.lan/s",
        "http://cam/video.mjpg",
        "https://cam/video.mjpg",
        "file:///tmp/a.mp4",
        "demo:",
        "demo:crowd",
    ],
)
def test_source_forms_accepted(source):
    cfg = load_text(json.dumps({"cameras": [{"name": "a", "source": source}]}))
    assert cfg["cameras"][0]["source"] == source


def test_root_must_be_mapping():
    found = problems_of("- a\n- b\n")
    assert found[0].key == "(root)" and found[0].line == 1


def test_integral_float_becomes_int():
    cfg = load_text("detector: {threads: 2.0}\n")
    assert cfg["detector"]["threads"] == 2 and isinstance(cfg["detector"]["threads"], int)


def test_yaml_merge_keys_for_shared_overrides():
    cfg = load_text(
        """\
        cameras:
          - name: a
            source: "demo:"
            detector: &far {min_face_px: 14, threads: 2}
          - name: b
            source: "demo:"
            detector:
              <<: *far
              threads: 3
        """
    )
    b = C.camera_settings(cfg, cfg["cameras"][1])
    assert b["detector"]["min_face_px"] == 14 and b["detector"]["threads"] == 3


def test_yaml_lines_map():
    data, lines, problems = load_yaml_with_lines("a:\n  b: 1\nc:\n  - x\n  - y: 2\n")
    assert not problems
    assert data == {"a": {"b": 1}, "c": ["x", {"y": 2}]}
    assert lines[("a",)] == 1 and lines[("a", "b")] == 2
    assert lines[("c", 1)] == 5 and lines[("c", 1, "y")] == 5


# -- typed settings and the schema they generate -----------------------------------------------


def leaf_fields(cls: type, prefix: tuple[str, ...] = ()):
    """(key path, dataclasses.Field) of every non-section field, nested sections walked."""
    for f in dataclasses.fields(cls):
        if f.default_factory is dataclasses.MISSING:
            yield prefix + (f.name,), f
        else:  # a nested section: its factory is its class
            yield from leaf_fields(f.default_factory, prefix + (f.name,))


def test_schema_defaults_and_descriptions_come_from_the_dataclasses():
    schema = settings_schema()
    v = SchemaValidator(schema)
    defaults = v.defaults()
    for section in ("mqtt", "spool", *CAMERA_SECTIONS):
        cls = type(getattr(Settings(), section))
        assert description_of(cls) == v.resolve(schema["properties"][section])["description"]
        for path, f in leaf_fields(cls):
            value = defaults[section]
            for key in path:
                value = value[key]
            assert value == f.default and type(value) is type(f.default), (section, path)
            assert f.metadata["setting"].description, (section, path)
    # the whole default configuration, cameras merged: exactly the dataclasses' defaults
    assert C.settings_from_config(C.default_config()) == Settings()
    assert C.load_settings(None) == Settings()
    without_cameras = {k: v for k, v in Settings().to_dict().items() if k != "cameras"}
    assert without_cameras == {k: v for k, v in C.default_config().items() if k != "cameras"}


def test_schema_types_enums_and_nullability_come_from_the_annotations():
    schema = settings_schema()
    detector = schema["$defs"]["detector"]["properties"]
    assert detector["backend"] == {
        "type": "string",
        "description": "Inference runtime: onnx (onnxruntime) or tflite (LiteRT).",
        "enum": ["onnx", "tflite"],
        "default": "onnx",
    }
    assert detector["models_dir"]["type"] == ["string", "null"]
    assert detector["regions"]["properties"]["motion_threshold"]["type"] == "integer"
    assert schema["properties"]["mqtt"]["properties"]["qos"]["enum"] == [0, 1, 2]
    assert schema["properties"]["mqtt"]["properties"]["qos"]["type"] == "integer"
    camera = schema["$defs"]["camera"]
    assert camera["required"] == ["name", "source"] and "default" not in camera
    assert camera["properties"]["source"]["type"] == ["string", "integer"]
    assert schema["properties"]["cameras"]["default"] == [{"name": "demo", "source": "demo:"}]
    for name in CAMERA_SECTIONS:
        assert schema["properties"][name] == {"$ref": f"#/$defs/{name}"}
        override = camera["properties"][name]
        assert override["$ref"] == f"#/$defs/{name}" and override["x-partial"] is True
    # the override sections stay sparse: no defaults filled inside cameras[].<section>
    cfg, problems = SchemaValidator(schema).validate(
        {"cameras": [{"name": "a", "source": 0, "tracker": {"min_hits": 3}}]}
    )
    assert not problems
    assert cfg["cameras"][0]["tracker"] == {"min_hits": 3} and cfg["cameras"][0]["capture"] == {}


def test_a_settings_class_without_docstring_cannot_describe_its_section():
    @dataclasses.dataclass(frozen=True)
    class Undocumented:
        x: int = 1

    with pytest.raises(ValueError, match="docstring"):
        description_of(Undocumented)


def test_settings_are_frozen_and_hashable():
    s = C.load_settings(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.log_level = "debug"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.detector.regions.enabled = False
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.cameras[0].tracker.min_hits = 9
    assert isinstance(s.cameras, tuple)
    assert hash(s) == hash(C.load_settings(EXAMPLE))
    assert {s.cameras[0].detector, s.cameras[0].detector} == {s.cameras[0].detector}


def test_camera_override_is_typed_and_merged(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(
        textwrap.dedent(
            """\
            detector: {threads: 2, score_threshold: 0.9, models_dir: models}
            capture: {width: 640}
            cameras:
              - name: a
                source: "demo:"
                detector: {threads: 4, regions: {enabled: false}}
                capture: {width: null}
                enhance:
                  low_light: {target_mean: 0.6}
              - name: b
                source: 0
                enabled: false
            """
        )
    )
    s = C.load_settings(f)
    a, b = s.cameras
    assert s.camera("a") is a and s.camera("b") is b
    assert isinstance(a, CameraSettings) and isinstance(a.detector, DetectorSettings)
    assert isinstance(a.detector.regions, RegionsSettings)
    assert a.detector.threads == 4 and a.detector.score_threshold == 0.9  # global kept
    assert a.detector.regions == RegionsSettings(enabled=False)
    assert a.capture.width is None  # null overrides too
    assert a.enhance.low_light == LowLightSettings(target_mean=0.6)
    assert a.enhance.denoise == s.enhance.denoise
    # relative paths are resolved before the settings are built, overrides inherit them
    assert a.detector.models_dir == str(tmp_path / "models") == s.detector.models_dir
    assert b.source == 0 and b.enabled is False
    assert b.detector == s.detector and b.capture.width == 640
    assert s.detector.threads == 2 and s.detector.regions.enabled is True  # globals untouched
    with pytest.raises(KeyError):
        s.camera("nope")
    # the dict form for callers not yet switched is the same merge
    cfg = C.load_config(f)
    assert C.camera_settings(cfg, cfg["cameras"][0]) == a.to_dict()


def test_camera_for_merges_an_entry_that_is_not_in_the_file():
    s = C.settings_from_config(load_text("tracker: {min_hits: 5}\n"))
    cam = s.camera_for({"name": "clip", "source": "file:///v.mp4", "enhance": {"enabled": False}})
    assert cam.tracker == TrackerSettings(min_hits=5)
    assert cam.enhance == EnhanceSettings(enabled=False)
    # the default demo camera also runs with the file's global sections
    assert s.cameras[0].name == "demo" and s.cameras[0].tracker.min_hits == 5


def test_settings_from_dict_round_trips_and_refuses_unknown_keys():
    s = C.load_settings(EXAMPLE)
    assert Settings.from_dict(s.to_dict()) == s
    assert TrackerSettings.from_dict({"min_hits": 3}) == TrackerSettings(min_hits=3)
    assert TrackerSettings.coerce(None) == TrackerSettings()
    t = TrackerSettings(min_hits=4)
    assert TrackerSettings.coerce(t) is t
    with pytest.raises(ValueError, match="min_hit"):
        TrackerSettings.from_dict({"min_hit": 3})
    with pytest.raises(ValueError, match="thread"):
        s.camera_for({"name": "x", "source": 0, "detector": {"thread": 2}})


def test_load_settings_reports_every_problem_like_load_config(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("log_level: loud\ndetector:\n  thread: 2\n")
    with pytest.raises(C.ConfigError) as typed:
        C.load_settings(f)
    with pytest.raises(C.ConfigError) as plain:
        C.load_config(f)
    expected = [
        "log_level: 'loud' is not one of debug, info, warning, error (line 1)",
        "detector.thread: unknown key (did you mean 'threads'?) (line 3)",
    ]
    assert typed.value.problems == plain.value.problems == expected


# -- per-camera overrides ---------------------------------------------------------------------


def test_camera_settings_deep_merge():
    cfg = load_text(
        """\
        detector: {threads: 2, score_threshold: 0.9}
        capture: {width: 640}
        cameras:
          - name: a
            source: "demo:"
            detector: {threads: 4}
            capture: {width: null}
            enhance:
              low_light: {target_mean: 0.6}
          - name: b
            source: "demo:"
        """
    )
    a = C.camera_settings(cfg, cfg["cameras"][0])
    b = C.camera_settings(cfg, cfg["cameras"][1])
    assert a["name"] == "a" and a["source"] == "demo:" and a["enabled"] is True
    assert a["detector"]["threads"] == 4
    assert a["detector"]["score_threshold"] == 0.9  # global kept
    assert a["detector"]["backend"] == "onnx"  # default kept
    assert a["capture"]["width"] is None  # null overrides too
    assert a["enhance"]["low_light"] == {"enabled": True, "clahe_clip": 2.0, "target_mean": 0.6}
    assert a["enhance"]["denoise"] == cfg["enhance"]["denoise"]
    assert b["detector"] == cfg["detector"] and b["capture"]["width"] == 640
    # overrides stay sparse in the loaded config, and merging does not alias it
    assert cfg["cameras"][0]["detector"] == {"threads": 4}
    a["detector"]["threads"] = 99
    b["enhance"]["low_light"]["enabled"] = False
    assert cfg["detector"]["threads"] == 2 and cfg["enhance"]["low_light"]["enabled"] is True


# -- secrets ------------------------------------------------------------------------------------


def test_relative_password_file_is_taken_from_config_dir(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("x\n")
    (tmp_path / "pw").chmod(0o600)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(
        "mqtt:\n  password_file: pw\n  allow_insecure: true\n  tls: {ca_file: ca.pem}\n"
    )
    monkeypatch.chdir("/")
    cfg = C.load_config(cfg_file)
    assert cfg["mqtt"]["password_file"] == str(tmp_path / "pw")
    assert cfg["mqtt"]["tls"]["ca_file"] == str(tmp_path / "ca.pem")


def test_redaction():
    cfg = load_text(
        """\
        cameras:
          - name: a
            source: "rtsp://admin:hunter2@10.0.0.5:554/stream"
          - name: b
            source: "http://cam.lan/video.mjpg"
        mqtt:
          username: cam
          password_file: /run/secrets/mqtt
          allow_insecure: true
        """
    )
    shown = C.redacted(cfg)
    text = json.dumps(shown)
    assert "hunter2" not in text
    assert shown["cameras"][0]["source"] == "rtsp://admin:***@10.0.0.5:554/stream"
    assert shown["cameras"][1]["source"] == "http://cam.lan/video.mjpg"
    assert shown["mqtt"]["password_file"] == "/run/secrets/mqtt"  # a path, not a secret
    assert "hunter2" in cfg["cameras"][0]["source"]  # the original is untouched
    assert C.redacted({"x": {"api_token": "abc", "password": "p"}}) == {
        "x": {"api_token": "***", "password": "***"}
    }
    assert C.redact_uri("rtsp://user@cam/s") == "rtsp://user@cam/s"


def test_errors_do_not_echo_password_typed_into_password_file(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("mqtt:\n  password_file: hunter2\n  allow_insecure: true\n")
    _, warnings = C.check_config(cfg_file)
    assert any(w.key == "mqtt.password_file" and "no such file" in w.message for w in warnings)
    assert not any("hunter2" in str(w) for w in warnings)


def test_world_readable_warnings(tmp_path, caplog):
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(
        "cameras:\n  - name: a\n    source: rtsp://u:p@cam/s\n"
        "mqtt:\n  password_file: pw\n  tls: {enabled: true}\n"
    )
    pw.chmod(0o644)
    cfg_file.chmod(0o644)
    _, warnings = C.check_config(cfg_file)
    by_key = {w.key: w for w in warnings}
    assert "readable by group/others (mode 0644)" in by_key["mqtt.password_file"].message
    assert by_key["mqtt.password_file"].line == 5
    assert "URI holds a password" in by_key["cameras[0].source"].message
    assert by_key["cameras[0].source"].line == 3

    with caplog.at_level(logging.WARNING, logger="edge.config.load"):
        C.load_config(cfg_file)
    assert any("readable by group/others" in r.getMessage() for r in caplog.records)
    assert not any("u:p@" in r.getMessage() for r in caplog.records)

    pw.chmod(0o600)
    cfg_file.chmod(0o600)
    assert C.check_config(cfg_file)[1] == []


# -- command line -----------------------------------------------------------------------------


def test_config_check_main_ok(capsys):
    assert config_cmd.config_check_main(str(DEFAULT)) == 0
    assert capsys.readouterr().out.strip() == f"OK: {DEFAULT}"


def test_config_check_main_problems(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("log_level: info\ndetector:\n  backend: x\n  thread: 2\n")
    assert config_cmd.config_check_main(str(bad)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{bad}:3: detector.backend: 'x' is not one of onnx, tflite",
        f"{bad}:4: detector.thread: unknown key (did you mean 'threads'?)",
    ]


def test_config_check_main_missing_file(tmp_path, capsys):
    assert config_cmd.config_check_main(str(tmp_path / "nope.yaml")) == 2
    assert "cannot read" in capsys.readouterr().err


def test_config_show_main(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("cameras:\n  - {name: a, source: 'rtsp://u:topsecret@cam/s'}\n")
    f.chmod(0o600)
    assert config_cmd.config_show_main(str(f)) == 0
    out = capsys.readouterr().out
    assert "topsecret" not in out
    shown = yaml.safe_load(out)
    assert shown["cameras"][0]["source"] == "rtsp://u:***@cam/s"
    assert shown["detector"]["backend"] == "onnx"  # defaults filled


# -- small helpers ------------------------------------------------------------------------------


def test_resolve_device_id(monkeypatch):
    monkeypatch.setattr(C.socket, "gethostname", lambda: "pi cam/7#")
    assert C.resolve_device_id(None) == "pi-cam-7"
    assert C.resolve_device_id("gate-1") == "gate-1"
    # control characters and a leading '$' get past the schema's pattern, not into topics
    assert C.resolve_device_id("$gate\x07\x7f") == "_gate__"


# -- agreement with the reference jsonschema implementation -----------------------------------


def test_validator_agrees_with_jsonschema_on_example():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    ref = jsonschema.Draft202012Validator(schema)
    raw = yaml.safe_load(EXAMPLE.read_text())
    assert list(ref.iter_errors(raw)) == []
    _, ours = SchemaValidator(schema).validate(yaml.safe_load(EXAMPLE.read_text()))
    assert ours == []
    # the filled-in configuration is valid too
    assert list(ref.iter_errors(C.load_config(EXAMPLE))) == []
    assert list(ref.iter_errors(C.load_config(None))) == []


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in BAD_CASES
        if BAD_CASES[c][1] != "(yaml)"
        and "duplicate" not in c
        and "URI" not in c
        and "reconnect" not in c
        and "cert" not in c
        and "password" not in c
        and "device" not in c
        and "host" not in c
    ],
)
def test_validator_agrees_with_jsonschema_on_bad_cases(case):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    data = yaml.safe_load(textwrap.dedent(BAD_CASES[case][0]))
    ref_paths = {
        tuple(e.absolute_path) for e in jsonschema.Draft202012Validator(schema).iter_errors(data)
    }
    _, ours = SchemaValidator(schema).validate(data, fill_defaults=False)
    assert ref_paths and ours
    # jsonschema reports unknown keys at the parent mapping, we at the key itself
    from edge.config.validate import format_path

    ref_keys = {format_path(p) for p in ref_paths}
    for p in ours:
        parent = p.key.rsplit(".", 1)[0] if "." in p.key else "(root)"
        assert p.key in ref_keys or parent in ref_keys, (p, ref_keys)
