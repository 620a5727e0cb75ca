"""Face detection: the MTCNN cascade on the shipped INT8/FP32 models."""

from edge.detect.mtcnn import FaceDetector

__all__ = ["FaceDetector"]
