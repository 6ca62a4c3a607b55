"""Pruned models from tools/model_builders, quantized to INT8 (QDQ, or dynamically) by
tools/quantize_model.py and rewritten by ortsparse with its default policy, vs stock ORT on the
quantized originals.

Agreement criterion: identical outputs to the exact reference (tests/int8_reference.py), and to
ORT's where ORT is exact on this CPU. ORT runs each QDQ MatMul as QLinearMatMul and each QDQ Gemm
as QGemm, which SparseQGemm reproduces bit for bit (exact int32 sums, the same float32
requantization, per tensor and per channel), and the rewrite leaves every other node as it was.
Likewise each QDQ Conv runs as QLinearConv and each QDQ residual Add as QLinearAdd, which
SparseQConv (with its residual input) reproduces. A dynamically quantized MatMulInteger's or
ConvInteger's int32 product is exact.
"""

import itertools

import numpy as np
import onnx
import ortsparse
import pytest
from ortsparse.rewriter import rewrite_model

from tests.int8_reference import assert_rewrite_exact, expected_outputs, rewrite_outputs
from tools.model_builders import (
    BertConfig,
    MlpConfig,
    ResNetConfig,
    build_bert,
    build_mlp,
    build_resnet,
)
from tools.quantize_model import quantize_model

# Unstructured: about 1 - 0.95^4 = 19% of the quads hold a weight, which the INT8 policy rewrites.
SPARSITY = 0.95
SMALL_MLP = {"layers": 3, "hidden": 64}
SMALL_BERT = {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128}
SEQUENCE = 8
STATIC_BATCH = 2


def _bert_with_static_shapes() -> onnx.ModelProto:
    """With every input dim fixed, ORT's pre-processing fuses MatMul + bias Add into Reshape ->
    Gemm -> Reshape (not everywhere: it leaves some MatMuls of the second layer); with a symbolic
    dim it leaves every MatMul and Add."""
    model = build_bert(BertConfig(**SMALL_BERT, seq=SEQUENCE, sparsity=SPARSITY))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = STATIC_BATCH
    return model


# name: (fp32 model, symbolic dims for calibration, evaluation input shapes, op types of the
# linear layers after quantization, how many there are)
MODELS = {
    "mlp": (
        lambda: build_mlp(MlpConfig(**SMALL_MLP, sparsity=SPARSITY)),
        {},
        [(1, 64), (7, 64)],
        {"Gemm"},
        SMALL_MLP["layers"],
    ),
    # torch's addmm form, Gemm(x, W[N, K], bias, transB=1): quantized per channel along N.
    "mlp_gemm": (
        lambda: build_mlp(MlpConfig(**SMALL_MLP, sparsity=SPARSITY, gemm=True)),
        {},
        [(1, 64), (7, 64)],
        {"Gemm"},
        SMALL_MLP["layers"],
    ),
    "bert": (
        lambda: build_bert(BertConfig(**SMALL_BERT, sparsity=SPARSITY)),
        {"sequence": SEQUENCE},
        [(2, SEQUENCE, 64), (1, 5, 64)],
        {"MatMul"},
        6 * SMALL_BERT["layers"],
    ),
    "bert_static": (
        _bert_with_static_shapes,
        {},
        [(STATIC_BATCH, SEQUENCE, 64)],
        {"Gemm", "MatMul"},
        6 * SMALL_BERT["layers"],
    ),
}


def assert_identical_outputs(model, rewritten, input_shapes):
    """``rewritten`` computes exactly what ``model`` does (int8_reference.assert_rewrite_exact),
    for random float inputs of each shape."""
    rng = np.random.default_rng(1)
    input_name = model.graph.input[0].name
    for shape in input_shapes:
        feeds = {input_name: rng.standard_normal(shape, dtype=np.float32)}
        assert_rewrite_exact(model, rewritten, feeds, ortsparse.library_path())


@pytest.mark.parametrize(
    ("name", "activation_type", "per_channel"),
    list(itertools.product(sorted(MODELS), ["u8", "s8"], [False, True])),
)
def test_quantized_model_rewritten_matches_ort(tmp_path, name, activation_type, per_channel):
    build, dims, input_shapes, linear_ops, linears = MODELS[name]
    fp32_path, int8_path = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(build(), str(fp32_path))
    quantize_model(
        fp32_path,
        int8_path,
        per_channel=per_channel,
        activation_type=activation_type,
        dims=dims,
    )
    model = onnx.load(str(int8_path))
    result = rewrite_model(model)

    rewritten = [d for d in result.decisions if d.rewritten]
    assert len(rewritten) == linears
    assert {d.op_type for d in rewritten} == linear_ops
    # Only BERT's attention products, of two activations, are left.
    for decision in result.decisions:
        if not decision.rewritten:
            assert "/attention/self/MatMul" in decision.node_name, decision
            assert decision.reason == "weight is not a constant"
    sparse_nodes = {n.name: n for n in result.model.graph.node if n.op_type == "SparseQGemm"}
    assert len(sparse_nodes) == linears
    for decision in rewritten:  # a Gemm's quantized bias goes into its SparseQGemm
        inputs = len(sparse_nodes[f"{decision.node_name}_SparseQGemm"].input)
        assert inputs == (6 if decision.op_type == "Gemm" else 5)

    assert_identical_outputs(model, result.model, input_shapes)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("name", ["mlp", "bert"])
def test_dynamically_quantized_model_rewritten_matches_ort(tmp_path, name, per_channel):
    # quantize_dynamic: DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul by the scales. The
    # int32 products become SparseMatMulInteger; ORT computes the rest on both sides.
    build, _, input_shapes, _, linears = MODELS[name]
    fp32_path, int8_path = tmp_path / "fp32.onnx", tmp_path / "dyn.onnx"
    onnx.save(build(), str(fp32_path))
    quantize_model(fp32_path, int8_path, quant_format="dynamic", per_channel=per_channel)
    model = onnx.load(str(int8_path))
    result = rewrite_model(model)

    rewritten = [d for d in result.decisions if d.rewritten]
    assert len(rewritten) == linears
    assert {d.op_type for d in rewritten} == {"MatMulInteger"}
    assert not any(node.op_type == "MatMulInteger" for node in result.model.graph.node)
    assert_identical_outputs(model, result.model, input_shapes)


@pytest.mark.parametrize("per_channel", [False, True])
def test_dynamically_quantized_resnet_convs_become_sparse_conv_integers(tmp_path, per_channel):
    # quantize_dynamic: DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul (-> Add of the bias).
    config = ResNetConfig(stages=(1, 2), width=16, resolution=32, classes=10, block="4k")
    fp32_path, int8_path = tmp_path / "fp32.onnx", tmp_path / "dyn.onnx"
    onnx.save(build_resnet(config), str(fp32_path))
    quantize_model(fp32_path, int8_path, quant_format="dynamic", per_channel=per_channel)
    model = onnx.load(str(int8_path))
    result = rewrite_model(model)

    convs = [d for d in result.decisions if d.op_type == "ConvInteger"]
    # All but the dense stem, whose quads all hold a weight.
    assert [d.node_name for d in convs if not d.rewritten] == ["/conv1/Conv_quant"]
    assert sum(d.rewritten for d in convs) == len(convs) - 1 > 0
    assert_identical_outputs(model, result.model, [(1, 3, 32, 32), (2, 3, 32, 32)])


@pytest.mark.parametrize("activation_type", ["u8", "s8"])
def test_quantized_resnet_blocks_become_sparse_qconvs_with_their_adds(tmp_path, activation_type):
    # Two bottleneck stages of a small ResNet pruned in quads (4 input channels at one tap).
    config = ResNetConfig(stages=(1, 2), width=16, resolution=32, classes=10, block="4k")
    fp32_path, int8_path = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(build_resnet(config), str(fp32_path))
    quantize_model(fp32_path, int8_path, per_channel=True, activation_type=activation_type)
    model = onnx.load(str(int8_path))
    result = rewrite_model(model)

    adds = sum(1 for node in model.graph.node if node.op_type == "Add")
    assert adds == sum(config.stages)
    fused = [d for d in result.decisions if "Add" in d.fused]
    assert len(fused) == adds
    assert not any(node.op_type == "Add" for node in result.model.graph.node)
    assert_identical_outputs(model, result.model, [(1, 3, 32, 32)])


@pytest.mark.parametrize("name", ["resnet", "mlp"])
def test_quantized_model_with_float_products_rewritten_matches_ort(tmp_path, name):
    # quantize_static told to leave the outputs of Conv, MatMul and Gemm in float (as partly
    # quantized models have them): where nothing quantizes a product again (a float Relu reads
    # it), its SparseQConv or SparseQGemm writes it in float, within float rounding of ORT's float
    # product of the dequantized operands. The QuantizeLinear after that Relu then rounds values
    # lying within float rounding of a half step the way ORT does (none lies that close in these
    # models), so the outputs agree to float rounding.
    if name == "resnet":
        config = ResNetConfig(stages=(1, 2), width=16, resolution=32, classes=10, block="4k")
        model, dims, shape = build_resnet(config), {}, (2, 3, 32, 32)
    else:
        model, dims, shape = build_mlp(MlpConfig(**SMALL_MLP, sparsity=SPARSITY)), {}, (7, 64)
    fp32_path, int8_path = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(model, str(fp32_path))
    quantize_model(fp32_path, int8_path, per_channel=True, dims=dims, float_products=True)
    model = onnx.load(str(int8_path))
    result = rewrite_model(model)

    float_biases = {t.name for t in result.model.graph.initializer if t.data_type == 1}
    float_products = [
        node
        for node in result.model.graph.node
        if node.domain == "ortsparse" and len(node.input) > 5 and node.input[5] in float_biases
    ]
    assert len(float_products) == {"resnet": 6, "mlp": SMALL_MLP["layers"]}[name]
    feeds = {model.graph.input[0].name: np.random.default_rng(1).standard_normal(shape, np.float32)}
    (expected,) = expected_outputs(model, feeds)
    for (actual,), how in rewrite_outputs(result.model, feeds, ortsparse.library_path()):
        tolerance = 1e-5 * np.max(np.abs(expected))
        np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance, err_msg=how)
