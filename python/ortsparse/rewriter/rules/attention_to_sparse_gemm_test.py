import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import ortsparse
from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.packing import PackedWeight, unpack
from tests.rewriter_testing import (
    FORCE_REWRITE,
    OUTPUT_RTOL,
    attributes,
    onnxruntime_older_than,
    op_types,
    rewrite,
    run,
    sparse_gemms,
    sparse_weight,
    versions_at,
)

BATCH, SEQUENCE, HIDDEN, HEADS = 2, 7, 32, 4
INT32 = onnx.TensorProto.INT32
FLOAT = onnx.TensorProto.FLOAT


def attention_model(
    mask_shape=None,
    weight=None,
    bias="random",
    opset=None,
    attention_bias=False,
    outputs=("Y",),
    **attrs,
):
    """x [batch, sequence, HIDDEN] -> Attention(x, W, bias, mask, , attention_bias) -> Y; the bias
    "random", "zero" or None (no bias input)."""
    weight = sparse_weight(HIDDEN, 3 * HIDDEN) if weight is None else weight
    graph_inputs = [helper.make_tensor_value_info("x", FLOAT, ["batch", "sequence", HIDDEN])]
    node_inputs = ["x", "W", "" if bias is None else "B"]
    if mask_shape is not None:
        graph_inputs.append(helper.make_tensor_value_info("mask", INT32, mask_shape))
        node_inputs.append("mask")
    if attention_bias:
        shape = [1, HEADS, "sequence", "sequence"]
        graph_inputs.append(helper.make_tensor_value_info("attention_bias", FLOAT, shape))
        node_inputs += [""] * (5 - len(node_inputs)) + ["attention_bias"]
    initializers = [numpy_helper.from_array(weight, "W")]
    if bias == "random":
        values = np.random.default_rng(5).standard_normal(weight.shape[1]).astype(np.float32)
        initializers.append(numpy_helper.from_array(values, "B"))
    elif bias == "zero":
        initializers.append(numpy_helper.from_array(np.zeros(weight.shape[1], np.float32), "B"))
    node = helper.make_node(
        "Attention",
        node_inputs,
        list(outputs),
        name="layer/Attention",
        domain="com.microsoft",
        num_heads=HEADS,
        **attrs,
    )
    graph = helper.make_graph(
        [node],
        "attention",
        graph_inputs,
        [helper.make_tensor_value_info(name, FLOAT, _OUTPUT_SHAPES[name]) for name in outputs],
        initializers,
    )
    return versions_at(opset).make_model(graph, [("com.microsoft", 1)])


_OUTPUT_SHAPES = {
    "Y": ["batch", "sequence", "v_hidden"],
    "present": [2, "batch", HEADS, "sequence", HIDDEN // HEADS],
}


def feeds(model, seed=3):
    """Random x (and attention bias), and a mask that hides a few positions of each sequence."""
    rng = np.random.default_rng(seed)
    values = {}
    for value in model.graph.input:
        dims = [
            d.dim_value or {"batch": BATCH, "sequence": SEQUENCE}[d.dim_param]
            for d in value.type.tensor_type.shape.dim
        ]
        if value.name == "mask" and len(dims) == 1:
            values[value.name] = rng.integers(1, SEQUENCE + 1, dims).astype(np.int32)
        elif value.name == "mask":
            mask = (rng.random(dims) > 0.3).astype(np.int32)
            mask[..., 0] = 1  # every query attends to something
            values[value.name] = mask
        else:
            values[value.name] = rng.standard_normal(dims).astype(np.float32)
    return values


def assert_same_as_ort(model, rewritten):
    inputs = feeds(model)
    (want,) = run(model, inputs)
    (got,) = run(rewritten, inputs, ortsparse.library_path())
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= OUTPUT_RTOL * np.max(np.abs(want))


@pytest.mark.parametrize(
    "mask_shape",
    [None, ["batch", "sequence"], ["batch"], ["batch", "sequence", "sequence"]],
    ids=["no-mask", "raw-2d", "end-positions", "raw-3d"],
)
def test_attention_projection_becomes_sparse_gemm_feeding_multi_head_attention(mask_shape):
    weight = sparse_weight(HIDDEN, 3 * HIDDEN)
    model = attention_model(mask_shape, weight)
    rewritten = rewrite(model)

    assert op_types(rewritten) == ["SparseGemm", "Split", "MultiHeadAttention"]
    (gemm,) = sparse_gemms(rewritten)
    attrs = attributes(gemm)
    assert (attrs["K"], attrs["N"]) == (HIDDEN, 3 * HIDDEN)
    initializers = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    packed_arrays = (initializers[name] for name in gemm.input[1:4])
    packed = PackedWeight(attrs["format"], HIDDEN, 3 * HIDDEN, *packed_arrays)
    np.testing.assert_array_equal(unpack(packed), weight)
    attention = rewritten.graph.node[-1]
    assert attention.domain == "com.microsoft" and list(attention.output) == ["Y"]
    assert attributes(attention) == {"num_heads": HEADS}
    assert list(attention.input[4:]) == ([] if mask_shape is None else ["mask"])
    assert_same_as_ort(model, rewritten)


def test_attention_bias_scale_and_mask_filter_value_carry_over():
    model = attention_model(
        ["batch", "sequence"], attention_bias=True, scale=0.3, mask_filter_value=-1000.0
    )
    rewritten = rewrite(model)
    attention = rewritten.graph.node[-1]
    assert attention.op_type == "MultiHeadAttention"
    assert list(attention.input[4:]) == ["mask", "attention_bias"]
    assert attributes(attention) == pytest.approx(
        {"num_heads": HEADS, "scale": 0.3, "mask_filter_value": -1000.0}
    )
    assert_same_as_ort(model, rewritten)


def test_without_bias():
    model = attention_model(bias=None)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Split", "MultiHeadAttention"]
    # onnxruntime before 1.32 crashes (SIGSEGV) running its Attention without a bias input; a zero
    # bias gives the same attention.
    original = attention_model(bias="zero") if onnxruntime_older_than(1, 32) else model
    assert_same_as_ort(original, rewritten)


def test_split_sizes_as_an_attribute_before_opset_13():
    model = attention_model(["batch", "sequence"], opset=12)
    rewritten = rewrite(model)
    split = rewritten.graph.node[1]
    assert list(split.input) == [sparse_gemms(rewritten)[0].output[0]]
    assert attributes(split)["split"] == [HIDDEN] * 3
    assert_same_as_ort(model, rewritten)


def test_qkv_hidden_sizes_with_a_smaller_value_projection():
    weight = sparse_weight(HIDDEN, 2 * HIDDEN + HIDDEN // 2)
    model = attention_model(weight=weight, qkv_hidden_sizes=[HIDDEN, HIDDEN, HIDDEN // 2])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Split", "MultiHeadAttention"]
    assert_same_as_ort(model, rewritten)


@pytest.mark.parametrize(
    "model,reason",
    [
        (attention_model(unidirectional=1), "unidirectional=1"),
        (attention_model(["batch", 1, 7, 7]), "mask_index of shape"),
        (attention_model([2 * BATCH]), "mask_index of shape"),
        (attention_model(outputs=("Y", "present")), "present"),
        (attention_model(weight=sparse_weight(HIDDEN, 3 * HIDDEN + 1)), "qkv_hidden_sizes"),
    ],
    ids=["unidirectional", "4d-mask", "start-and-end-mask", "present-used", "odd-columns"],
)
def test_what_multi_head_attention_does_not_take_is_kept_with_the_reason(model, reason):
    result = rewrite_model(model, min_sparsity=FORCE_REWRITE)
    (decision,) = result.decisions
    assert not decision.rewritten and reason in decision.reason
    assert decision.op_type == "Attention"
    assert op_types(result.model) == ["Attention"]


def test_dense_weight_is_kept_by_the_cost_model():
    model = attention_model(weight=sparse_weight(HIDDEN, 3 * HIDDEN, sparsity=0.0))
    result = rewrite_model(model)
    assert not result.decisions[0].rewritten
    assert op_types(result.model) == ["Attention"]
