"""Fixtures the tests share."""

import zlib

import numpy as np
import ortsparse
import pytest
from ortsparse import isa

KERNEL_FAMILIES = ["scalar", "avx2", "avx512"]
QUAD_KERNEL_FAMILIES = ["scalar", "avx2", "avxvnni", "avx512vnni"]
_FAMILY_RANK = {"scalar": 0, "avx2": 1, "avxvnni": 2, "avx512": 3, "avx512vnni": 4}


@pytest.fixture(scope="session")
def library():
    return ortsparse.library_path()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh ortsparse cache (ORTSPARSE_CACHE_DIR), so that no test reads or fills the user's
    (its calibrations included); the rewrite cache's directory in it."""
    root = tmp_path / "ortsparse-cache"
    monkeypatch.setenv("ORTSPARSE_CACHE_DIR", str(root))
    return root / "models"


@pytest.fixture
def rng(request):
    """Seeded from the test's name: reproducible, and different for every case."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def force_family(name, monkeypatch):
    """ORTSPARSE_ISA only lowers the family, so one the CPU lacks would silently test a lower one:
    skipped instead. avxvnni is the one family below another that the CPU may lack."""
    report = isa.cpu_report()
    if _FAMILY_RANK[name] > _FAMILY_RANK[report["best_kernel_family"]] or (
        name == "avxvnni" and not report["avx_vnni"]
    ):
        pytest.skip(f"CPU lacks {name}")
    monkeypatch.setenv("ORTSPARSE_ISA", name)
    return name


@pytest.fixture(params=KERNEL_FAMILIES)
def family(request, monkeypatch):
    """Forces the FP32 kernel family that sessions created in the test will use."""
    return force_family(request.param, monkeypatch)


@pytest.fixture(params=QUAD_KERNEL_FAMILIES)
def quad_family(request, monkeypatch):
    """Forces the INT8 kernel family: AVX-512 without VNNI runs the AVX2 kernels, so the families
    that differ are these (avxvnni: the AVX2 panels multiplied by 256-bit vpdpbusd)."""
    return force_family(request.param, monkeypatch)
