"""Shots: the quality of a face in a frame, the best shot of each track, and its aligned crop."""
