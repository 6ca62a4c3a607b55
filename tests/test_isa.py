"""`ortsparse isa` against the kernel's own view of /proc/cpuinfo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CPUINFO = Path("/proc/cpuinfo")

# Our report key -> the flag Linux prints in /proc/cpuinfo (which also requires OS support).
CPUINFO_FLAG_FOR_KEY = {
    "avx2": "avx2",
    "fma": "fma",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512vl": "avx512vl",
    "avx512dq": "avx512dq",
    "avx512_vnni": "avx512_vnni",
    "avx512_bf16": "avx512_bf16",
    "avx_vnni": "avx_vnni",
    "amx_tile": "amx_tile",
    "amx_int8": "amx_int8",
    "amx_bf16": "amx_bf16",
}


def run_isa(*args, isa_override=None):
    env = dict(os.environ)
    env.pop("ORTSPARSE_ISA", None)
    if isa_override is not None:
        env["ORTSPARSE_ISA"] = isa_override
    return subprocess.run(
        [sys.executable, "-m", "ortsparse", "isa", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def cpuinfo_flags():
    for line in CPUINFO.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    pytest.skip("no flags line in /proc/cpuinfo")


@pytest.fixture(scope="module")
def report():
    result = run_isa("--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(not CPUINFO.exists(), reason="needs Linux /proc/cpuinfo")
def test_flags_match_proc_cpuinfo(report):
    flags = cpuinfo_flags()
    for key, flag in CPUINFO_FLAG_FOR_KEY.items():
        assert report[key] == (flag in flags), key


def cpuinfo_field(name):
    for line in CPUINFO.read_text().splitlines():
        if line.split(":")[0].strip() == name:
            return line.split(":", 1)[1].strip()
    pytest.skip(f"no {name!r} line in /proc/cpuinfo")


@pytest.mark.skipif(not CPUINFO.exists(), reason="needs Linux /proc/cpuinfo")
def test_family_model_and_stepping_match_proc_cpuinfo(report):
    assert report["family"] == int(cpuinfo_field("cpu family"))
    assert report["model_number"] == int(cpuinfo_field("model"))
    assert report["stepping"] == int(cpuinfo_field("stepping"))


def test_report_has_identity_cores_and_caches(report):
    assert report["vendor"] and report["model"]
    assert report["logical_cores"] == os.cpu_count()
    assert report["l1d_bytes"] > 0 and report["l2_bytes"] > report["l1d_bytes"]


def test_kernel_family_is_best_supported_by_default(report):
    avx512 = all(report[k] for k in ("avx512f", "avx512bw", "avx512vl", "avx512dq", "fma"))
    if avx512 and report["avx512_vnni"]:
        expected = "avx512vnni"
    elif avx512:
        expected = "avx512"
    elif report["avx2"] and report["fma"] and report["avx_vnni"]:
        expected = "avxvnni"
    elif report["avx2"] and report["fma"]:
        expected = "avx2"
    else:
        expected = "scalar"
    assert report["kernel_family"] == expected == report["best_kernel_family"]


def test_environment_lowers_kernel_family(report):
    lowered = json.loads(run_isa("--json", isa_override="scalar").stdout)
    assert lowered["kernel_family"] == "scalar"
    assert lowered["best_kernel_family"] == report["best_kernel_family"]


def test_environment_lowers_to_avxvnni_only_where_the_cpu_has_it(report):
    if report["best_kernel_family"] not in ("avx512", "avx512vnni"):
        pytest.skip("no family above avxvnni to lower from")
    lowered = json.loads(run_isa("--json", isa_override="avxvnni").stdout)
    # AVX-512 CPUs before Sapphire Rapids lack AVX-VNNI: the best family below it instead.
    assert lowered["kernel_family"] == ("avxvnni" if report["avx_vnni"] else "avx2")


def test_environment_never_raises_kernel_family(report):
    raised = json.loads(run_isa("--json", isa_override="avx512vnni").stdout)
    assert raised["kernel_family"] == report["best_kernel_family"]


def test_unknown_isa_override_is_an_error():
    result = run_isa(isa_override="avx9000")
    assert result.returncode == 2
    assert "ORTSPARSE_ISA='avx9000'" in result.stderr


def test_table_output_names_kernel_family(report):
    result = run_isa()
    assert result.returncode == 0
    assert f"kernel family   {report['kernel_family']}" in result.stdout
    assert "AVX-512 VNNI" in result.stdout
