"""The onnxruntime floor: an older runtime is refused where the library is loaded; the floors that
tools/test_versions.sh installs on the oldest Python; the Pythons pyproject.toml claims."""

import re
from pathlib import Path

import onnxruntime
import ortsparse
import pytest

from tools.floor_constraints import floor_constraints


@pytest.mark.parametrize("version", ["1.20.1", "1.9.0", "0.5"])
def test_an_older_onnxruntime_is_refused_with_what_to_install(monkeypatch, version):
    monkeypatch.setattr(onnxruntime, "__version__", version)
    with pytest.raises(RuntimeError, match=f"needs onnxruntime 1.21 or newer, found {version}"):
        ortsparse.library_path()


@pytest.mark.parametrize("version", ["1.21.0", "1.32.0", "2.0.0.dev20270101"])
def test_the_floor_and_newer_runtimes_load(monkeypatch, version):
    monkeypatch.setattr(onnxruntime, "__version__", version)
    assert ortsparse.library_path().endswith("libortsparse_ops.so")


def test_floor_constraints_pin_every_dependency_extras_included_to_its_floor():
    pyproject = {
        "project": {
            "dependencies": ["onnxruntime>=1.21", "ml_dtypes >= 0.2"],
            "optional-dependencies": {
                "pipelines": ["Pillow>=9.2"],
                "server": ["pillow>=9.2", "PyYAML>=6"],
            },
        }
    }
    assert floor_constraints(pyproject) == [
        "onnxruntime==1.21",
        "ml-dtypes==0.2",
        "pillow==9.2",
        "pyyaml==6",
    ]


@pytest.mark.parametrize(
    "requirement",
    ["onnx", "onnx==1.17", "onnx>=1.17,<2", "onnx>=1.17; python_version < '3.12'"],
)
def test_floor_constraints_refuse_what_is_not_a_plain_floor(requirement):
    with pytest.raises(ValueError, match="not a plain floor"):
        floor_constraints({"project": {"dependencies": [requirement]}})


def test_floor_constraints_refuse_two_floors_of_one_package():
    pyproject = {
        "project": {
            "dependencies": ["Pillow>=9.2"],
            "optional-dependencies": {"pipelines": ["pillow>=9"]},
        }
    }
    with pytest.raises(ValueError, match="pillow has two floors: 9.2 and 9"):
        floor_constraints(pyproject)


def test_requires_python_is_what_ci_tests():
    """pyproject.toml claims the Pythons from the oldest to the newest that
    tools/test_versions.sh runs the suite on, and no other."""
    root = Path(__file__).parents[1]
    requires = re.search(r'^requires-python = "(.*)"$', (root / "pyproject.toml").read_text(), re.M)
    tested = re.findall(r"pyenv_python (3\.\d+)\)", (root / "tools/test_versions.sh").read_text())
    oldest, newest = tested
    major, minor = newest.split(".")
    assert requires[1] == f">={oldest},<{major}.{int(minor) + 1}"
