"""Offline helpers for `face-edge bench` (torch lives here, never on the device's path)."""
