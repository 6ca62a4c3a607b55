"""The rewrite cache heals and stays within its size: damaged entries are rebuilt with one
warning, the least recently used ones go past the limit, `ortsparse cache list|clear`."""

import json
import os
import subprocess
import sys
import warnings

import onnx
import ortsparse
import pytest
from ortsparse import rewrite_cache

from tests.api_testing import FORCE_REWRITE, assert_close, mlp_input, ort_outputs, save, sparse_mlp

pytestmark = pytest.mark.usefixtures("cache_dir")


def session(path):
    return ortsparse.InferenceSession(
        path, providers=["CPUExecutionProvider"], min_sparsity=FORCE_REWRITE, verify=False
    )


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    path.write_bytes(bytes(data))


DAMAGES = {
    "model-truncated": lambda entry: truncate(entry / "model.onnx"),
    "model-garbled": lambda entry: garble(entry / "model.onnx"),
    "model-deleted": lambda entry: (entry / "model.onnx").unlink(),
    "record-garbage": lambda entry: (entry / "result.json").write_text("{not json"),
    "record-wrong-shape": lambda entry: (entry / "result.json").write_text(
        '{"files": [], "rewritten_nodes": 2}'
    ),
    "record-deleted": lambda entry: (entry / "result.json").unlink(),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_entry_is_rewritten_with_one_warning(tmp_path, damage):
    model = sparse_mlp()
    path = save(model, tmp_path / "mlp.onnx")
    entry = session(path).ortsparse_model.cache_entry
    DAMAGES[damage](entry)

    with pytest.warns(RuntimeWarning, match="is damaged") as caught:
        healed = session(path)
    assert len([w for w in caught if "ortsparse" in str(w.message)]) == 1
    assert healed.ortsparse_model.cache_entry == entry
    feeds = {"A": mlp_input()}
    assert_close(healed.run(None, feeds), ort_outputs(model, feeds))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the entry is whole again: no warning
        assert session(path).ortsparse_model.rewritten_nodes == 2


def test_entries_record_each_file_s_size_and_hash(tmp_path):
    entry = session(save(sparse_mlp(), tmp_path / "mlp.onnx")).ortsparse_model.cache_entry
    record = json.loads((entry / "result.json").read_text())
    model_file = entry / "model.onnx"
    assert record["files"]["model.onnx"]["size"] == model_file.stat().st_size
    assert record["files"]["model.onnx"]["sha256"] == rewrite_cache._sha256(model_file)
    assert record["model"] == "mlp.onnx"


def test_the_cached_rewrite_keeps_the_model_s_ir_version_and_opsets(tmp_path):
    # Older ones than the IR 8 and opset 17 of the suite's models, to tell keeping them from
    # writing fixed ones.
    model = sparse_mlp()
    model.ir_version, model.opset_import[0].version = 7, 13
    entry = session(save(model, tmp_path / "mlp.onnx")).ortsparse_model.cache_entry
    cached = onnx.load(str(entry / "model.onnx"))
    assert cached.ir_version == 7
    opsets = {(opset.domain, opset.version) for opset in cached.opset_import}
    assert opsets == {("", 13), ("ortsparse", 1)}


def test_least_recently_used_entries_go_past_the_limit(tmp_path, cache_dir, monkeypatch):
    paths = [save(sparse_mlp(seed=seed), tmp_path / f"mlp{seed}.onnx") for seed in range(3)]
    first, second = (session(path).ortsparse_model.cache_entry for path in paths[:2])
    os.utime(first / "result.json", (1, 1))
    os.utime(second / "result.json", (2, 2))
    session(paths[0])  # reading the first entry marks it used: the second is now the oldest
    one_entry = sum(f.stat().st_size for f in first.iterdir())
    monkeypatch.setenv(rewrite_cache.LIMIT_ENV, str(2.5 * one_entry / 2**20))
    third = session(paths[2]).ortsparse_model.cache_entry
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([first.name, third.name])


def test_a_bad_limit_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(rewrite_cache.LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match="ORTSPARSE_CACHE_LIMIT_MB must be a number"):
        session(save(sparse_mlp(), tmp_path / "mlp.onnx"))


def cache_command(action, cache_dir):
    return subprocess.run(
        [sys.executable, "-m", "ortsparse", "cache", action, "--cache-dir", str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cache_list_and_clear(tmp_path, cache_dir):
    for seed in range(2):
        session(save(sparse_mlp(seed=seed), tmp_path / f"mlp{seed}.onnx"))
    listing = cache_command("list", cache_dir)
    assert listing.returncode == 0
    assert f"{cache_dir}: 2 entries" in listing.stdout
    assert "mlp0.onnx" in listing.stdout and "mlp1.onnx" in listing.stdout
    cleared = cache_command("clear", cache_dir)
    assert cleared.returncode == 0 and "removed 2 entries" in cleared.stdout
    assert rewrite_cache.cache_entries(cache_dir) == []
