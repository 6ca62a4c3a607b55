"""Fixtures the op-level tests share."""

import zlib

import numpy as np
import pytest

import ortsparse
from ortsparse import isa

KERNEL_FAMILIES = ["scalar", "avx2", "avx512"]
_FAMILY_RANK = {"scalar": 0, "avx2": 1, "avx512": 2, "avx512vnni": 3}


@pytest.fixture(scope="session")
def library():
    return ortsparse.library_path()


@pytest.fixture
def rng(request):
    """Seeded from the test's name: reproducible, and different for every case."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


@pytest.fixture(params=KERNEL_FAMILIES)
def family(request, monkeypatch):
    """Forces the kernel family that sessions created in the test will use (ORTSPARSE_ISA only
    lowers it, so a family the CPU lacks would silently test a lower one: skipped instead)."""
    if _FAMILY_RANK[request.param] > _FAMILY_RANK[isa.cpu_report()["best_kernel_family"]]:
        pytest.skip(f"CPU lacks {request.param}")
    monkeypatch.setenv("ORTSPARSE_ISA", request.param)
    return request.param
