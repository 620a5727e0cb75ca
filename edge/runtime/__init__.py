"""Model files and the runtimes that run them (ONNX Runtime, LiteRT)."""
