"""Which of a shipped INT8 ONNX model's two integer formats to open on this CPU.

Every INT8 ONNX model ships as `*_int8.onnx` (U8U8: uint8 weights and activations), which is
exact everywhere: ONNX Runtime's x86 kernels without VNNI add u8 x s8 products in int16 and
saturate, u8 x u8 ones do not. On x86 CPUs with VNNI (avx512_vnni or avx_vnni: Intel since
Cascade Lake / Alder Lake, AMD since Zen 4) the U8S8 kernels accumulate in int32, so they are
exact too, and about 3x faster than U8U8 there (the restorer: 2.4 against 7.4 ms on one
thread, measured on this project's Xeon VM). Where the manifest lists a `*_int8_vnni.onnx`
beside a model, such CPUs open that one. ARM keeps the portable file.

`FACE_EDGE_ONNX_INT8=portable|vnni|auto` overrides the choice (auto: by the CPU's flags).
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

PORTABLE_SUFFIX = "_int8.onnx"
VNNI_SUFFIX = "_int8_vnni.onnx"
VARIANT_FORMATS = {
    "portable": "per-channel uint8 weights, uint8 activations (U8U8: exact on every CPU)",
    "vnni": "per-channel int8 weights, uint8 activations (U8S8, for x86 CPUs with VNNI)",
}
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
ENV = "FACE_EDGE_ONNX_INT8"


def variant_file(portable_name: str, variant: str) -> str:
    """`mtcnn_pnet_int8.onnx` -> `mtcnn_pnet_int8_vnni.onnx` for variant "vnni"."""
    if variant == "portable":
        return portable_name
    if variant != "vnni" or not portable_name.endswith(PORTABLE_SUFFIX):
        raise ValueError(f"no {variant!r} variant of {portable_name}")
    return portable_name[: -len(PORTABLE_SUFFIX)] + VNNI_SUFFIX


def has_vnni(cpuinfo: str, machine: str) -> bool:
    """True on an x86-64 CPU whose /proc/cpuinfo flags name a VNNI extension."""
    if machine.lower() not in ("x86_64", "amd64"):
        return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return any(f in flags for f in VNNI_FLAGS)
    return False


@lru_cache(maxsize=1)
def this_cpu_has_vnni() -> bool:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return has_vnni(cpuinfo, platform.machine())


def wanted_variant(setting: str | None = None, vnni: bool | None = None) -> str:
    """'vnni' or 'portable' from the override (`setting`, else $FACE_EDGE_ONNX_INT8) and the CPU."""
    setting = (setting if setting is not None else os.environ.get(ENV, "auto")).strip().lower()
    if setting in ("portable", "vnni"):
        return setting
    if setting not in ("", "auto"):
        raise ValueError(f"{ENV}={setting!r}: use auto, portable or vnni")
    return "vnni" if (this_cpu_has_vnni() if vnni is None else vnni) else "portable"


def preferred_file(file_name: str, listed: dict[str, dict], variant: str | None = None) -> str:
    """The file to open for a requested `*_int8.onnx` model: its VNNI sibling when that variant
    is wanted and the manifest (`listed`: its "models" entries) lists one of the same version
    (a twin left from an earlier network is never opened), the requested file otherwise."""
    if not file_name.endswith(PORTABLE_SUFFIX):
        return file_name
    variant = variant or wanted_variant()
    candidate = variant_file(file_name, variant)
    twin, own = listed.get(candidate), listed.get(file_name)
    if twin is None or own is None or twin.get("version") != own.get("version"):
        return file_name
    return candidate


def describe_choice() -> str:
    """One line for `doctor` and `bench`: which INT8 ONNX files open here, and why."""
    variant = wanted_variant()
    setting = os.environ.get(ENV, "auto").strip().lower() or "auto"
    why = (
        f"{ENV}={setting}"
        if setting != "auto"
        else ("this CPU has VNNI" if this_cpu_has_vnni() else "no x86 VNNI on this CPU")
    )
    files = "U8S8 *_int8_vnni.onnx" if variant == "vnni" else "U8U8 *_int8.onnx"
    return f"ONNX INT8 files: {files} ({why})"
