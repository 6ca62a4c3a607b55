"""What the INT8 rules' tests share: sparse int8 weights, QDQ and QOperator MatMul models
(MatMulInteger included), QDQ Gemm models, ConvInteger models, QDQ models whose product stays
float, and the comparisons with the exact reference and ORT.

SparseQGemm computes the product in exact int32 and requantizes it as ORT's QLinearMatMul and
QGemm do (same float32 scale, same clamping, round half to even), so where ORT runs the original
as one of them, or fuses the QDQ pattern into one, outputs must be identical to the exact
reference's (int8_reference.py), and to ORT's where ORT is exact on this CPU. Where the product
stays float, ORT multiplies the dequantized operands in float and rounds every product and partial
sum, while our ops scale the exact int32 sum once: outputs agree to float rounding.
"""

from __future__ import annotations

import numpy as np
import onnx
import ortsparse
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

from tests import int8_reference

NUMPY_TYPE = {"u8": np.uint8, "s8": np.int8}
ONNX_TYPE = {"u8": TensorProto.UINT8, "s8": TensorProto.INT8}
A_SCALE = np.float32(0.05)  # the activation's scale in every model here


def sparse_int8_weight(
    k: int, n: int, sparsity: float = 0.9, seed: int = 0, quads: bool = False
) -> np.ndarray:
    """An int8 [k, n] weight with about ``sparsity`` of its entries zero; with ``quads`` whole
    runs of 4 input features (of one output column) are zero together."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, (k, n)).astype(np.int8)
    if quads:
        zero = np.repeat(rng.random((-(-k // 4), n)) < sparsity, 4, axis=0)[:k]
    else:
        zero = rng.random((k, n)) < sparsity
    weight[zero] = 0
    return weight


def sparse_int8_conv_weight(n, c, kernel, stored=0.1, seed=0):
    """int8 [n, c, kH, kW] whose quads of 4 input channels at one tap are zero together but for
    about ``stored`` of them."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(-127, 128, (n, c, *kernel)).astype(np.int8)
    keep = rng.random((n, -(-c // 4), 1, *kernel)) < stored
    weight[~np.repeat(keep, 4, axis=2).reshape(n, -1, *kernel)[:, :c]] = 0
    return weight


def constants(**values) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(np.asarray(value), name) for name, value in values.items()]


def qlinear_matmul_model(
    weight: np.ndarray, a_shape: list, activation: str = "u8", w_scale=np.float32(0.02)
) -> onnx.ModelProto:
    """Y = QLinearMatMul(A, constant W) with per-tensor A and Y; W's scale as given."""
    elem = ONNX_TYPE[activation]
    node = helper.make_node(
        "QLinearMatMul", ["A", "a_s", "a_z", "W", "w_s", "w_z", "y_s", "y_z"], ["Y"], name="qmm"
    )
    initializers = _quantization_constants(weight, w_scale, activation)
    return _model([node], a_shape, [*a_shape[:-1], weight.shape[1]], elem, initializers)


def qdq_matmul_model(
    weight: np.ndarray, a_shape: list, activation: str = "u8", w_scale=np.float32(0.02)
) -> onnx.ModelProto:
    """Y = Q(MatMul(DQ(A), DQ(constant W))) as onnxruntime.quantization writes it; W's scale per
    tensor, or per output column (axis 1) when given one per column."""
    elem = ONNX_TYPE[activation]
    w_axis = {"axis": 1} if np.size(w_scale) > 1 else {}
    nodes = [
        helper.make_node("DequantizeLinear", ["A", "a_s", "a_z"], ["a"], name="dq_a"),
        helper.make_node("DequantizeLinear", ["W", "w_s", "w_z"], ["w"], name="dq_w", **w_axis),
        helper.make_node("MatMul", ["a", "w"], ["y"], name="mm"),
        helper.make_node("QuantizeLinear", ["y", "y_s", "y_z"], ["Y"], name="q_y"),
    ]
    initializers = _quantization_constants(weight, w_scale, activation)
    return _model(nodes, a_shape, [*a_shape[:-1], weight.shape[1]], elem, initializers)


def qdq_gemm_model(
    weight: np.ndarray,
    rows,
    activation: str = "u8",
    w_scale=np.float32(0.02),
    bias: np.ndarray | None = None,
    bias_scale=None,
    **gemm_attributes,
) -> onnx.ModelProto:
    """Y = Q(Gemm(DQ(A), DQ(constant W)[, DQ(constant bias)])) as onnxruntime.quantization writes
    a MatMul + Add that its pre-processing fused: ``weight`` is [K, N], stored [N, K] when
    transB=1, its scale per tensor or one per output channel; the bias's scale is A_SCALE * w_scale
    unless given, its zero point 0."""
    k, n = weight.shape
    elem = ONNX_TYPE[activation]
    trans_b = gemm_attributes.get("transB", 0)
    w_axis = {"axis": 0 if trans_b else 1} if np.size(w_scale) > 1 else {}
    a_shape = [k, rows] if gemm_attributes.get("transA", 0) else [rows, k]
    nodes = [
        helper.make_node("DequantizeLinear", ["A", "a_s", "a_z"], ["a"], name="dq_a"),
        helper.make_node("DequantizeLinear", ["W", "w_s", "w_z"], ["w"], name="dq_w", **w_axis),
        helper.make_node("Gemm", ["a", "w"], ["y"], name="gemm", **gemm_attributes),
        helper.make_node("QuantizeLinear", ["y", "y_s", "y_z"], ["Y"], name="q_y"),
    ]
    stored = np.ascontiguousarray(weight.T) if trans_b else weight
    initializers = _quantization_constants(stored, w_scale, activation)
    if bias is not None:
        if bias_scale is None:
            bias_scale = A_SCALE * np.asarray(w_scale, np.float32)
        bias_axis = {"axis": 0} if np.size(bias_scale) > 1 else {}
        nodes.insert(
            2,
            helper.make_node(
                "DequantizeLinear", ["B", "b_s", "b_z"], ["b"], name="dq_b", **bias_axis
            ),
        )
        nodes[3].input.append("b")
        initializers += constants(
            B=bias, b_s=bias_scale, b_z=np.zeros(np.shape(bias_scale), bias.dtype)
        )
    return _model(nodes, a_shape, [rows, n], elem, initializers)


def matmul_integer_model(
    weight: np.ndarray, a_shape: list, activation: str = "u8", a_zero_point: str = "constant"
) -> onnx.ModelProto:
    """Y = MatMulInteger(A, constant W, a_zero_point, w_zero_point = 0), Y int32. a_zero_point:
    "constant" (3), "input" (a graph input of shape [], as DynamicQuantizeLinear gives it) or
    "none"."""
    elem = ONNX_TYPE[activation]
    zero_point_name = {"constant": "a_z", "input": "a_zero_point", "none": ""}[a_zero_point]
    node = helper.make_node("MatMulInteger", ["A", "W", zero_point_name, "w_z"], ["Y"], name="mmi")
    initializers = constants(W=weight, w_z=np.int8(0))
    if a_zero_point == "constant":
        initializers += constants(a_z=NUMPY_TYPE[activation](3))
    model = _model([node], a_shape, [*a_shape[:-1], weight.shape[1]], elem, initializers)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT32
    if a_zero_point == "input":
        model.graph.input.append(helper.make_tensor_value_info("a_zero_point", elem, []))
    return model


def conv_integer_model(
    weight: np.ndarray,
    x_shape: list,
    activation: str = "u8",
    a_zero_point: str = "constant",
    **attributes,
) -> onnx.ModelProto:
    """Y = ConvInteger(A, constant W [N, C, kH, kW], a_zero_point, w_zero_point = 0), Y int32;
    a_zero_point as for matmul_integer_model."""
    elem = ONNX_TYPE[activation]
    zero_point_name = {"constant": "a_z", "input": "a_zero_point", "none": ""}[a_zero_point]
    node = helper.make_node(
        "ConvInteger", ["A", "W", zero_point_name, "w_z"], ["Y"], name="ci", **attributes
    )
    initializers = constants(W=weight, w_z=np.int8(0))
    if a_zero_point == "constant":
        initializers += constants(a_z=NUMPY_TYPE[activation](3))
    y_shape = [x_shape[0], weight.shape[0], "out_height", "out_width"]
    model = _model([node], x_shape, y_shape, elem, initializers)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT32
    if a_zero_point == "input":
        model.graph.input.append(helper.make_tensor_value_info("a_zero_point", elem, []))
    return model


def _quantization_constants(weight, w_scale, activation: str) -> list[onnx.TensorProto]:
    """The constants of every model here: A and Y per tensor with nonzero zero points, W with
    the scale given and zero points 0."""
    dtype = NUMPY_TYPE[activation]
    return constants(
        a_s=A_SCALE,
        a_z=dtype(3),
        W=weight,
        w_s=w_scale,
        w_z=np.zeros(np.shape(w_scale), np.int8),
        y_s=np.float32(0.7),
        y_z=dtype(-5 if activation == "s8" else 120),
    )


def _model(nodes, a_shape, y_shape, elem, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "quantized",
        [helper.make_tensor_value_info("A", elem, a_shape)],
        [helper.make_tensor_value_info("Y", elem, y_shape)],
        initializers,
    )
    return newest_model_versions().make_model(graph)


def with_float_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the QuantizeLinear that writes its output Y: the product before it
    writes Y in float instead, as where a graph dequantizes a product and goes on in float."""
    quantize = next(node for node in model.graph.node if list(node.output) == ["Y"])
    assert quantize.op_type == "QuantizeLinear"
    product = next(node for node in model.graph.node if quantize.input[0] in node.output)
    model.graph.node.remove(quantize)
    product.output[0] = "Y"
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    return model


def assert_close_float_outputs(
    original: onnx.ModelProto, rewritten: onnx.ModelProto, dims: dict[str, int]
) -> None:
    """ORT on ``rewritten`` (library registered) gives the exact reference's float outputs on
    ``original`` (ORT's where ORT is exact on this CPU) to within float rounding."""
    inputs = quantized_inputs(original, dims)
    assert_close_to(int8_reference.expected_outputs(original, inputs), rewritten, inputs)


def assert_close_to(expected: list, rewritten: onnx.ModelProto, inputs: dict) -> None:
    """ORT on ``rewritten`` (library registered) gives the float outputs ``expected`` for
    ``inputs`` to within float rounding: 1e-5 of the largest output."""
    library = ortsparse.library_path()
    for actual, how in int8_reference.rewrite_outputs(rewritten, inputs, library):
        for want, got in zip(expected, actual):
            assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
            tolerance = 1e-5 * float(np.max(np.abs(want)))
            error = float(np.max(np.abs(got - want)))
            assert error <= tolerance, f"{how}: max |error| {error:.3g} > {tolerance:.3g}"


def quantized_inputs(model: onnx.ModelProto, dims: dict[str, int], seed: int = 1) -> dict:
    """Random feeds over the whole range of each (uint8 or int8) input's type."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        dtype = np.uint8 if value.type.tensor_type.elem_type == TensorProto.UINT8 else np.int8
        info = np.iinfo(dtype)
        shape = [
            dim.dim_value if dim.HasField("dim_value") else dims[dim.dim_param]
            for dim in value.type.tensor_type.shape.dim
        ]
        feeds[value.name] = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    return feeds


def assert_identical_outputs(
    original: onnx.ModelProto, rewritten: onnx.ModelProto, dims: dict[str, int]
) -> None:
    """``rewritten`` (with the ortsparse library) computes exactly what ``original`` does
    (int8_reference.assert_rewrite_exact)."""
    inputs = quantized_inputs(original, dims)
    int8_reference.assert_rewrite_exact(original, rewritten, inputs, ortsparse.library_path())
