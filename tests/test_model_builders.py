"""The pruned model builders in tools/model_builders: pruning patterns, graph shapes, validity."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from ortsparse.model_versions import newest_model_versions

from tools.model_builders import (
    BertConfig,
    MlpConfig,
    ResNetConfig,
    YoloConfig,
    build_bert,
    build_mlp,
    build_resnet,
    build_yolo,
    conv_weights,
    linear_weights,
)
from tools.model_builders.cli import main as build_model_main
from tools.model_builders.pruning import (
    block4_sparsity_of,
    input_block4_sparsity_of,
    prune,
    prune_block4,
    prune_conv,
    prune_input_block4,
    prune_unstructured,
    sample_pruned_conv_weight,
    sparsity_of,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = [0.0, 0.5, 0.9, 0.99, 1.0]
SMALL_BERT = {"layers": 2, "hidden": 128, "heads": 4, "intermediate": 512}
SMALL_RESNET = {"stages": (1, 2, 1, 1), "width": 16, "resolution": 32}
SMALL_YOLO = {"width": 0.125, "resolution": 64}


def assert_newest_versions(model: onnx.ModelProto) -> None:
    newest = newest_model_versions()
    assert (model.ir_version, model.opset_import[0].version) == (newest.ir_version, newest.opset)


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


def test_conv_4blocks_are_4_output_channels_at_one_input_index():
    weight = sample_pruned_conv_weight(np.random.default_rng(0), 16, 8, 3, 0.75, block=4)
    assert weight.shape == (16, 8, 3, 3)
    nonzeros = np.count_nonzero(weight.reshape(4, 4, 8, 3, 3), axis=1)  # [group, c, i, j]
    assert np.all((nonzeros == 0) | (nonzeros == 4))
    assert np.mean(nonzeros == 0) == pytest.approx(0.75)


def _assert_input_block4_structure(weight: np.ndarray) -> None:
    """Each K-block W[4q:4q+4, n] of a [K, N] weight is either all zero or has no zero at all."""
    _assert_block4_structure(weight.T)


def _conv_channel_rows(weight: np.ndarray) -> np.ndarray:
    """[N, C, kH, kW] -> [N*kH*kW, C]: the input channels at each (n, i, j), one row each."""
    return weight.transpose(0, 2, 3, 1).reshape(-1, weight.shape[1])


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("k", [64, 66])  # 66: a short last K-block in every column
@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_input_block4_pruning_zeroes_whole_lowest_norm_k_blocks(sparsity, k, norm):
    dense = _random_weight(k=k)
    pruned = prune_input_block4(dense, sparsity, norm)
    _assert_input_block4_structure(pruned)
    blocks = -(-k // 4) * dense.shape[1]
    assert input_block4_sparsity_of(pruned) == pytest.approx(round(sparsity * blocks) / blocks)
    kept = pruned != 0
    np.testing.assert_array_equal(pruned[kept], dense[kept])
    if 0 < sparsity < 1:
        norms = np.linalg.norm(_blocks(dense.T), ord={"l2": 2, "l1": 1}[norm], axis=-1)
        kept_blocks = _blocks(pruned.T).any(axis=-1)
        assert norms[kept_blocks].min() >= norms[~kept_blocks].max()


def test_input_block4_pruning_is_deterministic_and_differs_from_output_blocks():
    dense = _random_weight()
    first, second = prune(dense, 0.75, "4k"), prune(dense.copy(), 0.75, "4k")
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first != 0, prune(dense, 0.75, 4) != 0)


@pytest.mark.parametrize("c", [8, 6])  # 6: each tap's channels end in a 2-channel block
def test_conv_k_blocks_are_4_input_channels_at_one_tap(c):
    weight = sample_pruned_conv_weight(np.random.default_rng(0), 16, c, 3, 0.75, block="4k")
    assert weight.shape == (16, c, 3, 3)
    rows = _conv_channel_rows(weight)
    # A block spanning two taps (or 4 taps of one channel) would leave partly zero blocks here.
    _assert_block4_structure(rows)
    assert block4_sparsity_of(rows) == pytest.approx(0.75)


def test_conv_pruning_keeps_patterns_1_and_4_on_the_matrix_view():
    dense = np.random.default_rng(0).standard_normal((16, 8, 3, 3), dtype=np.float32)
    for block in (1, 4):
        expected = prune(dense.reshape(16, -1).T, 0.75, block).T.reshape(dense.shape)
        np.testing.assert_array_equal(prune_conv(dense, 0.75, block), expected)


def test_pruning_rejects_an_unknown_pattern():
    with pytest.raises(ValueError, match="block must be one of"):
        prune(_random_weight(), 0.5, 2)
    with pytest.raises(ValueError, match="block must be one of"):
        prune_conv(np.ones((4, 4, 1, 1), np.float32), 0.5, "4n")


def test_pruning_rejects_a_sparsity_outside_0_1():
    with pytest.raises(ValueError):
        prune_unstructured(_random_weight(), 1.5)


@pytest.mark.parametrize("gemm", [False, True])
@pytest.mark.parametrize("block", [1, 4, "4k"])
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
        if block == "4k":
            _assert_input_block4_structure(weight)


@pytest.mark.parametrize("batch", [1, 5])
def test_mlp_runs_in_ort_with_a_symbolic_batch_and_order_one_activations(batch):
    model = build_mlp(MlpConfig(layers=4, hidden=128, sparsity=0.99))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    y = _run(model, np.random.default_rng(0).standard_normal((batch, 128), dtype=np.float32))
    assert y.shape == (batch, 128)
    assert 0.05 < np.abs(y).max() < 100  # pruned weights are rescaled, so nothing vanishes


@pytest.mark.parametrize("block", [1, 4, "4k"])
def test_builders_are_deterministic_for_a_seed(block):
    def built(seed):
        return build_mlp(MlpConfig(layers=2, hidden=32, block=block, seed=seed)).SerializeToString()

    assert built(3) == built(3) != built(4)


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


def test_bert_is_exported_like_torch():
    model = build_bert(BertConfig(**SMALL_BERT, sparsity=0.9))
    onnx.checker.check_model(model, full_check=True)
    assert_newest_versions(model)
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


def test_bert_k_block_pruning_is_structural():
    model = build_bert(BertConfig(**SMALL_BERT, sparsity=0.9, block="4k"))
    for weight in linear_weights(model).values():
        _assert_input_block4_structure(weight)
        assert input_block4_sparsity_of(weight) == pytest.approx(0.9, abs=1e-3)


@pytest.mark.parametrize("seq", [None, 16])
def test_bert_runs_in_ort(seq):
    model = build_bert(BertConfig(**SMALL_BERT, seq=seq))
    y = _run(model, np.random.default_rng(0).standard_normal((2, 16, 128), dtype=np.float32))
    assert y.shape == (2, 16, 128)
    assert np.isfinite(y).all()


@pytest.mark.parametrize("block", ["4", "4k"])
def test_cli_writes_a_model(tmp_path, capsys, block):
    out = tmp_path / "bert.onnx"
    args = ["bert", "--layers", "1", "--hidden", "64", "--heads", "2", "--intermediate", "128"]
    assert build_model_main(args + ["--sparsity", "0.5", "--block", block, "--out", str(out)]) == 0
    assert "weight sparsity 0.5000" in capsys.readouterr().out
    onnx.checker.check_model(str(out))
    assert_structure = _assert_block4_structure if block == "4" else _assert_input_block4_structure
    for weight in linear_weights(onnx.load(str(out))).values():
        assert_structure(weight)


def test_cli_writes_the_versions_asked_for(tmp_path, capsys):
    out = tmp_path / "mlp.onnx"
    args = ["mlp", "--layers", "1", "--hidden", "16", "--out", str(out)]
    assert build_model_main(args + ["--opset", "17", "--ir-version", "8"]) == 0
    assert "IR version 8, opset 17" in capsys.readouterr().out
    model = onnx.load(str(out))
    assert (model.ir_version, model.opset_import[0].version) == (8, 17)
    assert build_model_main(args) == 0
    assert_newest_versions(onnx.load(str(out)))


@pytest.mark.parametrize(
    "versions, problem",
    [
        (["--opset", "16"], "--opset 16: the builders write opset 17 or newer"),
        (["--opset", "21", "--ir-version", "9"], "--ir-version 9: opset 21 needs IR version 10"),
    ],
)
def test_cli_rejects_versions_it_cannot_write(tmp_path, capsys, versions, problem):
    with pytest.raises(SystemExit):
        build_model_main(["mlp", "--out", str(tmp_path / "mlp.onnx"), *versions])
    assert problem in capsys.readouterr().err


def test_cli_rejects_an_unknown_pattern(tmp_path):
    with pytest.raises(SystemExit):
        build_model_main(["mlp", "--block", "2", "--out", str(tmp_path / "mlp.onnx")])


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


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def _stem_and_pruned_conv_weights(model: onnx.ModelProto) -> tuple[np.ndarray, list[np.ndarray]]:
    """The first conv's [K, N] weight (left dense) and all the others'."""
    stem, *pruned = conv_weights(model).values()
    return stem, pruned


def _pruned_conv_weights_as_built(model: onnx.ModelProto) -> list[np.ndarray]:
    """Every conv weight but the (dense) stem's, [N, C, kH, kW]."""
    initializers = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    return [initializers[node.input[1]] for node in convs[1:]]


@pytest.mark.parametrize("block", [1, 4, "4k"])
def test_resnet_is_exported_like_torchvision(block):
    model = build_resnet(ResNetConfig(**SMALL_RESNET, sparsity=0.9, block=block))
    onnx.checker.check_model(model, full_check=True)
    assert_newest_versions(model)
    bottlenecks = sum(SMALL_RESNET["stages"])
    downsamples = 4  # the first bottleneck of every stage changes the channel count
    convs = 1 + 3 * bottlenecks + downsamples
    assert _ops(model) == {
        "Conv": convs,
        "BatchNormalization": convs,
        "Relu": 1 + 3 * bottlenecks,
        "Add": bottlenecks,
        "MaxPool": 1,
        "GlobalAveragePool": 1,
        "Flatten": 1,
        "Gemm": 1,
    }
    assert all(len(n.input) == 2 for n in model.graph.node if n.op_type == "Conv")  # no bias
    stem, pruned = _stem_and_pruned_conv_weights(model)
    assert sparsity_of(stem) == 0.0
    assert sparsity_of(next(iter(linear_weights(model).values()))) == 0.0  # the fc head
    for weight in pruned:
        if block == 4:
            _assert_block4_structure(weight)
            assert block4_sparsity_of(weight) == pytest.approx(0.9, abs=0.02)
        else:
            assert sparsity_of(weight) == pytest.approx(0.9, abs=0.01)
    if block == "4k":
        for weight in _pruned_conv_weights_as_built(model):
            rows = _conv_channel_rows(weight)
            _assert_block4_structure(rows)
            assert block4_sparsity_of(rows) == pytest.approx(0.9, abs=0.01)


def test_resnet50_has_torchvisions_layers_and_parameter_count():
    model = build_resnet(ResNetConfig(sparsity=0.0))
    assert _ops(model)["Conv"] == 53
    parameters = sum(int(np.prod(init.dims)) for init in model.graph.initializer)
    # torchvision's resnet50 has 25,557,032 parameters; its BatchNorm running statistics
    # (2 x 26,560 buffers) are initializers here too.
    assert parameters == 25_557_032 + 2 * 26_560


def test_yolo_is_exported_like_yolov5s():
    model = build_yolo(YoloConfig(**SMALL_YOLO, sparsity=0.8))
    onnx.checker.check_model(model, full_check=True)
    ops = _ops(model)
    assert ops["Conv"] == 60  # as YOLOv5s: 57 Conv+BN+SiLU blocks and 3 detect convs
    assert ops["BatchNormalization"] == ops["Mul"] == 57
    assert ops["Sigmoid"] == 57 + 1  # SiLUs and the detect output
    assert ops["Add"] == 7  # the backbone C3 bottlenecks' shortcuts (1 + 2 + 3 + 1)
    assert ops["Resize"] == 2 and ops["Concat"] == 14 and ops["MaxPool"] == 3
    detect_convs = [n for n in model.graph.node if n.op_type == "Conv" and len(n.input) == 3]
    assert len(detect_convs) == 3  # only the detect convs have a bias
    stem, pruned = _stem_and_pruned_conv_weights(model)
    assert sparsity_of(stem) == 0.0
    assert all(sparsity_of(weight) == pytest.approx(0.8, abs=0.01) for weight in pruned)


def test_yolov5s_has_its_parameter_count():
    model = build_yolo(YoloConfig(sparsity=0.0))
    parameters = sum(int(np.prod(init.dims)) for init in model.graph.initializer)
    # YOLOv5s v6 (80 classes) has 7,235,389 parameters; the BatchNorm running statistics
    # (2 x 9,504 buffers) are initializers here too.
    assert parameters == 7_235_389 + 2 * 9_504


@pytest.mark.parametrize("batch", [1, 2])
def test_conv_nets_run_in_ort_with_order_one_outputs(batch):
    resnet = build_resnet(ResNetConfig(**SMALL_RESNET, sparsity=0.9))
    yolo = build_yolo(YoloConfig(**SMALL_YOLO, sparsity=0.9))
    x = np.random.default_rng(0).standard_normal((batch, 3, 64, 64), dtype=np.float32)
    logits = _run(resnet, x[:, :, :32, :32])
    assert logits.shape == (batch, 1000)
    assert 0.05 < np.abs(logits).max() < 100
    detections = _run(yolo, x)
    assert detections.shape == (batch, 3 * (8 * 8 + 4 * 4 + 2 * 2), 85)
    assert 0.0 < detections.min() and detections.max() <= 1.0  # after the detect Sigmoid


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("resnet50", ["--stages", "1", "1", "1", "1", "--width", "8", "--resolution", "32"]),
        ("yolo", ["--width", "0.125", "--resolution", "64"]),
    ],
)
def test_cli_writes_conv_nets(tmp_path, capsys, model, options):
    out = tmp_path / f"{model}.onnx"
    assert build_model_main([model, *options, "--sparsity", "0.5", "--out", str(out)]) == 0
    assert f"wrote {out}: {model}" in capsys.readouterr().out
    onnx.checker.check_model(str(out))
