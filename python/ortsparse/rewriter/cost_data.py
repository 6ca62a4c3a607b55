"""Which measured cost-model constants the rewriter uses on this CPU.

Constants describe the CPU they were measured on, and only it: ORT's dense kernels and ours run
at different relative speeds on each microarchitecture (ORT's dense MatMul took 0.0139 ns per MAC
on one thread of an AVX-512 Xeon, 0.0092 on a Zen 5 EPYC, 0.0219 on a Zen 3 EPYC), and the
kernel family a CPU runs decides ORT's kernels as much as ours (on an AVX-512 CPU that runs
ortsparse's AVX2 family under ORTSPARSE_ISA=avx2, ORT still runs its AVX-512 kernels). So each
data file names the CPU it was measured on: vendor, CPUID family and model, and the best kernel
family it supports (which ORT's own dispatch follows), and holds constants per kernel family.

For the CPU at hand and the kernel family in use, the constants come from, in order:
1. this CPU's calibration (``ortsparse calibrate``), under the cache directory;
2. a shipped measurement of this CPU model (cost_data/*.json beside this module);
3. neither: a ConservativeCostModel over every shipped measurement of that kernel family on other
   CPUs, which rewrites a layer only where each of them predicts it CONSERVATIVE_SPEEDUP times
   faster than ORT (a layer predicted to break even is kept), and says so in the report.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ortsparse.rewriter.cost_model import (
    ConservativeCostModel,
    CostModel,
    KernelCosts,
    current_kernel_family,
    fp32_kernel_family,
)

SHIPPED_DIR = Path(__file__).with_name("cost_data")
CACHE_DIR_ENV = "ORTSPARSE_CACHE_DIR"
CALIBRATION_SUBDIR = "calibration"

# Without a measurement of this CPU, how much faster than ORT every other CPU's data must
# predict a layer before it is rewritten.
CONSERVATIVE_SPEEDUP = 1.25


@dataclass(frozen=True)
class CpuIdentity:
    """What a measurement's validity depends on (isa.cpu_report's fields of the same names)."""

    vendor: str
    family: int
    model_number: int
    best_kernel_family: str
    model: str = ""  # the brand string, for people: hypervisors often report a generic one

    @classmethod
    def from_report(cls, report: dict) -> CpuIdentity:
        return cls(
            report["vendor"],
            report["family"],
            report["model_number"],
            report["best_kernel_family"],
            report["model"],
        )

    @property
    def key(self) -> tuple:
        return (self.vendor, self.family, self.model_number, self.best_kernel_family)

    @property
    def slug(self) -> str:
        """A file name for this CPU's calibration."""
        text = f"{self.vendor}-{self.family}-{self.model_number}-{self.best_kernel_family}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)

    def describe(self) -> str:
        return (
            f"{self.model or 'unnamed CPU'} ({self.vendor} family {self.family} model "
            f"{self.model_number}, best kernel family {self.best_kernel_family})"
        )


@dataclass(frozen=True)
class CostData:
    """One CPU's measured constants, per kernel family, and where they were read from."""

    cpu: CpuIdentity
    onnxruntime: str
    gemm: dict[str, dict]  # kernel family -> KernelCosts fields, MatMul against SparseGemm
    conv: dict[str, dict]  # the same for Conv against SparseConv
    path: Path

    @classmethod
    def read(cls, path: Path) -> CostData:
        data = json.loads(Path(path).read_text())
        return cls(
            CpuIdentity(**data["cpu"]),
            data["onnxruntime"],
            data["families"],
            data["conv_families"],
            Path(path),
        )


@dataclass(frozen=True)
class CostModels:
    """The cost models the rewriter judges with, and one line saying where they come from."""

    gemm: CostModel | ConservativeCostModel
    conv: CostModel | ConservativeCostModel
    source: str
    # A fingerprint of the data in use: a rewrite cached under one must not serve another.
    fingerprint: str


def cost_models(
    cpu: CpuIdentity | None = None,
    family: str | None = None,
    calibration_dir: Path | None = None,
) -> CostModels:
    """The cost models for ``cpu`` (default: this one) running kernel ``family`` (default: the
    provider's pick), from the first source that has measured it (see the module's text)."""
    cpu = cpu or current_cpu()
    family = fp32_kernel_family(family or current_kernel_family()) or _DEFAULT_FAMILY
    own = _own_data(cpu, family, calibration_dir)
    if own is not None:
        data, origin = own
        source = (
            f"cost model measured on this CPU, {data.cpu.describe()}, kernel family {family}, "
            f"ORT {data.onnxruntime} ({origin} {data.path})"
        )
        return _measured(data, family, source)
    others = [data for data in shipped_data() if family in data.gemm and family in data.conv]
    names = ", ".join(data.cpu.describe() for data in others)
    this_cpu = cpu.describe() if cpu is not None else "this CPU (its ISA module is not built)"
    source = (
        f"no cost-model data for {this_cpu} in kernel family {family}: a layer is rewritten only "
        f"where the data of every other CPU measured ({names}) predicts it at least "
        f"{CONSERVATIVE_SPEEDUP}x faster than ORT; `ortsparse calibrate` measures this CPU"
    )
    return CostModels(
        ConservativeCostModel(
            [CostModel(KernelCosts(**data.gemm[family]), family) for data in others],
            family,
            CONSERVATIVE_SPEEDUP,
            source,
        ),
        ConservativeCostModel(
            [CostModel(KernelCosts(**data.conv[family]), family) for data in others],
            family,
            CONSERVATIVE_SPEEDUP,
            source,
        ),
        source,
        "conservative:"
        + ",".join(f"{data.path.name}:{_file_digest(data.path)}" for data in others),
    )


def cost_models_of(path: Path, family: str | None = None) -> CostModels:
    """The cost models of the measurement at ``path`` (``ortsparse calibrate``'s output on
    another CPU, or a shipped file), for its ``family`` (default: the best one of the CPU it was
    measured on, which that CPU runs): to rewrite a model for that CPU from another. Raises
    ValueError when the file is not a measurement or lacks the family."""
    try:
        data = CostData.read(Path(path))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a cost-model measurement: {error}") from error
    family = fp32_kernel_family(family or data.cpu.best_kernel_family)
    if family not in data.gemm or family not in data.conv:
        raise ValueError(f"{path} has no measurement of kernel family {family}")
    source = (
        f"cost model measured on {data.cpu.describe()}, kernel family {family}, ORT "
        f"{data.onnxruntime} (given: {path})"
    )
    return _measured(data, family, source)


def _measured(data: CostData, family: str, source: str) -> CostModels:
    """The cost models of one CPU's measurement of ``family``."""
    return CostModels(
        CostModel(KernelCosts(**data.gemm[family]), family, source),
        CostModel(KernelCosts(**data.conv[family]), family, source),
        source,
        f"{data.path}:{_file_digest(data.path)}",
    )


# Where no family is known (the ISA module is not built): the portable one.
_DEFAULT_FAMILY = "scalar"


def current_cpu() -> CpuIdentity | None:
    """This CPU's identity, None when the ISA module is not built."""
    try:
        from ortsparse.isa import cpu_report

        return CpuIdentity.from_report(cpu_report())
    except (ImportError, ValueError):
        return None


@cache
def shipped_data() -> tuple[CostData, ...]:
    return tuple(CostData.read(path) for path in sorted(SHIPPED_DIR.glob("*.json")))


def cache_root() -> Path:
    """ortsparse's cache: $ORTSPARSE_CACHE_DIR, else $XDG_CACHE_HOME/ortsparse
    (~/.cache/ortsparse). Calibrations, rewritten models and the set-up's downloads live in it."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "ortsparse"


def default_calibration_dir() -> Path:
    return cache_root() / CALIBRATION_SUBDIR


def calibration_path(cpu: CpuIdentity, calibration_dir: Path | None = None) -> Path:
    return (calibration_dir or default_calibration_dir()) / f"{cpu.slug}.json"


def _own_data(
    cpu: CpuIdentity | None, family: str, calibration_dir: Path | None
) -> tuple[CostData, str] | None:
    """This CPU's calibration, else a shipped measurement of its model, for ``family``."""
    if cpu is None:
        return None
    calibration = calibration_path(cpu, calibration_dir)
    candidates = []
    if calibration.is_file():
        try:
            candidates.append((CostData.read(calibration), "calibrated by `ortsparse calibrate`:"))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: as if never calibrated (calibrate writes it anew)
    candidates += [(data, "shipped:") for data in shipped_data()]
    for data, origin in candidates:
        if data.cpu.key == cpu.key and family in data.gemm and family in data.conv:
            return data, origin
    return None


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
