"""Draw what the pipeline sees on a frame (boxes, landmarks, track ids, quality) and lay
original vs enhanced crops side by side: for the README, previews and technicians."""

from __future__ import annotations

import cv2
import numpy as np

from edge.shots.best_shot import Shot
from edge.track import Track

_COLOURS = [
    (0, 200, 255),
    (80, 220, 80),
    (255, 160, 0),
    (220, 80, 220),
    (60, 60, 255),
    (255, 255, 0),
]


def annotate_frame(
    image: np.ndarray,
    tracks: list[Track],
    shots: list[Shot] = (),
    regions: list[tuple[int, int, int, int]] | None = None,
) -> np.ndarray:
    """regions: where the detector searched (thin grey boxes); None draws none."""
    out = image.copy()
    published = {s.track_id for s in shots}
    for x1, y1, x2, y2 in regions or ():
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), (160, 160, 160), 1)
    for t in tracks:
        det = t.detection
        colour = _COLOURS[t.track_id % len(_COLOURS)]
        x1, y1, x2, y2 = (int(round(v)) for v in det.box)
        thick = 3 if t.track_id in published else 1
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        for x, y in det.landmarks:
            cv2.circle(out, (int(round(x)), int(round(y))), 2, colour, -1, cv2.LINE_AA)
        label = f"#{t.track_id} {det.score:.2f}"
        st = t.state.get("shots")
        if st is not None and getattr(st, "candidate", None) is not None:
            label += f" q{st.candidate.quality.overall:.2f}"
        if t.track_id in published:
            label += " PUB"
        # dark outline under the coloured text: readable on any background
        for col, thickness in (((0, 0, 0), 3), (colour, 1)):
            org = (x1, max(12, y1 - 4))
            cv2.putText(
                out, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, thickness, cv2.LINE_AA
            )
    return out


def contact_sheet(
    pairs: list[tuple[np.ndarray, np.ndarray]], labels: list[str] | None = None, size: int = 160
) -> np.ndarray:
    """Rows of original | enhanced crops, each resized to `size`."""
    rows = []
    for i, (orig, enh) in enumerate(pairs):
        a = cv2.resize(orig, (size, size), interpolation=cv2.INTER_NEAREST)
        b = cv2.resize(enh, (size, size), interpolation=cv2.INTER_CUBIC)
        row = np.hstack([a, np.full((size, 4, 3), 255, np.uint8), b])
        if labels:
            cv2.putText(
                row,
                labels[i],
                (4, 14),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
        rows.append(row)
        rows.append(np.full((4, row.shape[1], 3), 255, np.uint8))
    if not rows:
        return np.zeros((size, 2 * size + 4, 3), np.uint8)
    return np.vstack(rows[:-1])
