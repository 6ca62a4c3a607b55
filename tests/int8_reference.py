"""The INT8 oracle: exact integer products in numpy, and ORT where ORT is exact on this CPU.

ORT runs quantized products (QLinearMatMul, QLinearConv, QGemm, MatMulInteger, ConvInteger, ...)
on MLAS's integer kernels. On CPUs without VNNI, its u8 x s8 kernels multiply with vpmaddubsw,
which adds pairs of products in int16 with saturation: wherever a pair of products exceeds 32767
the result is wrong (a lone MatMulInteger of u8 [8, 64] by s8 [64, 16] differs from the exact
product in most outputs there). ortsparse computes the exact product, so ORT cannot be its oracle
on such CPUs. The oracle is instead:

* ``reference_outputs(model, feeds)``: ORT's own graph for ``model`` (ORT optimizes it at the
  extended level and saves it: that is where it fuses QDQ groups into QLinearConv, QLinearMatMul,
  QGemm and QLinearAdd), evaluated node by node. Each integer product is computed here in numpy:
  int64 sums of (x - x_zero_point) * (w - w_zero_point), plus an int32 bias, then for a quantized
  output the requantization ORT specifies: float32(sum) times the float32 scale
  x_scale * w_scale / y_scale (computed in that order), rounded half to even, plus the zero point,
  saturated to the output type. Every other node runs alone in ORT, which computes it exactly on
  any CPU (QuantizeLinear, QLinearAdd, pools, reshapes and float ops).
  Where this ORT has no kernel for one of the model's nodes (onnxruntime 1.21 has no ConvInteger
  for int8 weights), ORT's graph is the model's own, and ORT's outputs are not compared.
* ``ort_is_exact()``: whether ORT's integer products are exact on this CPU, decided once per run
  by probes: u8 x s8, s8 x s8 and u8 x u8 products (MatMulInteger and QLinearConv) whose pairs of
  products overflow int16, run through ORT and compared with numpy. Where they all agree,
  ``expected_outputs`` also requires ORT's outputs on the model to equal the reference, which
  checks the reference itself against ORT on such CPUs (on an AVX-512 VNNI CPU it agrees bit for
  bit on the quantized MLP, BERT and ResNet builders' models).

``assert_rewrite_exact(original, rewritten, ...)`` applies this to a rewrite: the rewrite through
the reference (its ortsparse ops run by ORT one at a time) must give the original's reference
outputs on every CPU, and ORT running the whole rewrite must too where ORT is exact or the rewrite
left ORT no integer product of its own.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Mapping

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as KernelNotImplemented
from ortsparse.model_versions import newest_model_versions

_MS_DOMAIN = "com.microsoft"


def reference_outputs(
    model: onnx.ModelProto | bytes, feeds: Mapping[str, np.ndarray], library: str | None = None
) -> list:
    """The outputs of ``model`` for ``feeds``, with ORT's graph and exact integer products.
    ``library``: a custom-op library to register, for a model with its ops (they run in ORT)."""
    optimized = _ort_extended_graph(model, library)
    constants = {
        tensor.name: numpy_helper.to_array(tensor) for tensor in optimized.graph.initializer
    }
    values = {**constants, **feeds}
    for node in optimized.graph.node:
        product = _PRODUCTS.get((node.domain or "", node.op_type))
        inputs = [values[name] if name else None for name in node.input]
        if product is not None:
            results = [product(inputs, _attributes(node))]
        else:
            results = _run_alone(optimized, node, inputs, library, constants)
        values.update(zip(node.output, results))
    return [values[output.name] for output in optimized.graph.output]


def expected_outputs(model: onnx.ModelProto | bytes, feeds: Mapping[str, np.ndarray]) -> list:
    """The exact reference's outputs of ``model``; where ORT is exact on this CPU, ORT's own
    outputs must equal them (a check of the reference)."""
    expected = reference_outputs(model, feeds)
    if ort_is_exact():
        try:
            actual = ort_outputs(model, feeds)
        except KernelNotImplemented:
            return expected  # this ORT has no kernel for one of its nodes: nothing to compare
        assert_identical(actual, expected, "ORT (exact on this CPU)")
    return expected


def assert_rewrite_exact(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    library: str,
) -> None:
    """``rewritten`` (with ``library``'s ops) computes exactly what ``original`` does: every one
    of rewrite_outputs equals the original's reference outputs."""
    expected = expected_outputs(original, feeds)
    for actual, how in rewrite_outputs(rewritten, feeds, library):
        assert_identical(actual, expected, f"the exact reference ({how})")


def rewrite_outputs(
    rewritten: onnx.ModelProto, feeds: Mapping[str, np.ndarray], library: str
) -> list[tuple[list, str]]:
    """The outputs of a rewrite to compare with its original's reference, each with how they
    were computed.

    The rewrite through the reference, its ortsparse ops run by ORT one at a time, on every CPU.
    ORT running the whole rewrite too where none of ORT's integer products is left in it, or
    where ORT's are exact on this CPU: elsewhere the products the rewrite left to ORT saturate
    there as they do in the original. (Not where this ORT has no kernel for a node the rewrite
    left to it.)
    """
    outputs = [(reference_outputs(rewritten, feeds, library), "the rewrite node by node")]
    if ort_is_exact() or not _has_integer_products(rewritten, library):
        try:
            whole = ort_outputs(rewritten, feeds, library)
        except KernelNotImplemented:
            return outputs  # this ORT has no kernel for a node the rewrite left to it
        outputs.append((whole, "ORT running the whole rewrite"))
    return outputs


def assert_identical(actual: list, expected: list, reference: str) -> None:
    assert len(actual) == len(expected)
    for index, (got, want) in enumerate(zip(actual, expected)):
        assert got.dtype == want.dtype and got.shape == want.shape, (
            f"output {index}: {got.dtype}{got.shape}, {reference} gives {want.dtype}{want.shape}"
        )
        differing = int(np.count_nonzero(got != want))
        assert differing == 0, (
            f"output {index}: {differing} of {want.size} values differ from {reference}"
        )


def ort_outputs(
    model: onnx.ModelProto | bytes, feeds: Mapping[str, np.ndarray], library: str | None = None
) -> list:
    session = ort.InferenceSession(
        _bytes(model), _options(library), providers=["CPUExecutionProvider"]
    )
    return session.run(None, dict(feeds))


@functools.cache
def ort_is_exact() -> bool:
    """Whether ORT's integer products agree with exact ones on this CPU (see the module's text)."""
    return all(_probe_agrees(*probe) for probe in _probes())


# --- integer products ---------------------------------------------------------------------------


def _matmul_integer(inputs: list, attributes: dict) -> np.ndarray:
    a, b, a_zero_point, b_zero_point = (inputs + [None, None])[:4]
    return _matmul_sums(a, a_zero_point, b, b_zero_point).astype(np.int32)


def _conv_integer(inputs: list, attributes: dict) -> np.ndarray:
    x, w, x_zero_point, w_zero_point = (inputs + [None, None])[:4]
    return _conv_sums(x, x_zero_point, w, w_zero_point, attributes).astype(np.int32)


def _qlinear_matmul(inputs: list, attributes: dict) -> np.ndarray:
    a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point = inputs
    sums = _matmul_sums(a, a_zero_point, b, b_zero_point)
    scales = _output_scales(a_scale, b_scale, y_scale)
    return _requantize(sums, scales, y_zero_point)


def _qlinear_conv(inputs: list, attributes: dict) -> np.ndarray:
    x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point = inputs[:8]
    bias = inputs[8] if len(inputs) > 8 else None
    w_zero_point = np.asarray(w_zero_point).reshape(-1, *([1] * (w.ndim - 1)))
    sums = _conv_sums(x, x_zero_point, w, w_zero_point, attributes)
    if bias is not None:
        sums = sums + bias.astype(np.int64).reshape(1, -1, *([1] * (sums.ndim - 2)))
    scales = _output_scales(x_scale, w_scale, y_scale).reshape(-1, *([1] * (sums.ndim - 2)))
    return _requantize(sums, scales, y_zero_point)


def _qgemm(inputs: list, attributes: dict) -> np.ndarray:
    """com.microsoft QGemm: A [M, K] by B [K, N] (either transposed), an int32 bias C added to the
    sums, and requantized with alpha * a_scale * b_scale / y_scale, or without y_scale scaled to
    float by alpha * a_scale * b_scale."""
    a, a_scale, a_zero_point, b, b_scale, b_zero_point = inputs[:6]
    bias = inputs[6] if len(inputs) > 6 else None
    y_scale = inputs[7] if len(inputs) > 7 else None
    y_zero_point = inputs[8] if len(inputs) > 8 else None
    if attributes.get("transA", 0):
        a = a.T
    if attributes.get("transB", 0):
        b = b.T
    sums = _matmul_sums(a, a_zero_point, b, b_zero_point)
    if bias is not None:
        sums = sums + bias.astype(np.int64)
    alpha = np.float32(attributes.get("alpha", 1.0))
    scales = (alpha * np.float32(a_scale) * np.asarray(b_scale, np.float32)).astype(np.float32)
    if y_scale is None:
        return (sums.astype(np.float32) * scales).astype(np.float32)
    return _requantize(sums, (scales / np.float32(y_scale)).astype(np.float32), y_zero_point)


def _matmul_integer_to_float(inputs: list, attributes: dict) -> np.ndarray:
    """com.microsoft MatMulIntegerToFloat (A, B, a_scale, b_scale, a_zero_point, b_zero_point,
    bias): float32(sums) * (a_scale * b_scale) + bias."""
    a, b, a_scale, b_scale = inputs[:4]
    a_zero_point = inputs[4] if len(inputs) > 4 else None
    b_zero_point = inputs[5] if len(inputs) > 5 else None
    bias = inputs[6] if len(inputs) > 6 else None
    sums = _matmul_sums(a, a_zero_point, b, b_zero_point)
    scales = (np.asarray(a_scale, np.float32) * np.asarray(b_scale, np.float32)).astype(np.float32)
    result = (sums.astype(np.float32) * scales).astype(np.float32)
    return result if bias is None else (result + bias).astype(np.float32)


def _dynamic_quantize_matmul(inputs: list, attributes: dict) -> np.ndarray:
    """com.microsoft DynamicQuantizeMatMul (A float, B, b_scale, b_zero_point, bias): A
    quantized as DynamicQuantizeLinear does (run by ORT), then as MatMulIntegerToFloat."""
    a, b, b_scale = inputs[:3]
    b_zero_point = inputs[3] if len(inputs) > 3 else None
    bias = inputs[4] if len(inputs) > 4 else None
    quantized, a_scale, a_zero_point = _run_alone(
        None, helper.make_node("DynamicQuantizeLinear", ["a"], ["q", "s", "z"]), [a]
    )
    return _matmul_integer_to_float(
        [quantized, b, a_scale, b_scale, a_zero_point, b_zero_point, bias], {}
    )


_PRODUCTS: dict[tuple[str, str], Callable[[list, dict], np.ndarray]] = {
    ("", "MatMulInteger"): _matmul_integer,
    ("", "ConvInteger"): _conv_integer,
    ("", "QLinearMatMul"): _qlinear_matmul,
    ("", "QLinearConv"): _qlinear_conv,
    (_MS_DOMAIN, "QGemm"): _qgemm,
    (_MS_DOMAIN, "MatMulIntegerToFloat"): _matmul_integer_to_float,
    (_MS_DOMAIN, "DynamicQuantizeMatMul"): _dynamic_quantize_matmul,
}

# Contrib ops with integer products of their own that the reference does not compute: meeting one
# is an error rather than a silent fall back to ORT's kernel, which may saturate.
_UNSUPPORTED_PRODUCTS = {"QAttention", "QEmbedLayerNormalization", "DynamicQuantizeLSTM"}


def _centered(value: np.ndarray, zero_point) -> np.ndarray:
    centered = np.asarray(value).astype(np.int64)
    if zero_point is not None:
        centered = centered - np.asarray(zero_point).astype(np.int64)
    return centered


def _matmul_sums(a, a_zero_point, b, b_zero_point) -> np.ndarray:
    """Exact (a - a_zero_point) @ (b - b_zero_point) in int64; b's zero point per tensor or per
    column."""
    return np.matmul(_centered(a, a_zero_point), _centered(b, b_zero_point))


def _conv_sums(x, x_zero_point, w, w_zero_point, attributes: dict) -> np.ndarray:
    """Exact 2-D convolution of (x - x_zero_point) [N, C, H, W] (padded with zeros, i.e. with the
    zero point) by (w - w_zero_point) [M, C / group, kH, kW], in int64."""
    x = _centered(x, x_zero_point)
    w = _centered(w, w_zero_point)
    if x.ndim != 4:
        raise NotImplementedError(f"the INT8 reference convolves 2-D images, not {x.ndim - 2}-D")
    kernel = w.shape[2:]
    strides = attributes.get("strides", [1, 1])
    dilations = attributes.get("dilations", [1, 1])
    pads = _conv_pads(x.shape[2:], kernel, strides, dilations, attributes)
    groups = attributes.get("group", 1)
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    out_size = [
        (x.shape[2 + axis] - dilations[axis] * (kernel[axis] - 1) - 1) // strides[axis] + 1
        for axis in range(2)
    ]
    channels_in, channels_out = w.shape[1], w.shape[0] // groups
    sums = np.zeros((x.shape[0], w.shape[0], *out_size), np.int64)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            top, left = i * dilations[0], j * dilations[1]
            window = x[
                :,
                :,
                top : top + strides[0] * (out_size[0] - 1) + 1 : strides[0],
                left : left + strides[1] * (out_size[1] - 1) + 1 : strides[1],
            ]
            for g in range(groups):
                taps = w[g * channels_out : (g + 1) * channels_out, :, i, j]  # [M/g, C/g]
                part = window[:, g * channels_in : (g + 1) * channels_in]
                sums[:, g * channels_out : (g + 1) * channels_out] += np.einsum(
                    "mc,nchw->nmhw", taps, part
                )
    return sums


def _conv_pads(size, kernel, strides, dilations, attributes: dict) -> list[int]:
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("NOTSET", ""):
        return list(attributes.get("pads", [0, 0, 0, 0]))
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    begin, end = [], []
    for axis in range(2):
        out = -(-size[axis] // strides[axis])
        reach = dilations[axis] * (kernel[axis] - 1) + 1
        total = max(0, (out - 1) * strides[axis] + reach - size[axis])
        small, large = total // 2, total - total // 2
        begin.append(large if auto_pad == "SAME_LOWER" else small)
        end.append(small if auto_pad == "SAME_LOWER" else large)
    return begin + end


def _output_scales(x_scale, w_scale, y_scale) -> np.ndarray:
    return (
        (np.float32(x_scale) * np.asarray(w_scale, np.float32).reshape(-1)) / np.float32(y_scale)
    ).astype(np.float32)


def _requantize(sums: np.ndarray, scales: np.ndarray, zero_point) -> np.ndarray:
    zero_point = np.asarray(zero_point)
    info = np.iinfo(zero_point.dtype)
    scaled = np.rint(sums.astype(np.float32) * scales.astype(np.float32))
    quantized = scaled.astype(np.int64) + int(zero_point.reshape(-1)[0])
    return np.clip(quantized, info.min, info.max).astype(zero_point.dtype)


# --- ORT's graph, and its other nodes -----------------------------------------------------------


def _ort_extended_graph(model: onnx.ModelProto | bytes, library: str | None) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "optimized.onnx")
        options = _options(library)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = path
        try:
            ort.InferenceSession(_bytes(model), options, providers=["CPUExecutionProvider"])
            optimized = onnx.load(path)
        except KernelNotImplemented:
            # This ORT has no kernel for one of the model's nodes (onnxruntime 1.21 has no
            # ConvInteger for int8 weights): the graph is the model's own, unoptimized.
            optimized = (
                model if isinstance(model, onnx.ModelProto) else onnx.load_from_string(model)
            )
    for node in optimized.graph.node:
        if node.op_type in _UNSUPPORTED_PRODUCTS:
            raise NotImplementedError(f"the INT8 reference does not compute {node.op_type}")
    return optimized


def _has_integer_products(model: onnx.ModelProto, library: str) -> bool:
    """Whether ORT's graph for ``model`` holds integer products of ORT's own."""
    optimized = _ort_extended_graph(model, library)
    return any((node.domain or "", node.op_type) in _PRODUCTS for node in optimized.graph.node)


def _options(library: str | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if library is not None:
        options.register_custom_ops_library(library)
    return options


def _run_alone(
    model: onnx.ModelProto | None,
    node: onnx.NodeProto,
    inputs: list,
    library: str | None = None,
    constants: Mapping[str, np.ndarray] | None = None,
) -> list:
    """``node`` run by ORT with nothing else, its optional inputs that are absent left empty, and
    those named in ``constants`` given as initializers (ops may require their weights so)."""
    constants = constants or {}
    present = dict((name, value) for name, value in zip(node.input, inputs) if name)
    fed = {name: value for name, value in present.items() if name not in constants}
    graph = helper.make_graph(
        [node],
        "one_node",
        [
            helper.make_tensor_value_info(name, _onnx_type(value), np.shape(value))
            for name, value in fed.items()
        ],
        [onnx.ValueInfoProto(name=name) for name in node.output if name],
        [
            numpy_helper.from_array(np.asarray(value), name)
            for name, value in present.items()
            if name in constants
        ],
    )
    if model is None:
        single = newest_model_versions().make_model(graph, [(_MS_DOMAIN, 1)])
    else:
        single = helper.make_model(graph, opset_imports=model.opset_import)
        single.ir_version = model.ir_version
    options = _options(library)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        single.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    outputs = session.run(None, fed)
    return [outputs.pop(0) if name else None for name in node.output]


def _onnx_type(value: np.ndarray) -> int:
    return helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype)


def _attributes(node: onnx.NodeProto) -> dict:
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _bytes(model: onnx.ModelProto | bytes) -> bytes:
    return model if isinstance(model, bytes) else model.SerializeToString()


# --- probes of ORT's exactness ------------------------------------------------------------------


def _probes() -> list[tuple[onnx.ModelProto, dict]]:
    """MatMulInteger and QLinearConv models, u8 x s8, s8 x s8 and u8 x u8, on inputs whose
    adjacent products sum past int16's range."""
    probes = []
    for x_type, w_type in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8)):
        x = np.full((8, 64), np.iinfo(x_type).max, x_type)
        x[:, 1::3] = np.iinfo(x_type).min
        w = np.full((64, 16), np.iinfo(w_type).max, w_type)
        w[::5] = np.iinfo(w_type).min
        matmul = helper.make_node("MatMulInteger", ["x", "w"], ["y"])
        probes.append((_probe_model(matmul, x, {"w": w}, TensorProto.INT32), {"x": x}))
        # The same products as a 1x1 convolution of 64 channels over 8 pixels.
        image = x.T.reshape(1, 64, 2, 4).copy()
        conv = helper.make_node(
            "QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"]
        )
        constants = {
            "xs": np.float32(1.0),
            "xz": np.zeros((), x_type),
            "w": w.T.reshape(16, 64, 1, 1).copy(),
            "ws": np.float32(1.0),
            "wz": np.zeros((), w_type),
            # Exact sums scaled to within +-100, well inside the output type's range.
            "ys": np.float32(np.abs(_matmul_sums(x, None, w, None)).max() / 100),
            "yz": np.zeros((), x_type),
        }
        y_type = helper.np_dtype_to_tensor_dtype(np.dtype(x_type))
        probes.append((_probe_model(conv, image, constants, y_type), {"x": image}))
    return probes


def _probe_model(node, x: np.ndarray, constants: dict, y_type: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("x", _onnx_type(x), x.shape)],
        [helper.make_tensor_value_info("y", y_type, None)],
        [numpy_helper.from_array(np.asarray(value), name) for name, value in constants.items()],
    )
    return newest_model_versions().make_model(graph)


def _probe_agrees(model: onnx.ModelProto, feeds: dict) -> bool:
    (expected,) = reference_outputs(model, feeds)
    (actual,) = ort_outputs(model, feeds)
    return bool(np.array_equal(actual, expected))
