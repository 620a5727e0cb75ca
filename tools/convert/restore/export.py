"""Export the student (EMA weights) to FP32 ONNX with a fixed input size, and the teacher
to TorchScript for evaluation; checks ONNX Runtime against torch and times one thread.

Model I/O: input `image` float32 1x3xLxL RGB in [0, 1] (L = 40 by default: the face crop
resized to it); output `restored` float32 1x3xHxH RGB in [0, 1] (H = 160, LFW framing).

    python -m tools.convert.restore.export
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tools.convert.restore.common import load_ckpt
from tools.convert.restore.models import Student, Teacher, count_macs, count_params


def load_student(path: Path) -> tuple[Student, dict]:
    s = load_ckpt(path, torch.device("cpu"))
    cfg = {k: s["config"][k] for k in ("nf", "n_body", "hr_nf")}
    cfg["detail_sigma"] = float(s["config"].get("detail_sigma", 0.0))
    net = Student(**cfg)
    net.load_state_dict(s["ema"])
    return net.eval(), s


def export_student_onnx(net: Student, path: Path, lr: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        net.eval(),
        (torch.zeros(1, 3, lr, lr),),
        str(path),
        dynamo=False,
        input_names=["image"],
        output_names=["restored"],
        opset_version=17,
    )


def export_teacher_torchscript(ckpt: Path, path: Path, lr: int = 40) -> None:
    s = load_ckpt(ckpt, torch.device("cpu"))
    t = Teacher(nf=s["config"]["nf"])
    t.load_state_dict(s["ema"])
    traced = torch.jit.trace(t.eval(), torch.zeros(1, 3, lr, lr))
    traced.save(str(path))


def ort_latency_ms(path: Path, lr: int, runs: int = 200, threads: int = 1) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, lr, lr), dtype=np.float32)
    for _ in range(20):
        sess.run(None, {"image": x})
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {"image": x})
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": round(float(np.median(ts)), 3), "min_ms": round(float(np.min(ts)), 3)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", type=Path, default=Path("var/restore/student/last.pt"))
    ap.add_argument("--teacher", type=Path, default=Path("var/restore/teacher/last.pt"))
    ap.add_argument("--out", type=Path, default=Path("var/restore/export"))
    ap.add_argument("--runs", type=int, default=300, help="timed runs for the latency")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    net, s = load_student(args.student)
    lr, hr = s["io"]["lr"], s["io"]["hr"]
    onnx_path = args.out / "restore_student_fp32.onnx"
    export_student_onnx(net, onnx_path, lr)
    import onnxruntime as ort

    x = np.random.default_rng(1).random((4, 1, 3, lr, lr), dtype=np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        diff = max(
            float(
                np.abs(sess.run(None, {"image": xi})[0] - net(torch.from_numpy(xi)).numpy()).max()
            )
            for xi in x
        )
    info = {
        "onnx": str(onnx_path),
        "input": [1, 3, lr, lr],
        "output": [1, 3, hr, hr],
        "params": count_params(net),
        "macs": count_macs(net, (1, 3, lr, lr)),
        "onnx_vs_torch_max_abs": diff,
        "ort_fp32_1thread": ort_latency_ms(onnx_path, lr, args.runs),
        "student_step": s["step"],
    }
    if args.teacher.exists():
        ts_path = args.out / "restore_teacher.torchscript.pt"
        export_teacher_torchscript(args.teacher, ts_path, lr)
        info["teacher_torchscript"] = str(ts_path)
    (args.out / "export.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
