"""The built-in `demo:` clips: public-domain portraits walking through a synthetic corridor.

Scenes: `demo:` (the default, "corridor") has up to 2 people in view at once; `demo:crowd`
has 5 people in view for most of its 12 s (face heights ~32 to ~112 px), the load the
pipeline's "up to 5 faces" budget is measured on. The crowd repeats the two portraits; each
person is still one track.

`make_demo_clip()` renders a CCTV-like video: a procedurally drawn corridor,
two faces (edge/assets, see README there) moving in and out of view at face
heights from ~30 to ~120 px (1280x720), with slight scale and yaw-like changes,
then darkened, blurred, noisy and JPEG-compressed before being written with
the 'mp4v' codec. Next to the video a JSON file lists, per frame, the face box
(brow to chin) of every face drawn, for evaluation.

`ensure_demo_clip()` renders it once into the cache directory
($XDG_CACHE_HOME/face-edge or ~/.cache/face-edge, else a temp dir) and
returns its path; the `demo:` source plays it as a looping real-time file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

DEMO_VERSION = 1  # bump when the rendering changes: the cached clip is then remade
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
ASSET_FILES = {"astronaut": "astronaut.jpg", "grace_hopper": "grace_hopper.jpg"}

# Head-and-shoulders crops as fractions (x0, y0, x1, y1) of each photo, chosen so
# that the face (brow to chin) spans FACE_TOP..FACE_BOTTOM of the crop height and
# is centred horizontally. Fractions: valid for the originals and the assets.
HEAD_BOXES = {
    "astronaut": (108 / 512, 8 / 512, 332 / 512, 244 / 512),
    "grace_hopper": (74 / 512, 45 / 600, 442 / 512, 432 / 600),
}
FACE_TOP, FACE_BOTTOM = 0.22, 0.75
FACE_HALF_WIDTH = 0.24  # face box half width, as a fraction of the crop width

_lock = threading.Lock()


def head_crop(image: np.ndarray, which: str) -> np.ndarray:
    """Crop one of the known portraits ('astronaut', 'grace_hopper') to the layout
    make_demo_clip expects for `faces` (BGR in, BGR out)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = HEAD_BOXES[which]
    return np.ascontiguousarray(image[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)])


def load_asset_faces() -> list[np.ndarray]:
    """The two shipped portraits, cropped with head_crop (BGR)."""
    faces = []
    for which, name in ASSET_FILES.items():
        image = cv2.imread(str(ASSETS_DIR / name), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"demo asset missing or unreadable: {ASSETS_DIR / name}")
        faces.append(head_crop(image, which))
    return faces


# --------------------------------------------------------------------- scene
def _corridor(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A one-point-perspective corridor (BGR uint8)."""
    w, h = size
    vx, vy = 0.52 * w, 0.40 * h
    bw, bh = 0.10 * w, 0.13 * h  # half size of the far wall
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xs - vx) / bw, (ys - vy) / bh
    ax, ay = np.abs(dx), np.abs(dy)
    r = np.maximum(np.maximum(ax, ay), 1e-3)  # 1 on the far wall's edge, grows towards us
    depth = 1.0 / r  # 1 = far, -> 0 near the camera
    img = np.empty((h, w, 3), np.float32)

    far = r <= 1.0
    floor = ~far & (ay >= ax) & (dy > 0)
    ceil = ~far & (ay >= ax) & (dy < 0)
    walls = ~far & (ax > ay)

    shade = (0.45 + 0.55 * (1.0 - depth))[..., None]  # nearer is brighter
    img[:] = np.array([150, 170, 185], np.float32)  # walls: beige (BGR)
    img[floor] = (115, 120, 125)
    img[ceil] = (200, 205, 210)
    img[far] = (95, 110, 120)
    img *= np.where(far[..., None], 0.8, shade)

    # floor tiles: lateral position dx/dy and inverse depth on the floor plane
    lat = dx / np.maximum(dy, 1e-3)
    z = 1.0 / np.maximum(ay, 1e-3)
    tiles = ((np.floor(lat * 3.0) + np.floor(z * 12.0)) % 2 == 0) & floor
    img[tiles] *= 0.82
    # ceiling lights: bright panels in the middle strip at a few depths
    zc = (np.floor(z * 6.0) % 2 == 0) & (np.abs(dx / np.maximum(-dy, 1e-3)) < 0.35) & ceil
    img[zc] = (235, 245, 250)
    # doors on the side walls: dark frames at a few depths, lower 2/3 of the wall
    zw = 1.0 / np.maximum(ax, 1e-3)
    door = walls & ((zw * 5.0) % 1.0 < 0.35) & (dy / ax > -0.35) & (dy / ax < 1.0)
    img[door] = img[door] * np.array([0.45, 0.5, 0.6], np.float32)
    # a window/door in the far wall
    img[far & (np.abs(dx) < 0.35) & (dy > -0.6)] = (60, 70, 75)

    # low-frequency texture and a little grime
    tex = rng.normal(1.0, 0.08, (h // 40 + 2, w // 40 + 2)).astype(np.float32)
    tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_CUBIC)
    img *= tex[..., None]
    # vignetting, as from a cheap wide lens
    vig = 1.0 - 0.35 * (((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2) / 2
    img *= vig[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Track:
    face: int  # index into faces (modulo len)
    keys: tuple  # (t, x, y, face_h, yaw) keyframes; x, y: face centre in pixels @1280x720
    body_bgr: tuple[int, int, int]


_TRACKS_12S = (
    # walks left to right at mid distance, glancing aside on the way
    _Track(
        0,
        ((0.8, -90, 360, 60, 0.0), (3.5, 620, 350, 66, -0.09), (6.2, 1370, 362, 62, 0.09)),
        (40, 90, 200),
    ),
    # comes down the corridor towards the camera (30 -> 120 px), turns, leaves right
    _Track(
        1,
        (
            (2.0, 690, 292, 30, 0.0),
            (6.0, 740, 320, 56, 0.06),
            (8.6, 820, 372, 104, -0.08),
            (9.6, 930, 392, 120, -0.02),
            (11.0, 1440, 400, 122, 0.04),
        ),
        (70, 40, 30),
    ),
    # back again, small, crossing at the far end
    _Track(0, ((7.0, 360, 286, 30, 0.08), (11.6, 620, 280, 36, -0.05)), (40, 90, 200)),
)

# Five people in view together from ~0.4 s to ~11.6 s, spread so their faces do not overlap.
_CROWD_TRACKS_12S = (
    # left, strolling right at mid distance
    _Track(
        0,
        ((0.0, 110, 390, 70, 0.0), (6.0, 300, 380, 72, -0.06), (12.0, 470, 388, 70, 0.05)),
        (40, 90, 200),
    ),
    # right, strolling left, a little further away
    _Track(
        1,
        ((0.0, 1180, 300, 54, 0.0), (6.0, 1040, 306, 58, 0.06), (12.0, 900, 300, 56, -0.04)),
        (70, 40, 30),
    ),
    # down the middle towards the camera (34 -> 112 px)
    _Track(
        0,
        ((0.0, 640, 280, 34, 0.0), (8.0, 680, 340, 90, 0.05), (12.0, 720, 392, 112, -0.03)),
        (30, 120, 60),
    ),
    # far end, crossing slowly
    _Track(1, ((0.0, 400, 262, 32, 0.05), (12.0, 520, 266, 40, -0.05)), (120, 100, 60)),
    # near, right of centre, standing and looking around
    _Track(
        0,
        (
            (0.0, 960, 500, 96, 0.0),
            (4.0, 980, 495, 100, -0.08),
            (8.0, 1000, 500, 98, 0.07),
            (12.0, 1010, 498, 96, 0.0),
        ),
        (90, 60, 140),
    ),
)
SCENES = {"corridor": _TRACKS_12S, "crowd": _CROWD_TRACKS_12S}
DEFAULT_SCENE = "corridor"


def scene_of(spec: str) -> str:
    """The scene named by a `demo:` source (`demo:` and `demo:corridor` -> corridor,
    `demo:crowd` -> crowd). Raises ValueError for an unknown name."""
    name = str(spec).strip().partition(":")[2].strip().lower() or DEFAULT_SCENE
    _check_scene(name)
    return name


def _check_scene(name: str) -> None:
    if name not in SCENES:
        raise ValueError(
            f"unknown demo scene {name!r}: use " + ", ".join(f"demo:{n}" for n in SCENES)
        )


def _interp(keys: tuple, t: float) -> tuple[float, ...] | None:
    ts = [k[0] for k in keys]
    if t < ts[0] or t > ts[-1]:
        return None
    cols = list(zip(*keys, strict=True))
    return tuple(float(np.interp(t, ts, c)) for c in cols[1:])


def _sprite(face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face crop with a soft head-and-shoulders alpha mask (float32 HxW in 0..1)."""
    h, w = face.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, int(0.46 * h)), (int(0.31 * w), int(0.45 * h)), 0, 0, 360, 1.0, -1)
    cv2.ellipse(mask, (w // 2, int(1.10 * h)), (int(0.48 * w), int(0.32 * h)), 0, 0, 360, 1.0, -1)
    k = max(3, (min(h, w) // 12) | 1)
    mask = cv2.GaussianBlur(mask, (k, k), 0)
    return face.astype(np.float32), mask


def _place(
    frame: np.ndarray,
    sprite: tuple[np.ndarray, np.ndarray],
    cx: float,
    cy: float,
    face_h: float,
    yaw: float,
    body_bgr: tuple[int, int, int],
) -> list[float] | None:
    """Draw one person with the face centre at (cx, cy); returns the face box."""
    src, alpha = sprite
    sh, sw = src.shape[:2]
    scale = face_h / ((FACE_BOTTOM - FACE_TOP) * sh)
    squeeze = 1.0 - 1.6 * abs(yaw)  # turning the head narrows it
    th = max(4, round(sh * scale))
    tw = max(4, round(sw * scale * squeeze))
    img = cv2.resize(src, (tw, th), interpolation=cv2.INTER_AREA)
    a = cv2.resize(alpha, (tw, th), interpolation=cv2.INTER_AREA)
    # yaw-like warp: a nonlinear horizontal remap shifts the face's middle sideways
    v = np.linspace(0.0, 1.0, tw, dtype=np.float32)
    u = np.clip(v + 4.0 * yaw * v * (1.0 - v), 0.0, 1.0) * (tw - 1)
    map_x = np.broadcast_to(u, (th, tw)).astype(np.float32)
    map_y = np.broadcast_to(np.arange(th, dtype=np.float32)[:, None], (th, tw)).astype(np.float32)
    img = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR)
    a = cv2.remap(a, map_x, map_y, cv2.INTER_LINEAR)

    face_cy = (FACE_TOP + FACE_BOTTOM) / 2
    x0 = round(cx - tw / 2)
    y0 = round(cy - face_cy * th)
    fh, fw = frame.shape[:2]
    # the body below the head crop: a coat, then two legs
    dark = tuple(int(c * 0.45) for c in body_bgr)
    for side in (-1, 1):
        lx = cx + side * 0.2 * tw
        leg = np.array(
            [
                [lx - 0.13 * tw, y0 + 2.2 * th],
                [lx + 0.13 * tw, y0 + 2.2 * th],
                [lx + 0.11 * tw, y0 + 3.5 * th],
                [lx - 0.11 * tw, y0 + 3.5 * th],
            ]
        )
        cv2.fillPoly(frame, [leg.round().astype(np.int32)], (45, 45, 50), cv2.LINE_AA)
    coat = np.array(
        [
            [cx - 0.5 * tw, y0 + 0.9 * th],
            [cx + 0.5 * tw, y0 + 0.9 * th],
            [cx + 0.6 * tw, y0 + 2.35 * th],
            [cx - 0.6 * tw, y0 + 2.35 * th],
        ]
    )
    cv2.fillPoly(frame, [coat.round().astype(np.int32)], body_bgr, cv2.LINE_AA)
    cv2.line(
        frame,
        (round(cx), round(y0 + 1.0 * th)),
        (round(cx), round(y0 + 2.3 * th)),
        dark,
        max(1, tw // 40),
    )

    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + tw, fw), min(y0 + th, fh)
    if xa >= xb or ya >= yb:
        return None
    roi = frame[ya:yb, xa:xb].astype(np.float32)
    s = img[ya - y0 : yb - y0, xa - x0 : xb - x0]
    al = a[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
    frame[ya:yb, xa:xb] = (roi + (s - roi) * al).astype(np.uint8)
    # face box: the face middle follows the warp (moves by about -yaw * width)
    fcx = cx - yaw * tw
    half = FACE_HALF_WIDTH * sw * scale * squeeze
    return [fcx - half, y0 + FACE_TOP * th, fcx + half, y0 + FACE_BOTTOM * th]


def _visible(box: list[float], w: int, h: int) -> float:
    """The fraction of `box` inside a w x h frame."""
    x1, y1, x2, y2 = box
    inside = max(0.0, min(x2, w) - max(x1, 0)) * max(0.0, min(y2, h) - max(y1, 0))
    area = (x2 - x1) * (y2 - y1)
    return inside / area if area > 0 else 0.0


def _degrader(size: tuple[int, int], rng: np.random.Generator):
    """A function that makes a clean frame look like cheap night-time CCTV."""
    w, h = size
    bank = []
    for _ in range(6):  # pre-made noise, as uint8 offset by 32 (fast saturating add)
        luma = rng.normal(0.0, 7.0, (h, w, 1))
        chroma = rng.normal(0.0, 3.0, (h, w, 3))
        bank.append(np.clip(luma + chroma + 32.0, 0, 255).astype(np.uint8))
    x = np.arange(256, dtype=np.float32) / 255.0

    def degrade(frame: np.ndarray, t: float, i: int) -> np.ndarray:
        gain = 0.55 + 0.05 * np.sin(2 * np.pi * t / 7.0)  # slow auto-exposure drift
        lut = np.clip(255.0 * (gain * x) ** 1.3, 0, 255).astype(np.uint8)
        out = cv2.LUT(frame, lut)
        out = cv2.GaussianBlur(out, (0, 0), 1.3)
        out = cv2.subtract(cv2.add(out, bank[int(rng.integers(len(bank)))]), 32)
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 30])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out

    return degrade


def _overlay(frame: np.ndarray, t: float) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1_700_000_000 + int(t)))
    for color, off in (((0, 0, 0), 2), ((235, 235, 235), 0)):
        cv2.putText(
            frame,
            f"CAM 01  {stamp}",
            (24 + off, 44 + off),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.8,
            color,
            2,
            cv2.LINE_AA,
        )


def make_demo_clip(
    path: str | os.PathLike,
    *,
    faces: list[np.ndarray] | None = None,
    seconds: float = 12.0,
    fps: int = 25,
    size: tuple[int, int] = (1280, 720),
    seed: int = 0,
    degrade: bool = True,
    scene: str = DEFAULT_SCENE,
) -> Path:
    """Render the demo clip to `path` (an .mp4, codec 'mp4v'); returns the path.

    faces: BGR head crops in the head_crop() layout (default: the two shipped
    portraits). The people's paths are laid out for 12 s and stretched to
    `seconds`; positions and sizes scale with `size` (sizes quoted for 1280x720).
    scene: one of SCENES (which people walk where).
    Also writes `<path minus suffix>.json`: {"fps", "size", "frames": [[{"face",
    "box": [x1, y1, x2, y2], "visible": fraction in frame}, ...], ...]} with the
    face boxes (brow to chin, approximate) drawn per frame.
    """
    path = Path(path)
    faces = load_asset_faces() if faces is None else faces
    if not faces:
        raise ValueError("faces must not be empty")
    _check_scene(scene)
    rng = np.random.default_rng(seed)
    w, h = int(size[0]), int(size[1])
    sx, sy = w / 1280.0, h / 720.0
    sprites = [_sprite(np.ascontiguousarray(f[..., :3])) for f in faces]
    background = _corridor((w, h), rng)
    degrade_fn = _degrader((w, h), rng) if degrade else None
    n_frames = max(1, round(seconds * fps))
    stretch = seconds / 12.0

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write video {path}")
    boxes_per_frame: list[list[dict]] = []
    try:
        for i in range(n_frames):
            t = i / fps
            frame = background.copy()
            people = []
            for track in SCENES[scene]:
                state = _interp(track.keys, t / stretch)
                if state is not None:
                    people.append((track, state))
            boxes = []
            for track, (x, y, fh, yaw) in sorted(people, key=lambda p: p[1][2]):  # far first
                y += 0.03 * fh * np.sin(2 * np.pi * 1.8 * t + track.face)  # walking bob
                idx = track.face % len(sprites)
                box = _place(frame, sprites[idx], x * sx, y * sy, fh * sy, yaw, track.body_bgr)
                vis = _visible(box, w, h) if box is not None else 0.0
                if vis > 0:
                    boxes.append(
                        {"face": idx, "box": [round(v, 1) for v in box], "visible": round(vis, 2)}
                    )
            _overlay(frame, t)
            if degrade_fn is not None:
                frame = degrade_fn(frame, t, i)
            writer.write(frame)
            boxes_per_frame.append(boxes)
    finally:
        writer.release()
    meta = {"fps": fps, "size": [w, h], "frames": boxes_per_frame}
    path.with_suffix(".json").write_text(json.dumps(meta, separators=(",", ":")))
    return path


def cache_dir() -> Path:
    """Where the demo clip is kept: $XDG_CACHE_HOME/face-edge, ~/.cache/face-edge or a temp dir."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for candidate in (Path(base) / "face-edge", Path(tempfile.gettempdir()) / "face-edge"):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return candidate
        except OSError:
            continue
    return Path(tempfile.mkdtemp(prefix="face-edge-"))


def demo_clip_key(scene: str = DEFAULT_SCENE) -> str:
    """A hash of everything a scene's clip depends on."""
    # The default scene keeps its pre-scene key, so clips already cached stay valid.
    tag = "" if scene == DEFAULT_SCENE else f":{scene}"
    digest = hashlib.sha256(f"v{DEMO_VERSION}:{cv2.__version__.split('.')[0]}{tag}".encode())
    for name in ASSET_FILES.values():
        digest.update((ASSETS_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure_demo_clip(
    directory: str | os.PathLike | None = None, scene: str = DEFAULT_SCENE
) -> Path:
    """A scene's demo clip path, rendering it first if it is not cached yet."""
    directory = Path(directory) if directory is not None else cache_dir()
    prefix = "demo" if scene == DEFAULT_SCENE else f"demo-{scene}"
    path = directory / f"{prefix}-{demo_clip_key(scene)}.mp4"
    with _lock:
        if path.is_file() and path.stat().st_size > 0 and path.with_suffix(".json").is_file():
            return path
        t0 = time.monotonic()
        tmp = directory / f".demo-{os.getpid()}-{threading.get_ident()}.mp4"
        try:
            make_demo_clip(tmp, scene=scene)
            os.replace(tmp.with_suffix(".json"), path.with_suffix(".json"))
            os.replace(tmp, path)  # atomic: another process may be doing the same
        finally:
            for leftover in (tmp, tmp.with_suffix(".json")):
                leftover.unlink(missing_ok=True)
        log.info("demo clip rendered in %.1f s: %s", time.monotonic() - t0, path)
    return path
