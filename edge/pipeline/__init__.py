"""The per-camera pipeline: detection -> tracking -> shots (processor), event building, the wiring from settings, and the frame loop."""
