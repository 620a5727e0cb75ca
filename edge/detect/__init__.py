"""Face detection: the `Detector` seam and the MTCNN cascade on the shipped INT8/FP32 models."""

from edge.detect.base import Detector
from edge.detect.mtcnn import FaceDetector

__all__ = ["Detector", "FaceDetector"]
