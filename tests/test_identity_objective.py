"""Identity-preserving objectives of the restorer fine-tune (tools/convert/restore/identity.py):
the batch InfoNCE identity loss, the frequency loss, and the ONNX -> torch weight loader of
the shipped student. Uses random tensors, the shipped astronaut photo and the shipped FP32
ONNX student only; no dataset, no trained encoder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.demo import ASSETS_DIR

pytestmark = pytest.mark.requires("torch")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_FP32 = ROOT / "models/quantized/restore_student_fp32.onnx"


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread (the training machines are shared; the tensors here are small)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _faces(n: int = 6):
    """n different 160x160 RGB [0, 1] crops of the astronaut photo (NCHW float32)."""
    import torch

    img = cv2.imread(str(ASSETS_DIR / "astronaut.jpg"))[:, :, ::-1]
    crops = []
    for i in range(n):
        y, x = 10 + 17 * i, 60 + 23 * i
        c = cv2.resize(img[y : y + 240, x : x + 240], (160, 160), interpolation=cv2.INTER_AREA)
        crops.append(torch.from_numpy(c.transpose(2, 0, 1).copy()).float() / 255)
    return torch.stack(crops)


def test_contrastive_loss_prefers_matching_faces():
    import torch

    from tools.convert.restore.identity import IdentityEncoder, identity_contrastive_loss

    torch.manual_seed(0)
    enc = IdentityEncoder(width=8).eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    clean = torch.rand(8, 3, 160, 160)
    perm = torch.roll(torch.arange(8), 1)  # a derangement
    same = identity_contrastive_loss(enc, clean, clean, tau=0.1)
    shuffled = identity_contrastive_loss(enc, clean[perm], clean, tau=0.1)
    assert float(same) < float(shuffled)
    # with a bank of other clean faces as extra negatives: the same order, and the bank counts
    bank = enc(torch.rand(16, 3, 64, 64))
    same_b = identity_contrastive_loss(enc, clean, clean, 0.1, bank)
    shuffled_b = identity_contrastive_loss(enc, clean[perm], clean, 0.1, bank)
    assert float(same_b) < float(shuffled_b)
    assert float(shuffled_b) != pytest.approx(float(shuffled))
    # gradients reach the restored images (the encoder stays frozen)
    restored = clean[perm].clone().requires_grad_(True)
    identity_contrastive_loss(enc, restored, clean, tau=0.1).backward()
    assert restored.grad is not None and float(restored.grad.abs().sum()) > 0


def test_distance_loss_zero_for_own_face_and_grows_with_damage():
    import torch

    from tools.convert.restore.identity import IdentityEncoder, identity_distance_loss

    torch.manual_seed(0)
    enc = IdentityEncoder(width=8).eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    clean = _faces(4)
    embed, feat = identity_distance_loss(enc, clean, clean)
    assert float(embed) == pytest.approx(0.0, abs=1e-6)
    assert float(feat) == pytest.approx(0.0, abs=1e-6)
    # another face is further than a slightly noisy copy of the own face, on both terms
    noisy = (clean + 0.02 * torch.randn_like(clean)).clamp(0, 1)
    other = torch.roll(clean, 1, 0)
    e_n, f_n = identity_distance_loss(enc, noisy, clean)
    e_o, f_o = identity_distance_loss(enc, other, clean)
    assert float(e_n) < float(e_o)
    assert 0 < float(f_n) < float(f_o)
    # gradients reach the restored images only
    restored = noisy.clone().requires_grad_(True)
    e, f = identity_distance_loss(enc, restored, clean)
    (e + f).backward()
    assert restored.grad is not None and float(restored.grad.abs().sum()) > 0
    assert all(p.grad is None for p in enc.parameters())


def test_frequency_loss_zero_for_identical_and_penalises_blur():
    import torch

    from tools.convert.restore.common import weighted_l1
    from tools.convert.restore.identity import frequency_loss

    x = _faces(4)
    assert float(frequency_loss(x, x)) == pytest.approx(0.0, abs=1e-7)
    blurred = torch.stack(
        [
            torch.from_numpy(
                cv2.GaussianBlur(t.permute(1, 2, 0).numpy(), (0, 0), 2.0).transpose(2, 0, 1).copy()
            )
            for t in x
        ]
    )
    ones = torch.ones_like(x[:, :1])
    l1_blur = float(weighted_l1(blurred, x, ones))
    # a sharp image as far from x in L1 as the blurred one: a brightness offset
    sharp = x + l1_blur
    assert float(weighted_l1(sharp, x, ones)) == pytest.approx(l1_blur, rel=1e-4)
    assert float(frequency_loss(blurred, x)) > 5 * float(frequency_loss(sharp, x))
    # more blur, more loss; a circular shift (sharp) costs nothing
    stronger = torch.nn.functional.avg_pool2d(blurred, 5, 1, 2, count_include_pad=False)
    assert float(frequency_loss(stronger, x)) > float(frequency_loss(blurred, x))
    assert float(frequency_loss(torch.roll(x, 3, -1), x)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.requires("onnx")
def test_onnx_weight_loader_matches_onnxruntime():
    from tools.convert.restore.identity import check_onnx_match, load_student_from_onnx

    net = load_student_from_onnx(SHIPPED_FP32, "xl")
    assert check_onnx_match(net, SHIPPED_FP32, n=2) < 1e-4
    with pytest.raises(ValueError):
        load_student_from_onnx(SHIPPED_FP32, "l")  # 6 body convs: the graph has 12


def test_face_crop_is_the_encoder_input():
    import torch

    from tools.convert.restore.identity import CROP, ENC_SIDE, IdentityEncoder, face_crop

    x = torch.rand(3, 3, 160, 160)
    c = face_crop(x)
    assert c.shape == (3, 3, ENC_SIDE, ENC_SIDE)
    # the face interior only: what lies outside CROP does not change the encoder's input
    y = x.clone()
    y[..., : CROP[0], :] = 0
    y[..., CROP[1] :, :] = 1
    assert torch.equal(face_crop(y), c)
    k = (CROP[1] - CROP[0]) / ENC_SIDE  # area: the first pixel averages the first k x k
    a = x[0, :, CROP[0] : CROP[0] + int(np.ceil(k)), CROP[0] : CROP[0] + int(np.ceil(k))]
    assert torch.allclose(c[0, :, 0, 0], a.mean((1, 2)))
    z = IdentityEncoder(width=8).eval()(c)
    assert z.shape == (3, 128)
    assert np.allclose(z.norm(dim=1).detach().numpy(), 1.0, atol=1e-5)


@pytest.mark.requires("onnx")
def test_detail_only_student_keeps_the_coarse_face(tmp_path):
    """restore-2.x's constraint: with `detail_sigma` the network's change over the upsampled
    input is high-passed (response 1 - exp(-2 pi^2 sigma^2 f^2)), so at the coarse scale (a
    blur of 3 sigma) the output is the upsampled input, away from the borders; the exported
    ONNX graph computes the same."""
    import torch

    from tools.convert.restore.export import export_student_onnx
    from tools.convert.restore.identity import check_onnx_match, load_student_from_onnx
    from tools.convert.restore.models import gaussian_kernel_1d, separable_blur, upsample_input

    net = load_student_from_onnx(SHIPPED_FP32, "xl").eval()
    x = _faces(2)
    x = torch.nn.functional.interpolate(x, size=(40, 40), mode="area") * 0.8 + 0.1
    with torch.no_grad():
        change = net(x) - upsample_input(x, 4)
        net.set_detail_sigma(2.0)
        detail = net(x) - upsample_input(x, 4)
        inner = (slice(None), slice(None), slice(24, -24), slice(24, -24))
        coarse = gaussian_kernel_1d(6.0).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
        coarse_before = separable_blur(change, coarse)[inner].abs().mean()
        coarse_after = separable_blur(detail, coarse)[inner].abs().mean()
    assert float(coarse_before) > 0.005  # restore-1.1 does move the coarse face
    assert float(coarse_after) < 0.15 * float(coarse_before)
    # The fine detail is the same network's: unchanged by the constraint.
    fine_before = (change - separable_blur(change, net.gauss))[inner]
    assert torch.allclose(fine_before, detail[inner], atol=2e-3)
    path = tmp_path / "detail.onnx"
    export_student_onnx(net, path)
    assert check_onnx_match(net, path, n=2) < 1e-4
