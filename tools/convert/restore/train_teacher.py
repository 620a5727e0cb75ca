"""Train the GAN teacher on degraded UTKFace (framed like LFW).

Losses: weighted L1 + image-gradient L1 (reconstruction); after `--warmup` steps, ramped in
over `--ramp` steps, a hinge adversarial term against a spectrally normalised PatchGAN and an
L1 feature-matching term on the discriminator's intermediate features. No face recognizer
is used anywhere. The EMA of the generator is validated (PSNR vs bicubic on held-out files)
at every checkpoint and is what the student learns from.

    python -m tools.convert.restore.train_teacher --minutes 20            # CPU
    python -m tools.convert.restore.train_teacher --minutes 20 --resume   # continue
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

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
from tools.convert.restore.models import PatchDiscriminator, Teacher, count_macs, count_params


def build(nf: int = 48, d_nf: int = 32, lr: float = 2e-4):
    g, d = Teacher(nf=nf), PatchDiscriminator(d_nf)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.99))
    return g, d, opt_g, opt_d


def gan_weight(step: int, warmup: int, ramp: int) -> float:
    if step < warmup:
        return 0.0
    return min(1.0, (step - warmup + 1) / max(1, ramp))


def train_step(g, d, opt_g, opt_d, batch, step: int, cfg: dict) -> dict:
    """One generator (+ discriminator once the GAN is on) update. Returns float losses."""
    x, y, m = batch
    gw = gan_weight(step, cfg["warmup"], cfg["ramp"])
    fake = g(x)
    rec = weighted_l1(fake, y, m) + cfg["w_grad"] * gradient_l1(fake, y, m)
    losses = {"l1": float(rec.detach())}
    total = rec
    if gw > 0:
        for p in d.parameters():
            p.requires_grad_(False)
        logits_f, feats_f = d(fake)
        with torch.no_grad():
            _, feats_r = d(y)
        adv = -logits_f.mean()
        fm = sum(F.l1_loss(a, b) for a, b in zip(feats_f, feats_r, strict=True)) / len(feats_f)
        total = total + gw * (cfg["w_adv"] * adv + cfg["w_fm"] * fm)
        losses.update(adv=float(adv.detach()), fm=float(fm.detach()))
    opt_g.zero_grad(set_to_none=True)
    total.backward()
    opt_g.step()
    if gw > 0:
        for p in d.parameters():
            p.requires_grad_(True)
        lr_, lf_ = d(y)[0], d(fake.detach())[0]
        d_loss = F.relu(1 - lr_).mean() + F.relu(1 + lf_).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        losses["d"] = float(d_loss)
    losses["total"] = float(total.detach())
    return losses


def state(step, g, d, opt_g, opt_d, ema, args) -> dict:
    return {
        "step": step,
        "g": g.state_dict(),
        "d": d.state_dict(),
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "ema": ema.net.state_dict(),
        "config": {"nf": args.nf, "d_nf": args.d_nf, "lr": args.lr_size, "hr": args.hr_size},
        "args": {k: str(v) for k, v in vars(args).items()},
        "torch_rng": torch.get_rng_state(),
    }


def main(argv=None) -> None:
    ap = base_parser(__doc__.splitlines()[0], "var/restore/teacher")
    ap.add_argument("--nf", type=int, default=48, help="teacher width")
    ap.add_argument("--d-nf", type=int, default=32, help="discriminator width")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=800, help="L1-only steps before the GAN")
    ap.add_argument("--ramp", type=int, default=400, help="steps to ramp the GAN terms in")
    ap.add_argument("--w-grad", type=float, default=0.5)
    ap.add_argument("--w-adv", type=float, default=0.005)
    ap.add_argument("--w-fm", type=float, default=0.05)
    args = ap.parse_args(argv)
    dev = setup(args)
    g, d, opt_g, opt_d = build(args.nf, args.d_nf)
    ema = Ema(g)
    step = 0
    ckpt = args.out / "last.pt"
    if args.resume and ckpt.exists():
        s = load_ckpt(ckpt, torch.device("cpu"))
        g.load_state_dict(s["g"])
        d.load_state_dict(s["d"])
        opt_g.load_state_dict(s["opt_g"])
        opt_d.load_state_dict(s["opt_d"])
        ema.net.load_state_dict(s["ema"])
        torch.set_rng_state(s["torch_rng"])
        step = s["step"]
        print(f"resumed from {ckpt} at step {step}")
    g, d, ema.net = g.to(dev), d.to(dev), ema.net.to(dev)
    for opt in (opt_g, opt_d):  # optimizer state follows its parameters
        for st in opt.state.values():
            for k, v in st.items():
                if torch.is_tensor(v) and v.dim() > 0:
                    st[k] = v.to(dev)
    print(
        f"teacher {count_params(g) / 1e6:.2f} M params, "
        f"{count_macs(g.cpu(), (1, 3, args.lr_size, args.lr_size)) / 1e9:.2f} GMAC/face; "
        f"D {count_params(d) / 1e6:.2f} M params"
    )
    g.to(dev)
    budget = Budget(args.minutes)
    batches, val = make_data(args, step)
    cfg = {"warmup": args.warmup, "ramp": args.ramp, "w_grad": args.w_grad}
    cfg.update(w_adv=args.w_adv, w_fm=args.w_fm)
    g.train()
    bar = tqdm(total=args.steps, initial=step, desc="teacher", dynamic_ncols=True)
    last_saved = step
    while step < args.steps and not budget.over():
        batch = [t.to(dev, non_blocking=True) for t in next(batches)]
        losses = train_step(g, d, opt_g, opt_d, batch, step, cfg)
        ema.update(g, step)
        step += 1
        bar.update(1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()})
        if step % 50 == 0:
            log(args.out, {"step": step, "min": round(budget.elapsed_min(), 2), **losses})
        if step % args.ckpt_every == 0:
            save_ckpt(ckpt, state(step, g, d, opt_g, opt_d, ema, args))
            last_saved = step
            v = validate(ema.net, val, dev, args.hr_size)
            log(args.out, {"step": step, "val": v})
            tqdm.write(f"step {step}: val {v}")
    bar.close()
    if step != last_saved:
        save_ckpt(ckpt, state(step, g, d, opt_g, opt_d, ema, args))
    v = validate(ema.net, val, dev, args.hr_size)
    log(args.out, {"step": step, "val": v, "final": True, "min": round(budget.elapsed_min(), 2)})
    print(f"done at step {step} after {budget.elapsed_min():.1f} min: val {v}")


if __name__ == "__main__":
    main()
