"""ortsparse.InferenceSession against onnxruntime.InferenceSession, and its rewrite cache."""

import json
import warnings

import onnx
import onnxruntime as ort
import ortsparse
import pytest
from onnx import helper
from ortsparse import rewrite_cache
from ortsparse.rewriter import RewriteError

from tests.api_testing import (
    FORCE_REWRITE,
    assert_close,
    mlp_input,
    ort_outputs,
    save,
    sparse_mlp,
)
from tests.rewriter_testing import make_model, sparse_weight

pytestmark = pytest.mark.usefixtures("cache_dir")


def entries(cache_dir):
    return sorted(path.name for path in cache_dir.iterdir()) if cache_dir.exists() else []


def session(source, *args, **kwargs):
    """The session with the rewrite forced and, unless asked for, not verified: these tests are of
    what is rewritten and cached (test_verification.py has verification's)."""
    kwargs.setdefault("min_sparsity", FORCE_REWRITE)
    kwargs.setdefault("verify", False)
    kwargs.setdefault("providers", ["CPUExecutionProvider"])
    return ortsparse.InferenceSession(source, *args, **kwargs)


@pytest.mark.parametrize("form", ["path", "bytes"])
def test_rewrites_and_matches_onnxruntime(tmp_path, form):
    model = sparse_mlp()
    source = save(model, tmp_path / "mlp.onnx") if form == "path" else model.SerializeToString()
    loaded = session(source)
    assert isinstance(loaded, ort.InferenceSession)
    assert loaded.ortsparse_model.rewritten_nodes == 2
    assert loaded.ortsparse_model.candidate_nodes == 2
    assert [i.name for i in loaded.get_inputs()] == ["A"]
    assert [o.name for o in loaded.get_outputs()] == ["Y"]
    feeds = {"A": mlp_input()}
    assert_close(loaded.run(None, feeds), ort_outputs(model, feeds))


def test_loads_the_rewrite_from_the_cache(tmp_path, cache_dir, monkeypatch):
    path = save(sparse_mlp(), tmp_path / "mlp.onnx")
    first = session(path)

    def no_rewrite(*args, **kwargs):
        raise AssertionError("the rewriter ran on a cached model")

    monkeypatch.setattr(rewrite_cache, "rewrite_owned_model", no_rewrite)
    second = session(path)
    assert second.ortsparse_model == first.ortsparse_model
    assert second.ortsparse_model.source.startswith(str(cache_dir))
    assert entries(cache_dir) == [first.ortsparse_model.cache_entry.name]
    assert sorted(p.name for p in first.ortsparse_model.cache_entry.iterdir()) == [
        "model.onnx",
        "result.json",
    ]


def test_a_changed_model_is_rewritten_again(tmp_path, cache_dir):
    path = tmp_path / "mlp.onnx"
    save(sparse_mlp(seed=0), path)
    session(path)
    changed = sparse_mlp(seed=5)
    save(changed, path)
    reloaded = session(path)
    assert len(entries(cache_dir)) == 2
    feeds = {"A": mlp_input()}
    assert_close(reloaded.run(None, feeds), ort_outputs(changed, feeds))


def test_rewrite_options_are_part_of_the_key(tmp_path, cache_dir):
    path = save(sparse_mlp(), tmp_path / "mlp.onnx")
    forced = session(path)
    strict = session(path, min_sparsity=0.99)
    assert len(entries(cache_dir)) == 2
    assert (forced.ortsparse_model.rewritten_nodes, strict.ortsparse_model.rewritten_nodes) == (
        2,
        0,
    )


def test_cache_dir_argument_environment_and_default(tmp_path, cache_dir, monkeypatch):
    model = sparse_mlp().SerializeToString()
    session(model, cache_dir=tmp_path / "chosen")
    assert len(entries(tmp_path / "chosen")) == 1 and not cache_dir.exists()
    session(model)  # ORTSPARSE_CACHE_DIR, set by the fixture
    assert len(entries(cache_dir)) == 1
    monkeypatch.delenv("ORTSPARSE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rewrite_cache.default_cache_dir() == tmp_path / "xdg" / "ortsparse" / "models"
    session(model)
    assert len(entries(tmp_path / "xdg" / "ortsparse" / "models")) == 1


def test_unwritable_cache_warns_and_keeps_the_rewrite_in_memory(tmp_path):
    # A directory cannot be made under a regular file, even by root (chmod would not stop root).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    model = sparse_mlp()
    with pytest.warns(RuntimeWarning, match="cannot write the ortsparse rewrite cache"):
        loaded = session(model.SerializeToString(), cache_dir=blocker / "cache")
    assert loaded.ortsparse_model.cache_entry is None
    assert isinstance(loaded.ortsparse_model.source, bytes)
    assert loaded.ortsparse_model.rewritten_nodes == 2
    feeds = {"A": mlp_input()}
    assert_close(loaded.run(None, feeds), ort_outputs(model, feeds))


def test_a_model_with_nothing_to_rewrite_loads_as_it_is(tmp_path, cache_dir):
    dense = make_model(
        [helper.make_node("MatMul", ["A", "W"], ["Y"])],
        {"A": ["m", 16]},
        {"Y": ["m", 8]},
        {"W": sparse_weight(16, 8, sparsity=0.0)},
    )
    path = save(dense, tmp_path / "dense.onnx")
    for _ in range(2):  # the verdict is cached too
        loaded = session(path)
        assert loaded.ortsparse_model.source == path
        assert loaded.ortsparse_model.rewritten_nodes == 0
        assert not loaded.ortsparse_model.has_ortsparse_ops
    (entry,) = cache_dir.iterdir()
    assert [p.name for p in entry.iterdir()] == ["result.json"]
    assert json.loads((entry / "result.json").read_text())["candidate_nodes"] == 1


def test_a_model_the_rewriter_rejects_runs_unchanged_with_a_warning(tmp_path, monkeypatch):
    def reject(*args, **kwargs):
        raise RewriteError("the model is malformed: for this test")

    monkeypatch.setattr(rewrite_cache, "rewrite_owned_model", reject)
    model = sparse_mlp()
    with pytest.warns(RuntimeWarning, match="cannot rewrite the model .*for this test"):
        loaded = session(save(model, tmp_path / "mlp.onnx"))
    assert loaded.ortsparse_model.rewritten_nodes == 0
    feeds = {"A": mlp_input()}
    assert_close(loaded.run(None, feeds), ort_outputs(model, feeds))


def test_an_already_rewritten_model_loads(tmp_path):
    first = session(save(sparse_mlp(), tmp_path / "mlp.onnx"))
    again = session(first.ortsparse_model.source)
    assert again.ortsparse_model.has_ortsparse_ops
    assert again.ortsparse_model.rewritten_nodes == 0


def save_with_external_data(model, path):
    """Saves a copy: saving as external data empties the saved model's tensors."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(
        copy, path, save_as_external_data=True, location="weights.bin", size_threshold=0
    )


def test_external_data_is_read_and_hashed(tmp_path, cache_dir, monkeypatch):
    model = sparse_mlp()
    path = tmp_path / "mlp.onnx"
    save_with_external_data(model, path)
    loaded = session(path)
    assert loaded.ortsparse_model.rewritten_nodes == 2
    feeds = {"A": mlp_input()}
    assert_close(loaded.run(None, feeds), ort_outputs(model, feeds))

    # New weights in the data file alone (the .onnx file stays the same) make a new entry.
    changed = sparse_mlp(seed=5)
    (tmp_path / "changed").mkdir()
    save_with_external_data(changed, tmp_path / "changed" / "mlp.onnx")
    assert (tmp_path / "changed" / "mlp.onnx").read_bytes() == path.read_bytes()
    (tmp_path / "changed" / "weights.bin").replace(tmp_path / "weights.bin")
    before = len(entries(cache_dir))
    reloaded = session(path)
    assert len(entries(cache_dir)) == before + 1
    assert_close(reloaded.run(None, feeds), ort_outputs(changed, feeds))

    # Like ORT, a model given as bytes finds its external data in the working directory.
    monkeypatch.chdir(tmp_path)
    from_bytes = session(path.read_bytes())
    assert from_bytes.ortsparse_model.rewritten_nodes == 2
    assert_close(from_bytes.run(None, feeds), ort_outputs(changed, feeds))


def test_session_options_providers_and_keywords_pass_through(tmp_path):
    path = save(sparse_mlp(), tmp_path / "mlp.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    first = session(path, options, providers=["CPUExecutionProvider"], enable_fallback=0)
    assert first.get_session_options().intra_op_num_threads == 1
    assert first.get_session_options().log_severity_level == 3
    assert first.get_providers() == ["CPUExecutionProvider"]
    # The same options again: the library, registered on them the first time, is not again.
    second = session(path, options)
    assert second.run(None, {"A": mlp_input()})[0].shape == (3, 8)


def test_options_that_already_hold_the_library(tmp_path):
    """Code written for a rewritten model in plain ORT registers the library itself."""
    options = ort.SessionOptions()
    options.register_custom_ops_library(ortsparse.library_path())
    loaded = session(save(sparse_mlp(), tmp_path / "mlp.onnx"), options)
    assert loaded.run(None, {"A": mlp_input()})[0].shape == (3, 8)


def test_errors_are_onnxruntimes(tmp_path):
    missing = str(tmp_path / "missing.onnx")
    with pytest.raises(Exception) as expected:
        ort.InferenceSession(missing, providers=["CPUExecutionProvider"])
    with pytest.raises(type(expected.value)):
        session(missing)
    garbage = b"not an onnx model"
    with pytest.raises(Exception) as expected:
        ort.InferenceSession(garbage, providers=["CPUExecutionProvider"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # whatever the parser made of it
        with pytest.raises(type(expected.value)):
            session(garbage)


def test_no_temporary_files_are_left(tmp_path, cache_dir):
    session(save(sparse_mlp(), tmp_path / "mlp.onnx"))
    assert not [name for name in entries(cache_dir) if name.startswith(".")]


def test_ortsparse_can_replace_the_onnxruntime_import(tmp_path):
    import ortsparse as ort_replacement

    assert ort_replacement.InferenceSession is ortsparse.session.InferenceSession
    assert ort_replacement.SessionOptions is ort.SessionOptions
    assert ort_replacement.GraphOptimizationLevel is ort.GraphOptimizationLevel
    assert "CPUExecutionProvider" in ort_replacement.get_available_providers()
    options = ort_replacement.SessionOptions()
    options.graph_optimization_level = ort_replacement.GraphOptimizationLevel.ORT_ENABLE_ALL
    loaded = ort_replacement.InferenceSession(
        save(sparse_mlp(), tmp_path / "mlp.onnx"), options, providers=["CPUExecutionProvider"]
    )
    assert loaded.run(None, {"A": mlp_input()})[0].shape == (3, 8)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        ort_replacement.NoSuchThing  # noqa: B018
