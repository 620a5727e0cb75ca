"""The daemon's settings as typed, frozen objects: one class per configuration section.

These classes are the configuration's single source of truth. Each field carries its default,
description and constraints (via :func:`setting`); a section's docstring is its description.
``edge.config.schema`` turns them into the JSON Schema the loader validates against, and
``tools/gen_config_docs.py`` writes that schema and ``config/README.md`` from it.

``edge.config.load.load_settings`` validates a YAML file and returns a :class:`Settings`;
``Settings.cameras`` holds each camera's own settings: its overrides already merged over the
global sections. Stages take their own section (``TrackerSettings``, ``EnhanceSettings``, ...).

Bottom layer: the standard library only, so every stage may import it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from typing import Any, Literal, Self

# The sections a camera entry may override; each is also a global section of the same name.
CAMERA_SECTIONS: tuple[str, ...] = ("capture", "detector", "tracker", "best_shot", "enhance")

REQUIRED: Any = MISSING  # as the default of :func:`setting`: the key has no default

Backend = Literal["onnx", "tflite"]
Precision = Literal["int8", "fp32"]
FirstStagePrecision = Literal["auto", "int8", "fp32"]
LogLevel = Literal["debug", "info", "warning", "error"]
FusionMethod = Literal["network", "average"]
Qos = Literal[0, 1, 2]

_DOC = "setting"  # the field metadata key holding a SettingDoc


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """What the schema says about a setting besides its type and default."""

    description: str
    title: str | None = None
    # JSON Schema keyword -> value: minimum, exclusiveMaximum, pattern, minLength, ...
    constraints: Mapping[str, Any] = field(default_factory=dict)


def setting(
    default: Any,
    description: str,
    *,
    title: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    exclusive_maximum: float | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    min_items: int | None = None,
) -> Any:
    """A settings field: its default (``REQUIRED``: none), description and constraints.

    The type, the allowed values of a ``Literal`` and nullability (``| None``) come from the
    field's annotation."""
    given = {
        "minimum": minimum,
        "exclusiveMinimum": exclusive_minimum,
        "maximum": maximum,
        "exclusiveMaximum": exclusive_maximum,
        "pattern": pattern,
        "minLength": min_length,
        "maxLength": max_length,
        "minItems": min_items,
    }
    doc = SettingDoc(description, title, {k: v for k, v in given.items() if v is not None})
    return field(default=default, metadata={_DOC: doc})


def section(cls: type[_Section]) -> Any:
    """A field holding a nested section; its default is the section's defaults."""
    return field(default_factory=cls)


def doc_of(f: dataclasses.Field) -> SettingDoc:
    """The :class:`SettingDoc` of a leaf field (made by :func:`setting`)."""
    return f.metadata[_DOC]


@cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotations of a settings class, by field name."""
    return typing.get_type_hints(cls)


def is_section(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, _Section)


class _Section:
    """Building, merging and flattening shared by every settings class."""

    __slots__ = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """From an already validated mapping (a section of ``load_config``'s dict): keys left
        out keep their defaults, nested mappings become sections and lists tuples."""
        return _build(cls, data)

    @classmethod
    def coerce(cls, value: Self | Mapping[str, Any] | None) -> Self:
        """``value`` itself when it is already this class, else :meth:`from_dict` of it
        (``None``: the defaults). For callers still holding config dicts."""
        if isinstance(value, cls):
            return value
        return cls.from_dict(value or {})

    def merged(self, override: Mapping[str, Any]) -> Self:
        """A copy with ``override``'s keys replaced: nested sections merge key by key; any
        other value, ``None`` included, replaces."""
        _check_keys(type(self), override)
        hints = field_types(type(self))
        changes = {}
        for key, value in override.items():
            current = getattr(self, key)
            if isinstance(current, _Section) and isinstance(value, Mapping):
                changes[key] = current.merged(value)
            else:
                changes[key] = _convert(hints[key], value)
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists, as ``load_config`` gives them."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    _check_keys(cls, data)
    hints = field_types(cls)
    return cls(**{k: _convert(hints[k], v) for k, v in data.items()})


def _check_keys(cls: type, data: Mapping[str, Any]) -> None:
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no setting {', '.join(sorted(map(str, unknown)))}")


def _convert(tp: Any, value: Any) -> Any:
    if is_section(tp) and isinstance(value, Mapping):
        return tp.from_dict(value)
    if typing.get_origin(tp) is tuple and isinstance(value, list | tuple):
        item = typing.get_args(tp)[0]
        return tuple(_convert(item, v) for v in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, _Section):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def optional_args(tp: Any) -> tuple[Any, ...]:
    """The members of a union annotation (``int | None`` -> ``(int, NoneType)``), or ``(tp,)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


# -- the sections a camera may override ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureSettings(_Section):
    """How frames are read from the camera source."""

    width: int | None = setting(
        None,
        "Frame width in pixels to ask the device for (v4l2, picamera2). null: the device's "
        "default. Network and file sources ignore it.",
        minimum=16,
        maximum=8192,
    )
    height: int | None = setting(
        None,
        "Frame height in pixels to ask the device for (v4l2, picamera2). null: the device's "
        "default.",
        minimum=16,
        maximum=8192,
    )
    fps: float | None = setting(
        None,
        "Frame rate in frames per second to ask the device for (v4l2, picamera2). null: the "
        "device's default.",
        exclusive_minimum=0,
        maximum=240,
    )
    loop: bool = setting(
        True, "file:// sources: start again from the beginning at the end of the file."
    )
    realtime: bool = setting(
        True,
        "file:// sources: pace frames at the file's frame rate; false reads as fast as the "
        "pipeline can take them (benchmarks).",
    )
    reconnect_min_s: float = setting(
        1.0,
        "Seconds to wait before the first reconnect after the source fails; later waits grow "
        "up to reconnect_max_s.",
        exclusive_minimum=0,
    )
    reconnect_max_s: float = setting(
        4.0,
        "Longest wait in seconds between reconnect attempts (the default keeps a returning "
        "camera's frames flowing again within ~5 s). Must be >= reconnect_min_s.",
        exclusive_minimum=0,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionsSettings(_Section):
    """Region-of-interest detection for a fixed camera: search only where the picture moved
    and around the faces being followed, instead of the whole frame every time (several times
    cheaper on a mostly still scene). The whole frame is still searched every
    full_frame_every_s, and whenever the regions would cover most of it."""

    enabled: bool = setting(
        True,
        "true: search motion and track regions; false: search every frame whole (a moving or "
        "panning camera gains nothing from regions).",
    )
    full_frame_every_s: float = setting(
        2.0,
        "Search the whole frame at least this often, in seconds: finds faces that never moved "
        "(they cause no motion region). Lower finds still faces sooner, at more CPU.",
        exclusive_minimum=0,
        maximum=3600,
    )
    motion_threshold: int = setting(
        25,
        "Grey-level change (1..255, on a blurred 320-pixel-wide copy of the frame) counted as "
        "motion. Raise if sensor noise or compression flicker in the dark makes motion "
        "everywhere; lower for dim, low-contrast scenes.",
        minimum=1,
        maximum=255,
    )
    min_region_px: int = setting(
        160,
        "Smallest side of a searched region, in frame pixels: small motion is searched with "
        "this much context, and the largest face a region can find is its short side.",
        minimum=24,
        maximum=4096,
    )
    max_area_fraction: float = setting(
        0.6,
        "When the regions together cover more than this fraction of the frame (crowds, camera "
        "moves, lights switched), search the whole frame instead.",
        exclusive_minimum=0,
        maximum=1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorSettings(_Section):
    """The face detector (MTCNN cascade, quantized)."""

    backend: Backend = setting("onnx", "Inference runtime: onnx (onnxruntime) or tflite (LiteRT).")
    precision: Precision = setting(
        "int8", "Model precision: int8 (quantized, fast) or fp32 (reference, slower)."
    )
    first_stage_precision: FirstStagePrecision = setting(
        "auto",
        "Precision of the first stage (P-Net, which scans the whole image pyramid and takes most "
        "of the detector's time). auto: with precision int8, both are timed on this CPU when the "
        "detector opens and the faster is kept (int8 unless fp32 takes less than 85 % of its "
        "time; on x86 fp32 is about twice as fast for this tiny network, the log says which and "
        "why); with precision fp32, fp32. int8 or fp32 fix it. The later stages always run in "
        "`precision`.",
    )
    threads: int = setting(
        1,
        "CPU threads the runtime may use per camera. Raise on a multi-core device with one camera.",
        minimum=1,
        maximum=64,
    )
    min_face_px: int = setting(
        20,
        "Smallest face height searched for, in frame pixels. Smaller values find distant faces "
        "but cost more CPU.",
        minimum=12,
        maximum=4096,
    )
    score_threshold: float = setting(
        0.8,
        "Minimum final (O-Net) confidence, 0..1, for a detection to be kept. Raise to cut false "
        "faces, lower to find hard faces.",
        minimum=0,
        maximum=1,
    )
    follow_faces: bool = setting(
        True,
        "true: each face seen in the previous frame is first checked where it was by the last "
        "stage (O-Net), and the first stage's candidates on it are skipped, so the middle and "
        "last stages only look at new faces (with 5 people in view, about 30 % less detector "
        "time). false: every candidate goes through all three stages.",
    )
    regions: RegionsSettings = section(RegionsSettings)
    models_dir: str | None = setting(
        None,
        "Directory holding the model files and manifest.json. null: the shipped models. "
        "Relative paths are taken from the config file's directory.",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerSettings(_Section):
    """Links detections across frames into tracks (one track per person in view)."""

    iou_threshold: float = setting(
        0.3,
        "Minimum box overlap (intersection over union, 0..1) for a detection to continue a "
        "track. Lower it for low frame rates or fast motion.",
        exclusive_minimum=0,
        maximum=1,
    )
    max_missed_s: float = setting(
        1.0, "Seconds a track may go unseen before it ends.", exclusive_minimum=0
    )
    min_hits: int = setting(
        2,
        "Detections a track needs before it may publish (filters one-frame false faces).",
        minimum=1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BestShotSettings(_Section):
    """Chooses which face crops of a track are published."""

    publish_interval_s: float = setting(
        10.0,
        "While a track lasts, publish its best shot at most this often, in seconds.",
        minimum=0,
    )
    first_shot_after_s: float = setting(
        1.0,
        "A new track publishes its first shot once it has been seen this long, in seconds: the "
        "best shot of that first moment, so a passer-by is reported quickly.",
        minimum=0,
    )
    pose_change_deg: float = setting(
        25.0,
        "Publish a new shot early when the head's yaw or pitch moved this many degrees since "
        "the last published shot.",
        minimum=0,
        maximum=180,
    )
    min_quality: float = setting(
        0.25,
        "Overall quality score below which a shot is never published: the estimated "
        "probability (0..1) that a recogniser at its operating point matches the shot to a "
        "clean photo of the person, from size, sharpness, contrast, exposure, codec "
        "blockiness and pose. 0.25 turns down about 22 % of unmatchable shots and 2 % of "
        "matchable ones (measured on degraded LFW, tools/eval/quality_fit.py).",
        minimum=0,
        maximum=1,
    )
    min_face_score: float = setting(
        0.5,
        "Face check score (0..1: a small face/non-face classifier on the aligned crop, capped "
        "by how face-like the 5 landmarks are laid out) below which a candidate is not a "
        "face and is never published. 0 turns the check off (no model is loaded). Measured on "
        "474 published shots, classifier trained without the shot's source: 0.5 keeps 0.7 % "
        "non-faces (1.5 % with the check off) and loses 1.7 % of faces; 0.2: 1.3 % and 1.1 %; "
        "0.9: 0.4 % and 3.2 % (tools/eval/face_check_eval.py).",
        minimum=0,
        maximum=1,
    )
    min_face_px: int = setting(
        20,
        "Smallest face height in frame pixels that may be published.",
        minimum=1,
        maximum=4096,
    )
    crop_size: int = setting(
        160, "Side of the aligned square face crop, in pixels.", minimum=32, maximum=1024
    )
    margin: float = setting(
        0.35,
        "Extra context around the 5-point alignment template, as a fraction of the crop "
        "(0 = tight face).",
        minimum=0,
        exclusive_maximum=1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LowLightSettings(_Section):
    """Brightening of dark crops (gamma, then CLAHE on the luminance), after the restoration
    network; crops already at target_mean are left as they are."""

    enabled: bool = setting(True, "Brighten dark crops.")
    clahe_clip: float = setting(
        2.0,
        "CLAHE clip limit; higher gives stronger local contrast (and more noise).",
        exclusive_minimum=0,
        maximum=40,
    )
    target_mean: float = setting(
        0.45,
        "Mean luminance (0..1) a dark crop is brought towards.",
        exclusive_minimum=0,
        maximum=1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DenoiseSettings(_Section):
    """Noise reduction (non-local means)."""

    enabled: bool = setting(
        False,
        "Reduce sensor noise with non-local means before the other steps (the restoration "
        "network already denoises; this helps only without it).",
    )
    strength: int = setting(
        5,
        "Filter strength; higher removes more noise and more detail.",
        minimum=0,
        maximum=30,
    )


# Set from the measurement in RESTORER_MODEL_CARD.md ("When the network runs").
MAX_EYE_PX_DEFAULT = 9.0
# Half the network's change: on LFW (RESTORER_MODEL_CARD.md, "Strength") it kept accuracy at
# 0.6 and TAR at equal FAR at or above bicubic where the network runs, which the network
# alone did not.
RESTORE_STRENGTH_DEFAULT = 0.5
# The buffered 80 px view holds a face's eyes 41.2/160 x 80 = 20.6 px apart: up to there,
# averaging views loses none of the camera's pixels (tools.eval.burst_eval, preset x2).
AVERAGE_MAX_EYE_PX_DEFAULT = 20.0
# With a burst, the fusion network (half strength, over the frames' average) beat frame
# averaging on identity at x4 (eyes 10.3 px apart) on LFW bursts and did not at x3 (13.7 px)
# (FUSION_MODEL_CARD.md): the switch sits at the largest size measured to gain.
NETWORK_MAX_EYE_PX_DEFAULT = 10.5
# Above the single-frame gate (the x4 size on LFW bursts of 8, K = 8, 1,200 pairs), less of the
# fusion network over the frames' average was better: strength 0.3 gave 91.6 % at distance 0.6
# and 78.8 TAR at equal FAR 1 %, 0.5 gave 90.8 / 76.7 and 0.75 88.9 / 71.8 (frame averaging
# alone: 89.1 / 67.0; 0.2: 90.9 / 73.2). At x8, below the gate, 0.5 stayed better at 0.6 (76.1 against
# 75.2 at 0.3): those faces keep restore.strength. With Lucas-Kanade registration, x4: 0.3
# 91.7 / 77.3, 0.4 91.4 / 77.5 (FUSION_MODEL_CARD.md).
ABOVE_GATE_STRENGTH_DEFAULT = 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreSettings(_Section):
    """The face-restoration network (super-resolution, deblurring, denoising), run on each
    published crop before the low-light step."""

    enabled: bool = setting(
        True, "Restore crops with the distilled network; false keeps only the classical steps."
    )
    backend: Backend = setting("onnx", "Inference runtime: onnx (onnxruntime) or tflite (LiteRT).")
    precision: Precision = setting(
        "int8", "Model precision: int8 (quantized, fast) or fp32 (reference, slower)."
    )
    threads: int = setting(1, "CPU threads the network may use per camera.", minimum=1, maximum=64)
    max_eye_px: float | None = setting(
        MAX_EYE_PX_DEFAULT,
        "Run the network only on faces the camera saw with the eyes at most this many pixels "
        "apart. The network sees faces at 10.3 px between the eyes: a larger face is shrunk to "
        "that first and loses what the camera captured. Measured on LFW (python -m "
        "tools.eval.restore_gate): it helped identity at 7.7 px and cost it from 10.3 px up. "
        "null: on every face.",
        exclusive_minimum=0,
    )
    strength: float = setting(
        RESTORE_STRENGTH_DEFAULT,
        "Share of the network's change kept over the plain upscale of the crop (like "
        "CodeFormer's fidelity weight): 1 is the network alone, 0 the plain crop. Lower keeps "
        "more of what the camera saw.",
        minimum=0,
        maximum=1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MultiFrameSettings(_Section):
    """Multi-frame restoration: a published face is restored from several frames of its track,
    registered onto it, instead of from the one frame: by the fusion network where the
    restoration network runs (restore.max_eye_px) and on faces up to network_max_eye_px, by
    frame averaging on larger faces up to average_max_eye_px."""

    enabled: bool = setting(
        True,
        "Fuse the track's recent frames into the restored face. Each track keeps its last "
        "max_frames faces at 80x80 (19,200 bytes each; at most 2 x max_frames per track).",
    )
    method: FusionMethod = setting(
        "network",
        "network: the fusion network in the restorer's backend and precision "
        "(restore_fusion_int8.onnx, or .tflite, which takes 8 frames: more are cut, fewer "
        "repeated); average: the classical baseline, registered frames averaged per pixel, no "
        "network.",
    )
    max_frames: int = setting(
        8, "Frames fused per published face (the shot's own included).", minimum=1, maximum=16
    )
    max_age_s: float = setting(
        2.0,
        "Only frames seen at most this many seconds before the published shot are fused.",
        minimum=0,
    )
    max_pose_delta_deg: float = setting(
        20.0,
        "Only frames whose head yaw and pitch are within this many degrees of the published "
        "shot's are fused (another view of the head does not register onto it).",
        minimum=0,
        maximum=180,
    )
    network_max_eye_px: float | None = setting(
        NETWORK_MAX_EYE_PX_DEFAULT,
        "Faces the single-frame network skips (eyes more than restore.max_eye_px apart) but "
        "seen with the eyes at most this many pixels apart are restored by the fusion network "
        "when at least two of their frames register (method network): several frames hold "
        "what one frame shrunk to the network's input loses. Measured on LFW bursts (python "
        "-m tools.eval.burst_eval). null: only up to restore.max_eye_px.",
        exclusive_minimum=0,
    )
    above_gate_strength: float | None = setting(
        ABOVE_GATE_STRENGTH_DEFAULT,
        "Share of the fusion network's change kept over the registered frames' average on the "
        "faces it restores above restore.max_eye_px (up to network_max_eye_px): there the "
        "frames hold more of the face and less network is better (measured on LFW bursts, "
        "python -m tools.eval.burst_eval --strength). null: restore.strength, as below the gate.",
        minimum=0,
        maximum=1,
    )
    average_max_eye_px: float | None = setting(
        AVERAGE_MAX_EYE_PX_DEFAULT,
        "Faces the network skips (eyes more than restore.max_eye_px apart) but seen with the "
        "eyes at most this many pixels apart are restored by frame averaging: their registered "
        "frames' per-pixel mean, no network. The buffered 80 px view holds eyes up to 20.6 px "
        "apart; larger faces would be shrunk. Measured on LFW bursts (python -m "
        "tools.eval.burst_eval). null: such faces keep their one frame.",
        exclusive_minimum=0,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EnhanceSettings(_Section):
    """Restoration applied to published crops."""

    enabled: bool = setting(
        True,
        "Run the enhancement stage at all; false publishes the aligned crop as captured.",
    )
    low_light: LowLightSettings = section(LowLightSettings)
    denoise: DenoiseSettings = section(DenoiseSettings)
    restore: RestoreSettings = section(RestoreSettings)
    multi_frame: MultiFrameSettings = section(MultiFrameSettings)
    jpeg_quality: int = setting(
        90, "JPEG quality (1..100) of the published crop.", minimum=1, maximum=100
    )


# -- broker and spool -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings(_Section):
    """TLS for the broker connection."""

    enabled: bool = setting(False, "Connect with TLS (usually port 8883).")
    ca_file: str | None = setting(
        None,
        "CA certificate (PEM) that signed the broker's certificate. null: the system CA store.",
    )
    cert_file: str | None = setting(
        None, "Client certificate (PEM) for mutual TLS; needs key_file."
    )
    key_file: str | None = setting(
        None, "Client private key (PEM) for mutual TLS; needs cert_file."
    )
    verify: bool = setting(
        True, "Check the broker's certificate and host name. false only for testing."
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings(_Section):
    """The MQTT broker that receives face events."""

    host: str | None = setting(
        None,
        "Broker host name or IP. null: start a local mosquitto on 127.0.0.1 (demo / first run).",
        min_length=1,
    )
    port: int = setting(
        1883,
        "Broker TCP port (1883 plain, 8883 TLS by convention).",
        minimum=1,
        maximum=65535,
    )
    topic_prefix: str = setting(
        "face-edge",
        "First topic level(s): events go to {prefix}/{device_id}/{camera}/faces. No wildcards, "
        "no leading or trailing '/'.",
        pattern=r"^[^/+#\s]+(/[^/+#\s]+)*$",
    )
    client_id: str | None = setting(
        None, "MQTT client id. null: face-edge-<device_id>.", min_length=1, max_length=128
    )
    qos: Qos = setting(1, "QoS of face events: 0 at most once, 1 at least once, 2 exactly once.")
    keepalive_s: int = setting(
        30,
        "Seconds between keepalive pings; the broker declares the device offline after 1.5x this.",
        minimum=5,
        maximum=65535,
    )
    username: str | None = setting(
        None, "User name for broker authentication. null: anonymous.", min_length=1
    )
    password_file: str | None = setting(
        None,
        "File holding the broker password (one line; trailing newline ignored). null: "
        "$CREDENTIALS_DIRECTORY/mqtt-password when systemd provides it. Keep it chmod 600. The "
        "password itself is never written in the configuration.",
    )
    allow_insecure: bool = setting(
        False,
        "Allow sending a password over plain TCP (tls.enabled false). Only on a trusted network.",
    )
    tls: TlsSettings = section(TlsSettings)
    stats_interval_s: float = setting(
        30,
        "Seconds between stats messages on {prefix}/{device_id}/stats.",
        exclusive_minimum=0,
    )
    reconnect_min_s: float = setting(
        1.0,
        "Seconds to wait before the first reconnect to the broker; later waits grow up to "
        "reconnect_max_s.",
        exclusive_minimum=0,
    )
    reconnect_max_s: float = setting(
        60.0,
        "Longest wait in seconds between broker reconnect attempts. Must be >= reconnect_min_s.",
        exclusive_minimum=0,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolSettings(_Section):
    """On-disk queue (SQLite) that keeps events while the broker is unreachable."""

    path: str | None = setting(
        None,
        "Spool database file. null: $STATE_DIRECTORY/spool.sqlite (systemd) or ./var/spool.sqlite.",
    )
    max_mb: float = setting(
        200,
        "Largest spool size in megabytes; the oldest events are dropped beyond it.",
        exclusive_minimum=0,
    )
    max_age_hours: float = setting(
        168, "Events older than this many hours are dropped from the spool.", exclusive_minimum=0
    )
    memory_max_mb: float = setting(
        32,
        "While the spool file cannot be written (read-only or missing directory, disk full), "
        "events wait in memory up to this many megabytes; the oldest are dropped (and counted) "
        "beyond it. The disk is tried again every 10 s.",
        exclusive_minimum=0,
    )


# -- cameras and the whole configuration --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraSettings(_Section):
    """One camera. Global sections may be overridden per camera."""

    name: str = setting(
        REQUIRED,
        "Camera name, unique on this device; used (sanitized) as an MQTT topic level.",
        pattern=r"\S",
        max_length=64,
    )
    source: str | int = setting(
        REQUIRED,
        "Where frames come from: picamera2:0 | v4l2:///dev/video0 | 0 (device index) | "
        "rtsp://host/path | rtsps:// | http(s):// (MJPEG) | file:///path/video.mp4 | demo: | "
        "demo:crowd (5 people)",
        minimum=0,
    )
    enabled: bool = setting(True, "false keeps the entry but does not open the camera.")
    # In a Settings: the camera's overrides merged over the global sections.
    capture: CaptureSettings = section(CaptureSettings)
    detector: DetectorSettings = section(DetectorSettings)
    tracker: TrackerSettings = section(TrackerSettings)
    best_shot: BestShotSettings = section(BestShotSettings)
    enhance: EnhanceSettings = section(EnhanceSettings)


_DEFAULT_CAMERAS = (CameraSettings(name="demo", source="demo:"),)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings(_Section):
    """Configuration of the face-edge daemon (YAML). Every key is optional unless marked
    required; unknown keys are errors."""

    device_id: str | None = setting(
        None,
        "Device name used as an MQTT topic level. null: the host name, sanitized. No '/', '+', "
        "'#' or spaces.",
        pattern=r"^[^/+#\s]+$",
        max_length=64,
    )
    log_level: LogLevel = setting("info", "Logging verbosity.")
    cameras: tuple[CameraSettings, ...] = setting(
        _DEFAULT_CAMERAS, "The cameras to watch (at least one).", min_items=1
    )
    capture: CaptureSettings = section(CaptureSettings)
    detector: DetectorSettings = section(DetectorSettings)
    tracker: TrackerSettings = section(TrackerSettings)
    best_shot: BestShotSettings = section(BestShotSettings)
    enhance: EnhanceSettings = section(EnhanceSettings)
    mqtt: MqttSettings = section(MqttSettings)
    spool: SpoolSettings = section(SpoolSettings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """From a validated configuration (``load_config``'s dict): camera entries hold
        sparse overrides, merged here over the global sections."""
        data = dict(data)
        entries = data.pop("cameras", None)
        base = _build(cls, data)
        if entries is None:  # the default cameras, over this configuration's sections
            entries = [
                {"name": c.name, "source": c.source, "enabled": c.enabled} for c in base.cameras
            ]
        return dataclasses.replace(base, cameras=tuple(base.camera_for(e) for e in entries))

    def camera_for(self, entry: Mapping[str, Any]) -> CameraSettings:
        """The settings a camera entry (``name``, ``source``, optional ``enabled`` and sparse
        override sections) runs with: its overrides deep-merged over the global sections."""
        _check_keys(CameraSettings, entry)
        merged = {s: getattr(self, s).merged(entry.get(s) or {}) for s in CAMERA_SECTIONS}
        own = {k: v for k, v in entry.items() if k not in CAMERA_SECTIONS}
        return CameraSettings(**own, **merged)

    def camera(self, name: str) -> CameraSettings:
        """The camera called ``name`` (its merged settings); KeyError when there is none."""
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)
