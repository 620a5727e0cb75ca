"""The one wiring from a camera's settings to its running parts: detector, processor
(detection -> tracking -> shots) and event builder (enhancement -> event). The daemon,
`enhance`, `preview`, `doctor`, the benchmark and the tools all build cameras here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.capture import FrameSource, open_source
from edge.detect.base import Detector
from edge.enhance import EnhancementStage
from edge.pipeline.processor import EventBuilder, FaceProcessor
from edge.publish.topics import sanitize_level
from edge.settings import CameraSettings


def build_detector(settings: CameraSettings) -> Detector:
    """The face detector a camera's settings ask for (checksums checked on load)."""
    from edge.detect.mtcnn import FaceDetector

    d = settings.detector
    return FaceDetector(
        backend=d.backend,
        precision=d.precision,
        first_stage_precision=d.first_stage_precision,
        threads=int(d.threads),
        min_face_px=float(d.min_face_px),
        score_threshold=float(d.score_threshold),
        models_dir=d.models_dir,
    )


def build_enhancer(settings: CameraSettings) -> EnhancementStage:
    """The enhancement steps for crops of the camera's crop size and margin."""
    return EnhancementStage.from_settings(
        settings.enhance,
        crop_size=int(settings.best_shot.crop_size),
        margin=float(settings.best_shot.margin),
        models_dir=settings.detector.models_dir,
    )


@dataclass
class Camera:
    """Everything one camera runs with. ``name`` is already a safe MQTT topic level."""

    name: str
    settings: CameraSettings
    detector: Detector
    processor: FaceProcessor
    builder: EventBuilder

    def open_source(self, wall_clock: Callable[[], float] = time.time, **capture) -> FrameSource:
        """The camera's frame source (not started); ``capture`` overrides capture settings
        for this opening only (``loop=True`` for the doctor's look at a file)."""
        options = self.settings.capture.merged(capture) if capture else self.settings.capture
        return open_source(
            self.settings.source, camera=self.name, options=options, wall_clock=wall_clock
        )


def build_camera(
    settings: CameraSettings,
    *,
    device_id: str,
    name: str | None = None,
    detector: Detector | None = None,
    processor_cls: type[FaceProcessor] = FaceProcessor,
    builder_cls: type[EventBuilder] = EventBuilder,
) -> Camera:
    """Wire one camera from its settings (``Settings.cameras``: overrides already merged).

    ``name`` defaults to the camera's configured name (sanitized for MQTT); ``detector`` may
    be shared by cameras or tools that compare modes; the classes are seams for the
    benchmark's timed subclasses."""
    name = sanitize_level(name or settings.name)
    detector = detector or build_detector(settings)
    processor = processor_cls.from_settings(detector, settings)
    builder = builder_cls(
        enhancer=build_enhancer(settings),
        device_id=device_id,
        camera=name,
        detector_info=detector.info(),
        jpeg_quality=int(settings.enhance.jpeg_quality),
    )
    return Camera(name, settings, detector, processor, builder)
