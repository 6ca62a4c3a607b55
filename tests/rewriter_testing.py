"""What the rewriter's tests share: tiny models, sparse weights, and ORT runs to compare.

Rewritten models must compute what the original computes: ``assert_same_outputs`` runs both in
ONNX Runtime (the rewritten one with the ortsparse library registered) and requires
max |Y_rewritten - Y_original| <= OUTPUT_RTOL * max |Y_original| for every output.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
import ortsparse
from onnx import helper, numpy_helper
from ortsparse.model_versions import ModelVersions, newest_model_versions
from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.sparse_conv import SparseConv
from ortsparse.rewriter.sparse_gemm import SparseGemm
from ortsparse.rewriter.sparse_op import DOMAIN, SparseOp

OUTPUT_RTOL = 1e-4
FLOAT = onnx.TensorProto.FLOAT

# Tests force rewriting with a low threshold so they do not depend on the measured cost model.
FORCE_REWRITE = 0.5


def sparse_weight(
    k: int, n: int, sparsity: float = 0.9, seed: int = 0, block: int = 1
) -> np.ndarray:
    """A float32 [k, n] weight with about ``sparsity`` of its entries zero, in runs of ``block``
    output channels (block 4: whole block4 blocks)."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((k, n)).astype(np.float32)
    zero_blocks = rng.random((k, -(-n // block))) < sparsity
    weight[np.repeat(zero_blocks, block, axis=1)[:, :n]] = 0.0
    return weight


def conv_weight(
    c_out: int,
    c: int,
    kernel: tuple[int, int],
    sparsity: float = 0.9,
    seed: int = 0,
    block: int = 1,
) -> np.ndarray:
    """A float32 [c_out, c, kH, kW] conv weight whose [K, N] matrix view is ``sparse_weight``."""
    k = c * kernel[0] * kernel[1]
    return sparse_weight(k, c_out, sparsity, seed, block).T.reshape(c_out, c, *kernel).copy()


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: dict[str, Sequence],
    outputs: dict[str, Sequence | None],
    initializers: dict[str, np.ndarray] | None = None,
    opset: int | None = None,
) -> onnx.ModelProto:
    """A float32 model; ``inputs`` and ``outputs`` map names to shapes (ints or symbols), at
    ai.onnx ``opset`` (default: the newest the installed onnxruntime runs)."""
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(name, FLOAT, shape) for name, shape in inputs.items()],
        [helper.make_tensor_value_info(name, FLOAT, shape) for name, shape in outputs.items()],
        [numpy_helper.from_array(value, name) for name, value in (initializers or {}).items()],
    )
    return versions_at(opset).make_model(graph)


def versions_at(opset: int | None) -> ModelVersions:
    """The newest versions the installed onnxruntime runs, at ai.onnx ``opset`` where given."""
    versions = newest_model_versions()
    return versions if opset is None else dataclasses.replace(versions, opset=opset)


CHAIN_K, CHAIN_N = 16, 8


def matmul_then(
    epilogue: Sequence[onnx.NodeProto],
    extra_inputs: dict[str, Sequence] | None = None,
    constants: dict[str, np.ndarray] | None = None,
    outputs: dict[str, Sequence] | None = None,
    opset: int | None = None,
) -> onnx.ModelProto:
    """Y = epilogue(x), x = MatMul(A ["b", CHAIN_K], sparse W) ["b", CHAIN_N]: a model to fuse."""
    matmul = helper.make_node("MatMul", ["A", "W"], ["x"], name="mm")
    return make_model(
        [matmul, *epilogue],
        {"A": ["b", CHAIN_K], **(extra_inputs or {})},
        outputs or {"Y": ["b", CHAIN_N]},
        {"W": sparse_weight(CHAIN_K, CHAIN_N, sparsity=0.7), **(constants or {})},
        opset,
    )


CONV_C, CONV_N, CONV_HW = 3, 8, 6


def conv_then(
    epilogue: Sequence[onnx.NodeProto],
    extra_inputs: dict[str, Sequence] | None = None,
    constants: dict[str, np.ndarray] | None = None,
    outputs: dict[str, Sequence] | None = None,
    opset: int | None = None,
) -> onnx.ModelProto:
    """Y = epilogue(x), x = Conv(X ["b", CONV_C, CONV_HW, CONV_HW], sparse 3x3 W, pads 1)
    ["b", CONV_N, CONV_HW, CONV_HW]: a model to fuse."""
    conv = helper.make_node("Conv", ["X", "W"], ["x"], name="conv", pads=[1, 1, 1, 1])
    return make_model(
        [conv, *epilogue],
        {"X": ["b", CONV_C, CONV_HW, CONV_HW], **(extra_inputs or {})},
        outputs or {"Y": ["b", CONV_N, CONV_HW, CONV_HW]},
        {"W": conv_weight(CONV_N, CONV_C, (3, 3), sparsity=0.7), **(constants or {})},
        opset,
    )


def depthwise_separable_block(
    between=("BatchNormalization", "HardSwish"),
    kernel=3,
    stride=1,
    dilation=1,
    pads=None,
    auto_pad=None,
    bias=True,
    pointwise_stride=1,
    extra_reader=False,
    height=11,
    width=11,
    channels=8,
    outputs=16,
) -> onnx.ModelProto:
    """Y = Relu(Conv1x1(between(DepthwiseConv(X)))): X ["b", channels, height, width], a dense
    depthwise kernel x kernel Conv and a sparse 1x1 Conv of ``outputs`` channels. ``between``:
    op types, "Clip6" for Clip(0, 6), "XHardSigmoid" and "XSigmoid" for x * HardSigmoid(x)
    (hard-swish) and x * Sigmoid(x) (SiLU), "PaddleHardSwish" for x * Clip(x + 3, 0, 6) / 6,
    "ChannelMul" and "ChannelAdd" for a constant [channels, 1, 1] times or plus x. With ``extra_reader``, the depthwise output is a
    graph output too."""
    c = channels
    rng = np.random.default_rng(7)
    constants = {
        "Wd": rng.standard_normal((c, 1, kernel, kernel)).astype(np.float32),
        "Wp": conv_weight(outputs, c, (1, 1), sparsity=0.6),
    }
    dw_inputs = ["X", "Wd"]
    if bias:
        constants["Bd"] = rng.standard_normal(c).astype(np.float32)
        dw_inputs.append("Bd")
    window = {
        "kernel_shape": [kernel, kernel],
        "strides": [stride] * 2,
        "dilations": [dilation] * 2,
    }
    if auto_pad is not None:
        window["auto_pad"] = auto_pad
    else:
        window["pads"] = pads if pads is not None else [kernel // 2 * dilation] * 4
    nodes = [helper.make_node("Conv", dw_inputs, ["d0"], name="dw", group=c, **window)]
    tensor = "d0"
    for index, op_type in enumerate(between):
        out = f"d{index + 1}"
        if op_type == "BatchNormalization":
            for name, value in {
                "scale": rng.uniform(0.5, 1.5, c),
                "shift": rng.standard_normal(c),
                "mean": rng.standard_normal(c),
                "var": rng.uniform(0.5, 2.0, c),
            }.items():
                constants[name] = value.astype(np.float32)
            nodes.append(
                helper.make_node(op_type, [tensor, "scale", "shift", "mean", "var"], [out])
            )
        elif op_type == "Clip6":
            constants["zero"], constants["six"] = np.float32(0), np.float32(6)
            nodes.append(helper.make_node("Clip", [tensor, "zero", "six"], [out]))
        elif op_type in ("ChannelMul", "ChannelAdd"):  # a constant [C, 1, 1]
            constants[f"{out}_by"] = rng.uniform(0.5, 1.5, (c, 1, 1)).astype(np.float32)
            binary = op_type.removeprefix("Channel")
            nodes.append(helper.make_node(binary, [f"{out}_by", tensor], [out]))
        elif op_type == "PaddleHardSwish":  # x * Clip(x + 3, 0, 6) / 6 in four nodes
            for name, value in {"three": 3, "zero": 0, "six": 6}.items():
                constants[name] = np.float32(value)
            nodes += [
                helper.make_node("Add", [tensor, "three"], [f"{out}_plus_3"]),
                helper.make_node("Clip", [f"{out}_plus_3", "zero", "six"], [f"{out}_relu6"]),
                helper.make_node("Mul", [tensor, f"{out}_relu6"], [f"{out}_product"]),
                helper.make_node("Div", [f"{out}_product", "six"], [out]),
            ]
        elif op_type in ("XHardSigmoid", "XSigmoid"):  # hard-swish and SiLU in two nodes
            gate = {"alpha": 1 / 6, "beta": 0.5} if op_type == "XHardSigmoid" else {}
            nodes += [
                helper.make_node(op_type[1:], [tensor], [f"{out}_gate"], **gate),
                helper.make_node("Mul", [tensor, f"{out}_gate"], [out]),
            ]
        else:
            nodes.append(helper.make_node(op_type, [tensor], [out]))
        tensor = out
    nodes += [
        helper.make_node(
            "Conv",
            [tensor, "Wp"],
            ["p"],
            name="pw",
            strides=[pointwise_stride] * 2,
            kernel_shape=[1, 1],
        ),
        helper.make_node("Relu", ["p"], ["Y"]),
    ]
    graph_outputs = {"Y": ["b", outputs, "oh", "ow"]}
    if extra_reader:
        graph_outputs[tensor] = ["b", c, "oh", "ow"]
    return make_model(nodes, {"X": ["b", c, height, width]}, graph_outputs, constants)


def sparse_conv_chain(
    channels=(12, 8, 10),
    kernel=3,
    stride=1,
    pads=None,
    dilation=1,
    height=11,
    width=9,
    residual=False,
    block=1,
    first_activation="Relu",
    pointwise_reader=False,
):
    """Y = [residual +] Relu(Conv kxk(first_activation(Conv 1x1(X)))), both weights sparse; the
    residual is input R, or X itself where ``residual`` is "X" (a bottleneck's)."""
    c0, c1, c2 = channels
    pads = [kernel // 2 * dilation] * 4 if pads is None else pads
    nodes = [helper.make_node("Conv", ["X", "W1", "B1"], ["p"], name="reduce")]
    x = "p"
    if first_activation:
        nodes.append(helper.make_node(first_activation, ["p"], ["pa"]))
        x = "pa"
    nodes.append(
        helper.make_node(
            "Conv",
            [x, "W2", "B2"],
            ["c"],
            name="conv",
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=pads,
            dilations=[dilation, dilation],
        )
    )
    nodes.append(helper.make_node("Relu", ["c"], ["r"] if residual else ["Y"]))
    out_height = (height + pads[0] + pads[2] - dilation * (kernel - 1) - 1) // stride + 1
    out_width = (width + pads[1] + pads[3] - dilation * (kernel - 1) - 1) // stride + 1
    inputs = {"X": ["b", c0, height, width]}
    if residual == "X":
        nodes.append(helper.make_node("Add", ["r", "X"], ["Y"]))
    elif residual:
        nodes.append(helper.make_node("Add", ["r", "R"], ["Y"]))
        inputs["R"] = ["b", c2, out_height, out_width]
    outputs = {"Y": ["b", c2, out_height, out_width]}
    if pointwise_reader:
        outputs["P"] = ["b", c1, height, width]
        nodes.append(helper.make_node("Identity", [x], ["P"]))
    rng = np.random.default_rng(3)
    constants = {
        "W1": conv_weight(c1, c0, (1, 1), sparsity=0.7, seed=1, block=block),
        "B1": rng.standard_normal(c1).astype(np.float32),
        "W2": conv_weight(c2, c1, (kernel, kernel), sparsity=0.7, seed=2, block=block),
        "B2": rng.standard_normal(c2).astype(np.float32),
    }
    return make_model(nodes, inputs, outputs, constants)


def fused_gemm(model: onnx.ModelProto) -> tuple[onnx.NodeProto, dict]:
    """The model's only SparseGemm and its attributes; fails unless the model has nothing else
    but Constant nodes."""
    return _only_sparse_node(model, SparseGemm)


def fused_conv(model: onnx.ModelProto) -> tuple[onnx.NodeProto, dict]:
    """The model's only SparseConv and its attributes, as fused_gemm."""
    return _only_sparse_node(model, SparseConv)


def _only_sparse_node(model: onnx.ModelProto, op_class: type[SparseOp]) -> tuple:
    assert [op for op in op_types(model) if op != "Constant"] == [op_class.OP_TYPE], op_types(model)
    (node,) = sparse_nodes(model, op_class)
    return node, attributes(node)


def rewrite(model: onnx.ModelProto, min_sparsity: float | None = FORCE_REWRITE) -> onnx.ModelProto:
    """The rewritten model, checked with onnx.checker."""
    rewritten = rewrite_model(model, min_sparsity=min_sparsity).model
    onnx.checker.check_model(rewritten)
    return rewritten


def sparse_gemms(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return sparse_nodes(model, SparseGemm)


def sparse_nodes(model: onnx.ModelProto, op_class: type[SparseOp]) -> list[onnx.NodeProto]:
    return [
        node
        for node in model.graph.node
        if node.op_type == op_class.OP_TYPE and node.domain == DOMAIN
    ]


def op_types(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


def attributes(node: onnx.NodeProto) -> dict:
    """The node's attributes, strings decoded."""
    values = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
    return {name: v.decode() if isinstance(v, bytes) else v for name, v in values.items()}


def random_inputs(
    model: onnx.ModelProto, symbols: dict[str, int] | None = None, seed: int = 1
) -> dict[str, np.ndarray]:
    """Random float32 feeds for every graph input; symbolic dims take their size from ``symbols``
    (default 3)."""
    rng = np.random.default_rng(seed)
    initializers = {tensor.name for tensor in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = [
            dim.dim_value if dim.HasField("dim_value") else (symbols or {}).get(dim.dim_param, 3)
            for dim in value.type.tensor_type.shape.dim
        ]
        feeds[value.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def onnxruntime_older_than(major: int, minor: int) -> bool:
    """Whether the installed onnxruntime is older than ``major.minor``: a test's way around a
    known bug of older runtimes."""
    installed = re.match(r"(\d+)\.(\d+)", ort.__version__)
    return (int(installed[1]), int(installed[2])) < (major, minor)


def run(
    model: onnx.ModelProto,
    inputs: dict[str, np.ndarray],
    library: str | None = None,
    threads: int = 1,
) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if library is not None:
        options.register_custom_ops_library(library)
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, inputs)


def assert_same_outputs(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    symbols: dict[str, int] | None = None,
    threads: int = 1,
) -> None:
    """ORT on ``rewritten`` (library registered) equals ORT on ``original``, within OUTPUT_RTOL,
    both on ``threads`` intra-op threads."""
    inputs = random_inputs(original, symbols)
    expected = run(original, inputs, threads=threads)
    actual = run(rewritten, inputs, ortsparse.library_path(), threads)
    for name, want, got in zip([value.name for value in original.graph.output], expected, actual):
        assert got.shape == want.shape, f"output {name}: shape {got.shape} != {want.shape}"
        scale = float(np.max(np.abs(want)))
        error = float(np.max(np.abs(got - want)))
        assert error <= OUTPUT_RTOL * scale, (
            f"output {name}: max |diff| {error:g} vs max |Y| {scale:g}"
        )


# The constants paddle_hard_swish reads.
PADDLE_HARD_SWISH_CONSTANTS = {
    "three": np.float32(3),
    "zero": np.float32(0),
    "six": np.float32(6),
    "sixth": np.float32(1 / 6),
}


def paddle_hard_swish(form: str, three="three", six="six") -> list:
    """x * Clip(x + 3, 0, 6) / 6 in one of the orders exporters write it."""
    nodes = [
        helper.make_node("Add", ["x", three], ["p"]),
        helper.make_node("Clip", ["p", "zero", six], ["r"]),
    ]
    if form == "mul then div":
        nodes += [
            helper.make_node("Mul", ["x", "r"], ["m"]),
            helper.make_node("Div", ["m", six], ["Y"]),
        ]
    elif form == "mul then mul":
        nodes += [
            helper.make_node("Mul", ["r", "x"], ["m"]),
            helper.make_node("Mul", ["sixth", "m"], ["Y"]),
        ]
    elif form == "div then mul":
        nodes += [
            helper.make_node("Div", ["r", six], ["g"]),
            helper.make_node("Mul", ["g", "x"], ["Y"]),
        ]
    else:  # "mul by a sixth then mul"
        nodes += [
            helper.make_node("Mul", ["r", "sixth"], ["g"]),
            helper.make_node("Mul", ["x", "g"], ["Y"]),
        ]
    return nodes
