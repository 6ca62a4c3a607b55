"""CPU features as the provider's kernel dispatch sees them (`ortsparse isa`)."""

from __future__ import annotations

from functools import cache
from typing import Any


def cpu_report() -> dict[str, Any]:
    """Detected CPU features plus ``kernel_family``, the family the provider will pick now.

    Raises ValueError when ORTSPARSE_ISA names no known family.
    """
    from ortsparse import _isa  # compiled; imported late so the pure-Python parts work without it

    report = dict(_isa.cpu_features())
    report["kernel_family"] = _isa.selected_kernel_family()
    return report


@cache
def compiled_conv_limits() -> dict[str, int | float]:
    """Where SparseConv runs compiled code and how that code blocks output channels, as the
    provider defines them (provider/kernels/f32-spconv/compiled-limits.h): max_block_channels,
    max_compiled_weights, min_compiled_tiles, min_finishing_reuse."""
    from ortsparse import _isa

    return dict(_isa.compiled_conv_limits())


# Kernel family -> (vector ISA as DeepSparse names it, whether its INT8 kernels use vpdpbusd).
_FAMILY_ISA = {
    "avx512vnni": ("avx512", True),
    "avx512": ("avx512", False),
    "avxvnni": ("avx2", True),
    "avx2": ("avx2", False),
    "scalar": ("scalar", False),
}


def cpu_avx_type(report: dict[str, Any]) -> str:
    """The vector ISA of the kernel family in use, as DeepSparse names it: "avx512", "avx2", or
    "scalar" (no AVX2 kernels)."""
    return _FAMILY_ISA[report["kernel_family"]][0]


def cpu_vnni(report: dict[str, Any]) -> bool:
    """Whether the INT8 kernels in use have VNNI (vpdpbusd: AVX-512 VNNI or AVX-VNNI)."""
    return _FAMILY_ISA[report["kernel_family"]][1]


_FLAG_LABELS = [
    ("avx2", "AVX2"),
    ("fma", "FMA"),
    ("avx512f", "AVX-512 F"),
    ("avx512bw", "AVX-512 BW"),
    ("avx512vl", "AVX-512 VL"),
    ("avx512dq", "AVX-512 DQ"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("avx_vnni", "AVX-VNNI"),
    ("amx_tile", "AMX tile"),
    ("amx_int8", "AMX int8"),
    ("amx_bf16", "AMX bf16"),
]


def _format_bytes(size: int) -> str:
    if size == 0:
        return "unknown"
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def format_cpu_report(report: dict[str, Any]) -> str:
    lines = [
        f"vendor          {report['vendor']}",
        f"model           {report['model']}",
        f"family/model    {report['family']}/{report['model_number']} "
        f"(0x{report['family']:x}/0x{report['model_number']:02x}), "
        f"stepping {report['stepping']}",
        f"logical cores   {report['logical_cores']}",
    ]
    lines += [f"{label:<16}{'yes' if report[key] else 'no'}" for key, label in _FLAG_LABELS]
    lines += [
        f"L1d cache       {_format_bytes(report['l1d_bytes'])}",
        f"L2 cache        {_format_bytes(report['l2_bytes'])}",
        f"L3 cache        {_format_bytes(report['l3_bytes'])}",
        f"kernel family   {report['kernel_family']}"
        + (
            f" (lowered by ORTSPARSE_ISA from {report['best_kernel_family']})"
            if report["kernel_family"] != report["best_kernel_family"]
            else ""
        ),
    ]
    return "\n".join(lines)
