"""Fine-tune the shipped student (`restore-1.1`) with identity-preserving objectives.

Loss: weighted L1 to the clean crop + `--w-grad` x image-gradient L1 (as distill_student)
+ `--w-id` x `identity.identity_contrastive_loss` (InfoNCE in the frozen self-supervised
encoder's space, `--encoder`, trained by `python -m tools.convert.restore.identity`; the
negatives are the batch's other clean faces and `--bank` clean faces of earlier batches)
+ `--w-freq` x `identity.frequency_loss` (radially weighted FFT-magnitude L1)
+ `--w-embed` x (1 - cosine) and `--w-feat` x feature-map L1 between the restored and the clean
face in the same frozen encoder (`identity.identity_distance_loss`). No pretrained
recognizer is used (dlib judges at evaluation only). Starts from the FP32 ONNX student's
weights (`--init`, checked against ONNX Runtime) or a checkpoint (`--init-ckpt`); the EMA is
validated (PSNR vs bicubic on the held-out UTKFace files) at every checkpoint and saved in
`export.load_student`'s format, so `export`/`quantize` take OUT/last.pt.

    python -m tools.convert.restore.finetune_identity --w-id 0.05 --minutes 25 \
        --encoder var/restore2/encoder/last.pt --out var/restore2/ft_id
    python -m tools.convert.restore.finetune_identity --w-freq 0.5 --minutes 25 --out var/restore2/ft_freq
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tools.convert.restore.common import (
    Budget,
    Ema,
    base_parser,
    gradient_l1,
    load_ckpt,
    log,
    make_data,
    save_ckpt,
    setup,
    validate,
    weighted_l1,
)
from tools.convert.restore.export import export_student_onnx, load_student
from tools.convert.restore.identity import (
    check_onnx_match,
    frequency_loss,
    identity_contrastive_loss,
    identity_distance_loss,
    load_encoder,
    load_student_from_onnx,
)
from tools.convert.restore.models import STUDENT_CONFIGS

SHIPPED = Path("models/quantized/restore_student_fp32.onnx")


def step_losses(student, encoder, batch, cfg: dict, bank=None) -> tuple[torch.Tensor, dict]:
    """The training loss of one batch; `bank`: a FIFO list of clean-face embeddings of
    earlier batches (extra negatives of the identity term), updated in place."""
    x, y, m = batch
    out = student(x)
    l1 = weighted_l1(out, y, m)
    lg = gradient_l1(out, y, m)
    loss = l1 + cfg["w_grad"] * lg
    losses = {"l1": float(l1.detach()), "grad": float(lg.detach())}
    if cfg["w_id"] > 0:
        neg = torch.cat(bank) if bank else None
        li, e_c = identity_contrastive_loss(encoder, out, y, cfg["tau"], neg, return_clean=True)
        loss = loss + cfg["w_id"] * li
        if bank is not None and cfg.get("bank", 0) > 0:
            bank.append(e_c.detach())
            while sum(len(b) for b in bank) > cfg["bank"]:
                bank.pop(0)
        losses["id"] = float(li.detach())
    if cfg["w_embed"] > 0 or cfg["w_feat"] > 0:
        le, lfeat = identity_distance_loss(encoder, out, y)
        loss = loss + cfg["w_embed"] * le + cfg["w_feat"] * lfeat
        losses["embed"], losses["feat"] = float(le.detach()), float(lfeat.detach())
    if cfg["w_freq"] > 0:
        lf = frequency_loss(out, y)
        loss = loss + cfg["w_freq"] * lf
        losses["freq"] = float(lf.detach())
    losses["total"] = float(loss.detach())
    return loss, losses


@torch.no_grad()
def val_objectives(net, encoder, val: dict, tau: float) -> dict:
    """The identity and frequency losses of `net` and of bicubic on the validation presets
    (in batches of 16, the training batch order)."""
    from tools.convert.restore.data import bicubic

    was = net.training
    net.eval()
    out = {}
    for name in ("x4", "x8"):
        x, y, _ = val[name]
        rec = {"freq": [], "freq_bicubic": [], "id": [], "id_bicubic": [], "embed": [],
               "embed_bicubic": [], "feat": [], "feat_bicubic": []}  # fmt: skip
        for i in range(0, len(x) - 15, 16):
            xi, yi = x[i : i + 16], y[i : i + 16]
            p, b = net(xi), bicubic(xi, y.shape[-1])
            rec["freq"].append(float(frequency_loss(p, yi)))
            rec["freq_bicubic"].append(float(frequency_loss(b, yi)))
            if encoder is not None:
                rec["id"].append(float(identity_contrastive_loss(encoder, p, yi, tau)))
                rec["id_bicubic"].append(float(identity_contrastive_loss(encoder, b, yi, tau)))
                for tag, img in (("", p), ("_bicubic", b)):
                    e, f = identity_distance_loss(encoder, img, yi)
                    rec["embed" + tag].append(float(e))
                    rec["feat" + tag].append(float(f))
        out[name] = {k: round(sum(v) / len(v), 4) for k, v in rec.items() if v}
    net.train(was)
    return out


def main(argv=None) -> None:
    ap = base_parser(__doc__.splitlines()[0], "var/restore2/ft")
    ap.add_argument("--init", type=Path, default=SHIPPED, help="FP32 ONNX student to start from")
    ap.add_argument("--init-ckpt", type=Path, default=None, help="or a student checkpoint")
    ap.add_argument("--encoder", type=Path, default=Path("var/restore2/encoder/last.pt"))
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--w-grad", type=float, default=0.5)
    ap.add_argument("--w-id", type=float, default=0.0)
    ap.add_argument("--w-freq", type=float, default=0.0)
    ap.add_argument("--w-embed", type=float, default=0.0, help="1 - cosine to the clean face")
    ap.add_argument("--w-feat", type=float, default=0.0, help="encoder feature-map L1")
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--bank", type=int, default=1024, help="clean embeddings kept as negatives")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument(
        "--detail-sigma", type=float, default=0.0,
        help="> 0: high-pass the network's residual (Gaussian sigma, output px): detail only",
    )  # fmt: skip
    ap.set_defaults(batch=16, workers=1, threads=1, preset_mix=0.7, ckpt_every=200, max_images=8000)
    args = ap.parse_args(argv)
    if args.workers > 1 or (args.threads or 1) > 1:
        raise SystemExit("this machine is shared: --workers <= 1 and --threads 1")
    dev = setup(args)
    size = "xl"
    if args.init_ckpt:
        student, s0 = load_student(args.init_ckpt)
        init_desc = f"{args.init_ckpt} (step {s0['step']})"
    else:
        student = load_student_from_onnx(args.init, size)
        diff = check_onnx_match(student, args.init)
        if diff > 1e-4:
            raise SystemExit(f"{args.init}: torch differs from ONNX Runtime by {diff:.2e}")
        init_desc = f"{args.init} (max |torch - ort| {diff:.1e})"
    if args.detail_sigma > 0:
        student.set_detail_sigma(args.detail_sigma)
        init_desc += f", residual high-passed at sigma {args.detail_sigma}"
    print(f"init from {init_desc}")
    student.train()
    encoder = None
    if args.w_id > 0 or args.w_embed > 0 or args.w_feat > 0 or args.encoder.exists():
        encoder = load_encoder(args.encoder).to(dev)
    opt = torch.optim.Adam(student.parameters(), lr=args.lr, betas=(0.9, 0.99))
    ema = Ema(student, args.ema)
    step = 0
    ckpt = args.out / "last.pt"
    if args.resume and ckpt.exists():
        s = load_ckpt(ckpt, torch.device("cpu"))
        student.load_state_dict(s["student"])
        opt.load_state_dict(s["opt"])
        ema.net.load_state_dict(s["ema"])
        step = s["step"]
        print(f"resumed from {ckpt} at step {step}")
    budget = Budget(args.minutes)
    batches, val = make_data(args, step)
    cfg = {"w_grad": args.w_grad, "w_id": args.w_id, "w_freq": args.w_freq, "tau": args.tau,
           "bank": args.bank, "w_embed": args.w_embed, "w_feat": args.w_feat}  # fmt: skip
    bank: list[torch.Tensor] = []

    def state() -> dict:
        return {
            "step": step,
            "student": student.state_dict(),
            "opt": opt.state_dict(),
            "ema": ema.net.state_dict(),
            "config": {"size": size, **STUDENT_CONFIGS[size], "detail_sigma": args.detail_sigma},
            "io": {"lr": args.lr_size, "hr": args.hr_size},
            "args": {k: str(v) for k, v in vars(args).items()},
            "init": init_desc,
            "torch_rng": torch.get_rng_state(),
        }

    if step == 0:
        v = validate(student, val, dev, args.hr_size)
        o = val_objectives(student, encoder, val, args.tau)
        log(args.out, {"step": 0, "val": v, "val_obj": o, "init": init_desc, "cfg": cfg})
        print(f"start: val {v} objectives {o}")
    t_steps = None
    last_saved = step
    while step < args.steps and not budget.over():
        batch = [t.to(dev) for t in next(batches)]
        # warm-up, then cosine on the wall-time budget (or on --steps without one)
        frac = budget.elapsed_min() / args.minutes if args.minutes else step / args.steps
        for gp in opt.param_groups:
            gp["lr"] = args.lr * min(1.0, (step + 1) / max(1, args.warmup)) * (
                0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))  # fmt: skip
        loss, losses = step_losses(student, encoder, batch, cfg, bank)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(student, step)
        step += 1
        if step == 20:
            t_steps = budget.elapsed_min()
            print(f"20 steps in {t_steps * 60:.1f} s: {losses}")
        if step % 25 == 0:
            log(args.out, {"step": step, "min": round(budget.elapsed_min(), 2),
                           "lr": opt.param_groups[0]["lr"], **losses})  # fmt: skip
        if step % args.ckpt_every == 0:
            save_ckpt(ckpt, state())
            last_saved = step
            v = validate(ema.net, val, dev, args.hr_size)
            log(args.out, {"step": step, "val": v})
            print(f"step {step} ({budget.elapsed_min():.1f} min): {losses} val {v}", flush=True)
    if step != last_saved:
        save_ckpt(ckpt, state())
    v = validate(ema.net, val, dev, args.hr_size)
    o = val_objectives(ema.net, encoder, val, args.tau)
    log(args.out, {"step": step, "val": v, "val_obj": o, "final": True,
                   "min": round(budget.elapsed_min(), 2)})  # fmt: skip
    print(f"done at step {step} after {budget.elapsed_min():.1f} min: val {v} objectives {o}")
    onnx_path = args.out / "restore_student_fp32.onnx"
    export_student_onnx(ema.net.cpu().eval(), onnx_path, args.lr_size)
    print(f"exported {onnx_path}: max |torch - ort| {check_onnx_match(ema.net, onnx_path):.1e}")


if __name__ == "__main__":
    main()
