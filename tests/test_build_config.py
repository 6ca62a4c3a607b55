"""CMake's search for ONNX Runtime's headers: clear errors when they cannot be found."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SYSTEM_HEADER_DIRS = [Path("/usr/include"), Path("/usr/local/include")]

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake on PATH")


def configure(tmp_path, **env_overrides):
    env = {k: v for k, v in os.environ.items() if k != "ONNXRUNTIME_INCLUDE_DIR"}
    env.update(env_overrides)
    return subprocess.run(
        ["cmake", "-S", str(REPO_ROOT), "-B", str(tmp_path / "build"),
         "-DORTSPARSE_BUILD_PYTHON_MODULE=OFF"],
        capture_output=True,
        text=True,
        env=env,
    )


def unwrapped(cmake_message):
    """CMake wraps long messages over lines; compare them as one line."""
    return " ".join(cmake_message.split())


def test_include_dir_without_headers_is_named(tmp_path):
    result = configure(tmp_path, ONNXRUNTIME_INCLUDE_DIR=str(tmp_path))
    assert result.returncode != 0
    message = unwrapped(result.stderr)
    assert f"ONNXRUNTIME_INCLUDE_DIR={tmp_path} does not contain onnxruntime_c_api.h" in message


@pytest.mark.skipif(
    any((d / "onnxruntime" / "onnxruntime_c_api.h").exists() for d in SYSTEM_HEADER_DIRS),
    reason="system headers are installed, so the search succeeds",
)
def test_missing_headers_error_names_all_three_ways(tmp_path):
    empty_cache = tmp_path / "cache"
    result = configure(tmp_path, ORTSPARSE_CACHE_DIR=str(empty_cache))
    assert result.returncode != 0
    message = unwrapped(result.stderr)
    assert "set ONNXRUNTIME_INCLUDE_DIR" in message
    assert "system include directory" in message
    assert "tools/fetch_ort_headers.sh" in message
    assert str(empty_cache) in message


def test_cache_is_searched(tmp_path):
    headers = Path(os.environ.get("ORTSPARSE_CACHE_DIR", Path.home() / ".cache" / "ortsparse"))
    if not (headers / "ort-headers/usr/include/onnxruntime/onnxruntime_c_api.h").exists():
        pytest.skip("tools/fetch_ort_headers.sh has not filled the default cache")
    result = configure(tmp_path, ORTSPARSE_CACHE_DIR=str(headers))
    assert result.returncode == 0, result.stderr
    assert "ONNX Runtime headers: " in result.stdout
