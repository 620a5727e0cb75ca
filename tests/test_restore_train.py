"""The offline face-restoration training chain (tools/convert/restore): models, one training
step of each stage, checkpoint/resume, export. Skipped without torch (an optional part: CI
does not install it). Uses the shipped astronaut photo (edge/assets) only; no dataset."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR

# The reason's prefix marks an allowed skip under CI=true (OPTIONAL_PARTS in tests/conftest.py).
torch = pytest.importorskip("torch", reason="optional part missing: torch")

from tools.convert.restore import common, data, distill_student, export, train_teacher  # noqa: E402
from tools.convert.restore.models import (  # noqa: E402
    STUDENT_CONFIGS,
    PatchDiscriminator,
    Student,
    Teacher,
    count_macs,
)

LR, HR = 40, 160


def _astronaut_face() -> np.ndarray:
    """A 200x200 BGR chip framed roughly like UTKFace (the face fills most of it)."""
    face = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))[20:260, 100:340]  # BGR
    return cv2.resize(face, (200, 200), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def batch():
    chip = _astronaut_face()
    side = round(200 * data.UTK_TO_LFW_SCALE * HR / 160 * data.CACHE_MARGIN)
    chips = np.stack([cv2.resize(chip, (side, side), interpolation=cv2.INTER_AREA)] * 2)
    ds = data.FaceRestoreDataset(chips, LR, HR, train=True, seed=3)
    items = [ds[i] for i in range(2)]
    return [torch.stack(t) for t in zip(*items, strict=True)]


def test_dataset_shapes_and_ranges(batch):
    x, y, m = batch
    assert x.shape == (2, 3, LR, LR) and y.shape == (2, 3, HR, HR) and m.shape == (2, 1, HR, HR)
    for t in (x, y):
        assert t.dtype == torch.float32 and 0 <= float(t.min()) and float(t.max()) <= 1
    assert float(m.min()) >= data.PAD_WEIGHT - 1e-6 and float(m.max()) == pytest.approx(1.0)


def test_models_shapes_and_range():
    x = torch.rand(2, 3, LR, LR) * 1.4 - 0.2  # out-of-range input: output still clamped
    t = Teacher(nf=8)
    assert t(x).shape == (2, 3, HR, HR)
    logits, feats = PatchDiscriminator(8)(torch.rand(2, 3, HR, HR))
    assert logits.dim() == 4 and len(feats) == 4
    for cfg in STUDENT_CONFIGS.values():
        s = Student(**cfg).eval()
        with torch.no_grad():
            out = s(x)
        assert out.shape == (2, 3, HR, HR)
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert count_macs(Student(**STUDENT_CONFIGS["l"]), (1, 3, LR, LR)) < 400e6


def test_student_is_conv_only(tmp_path):
    s = Student(**STUDENT_CONFIGS["s"])
    allowed = (Student, torch.nn.Conv2d, torch.nn.ModuleList, torch.nn.PixelShuffle)
    for name, mod in s.named_modules():
        assert isinstance(mod, allowed), f"{name}: {type(mod).__name__}"
        assert "attention" not in type(mod).__name__.lower()
        assert "norm" not in type(mod).__name__.lower()
    onnx = pytest.importorskip("onnx", reason="optional part missing: onnx")
    path = tmp_path / "s.onnx"
    export.export_student_onnx(s, path, LR)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops <= {"Conv", "Relu", "Add", "DepthToSpace", "Resize", "Clip", "Constant"}, ops
    assert "Conv" in ops and not ops & {"MatMul", "Softmax", "Gemm"}


def test_one_training_step_each(batch):
    torch.manual_seed(0)
    g, d, og, od = train_teacher.build(nf=8, d_nf=8)
    cfg = {"warmup": 0, "ramp": 1, "w_grad": 0.5, "w_adv": 0.005, "w_fm": 0.05}
    losses = train_teacher.train_step(g, d, og, od, batch, step=5, cfg=cfg)
    assert {"l1", "adv", "fm", "d", "total"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values())
    s = Student(**STUDENT_CONFIGS["s"])
    opt = torch.optim.Adam(s.parameters(), 1e-3)
    losses = distill_student.distill_step(
        s, g.eval(), opt, batch, {"w_teacher": 0.5, "w_grad": 0.5}
    )
    assert {"l1_gt", "l1_teacher", "total"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values())


def test_checkpoint_resume_and_export(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    chip = _astronaut_face()
    for i in range(6):  # a few distinct files, so the split has train and validation parts
        img = np.roll(chip, 3 * i, axis=1)
        cv2.imwrite(str(faces / f"{i}_0_0_x.jpg.chip.jpg"), img[:, :: (-1) ** i])
    common_args = ["--data", str(faces), "--n-val", "2", "--val-images", "2", "--workers", "0"]
    common_args += ["--batch", "2", "--ckpt-every", "1", "--threads", "1"]
    tdir = tmp_path / "teacher"
    targs = common_args + ["--out", str(tdir), "--nf", "8", "--d-nf", "8", "--warmup", "1"]
    train_teacher.main(targs + ["--steps", "2"])
    s1 = common.load_ckpt(tdir / "last.pt", torch.device("cpu"))
    assert s1["step"] == 2
    train_teacher.main(targs + ["--steps", "3", "--resume"])
    s2 = common.load_ckpt(tdir / "last.pt", torch.device("cpu"))
    assert s2["step"] == 3
    assert s2["opt_g"]["state"], "optimizer state is saved"
    vals = [json.loads(line) for line in (tdir / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(v["val"]["x4"]["psnr"]) for v in vals if "val" in v)
    assert (tdir / "val_files.txt").read_text().count("\n") == 2

    sdir = tmp_path / "student"
    sargs = common_args + ["--out", str(sdir), "--teacher", str(tdir / "last.pt")]
    sargs += ["--size", "s"]
    distill_student.main(sargs + ["--steps", "1"])
    distill_student.main(sargs + ["--steps", "2", "--resume"])
    assert common.load_ckpt(sdir / "last.pt", torch.device("cpu"))["step"] == 2

    edir = tmp_path / "export"
    export.main(
        ["--student", str(sdir / "last.pt"), "--teacher", str(tdir / "last.pt")]
        + ["--out", str(edir), "--runs", "5"]
    )
    info = json.loads((edir / "export.json").read_text())
    assert info["onnx_vs_torch_max_abs"] < 1e-4
    assert info["output"] == [1, 3, HR, HR]
    assert torch.jit.load(str(edir / "restore_teacher.torchscript.pt"))(
        torch.rand(1, 3, LR, LR)
    ).shape == (1, 3, HR, HR)


def test_keep_light_target_and_around_preset():
    from tools.convert.restore.degrade import PRESETS

    img = _astronaut_face()
    assert data.apply_light(img, PRESETS["x4"]) is img
    dark = data.apply_light(img, PRESETS["low"])
    assert dark.shape == img.shape and dark.mean() < 0.5 * img.mean()
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = data.around_preset(rng)
        assert 1.5 < p.factor < 11 and 15 <= p.jpeg_quality <= 95


def test_grown_student_starts_as_an_exact_copy_and_can_learn():
    """grow_student: identity convs between the trained ones leave the output unchanged (so
    training continues from the small model's quality), and the new convs get gradients."""
    from tools.convert.restore.models import grow_student

    torch.manual_seed(0)
    small = Student(**STUDENT_CONFIGS["s"])
    for p in small.parameters():  # a "trained" net: non-zero everywhere, incl. the zero-init tail
        torch.nn.init.normal_(p, std=0.05)
    big = grow_student(small, 2 * len(small.body))
    x = torch.rand(2, 3, LR, LR)
    with torch.no_grad():
        assert torch.equal(small.eval()(x), big.eval()(x))
    assert len(big.body) == 2 * len(small.body)
    big.train()
    (big(x) - torch.rand(2, 3, HR, HR)).abs().mean().backward()
    assert all(
        conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0 for conv in big.body
    )
    with pytest.raises(ValueError):
        grow_student(small, len(small.body) - 1)
