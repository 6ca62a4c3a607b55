"""The pruned model builders in tools/model_builders: pruning patterns, graph shapes, validity."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tools.model_builders import BertConfig, MlpConfig, build_bert, build_mlp, linear_weights
from tools.model_builders.cli import main as build_model_main
from tools.model_builders.pruning import (
    block4_sparsity_of,
    prune_block4,
    prune_unstructured,
    sparsity_of,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = [0.0, 0.5, 0.9, 0.99, 1.0]
SMALL_BERT = {"layers": 2, "hidden": 128, "heads": 4, "intermediate": 512}


def _random_weight(k=64, n=40, seed=0):
    return np.random.default_rng(seed).standard_normal((k, n), dtype=np.float32)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _blocks(weight: np.ndarray) -> np.ndarray:
    """[K, N] -> [K, ceil(N/4), 4]: the 4-blocks of output channels, zero-padded."""
    k, n = weight.shape
    return np.pad(weight, ((0, 0), (0, -n % 4))).reshape(k, -1, 4)


def _assert_block4_structure(weight: np.ndarray) -> None:
    """Each block W[k, 4g:4g+4] is either all zero or has no zero at all (random weights)."""
    k, n = weight.shape
    nonzeros = np.count_nonzero(_blocks(weight), axis=-1)
    real_channels = np.count_nonzero(_blocks(np.ones((k, n))), axis=-1)
    assert np.all((nonzeros == 0) | (nonzeros == real_channels))


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_unstructured_pruning_zeroes_the_smallest_weights(sparsity):
    dense = _random_weight()
    pruned = prune_unstructured(dense, sparsity)
    assert np.count_nonzero(pruned == 0) == round(sparsity * dense.size)
    kept = pruned != 0
    np.testing.assert_array_equal(pruned[kept], dense[kept])
    if 0 < sparsity < 1:
        assert np.abs(dense[kept]).min() >= np.abs(dense[~kept]).max()


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("n", [40, 42])  # 42: a short last block in every row
@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_block4_pruning_zeroes_whole_lowest_norm_blocks(sparsity, n, norm):
    dense = _random_weight(n=n)
    pruned = prune_block4(dense, sparsity, norm)
    _assert_block4_structure(pruned)
    blocks = _blocks(dense).shape[0] * _blocks(dense).shape[1]
    assert block4_sparsity_of(pruned) == pytest.approx(round(sparsity * blocks) / blocks)
    kept = pruned != 0
    np.testing.assert_array_equal(pruned[kept], dense[kept])
    if 0 < sparsity < 1:
        norms = np.linalg.norm(_blocks(dense), ord={"l2": 2, "l1": 1}[norm], axis=-1)
        kept_blocks = _blocks(pruned).any(axis=-1)
        assert norms[kept_blocks].min() >= norms[~kept_blocks].max()


def test_pruning_rejects_a_sparsity_outside_0_1():
    with pytest.raises(ValueError):
        prune_unstructured(_random_weight(), 1.5)


@pytest.mark.parametrize("gemm", [False, True])
@pytest.mark.parametrize("block", [1, 4])
def test_mlp_has_the_requested_layers_and_sparsity(gemm, block):
    model = build_mlp(MlpConfig(layers=3, hidden=64, sparsity=0.75, block=block, gemm=gemm))
    onnx.checker.check_model(model, full_check=True)
    ops = Counter(node.op_type for node in model.graph.node)
    expected = {"Gemm": 3, "Relu": 2} if gemm else {"MatMul": 3, "Add": 3, "Relu": 2}
    assert ops == expected
    weights = linear_weights(model)
    assert len(weights) == 3
    for weight in weights.values():
        assert weight.shape == (64, 64)
        assert sparsity_of(weight) == pytest.approx(0.75)
        if block == 4:
            _assert_block4_structure(weight)


@pytest.mark.parametrize("batch", [1, 5])
def test_mlp_runs_in_ort_with_a_symbolic_batch_and_order_one_activations(batch):
    model = build_mlp(MlpConfig(layers=4, hidden=128, sparsity=0.99))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    y = _run(model, np.random.default_rng(0).standard_normal((batch, 128), dtype=np.float32))
    assert y.shape == (batch, 128)
    assert 0.05 < np.abs(y).max() < 100  # pruned weights are rescaled, so nothing vanishes


def test_builders_are_deterministic_for_a_seed():
    same = [build_mlp(MlpConfig(layers=2, hidden=32, seed=3)).SerializeToString() for _ in range(2)]
    other = build_mlp(MlpConfig(layers=2, hidden=32, seed=4)).SerializeToString()
    assert same[0] == same[1] != other


def _gelu_chains(model: onnx.ModelProto) -> list[list[str]]:
    """Op types around each Erf: its producer, itself and the three nodes that follow it."""
    producers = {node.output[0]: node for node in model.graph.node}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    chains = []
    for erf in (node for node in model.graph.node if node.op_type == "Erf"):
        chain = [producers[erf.input[0]], erf]
        for _ in range(3):
            chain.append(consumers[chain[-1].output[0]][0])
        chains.append([node.op_type for node in chain])
    return chains


def test_bert_is_exported_like_torch_at_opset_17():
    model = build_bert(BertConfig(**SMALL_BERT, sparsity=0.9))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    ops = Counter(node.op_type for node in model.graph.node)
    layers = SMALL_BERT["layers"]
    assert ops["MatMul"] == 8 * layers  # 6 linear + Q.K^T + probs.V
    assert ops["LayerNormalization"] == 2 * layers
    assert ops["Softmax"] == ops["Erf"] == layers
    assert _gelu_chains(model) == [["Div", "Erf", "Add", "Mul", "Mul"]] * layers
    weights = linear_weights(model)
    assert len(weights) == 6 * layers
    assert all(sparsity_of(w) == pytest.approx(0.9, abs=1e-4) for w in weights.values())


def test_bert_4block_pruning_is_structural():
    model = build_bert(BertConfig(**SMALL_BERT, sparsity=0.9, block=4))
    for weight in linear_weights(model).values():
        _assert_block4_structure(weight)
        assert block4_sparsity_of(weight) == pytest.approx(0.9, abs=1e-3)


@pytest.mark.parametrize("seq", [None, 16])
def test_bert_runs_in_ort(seq):
    model = build_bert(BertConfig(**SMALL_BERT, seq=seq))
    y = _run(model, np.random.default_rng(0).standard_normal((2, 16, 128), dtype=np.float32))
    assert y.shape == (2, 16, 128)
    assert np.isfinite(y).all()


def test_cli_writes_a_model(tmp_path, capsys):
    out = tmp_path / "bert.onnx"
    args = ["bert", "--layers", "1", "--hidden", "64", "--heads", "2", "--intermediate", "128"]
    assert build_model_main(args + ["--sparsity", "0.5", "--block", "4", "--out", str(out)]) == 0
    assert "weight sparsity 0.5000" in capsys.readouterr().out
    onnx.checker.check_model(str(out))


def test_build_model_script_runs_from_the_repo_root(tmp_path):
    out = tmp_path / "mlp.onnx"
    command = [
        sys.executable,
        "tools/build_model.py",
        "mlp",
        "--layers",
        "2",
        "--hidden",
        "32",
        "--out",
        str(out),
    ]
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True)
    assert len(linear_weights(onnx.load(str(out)))) == 2
