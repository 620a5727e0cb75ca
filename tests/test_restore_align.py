"""`face-edge restore` finds the face and restores it in the network's framing wherever it
sits: tight (ArcFace-like), loose and off-centre crops of the shipped photos, shrunk to a
CCTV-like 40-64 px, through the real INT8 detector and restorer. The landmarks land where
the model's framing has them, the output keeps the input's framing, a crop without a face
falls back and says so, `--no-align` is the earlier path byte for byte, and on the
off-centre and loose crops the aligned path is closer to the clean photo than the earlier
centre framing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR
from edge.commands.find_face import crop_detector, find_face
from edge.commands.restore import SUMMARY_FILE, restore_folder
from edge.detect.mtcnn import FaceDetector
from edge.enhance.face_frame import (
    AlignedRestorer,
    apply,
    model_landmarks,
    output_hw,
    resize_matrix,
)
from edge.enhance.restorer import (
    MODEL_FRAMING,
    FaceRestorer,
    FramedRestorer,
    aligned_crop_framing,
    resize_to,
)
from edge.settings import RESTORE_STRENGTH_DEFAULT
from tools.convert.restore.degrade import degrade

PHOTOS = ("astronaut", "grace_hopper")
# A crop's (width, height) in eye distances and where its eye centre sits, as fractions of
# (width, height). "lfw": the model's own framing (160 / 41.2 eye distances, eyes at
# MODEL_FRAMING); "tight": the ArcFace 112 template's framing, no margin.
KINDS = {
    "lfw": (3.88, 3.88, 0.488, 0.406),
    "tight": (3.2, 3.2, 0.5, 0.46),
    "loose": (5.5, 5.5, 0.5, 0.38),
    "offcentre": (4.0, 5.0, 0.3, 0.3),
}
SIDES = (40, 48, 64)  # the crop's longer side after shrinking: faces of ~15-40 px


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


@pytest.fixture(scope="module")
def restorer() -> FaceRestorer:
    """The network alone (strength 1): what these tests measure is where it restores."""
    return FaceRestorer("onnx", "int8")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return crop_detector()


@pytest.fixture(scope="module")
def photos() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, face box, landmarks) of each shipped photo, found by the detector at full size."""
    out = {}
    finder = FaceDetector()
    for name in PHOTOS:
        image = cv2.imread(str(ASSETS_DIR / f"{name}.jpg"))
        face = max(finder.detect(image), key=lambda d: d.height)  # the photo's face, not a badge
        out[name] = (image, face.box.astype(np.float64), face.landmarks.astype(np.float64))
    return out


def cut(photo: tuple, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(crop, its top-left corner in the photo)."""
    image, _, lm = photo
    w, h, fx, fy = KINDS[kind]
    eyes, ed = lm[:2].mean(0), float(np.linalg.norm(lm[1] - lm[0]))
    x0, y0 = round(eyes[0] - fx * w * ed), round(eyes[1] - fy * h * ed)
    x1, y1 = x0 + round(w * ed), y0 + round(h * ed)
    assert x0 >= 0 and y0 >= 0 and x1 <= image.shape[1] and y1 <= image.shape[0]
    return image[y0:y1, x0:x1], np.array([x0, y0], np.float64)


def shrink(crop: np.ndarray, side: int, seed: int | None = None) -> np.ndarray:
    """The crop with longer side `side`: area-averaged, or (seed) through the evaluation's
    CCTV degradation (blur, 4x downscale, noise, JPEG 40) from 4x that size."""
    k = side / max(crop.shape[:2])
    w, h = round(crop.shape[1] * k), round(crop.shape[0] * k)
    if seed is None:
        return cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
    big = cv2.resize(crop, (4 * w, 4 * h), interpolation=cv2.INTER_AREA)
    return degrade(big, "x4", np.random.default_rng(seed))


def in_crop(points: np.ndarray, crop: np.ndarray, corner: np.ndarray, hw: tuple) -> np.ndarray:
    """Photo points in the pixels of the crop resized to hw."""
    return apply(resize_matrix(crop.shape[:2], hw), points.reshape(-1, 2) - corner)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", PHOTOS)
def test_the_face_of_a_small_crop_is_found_with_its_landmarks(detector, photos, name, kind, side):
    crop, corner = cut(photos[name], kind)
    small = shrink(crop, side)
    face = find_face(detector, small)
    assert face is not None, f"no face in the {kind} crop at {small.shape[1]}x{small.shape[0]}"
    truth = in_crop(photos[name][2], crop, corner, small.shape[:2])
    # landmarks in the small crop's pixels (eye distance 8-20 px); 1.1 px worst measured
    assert np.abs(face.landmarks - truth).max() < 2.0


def test_model_landmarks_are_the_framing_the_network_learned():
    lm = model_landmarks(160)
    ed, centre = MODEL_FRAMING.at(160)
    np.testing.assert_allclose(lm[:2].mean(0), centre, atol=1e-6)
    assert np.linalg.norm(lm[1] - lm[0]) == pytest.approx(ed, rel=1e-3)  # the template's roll
    # The detector's medians on 100 LFW deep-funneled crops (seed 0) are within 2.2 px.
    lfw = [[56.6, 65.5], [98.7, 64.4], [78.2, 90.1], [60.1, 110.5], [97.5, 110.2]]
    assert np.abs(lm - lfw).max() < 2.5
    np.testing.assert_allclose(model_landmarks(40), lm / 4)  # fractions of the side


@pytest.mark.parametrize("side", (48, 64))
@pytest.mark.parametrize("kind", ["tight", "loose", "offcentre"])
@pytest.mark.parametrize("name", PHOTOS)
def test_the_network_sees_the_face_where_its_framing_puts_it(
    detector, restorer, photos, name, kind, side
):
    """The detector on the view the network is given finds the face at the model's framing:
    eye centre within 4 px, 5 points within 7 px on average at 160 px (eye distance 41 px;
    measured 3.2 and 5.9 px at worst: a real face is not the template, the view of the
    full-size photo itself is 2.9 and 5.3 px off for the astronaut), and where it finds the
    face in the view of the full-size photo (2.2 px at worst). Centre framing: 11.7 px off or
    more."""
    aligned = AlignedRestorer(restorer)
    image, _, photo_lm = photos[name]
    crop, _ = cut(photos[name], kind)
    small = shrink(crop, side)
    face = find_face(detector, small)
    view, to_model = aligned.model_view(small, face.landmarks)
    assert view.shape == (160, 160, 3)
    seen = find_face(detector, view)
    assert seen is not None
    target = model_landmarks(160)
    _, eye_centre = MODEL_FRAMING.at(160)
    assert np.linalg.norm(seen.landmarks[:2].mean(0) - eye_centre) < 4.0
    assert np.linalg.norm(seen.landmarks - target, axis=1).mean() < 7.0
    full_view, _ = aligned.model_view(image, photo_lm)
    reference = find_face(detector, full_view).landmarks
    assert np.linalg.norm(seen.landmarks - reference, axis=1).mean() < 3.0
    # centre framing (the earlier path) puts it elsewhere: the test can tell
    off = find_face(detector, resize_to(small, (160, 160)))
    assert off is None or np.linalg.norm(off.landmarks - target, axis=1).mean() > 10.0
    assert np.abs(apply(to_model, face.landmarks) - target).max() < 8  # the fit itself: 6.9


def make_folder(folder: Path, photos: dict, side: int = 48, seed: int = 0) -> dict[str, tuple]:
    """Degraded tight, loose and off-centre crops of both photos, and a crop with no face
    (the flag behind the astronaut). name -> (crop, corner)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in PHOTOS:
        for i, kind in enumerate(("tight", "loose", "offcentre")):
            crop, corner = cut(photos[name], kind)
            file = f"{name}_{kind}.{'png' if i % 2 else 'jpg'}"
            cv2.imwrite(str(folder / file), shrink(crop, side, seed))
            made[file] = (crop, corner)
    flag = photos["astronaut"][0][0:120, 0:120]
    cv2.imwrite(str(folder / "flag.png"), shrink(flag, side))
    return made


def test_the_output_keeps_the_inputs_framing(tmp_path, detector, restorer, photos):
    src, dst = tmp_path / "in", tmp_path / "out"
    made = make_folder(src, photos)
    summary = restore_folder(src, dst, restorer, detector=detector)
    assert summary.restored == 7 and not summary.failed
    assert summary.no_face == ["flag.png"]
    records = {r["file"]: r for r in json.loads((dst / SUMMARY_FILE).read_text())["files"]}
    for file in made:
        small = cv2.imread(str(src / file))
        out = cv2.imread(str(dst / file))
        assert out.shape[:2] == output_hw(small.shape[:2], 160)  # aspect kept, longer side 160
        rec = records[file]
        assert rec["face_found"] and rec["framing"] == "aligned" and rec["score"] > 0.9
        found = find_face(detector, small)
        np.testing.assert_allclose(rec["landmarks"], found.landmarks, atol=0.06)
        # The restored face is where the input's face was, scaled (the off-centre one stays
        # off-centre): the detector on the output agrees with it on the input within 0.2 eye
        # distances on average (0.15 measured: 9 px eye distance, degraded, in the loose
        # crop), and with the clean photo's landmarks within 3 px at 160 px (2.0 measured).
        expected = apply(resize_matrix(small.shape[:2], out.shape[:2]), found.landmarks)
        truth = in_crop(photos[file.rsplit("_", 1)[0]][2], *made[file], out.shape[:2])
        seen = find_face(detector, out)
        assert seen is not None, file
        ed = np.linalg.norm(expected[1] - expected[0])
        assert np.linalg.norm(seen.landmarks - expected, axis=1).mean() < 0.2 * ed, file
        assert np.linalg.norm(seen.landmarks - truth, axis=1).mean() < 3.0, file
    # outside the face the output is the input, resized: nothing invented there
    small = cv2.imread(str(src / "astronaut_loose.png"))
    out = cv2.imread(str(dst / "astronaut_loose.png"))
    corner = np.s_[:24, :24]
    assert np.array_equal(out[corner], resize_to(small, out.shape[:2])[corner])


def run_restore(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "edge", "restore", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_no_face_falls_back_and_no_align_is_the_earlier_path(tmp_path, restorer, photos):
    src = tmp_path / "in"
    make_folder(src, photos)
    files = sorted(p.name for p in src.iterdir())
    runs = {}
    for label, extra in {
        "aligned": [],
        "plain": ["--no-align"],
        "aligned-m": ["--margin", "0.35"],
        "plain-m": ["--no-align", "--margin", "0.35"],
    }.items():
        runs[label] = out = tmp_path / label
        res = run_restore(str(src), str(out), *extra, "--strength", "1")
        assert res.returncode == 0, res.stderr
        assert "restored 7 faces" in res.stdout
        flagged = [line for line in res.stderr.splitlines() if "no face found" in line]
        if label.startswith("aligned"):
            assert flagged == [f"no face found in {src / 'flag.png'}: restored framed " + (
                "as the model's crops" if label == "aligned" else "from --margin 0.35"
            )]  # fmt: skip
            summary = json.loads((out / SUMMARY_FILE).read_text())
            assert summary["no_face"] == 1 and summary["restored"] == 7
            assert summary["restorer"]["strength"] == 1.0
            (flag,) = [r for r in summary["files"] if r["file"] == "flag.png"]
            assert flag["face_found"] is False and "landmarks" not in flag
            assert flag["framing"] == ("centre" if label == "aligned" else "margin 0.35")
            assert flag["out_size"] == [160, 160] and flag["ms"] > 0
        else:
            assert not flagged and not (out / SUMMARY_FILE).exists()
            assert sorted(p.name for p in out.iterdir()) == files
    # --no-align: what the restorer gave before this command looked for faces, byte for byte
    framed = FramedRestorer(restorer, aligned_crop_framing(160, 0.35))
    for file in files:
        image = cv2.imread(str(src / file))
        for label, expected in (
            ("plain", restorer(image)),
            ("plain-m", framed(resize_to(image, (160, 160)))),
        ):
            cv2.imwrite(str(tmp_path / f"expected_{file}"), expected)
            assert (runs[label] / file).read_bytes() == (tmp_path / f"expected_{file}").read_bytes()
    # the face-less crop falls back to exactly that path
    for aligned, plain in (("aligned", "plain"), ("aligned-m", "plain-m")):
        assert (runs[aligned] / "flag.png").read_bytes() == (runs[plain] / "flag.png").read_bytes()
        for file in files:
            if file != "flag.png":
                assert (runs[aligned] / file).read_bytes() != (runs[plain] / file).read_bytes()
    # Without --strength: the daemon's default share of the network's change, said in the summary.
    default = tmp_path / "default"
    assert run_restore(str(src), str(default)).returncode == 0
    summary = json.loads((default / SUMMARY_FILE).read_text())
    assert summary["restorer"]["strength"] == RESTORE_STRENGTH_DEFAULT < 1.0
    assert (default / "flag.png").read_bytes() != (runs["aligned"] / "flag.png").read_bytes()


def face_psnr(detector, restorer, photos, name, kind, side, seed) -> dict[str, float]:
    """PSNR on the face (the detector's box on the full-size photo) against the clean photo
    cut the same way, at the output's size: aligned, the earlier centre framing (its 160x160
    output resized to the output's size) and bicubic."""
    crop, corner = cut(photos[name], kind)
    small = shrink(crop, side, seed)
    face = find_face(detector, small)
    assert face is not None
    aligned = AlignedRestorer(restorer)(small, face.landmarks).image
    hw = aligned.shape[:2]
    clean = cv2.resize(crop, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    box = in_crop(photos[name][1], crop, corner, hw).reshape(4)
    x1, y1, x2, y2 = np.clip(np.round(box).astype(int), 0, [hw[1], hw[0], hw[1], hw[0]])
    region = np.s_[y1:y2, x1:x2]
    return {
        "aligned": psnr(aligned[region], clean[region]),
        "centre": psnr(resize_to(restorer(small), hw)[region], clean[region]),
        "bicubic": psnr(resize_to(small, hw)[region], clean[region]),
    }


@pytest.mark.parametrize("kind", ["offcentre", "loose", "tight"])
def test_aligned_restoration_against_the_earlier_centre_framing(detector, restorer, photos, kind):
    """Mean face PSNR over both photos, 40/48/64 px, 3 noise seeds (18 crops). Measured
    (dB, aligned / centre / bicubic): off-centre 22.44 / 21.92 / 21.31, loose 21.99 / 21.41 /
    20.99, tight 23.66 / 23.83 / 23.28. A tight crop holds more face pixels than the
    network's 40 px input; aligning it shrinks the face to the model's scale and loses a
    little, which is why tight is only held to 0.5 dB."""
    rows = [
        face_psnr(detector, restorer, photos, name, kind, side, seed)
        for name in PHOTOS
        for side in SIDES
        for seed in range(3)
    ]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(f"{kind}: " + ", ".join(f"{k} {v:.2f} dB" for k, v in mean.items()))
    assert mean["aligned"] > mean["bicubic"] + 0.3
    if kind == "tight":
        assert mean["aligned"] > mean["centre"] - 0.5
    else:
        assert mean["aligned"] > mean["centre"] + 0.3
