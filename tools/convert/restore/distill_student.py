"""Distil the small conv-only student from the teacher's outputs and the ground truth.

Loss: weighted L1 to the clean crop + `--w-teacher` x L1 to the teacher's (EMA) output
+ `--w-grad` x image-gradient L1 to the clean crop. The teacher is frozen; no face recognizer
is used anywhere. The student's EMA is validated (PSNR vs bicubic, held-out files) at every
checkpoint and is what `export.py` exports.

    python -m tools.convert.restore.distill_student --minutes 15
    python -m tools.convert.restore.distill_student --minutes 15 --resume
    # a deeper student that starts as an exact copy of a trained smaller one:
    python -m tools.convert.restore.distill_student --size xl \
        --grow-from var/restore/student/last.pt --out var/restore/student_xl
"""

from __future__ import annotations

from pathlib import Path

import torch
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
from tools.convert.restore.export import load_student
from tools.convert.restore.models import (
    STUDENT_CONFIGS,
    Student,
    Teacher,
    count_macs,
    count_params,
    grow_student,
)


def load_teacher(path: Path, device: torch.device) -> Teacher:
    s = load_ckpt(path, torch.device("cpu"))
    t = Teacher(nf=s["config"]["nf"])
    t.load_state_dict(s["ema"])
    t.eval().to(device)
    for p in t.parameters():
        p.requires_grad_(False)
    return t


def distill_step(student, teacher, opt, batch, cfg: dict) -> dict:
    x, y, m = batch
    out = student(x)
    loss = weighted_l1(out, y, m) + cfg["w_grad"] * gradient_l1(out, y, m)
    losses = {"l1_gt": float(loss.detach())}
    if teacher is not None and cfg["w_teacher"] > 0:
        with torch.no_grad():
            t_out = teacher(x).clamp(0, 1)
        lt = weighted_l1(out, t_out, m)
        loss = loss + cfg["w_teacher"] * lt
        losses["l1_teacher"] = float(lt.detach())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses["total"] = float(loss.detach())
    return losses


def main(argv=None) -> None:
    ap = base_parser(__doc__.splitlines()[0], "var/restore/student")
    ap.add_argument("--teacher", type=Path, default=Path("var/restore/teacher/last.pt"))
    ap.add_argument("--size", choices=sorted(STUDENT_CONFIGS), default="l")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--w-teacher", type=float, default=0.5)
    ap.add_argument("--w-grad", type=float, default=0.5)
    ap.add_argument(
        "--grow-from",
        type=Path,
        default=None,
        help="start from this smaller student's EMA weights, deepened to --size (not with --resume)",
    )
    ap.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps")
    ap.set_defaults(batch=16)
    args = ap.parse_args(argv)
    dev = setup(args)
    student = Student(**STUDENT_CONFIGS[args.size])
    resuming = args.resume and (args.out / "last.pt").exists()
    if args.grow_from and not resuming:
        small, small_state = load_student(args.grow_from)  # its EMA weights
        student = grow_student(small, STUDENT_CONFIGS[args.size]["n_body"]).train()
        print(
            f"grown from {args.grow_from} ({len(small.body)} body convs, step {small_state['step']})"
        )
    print(
        f"student '{args.size}': {count_params(student)} params, "
        f"{count_macs(student, (1, 3, args.lr_size, args.lr_size)) / 1e6:.1f} MMAC/face"
    )
    opt = torch.optim.Adam(student.parameters(), lr=args.lr, betas=(0.9, 0.99))
    ema = Ema(student)
    step = 0
    ckpt = args.out / "last.pt"
    if args.resume and ckpt.exists():
        s = load_ckpt(ckpt, torch.device("cpu"))
        student.load_state_dict(s["student"])
        opt.load_state_dict(s["opt"])
        ema.net.load_state_dict(s["ema"])
        torch.set_rng_state(s["torch_rng"])
        step = s["step"]
        print(f"resumed from {ckpt} at step {step}")
    student, ema.net = student.to(dev), ema.net.to(dev)
    for st in opt.state.values():
        for k, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0:
                st[k] = v.to(dev)
    teacher = load_teacher(args.teacher, dev) if args.w_teacher > 0 else None
    budget = Budget(args.minutes)
    batches, val = make_data(args, step)
    cfg = {"w_teacher": args.w_teacher, "w_grad": args.w_grad}

    def state() -> dict:
        return {
            "step": step,
            "student": student.state_dict(),
            "opt": opt.state_dict(),
            "ema": ema.net.state_dict(),
            "config": {"size": args.size, **STUDENT_CONFIGS[args.size]},
            "io": {"lr": args.lr_size, "hr": args.hr_size},
            "args": {k: str(v) for k, v in vars(args).items()},
            "torch_rng": torch.get_rng_state(),
        }

    if args.grow_from and step == 0:
        v = validate(student, val, dev, args.hr_size)
        log(args.out, {"grown_val": v, "from": str(args.grow_from)})
        print(f"grown student val {v}")
    if teacher is not None and step == 0:
        v = validate(teacher, val, dev, args.hr_size)
        log(args.out, {"teacher_val": v})
        print(f"teacher val {v}")
    student.train()
    bar = tqdm(total=args.steps, initial=step, desc="student", dynamic_ncols=True)
    last_saved = step
    while step < args.steps and not budget.over():
        batch = [t.to(dev, non_blocking=True) for t in next(batches)]
        # A cosine decay over --steps; with a --minutes budget it acts on the planned steps.
        for gp in opt.param_groups:
            gp["lr"] = args.lr * min(1.0, (step + 1) / max(1, args.warmup)) * (
                0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(
                3.14159265 * min(1.0, step / max(1, args.steps))))).item())  # fmt: skip
        losses = distill_step(student, teacher, opt, batch, cfg)
        ema.update(student, step)
        step += 1
        bar.update(1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()})
        if step % 50 == 0:
            log(args.out, {"step": step, "min": round(budget.elapsed_min(), 2), **losses})
        if step % args.ckpt_every == 0:
            save_ckpt(ckpt, state())
            last_saved = step
            v = validate(ema.net, val, dev, args.hr_size)
            log(args.out, {"step": step, "val": v})
            tqdm.write(f"step {step}: val {v}")
    bar.close()
    if step != last_saved:
        save_ckpt(ckpt, state())
    v = validate(ema.net, val, dev, args.hr_size)
    log(args.out, {"step": step, "val": v, "final": True, "min": round(budget.elapsed_min(), 2)})
    print(f"done at step {step} after {budget.elapsed_min():.1f} min: val {v}")


if __name__ == "__main__":
    main()
