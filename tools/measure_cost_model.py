#!/usr/bin/env python3
"""Measures the rewriter's cost model on this CPU, for every kernel family it supports, and writes
the data file shipped with ortsparse for this CPU model (python/ortsparse/rewriter/cost_data/).

What is measured and fitted is ortsparse.calibration's (`ortsparse calibrate` measures only the
family in use, for this machine alone). Each family is measured in a child process started with
ORTSPARSE_ISA set to it: ORT runs the CPU's own kernels in each, so the data describe this CPU
running that family, and the rewriter applies them to this CPU model only
(rewriter/cost_data.py).

    .venv/bin/python tools/measure_cost_model.py                  # every family this CPU has
    .venv/bin/python tools/measure_cost_model.py --families avx2 --output /tmp/costs.json
    .venv/bin/python tools/measure_cost_model.py --ops conv       # keep the file's gemm data
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

# Run as a file, Python puts only tools/ on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ortsparse  # noqa: E402
from ortsparse.calibration import OPS, measure_and_fit, new_data, store_family  # noqa: E402
from ortsparse.rewriter.cost_data import current_cpu  # noqa: E402
from ortsparse.rewriter.cost_model import (  # noqa: E402
    REPRESENTATIVE_M,
    CostModel,
    KernelCosts,
    fp32_kernel_family,
)

# The source tree's directory, not the one of whichever ortsparse is imported.
DATA_DIR = Path(__file__).resolve().parents[1] / "python/ortsparse/rewriter/cost_data"

# provider/isa/cpu_features.h, KernelFamily, least to most capable, less avxvnni, which runs the
# avx2 FP32 kernels (cost_model.fp32_kernel_family).
FAMILY_ORDER = ("scalar", "avx2", "avx512", "avx512vnni")

BREAK_EVEN_SHAPES = ((1024, 1024), (768, 3072))


def progress(message: str) -> None:
    print(f"[measure] {message}", file=sys.stderr, flush=True)


def supported_families(best_kernel_family: str) -> list[str]:
    """Families from scalar up to the best one this CPU supports."""
    best = fp32_kernel_family(best_kernel_family)
    return list(FAMILY_ORDER[: FAMILY_ORDER.index(best) + 1])


def measure_family_in_child(op: str, family: str, library: str) -> dict:
    """Measures and fits ``op`` in a child process whose ORTSPARSE_ISA is ``family``."""
    env = {**os.environ, "ORTSPARSE_ISA": family}
    child = subprocess.run(
        [sys.executable, __file__, "--family-child", op, "--library", library],
        env=env,
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    return json.loads(child.stdout)


def print_break_even(gemm_families: dict) -> None:
    for family, constants in gemm_families.items():
        model = CostModel(KernelCosts(**constants), family)
        for k, n in BREAK_EVEN_SHAPES:
            break_even = {
                fmt: model.break_even_sparsity(REPRESENTATIVE_M, k, n, fmt)
                for fmt in ("csr", "block4")
            }
            print(
                f"{family:<11} {k}x{n} at M={REPRESENTATIVE_M}: break-even sparsity "
                f"csr {break_even['csr']:.1%}, block4 {break_even['block4']:.1%}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the data (default: {DATA_DIR}/<this CPU>.json)",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        choices=FAMILY_ORDER,
        help="kernel families to measure (default: all this CPU supports)",
    )
    parser.add_argument(
        "--ops",
        nargs="+",
        choices=tuple(OPS),
        default=list(OPS),
        help="ops to measure; the others keep the output file's data (default: all)",
    )
    parser.add_argument(
        "--library", help="the custom-op library (default: ortsparse.library_path())"
    )
    parser.add_argument("--family-child", choices=tuple(OPS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    library = args.library or ortsparse.library_path()

    if args.family_child:
        print(json.dumps(measure_and_fit(args.family_child, library, progress)))
        return 0

    cpu = current_cpu()
    if cpu is None:
        progress("the ortsparse ISA module is not built: install the package first")
        return 2
    output = args.output or DATA_DIR / f"{cpu.slug}.json"
    families = args.families or supported_families(cpu.best_kernel_family)
    data = new_data(cpu)
    if output.exists() and set(args.ops) != set(OPS):
        data = json.loads(output.read_text())
    for op in args.ops:
        for family in families:
            progress(f"{op}, kernel family {family}")
            store_family(data, op, family, measure_family_in_child(op, family, library))

    output.write_text(json.dumps(data, indent=2) + "\n")
    progress(f"wrote {output}")
    if "gemm" in args.ops:
        print_break_even(data["families"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
