"""Contact sheets for labelling mined detections by hand: one numbered tile per track
(videos: its first, middle and last crop) or per detection (photos), lowest detector score
first, so a person can mark the non-faces once.

    python -m tools.convert.facecheck.sheets --mined var/facecheck/mined --source crowd-night
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

TILE = 96


def groups(metas: list[dict], per_track: bool) -> list[tuple[str, list[int]]]:
    """(key, row indices): a track of a video, or one detection of a photo."""
    if not per_track:
        return [(str(i), [i]) for i in range(len(metas))]
    tracks: dict[int, list[int]] = {}
    for i, m in enumerate(metas):
        tracks.setdefault(m["track"], []).append(i)
    return [(str(t), rows) for t, rows in sorted(tracks.items())]


def tile(crops: np.ndarray, rows: list[int], label: str) -> np.ndarray:
    picks = [rows[0], rows[len(rows) // 2], rows[-1]] if len(rows) > 2 else rows
    images = [cv2.resize(crops[i], (TILE, TILE), interpolation=cv2.INTER_NEAREST) for i in picks]
    while len(images) < 3:
        images.append(np.zeros((TILE, TILE, 3), np.uint8))
    t = np.concatenate(images, 1)
    t = cv2.copyMakeBorder(t, 18, 2, 2, 2, cv2.BORDER_CONSTANT, value=(40, 40, 40))
    cv2.putText(t, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
    return t


def detection_sheet(args) -> None:
    """One small numbered tile per detection of the given tracks (for tracks that mix
    faces and non-faces, or several people)."""
    metas = json.loads((args.mined / f"{args.source}.json").read_text())
    crops = np.load(args.mined / f"{args.source}.npz")["crops"]
    wanted = {int(t) for t in args.tracks.split(",")}
    rows = [i for i, m in enumerate(metas) if m["track"] in wanted]
    tiles = []
    for i in rows:
        t = cv2.copyMakeBorder(crops[i], 12, 1, 1, 1, cv2.BORDER_CONSTANT, value=(40, 40, 40))
        cv2.putText(t, str(i), (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 255), 1)
        tiles.append(t)
    cols = 16
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.concatenate(
        [np.concatenate(tiles[r : r + cols], 1) for r in range(0, len(tiles), cols)]
    )
    out = args.mined / "sheets" / f"{args.source}-det-{args.tracks.replace(',', '_')[:40]}.png"
    cv2.imwrite(str(out), grid)
    print(out, len(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mined", type=Path, default=Path("var/facecheck/mined"))
    ap.add_argument("--source", required=True)
    ap.add_argument("--min-score", type=float, default=0.0)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--per-sheet", type=int, default=48)
    ap.add_argument("--tracks", default="", help="comma list: every detection of these tracks")
    args = ap.parse_args()
    if args.tracks:
        detection_sheet(args)
        return
    metas = json.loads((args.mined / f"{args.source}.json").read_text())
    crops = np.load(args.mined / f"{args.source}.npz")["crops"]
    per_track = metas and metas[0]["track"] >= 0
    items = [
        (k, rows) for k, rows in groups(metas, bool(per_track))
        if max(metas[i]["score"] for i in rows) >= args.min_score
    ]
    items.sort(key=lambda kr: max(metas[i]["score"] for i in kr[1]))
    out = args.mined / "sheets"
    out.mkdir(parents=True, exist_ok=True)
    for s in range(0, len(items), args.per_sheet):
        chunk = items[s : s + args.per_sheet]
        tiles = [
            tile(crops, rows, f"{k} n{len(rows)} s{max(metas[i]['score'] for i in rows):.2f}")
            for k, rows in chunk
        ]
        while len(tiles) % args.cols:
            tiles.append(np.zeros_like(tiles[0]))
        grid = np.concatenate(
            [np.concatenate(tiles[r : r + args.cols], 1) for r in range(0, len(tiles), args.cols)]
        )
        path = out / f"{args.source}-{s // args.per_sheet}.png"
        cv2.imwrite(str(path), grid)
        print(path, len(chunk))


if __name__ == "__main__":
    main()
