"""The benchmark's result as the issue's targets, a Markdown report and a PNG chart."""

from __future__ import annotations

from pathlib import Path

# (model, input) -> the p50 target in ms at one thread, INT8 (issue 5)
MS_TARGETS = {
    ("detector", "640x360"): 8.0,
    ("restorer", "40x40 face"): 5.0,
    ("face_check", "one candidate"): 1.0,  # issue 13
    ("fusion", "8 frames"): 8.0,  # issue 11: registration + fusion network per published face
}
PIPELINE_FPS_TARGET = 25.0
RSS_TARGET_MB = 300.0
INT8_SPEEDUP_TARGET = 1.5
BASELINE_RATIO_TARGET = 100.0


def find(models: list[dict], **want) -> dict | None:
    return next((m for m in models if all(m.get(k) == v for k, v in want.items())), None)


def _target(text: str, value: float | None, op: str, limit: float) -> dict:
    met = None if value is None else (value >= limit if op == ">=" else value <= limit)
    return {"target": text, "value": value, "limit": f"{op} {limit:g}", "met": met}


def check_targets(result: dict) -> list[dict]:
    """Each of issue 5's targets that this run measured, with its value and whether it is met."""
    out = []
    models = result.get("models", [])
    for key in ("fast", "crowd fast"):
        fast = result.get("pipeline", {}).get(key)
        if fast:
            w, h = fast["frame_size"] or (0, 0)
            faces = fast["faces_per_frame"]["max"]
            text = (
                f"pipeline fps, as fast as possible ({fast['video']}, {w}x{h}, "
                f"at most {faces} faces in a frame)"
            )
            out.append(_target(text, fast["fps"], ">=", PIPELINE_FPS_TARGET))
    for (name, size), limit in MS_TARGETS.items():
        for runtime in ("onnxruntime", "litert"):
            row = find(models, name=name, input=size, runtime=runtime, precision="int8", threads=1)
            if row:
                text = f"{name} INT8 ms ({size}, 1 thread, {runtime})"
                out.append(_target(text, row["p50_ms"], "<=", limit))
    for name, size in sorted(
        {(m["name"], m["input"]) for m in models if m["name"] != "gfpgan_class"}
    ):
        int8 = find(
            models, name=name, input=size, runtime="onnxruntime", precision="int8", threads=1
        )
        fp32 = find(
            models, name=name, input=size, runtime="onnxruntime", precision="fp32", threads=1
        )
        if int8 and fp32 and int8["p50_ms"]:
            speedup = round(fp32["p50_ms"] / int8["p50_ms"], 2)
            text = f"{name} INT8 speed-up over FP32 ({size}, onnxruntime, 1 thread)"
            out.append(_target(text, speedup, ">=", INT8_SPEEDUP_TARGET))
    runs = [r for r in result.get("pipeline", {}).values() if isinstance(r, dict) and "rss_mb" in r]
    if runs:
        out.append(
            _target("pipeline peak RSS MB", max(r["rss_mb"] for r in runs), "<=", RSS_TARGET_MB)
        )
    ratio = result.get("baselines", {}).get("ratio_per_face")
    if ratio is not None:
        out.append(
            _target("times cheaper per face than GFPGAN-class", ratio, ">=", BASELINE_RATIO_TARGET)
        )
    return out


def _pp(d: dict | None) -> str:
    if not d or d.get("p50") is None:
        return "-"
    return f"{d['p50']:g} / {d['p95']:g}"


def _searched(d: dict | None) -> str:
    """Region-of-interest detection's share of frames searched whole and mean area searched."""
    if not d:
        return "-"
    if not d.get("enabled"):
        return "all (regions off)"
    return f"{100 * d['full_frame_share']:.0f} % / {100 * d['area_fraction']:.0f} %"


def markdown(result: dict) -> str:
    lines = [f"`{result['command']}` on {result['machine']['summary']}", ""]
    models = result.get("models", [])
    if models:
        lines += [
            "| model | input | runtime | precision | threads | p50 ms | p95 ms | runs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in models:
            lines.append(
                f"| {m['name']} | {m['input']} | {m['runtime']} | {m['precision']} | {m['threads']} "
                f"| {m['p50_ms']:g} | {m['p95_ms']:g} | {m['runs']} |"
            )
        lines.append("")
    b = result.get("baselines", {})
    if b.get("ratio_per_face") is not None:
        lines += [
            f"GFPGAN-class network ({b['structure']}; {b['params_m']} M params, {b['gmacs']} GMACs) "
            f"at 512x512 in onnxruntime FP32, 1 thread: **{b['gfpgan_class_ms']:g} ms per face**; "
            f"the restorer INT8 in the same runtime: {b['restorer_ms']:g} ms per face, "
            f"**{b['ratio_per_face']:g}x cheaper**.",
            "",
        ]
    pipe = {
        k: v for k, v in result.get("pipeline", {}).items() if isinstance(v, dict) and "fps" in v
    }
    if pipe:
        lines += [
            "| pipeline run | video | fps | frames | dropped | events | events/s "
            "| capture→ack ms p50 / p95 | trigger→ack ms p50 / p95 | CPU % (100 = 1 core) | peak RSS MB "
            "| frames searched whole / area searched |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for mode, r in pipe.items():
            lines.append(
                f"| {mode} | {r['video']} ({r['frame_size'][0]}x{r['frame_size'][1]}) | {r['fps']:g} "
                f"| {r['frames']} | {r['dropped']} | {r['events']} | {r['events_per_s']:g} "
                f"| {_pp(r['latency_ms'])} | {_pp(r['trigger_to_ack_ms'])} | {r['cpu_percent']:g} "
                f"| {r['rss_mb']:g} | {_searched(r.get('detect_regions'))} |"
            )
        stages = list(next(iter(pipe.values()))["stage_ms"])
        lines += [
            "",
            "| stage ms p50 / p95 | " + " | ".join(stages) + " |",
            "|---|" + "---|" * len(stages),
        ]
        for mode, r in pipe.items():
            lines.append(f"| {mode} | " + " | ".join(_pp(r["stage_ms"][s]) for s in stages) + " |")
        lines.append("")
    targets = result.get("targets", [])
    if targets:
        lines += ["| target | measured | wanted | met |", "|---|---|---|---|"]
        for t in targets:
            met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            lines.append(f"| {t['target']} | {t['value']} | {t['limit']} | {met} |")
        lines.append("")
    lines += [f"- {n}" for n in result.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"


def plot_available() -> str | None:
    """None when --plot can work, else why not (matplotlib is not a device dependency)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib, which the device runtime does not ship: pip install matplotlib (or the 'eval' extra)"
    return None


def _variant_label(m: dict) -> str:
    rt = {"onnxruntime": "ORT", "litert": "LiteRT"}.get(m["runtime"], m["runtime"])
    return f"{rt} {m['precision'].upper()} {m['threads']}t"


def write_plot(result: dict, path: Path) -> None:
    """Bar charts of the models' p50 ms (p95 as whiskers, targets as dashed lines) and, on a
    log scale, the restorer per face against the GFPGAN-class network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in result.get("models", []) if m["name"] != "gfpgan_class"]
    groups = list(dict.fromkeys((m["name"], m["input"]) for m in models))
    fig, axes = plt.subplots(1, len(groups) + 1, figsize=(4.2 * (len(groups) + 1), 4.2))
    colors = {"int8": "#2b7bba", "fp32": "#bbbbbb"}
    for ax, (name, size) in zip(axes, groups, strict=False):
        rows = [m for m in models if (m["name"], m["input"]) == (name, size)]
        x = range(len(rows))
        p50 = [m["p50_ms"] for m in rows]
        err = [[0] * len(rows), [max(0.0, m["p95_ms"] - m["p50_ms"]) for m in rows]]
        bar_colors = [colors.get(m["precision"], "#7aa95c") for m in rows]  # classical: green
        ax.bar(x, p50, yerr=err, color=bar_colors, capsize=3)
        ax.set_xticks(
            list(x), [_variant_label(m) for m in rows], rotation=60, ha="right", fontsize=8
        )
        ax.set_title(f"{name} {size}", fontsize=10)
        ax.set_ylabel("ms (p50, whisker p95)")
        limit = MS_TARGETS.get((name, size))
        if limit:
            ax.axhline(limit, color="#d62728", ls="--", lw=1)
            ax.text(len(rows) - 0.5, limit, f"target {limit:g} ms (INT8, 1t)", color="#d62728",
                    ha="right", va="bottom", fontsize=8)  # fmt: skip
    ax = axes[-1]
    b = result.get("baselines", {})
    per_face = [
        ("restorer\n" + _variant_label(m), m["p50_ms"])
        for m in models
        if m["name"] == "restorer" and m["runtime"] == "onnxruntime" and m["threads"] == 1
    ]
    title = "per face, ORT 1 thread"
    if b.get("gfpgan_class_ms"):
        per_face.append(("GFPGAN-class\nORT FP32 1t", b["gfpgan_class_ms"]))
        title = f"per face: {b['ratio_per_face']:g}x cheaper than GFPGAN-class"
    else:
        ax.text(0.5, 0.9, "GFPGAN-class not timed", transform=ax.transAxes, ha="center")
    if per_face:
        ax.bar(range(len(per_face)), [v for _, v in per_face], color="#555555")
        ax.set_xticks(range(len(per_face)), [k for k, _ in per_face], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ms per face (p50, log)")
    ax.set_title(title, fontsize=10)
    fig.suptitle(f"face-edge bench: {result['machine']['summary']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
