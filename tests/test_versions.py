"""The onnxruntime floor: an older runtime is refused where the library is loaded."""

import onnxruntime
import ortsparse
import pytest


@pytest.mark.parametrize("version", ["1.20.1", "1.9.0", "0.5"])
def test_an_older_onnxruntime_is_refused_with_what_to_install(monkeypatch, version):
    monkeypatch.setattr(onnxruntime, "__version__", version)
    with pytest.raises(RuntimeError, match=f"needs onnxruntime 1.21 or newer, found {version}"):
        ortsparse.library_path()


@pytest.mark.parametrize("version", ["1.21.0", "1.32.0", "2.0.0.dev20270101"])
def test_the_floor_and_newer_runtimes_load(monkeypatch, version):
    monkeypatch.setattr(onnxruntime, "__version__", version)
    assert ortsparse.library_path().endswith("libortsparse_ops.so")
