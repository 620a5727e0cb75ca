"""Labels of the mined detections: the renderer's for the demo clips, 'face' for UTKFace,
and hand labels for the shared videos and photos.

Hand labelling happened once, on contact sheets (``sheets.py``): per track for the videos,
per detection for the photos. ``write`` turns those decisions into
``tools/eval/face_labels.json``: every labelled detection as ``[frame, x1, y1, x2, y2,
label]`` per source, so that later runs (another detector build, another tracker) find
their label by box overlap instead of by a track number.

    python -m tools.convert.facecheck.labels write --hand tools/eval/face_labels_hand.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.geometry import iou_matrix

LABELS_FILE = Path(__file__).resolve().parents[2] / "eval" / "face_labels.json"
HAND_SOURCES = ("stage-speaker", "crowd-night", "photos")


@dataclass
class Labelled:
    crops: np.ndarray
    labels: np.ndarray
    group: list[str]  # the source a crop counts to in leave-one-source-out evaluation
    keys: list[str]


class LabelBook:
    """Looks up the hand label of a detection by source, frame and box overlap."""

    def __init__(self, path: Path = LABELS_FILE):
        raw = json.loads(Path(path).read_text())
        self.by_frame: dict[tuple[str, int], np.ndarray] = {}
        for source, rows in raw["labels"].items():
            for frame, x1, y1, x2, y2, label in rows:
                key = (source, int(frame))
                row = np.array([[x1, y1, x2, y2, label]], np.float64)
                self.by_frame[key] = np.vstack([self.by_frame[key], row]) if key in \
                    self.by_frame else row

    def label(self, source: str, frame: int, box) -> int:
        """1 face, 0 non-face, -1 unknown (no labelled box overlaps by IoU >= 0.5)."""
        rows = self.by_frame.get((source, int(frame)))
        if rows is None:
            return -1
        iou = iou_matrix(np.asarray([box], np.float64), rows[:, :4])[0]
        best = int(np.argmax(iou))
        return int(rows[best, 4]) if iou[best] >= 0.5 else -1


def _source_of(name: str, meta: dict) -> str:
    return "photos" if name in ("photos", "bg-photos") else name.removeprefix("bg-")


def load_labelled(mined: Path, labels_file: Path = LABELS_FILE) -> Labelled:
    book = LabelBook(labels_file) if labels_file.exists() else None
    crops, labels, group, keys = [], [], [], []
    for path in sorted(mined.glob("*.json")):
        name = path.stem
        metas = json.loads(path.read_text())
        arr = np.load(mined / f"{name}.npz")["crops"]
        for i, m in enumerate(metas):
            label = m["label"]
            if name in HAND_SOURCES:
                if book is None:
                    continue
                label = book.label(m["source"], m["frame"], m["box"])
            if label < 0:
                continue
            crops.append(arr[i])
            labels.append(label)
            group.append(_source_of(name, m))
            keys.append(f"{m['source']}|{m['frame']}|{m['track']}|{i}")
    return Labelled(np.stack(crops), np.array(labels, np.int64), group, keys)


def _ids(items: list) -> set[int]:
    """Numbers and "a-b" ranges (inclusive)."""
    out: set[int] = set()
    for item in items:
        if isinstance(item, str) and "-" in item:
            a, b = item.split("-")
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(item))
    return out


def write(mined: Path, hand: Path, out: Path) -> None:
    """Expand the hand decisions into box labels. Per source: ``detections`` (indices into
    the mined list, by label: face / nonface / unsure) win over ``tracks`` (track ids, by
    label); a detection named in neither is left out (not looked at)."""
    decisions = json.loads(hand.read_text())
    result: dict[str, list] = {}
    for source in HAND_SOURCES:
        d = decisions[source]
        metas = json.loads((mined / f"{source}.json").read_text())
        det = {k: _ids(v) for k, v in d.get("detections", {}).items()}
        trk = {k: _ids(v) for k, v in d.get("tracks", {}).items()}
        for i, m in enumerate(metas):
            label = None
            for name, value in (("face", 1), ("nonface", 0), ("unsure", -1)):
                if i in det.get(name, set()):
                    label = value
            if label is None:
                for name, value in (("face", 1), ("nonface", 0), ("unsure", -1)):
                    if m["track"] in trk.get(name, set()):
                        label = value
            if label is None or label < 0:
                continue
            result.setdefault(m["source"], []).append([m["frame"], *m["box"], label])
    counts = {s: [len(r), sum(1 for x in r if x[-1] == 0)] for s, r in result.items()}
    out.write_text(json.dumps({"about": __doc__.split("\n")[0], "labels": result},
                              separators=(",", ":")))
    print(f"wrote {out}: {sum(v[0] for v in counts.values())} detections in "
          f"{len(counts)} sources, {sum(v[1] for v in counts.values())} non-faces")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["write"])
    ap.add_argument("--mined", type=Path, default=Path("var/facecheck/mined"))
    ap.add_argument("--hand", type=Path, default=Path("tools/eval/face_labels_hand.json"))
    ap.add_argument("--out", type=Path, default=LABELS_FILE)
    args = ap.parse_args()
    write(args.mined, args.hand, args.out)


if __name__ == "__main__":
    main()
