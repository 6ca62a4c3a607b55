"""Fuzzing the rewriter (hypothesis): random small graphs of Conv, MatMul and Gemm with the
epilogues the rules fuse (BatchNormalization, bias, activations, residual Adds), odd shapes,
strides and paddings, depthwise convolutions, weights shared between nodes, sibling convolutions
joined by a Concat, and graph outputs in the middle of a chain. Every weight is forced into an
ortsparse op where a rule takes it; the rewrite must compute what ORT computes on the original,
every graph output included (max |diff| <= 1e-4 * max |Y| per output)."""

from __future__ import annotations

import numpy as np
import onnx
import ortsparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions
from ortsparse.rewriter import rewrite_model

from tests.rewriter_testing import FORCE_REWRITE, run

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ACTIVATIONS = ["Relu", "Sigmoid", "Clip", "LeakyRelu", "HardSwish", "x*HardSigmoid", "Tanh"]


class GraphDraft:
    """A graph under construction: nodes, initializers, and the shape of every tensor."""

    def __init__(self, rng):
        self.rng = rng
        self.nodes, self.initializers, self.shapes, self.outputs = [], [], {}, []
        self.weights = []  # (name, shape) of weights another node may share

    def name(self, base):
        return f"{base}{len(self.nodes)}_{len(self.initializers)}"

    def constant(self, base, value):
        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def sparse(self, shape):
        weight = self.rng.standard_normal(shape).astype(np.float32) * np.float32(0.5)
        weight[self.rng.random(shape) < 0.7] = 0
        return weight

    def node(self, op_type, inputs, shape, **attributes):
        output = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attributes))
        self.shapes[output] = shape
        return output


def activation(draft, x, kind):
    shape = draft.shapes[x]
    if kind == "Clip":
        low, high = draft.constant("low", np.array(-0.5)), draft.constant("high", np.array(0.8))
        return draft.node("Clip", [x, low, high], shape)
    if kind == "LeakyRelu":
        return draft.node("LeakyRelu", [x], shape, alpha=0.2)
    if kind == "x*HardSigmoid":
        gate = draft.node("HardSigmoid", [x], shape, alpha=1 / 6, beta=0.5)
        return draft.node("Mul", [x, gate], shape)
    return draft.node(kind, [x], shape)


def conv(draft, x, data, share):
    batch, channels, height, width = draft.shapes[x]
    kernel = data.draw(st.sampled_from([1, 3]))
    stride = data.draw(st.sampled_from([1, 1, 2]))
    pad = data.draw(st.sampled_from([0, kernel // 2]))
    if min(height, width) + 2 * pad < kernel:  # the map has shrunk below the kernel
        kernel, pad = 1, 0
    depthwise = data.draw(st.booleans()) and kernel == 3
    out_channels = channels if depthwise else data.draw(st.integers(1, 9))
    group = channels if depthwise else 1
    weight_shape = (out_channels, channels // group, kernel, kernel)
    shared = [name for name, shape in draft.weights if shape == weight_shape]
    if share and shared:
        weight = shared[0]
    else:
        weight = draft.constant("w", draft.sparse(weight_shape))
        draft.weights.append((weight, weight_shape))
    inputs = [x, weight]
    if data.draw(st.booleans()):
        inputs.append(draft.constant("b", draft.rng.standard_normal(out_channels)))
    out_h = (height + 2 * pad - kernel) // stride + 1
    out_w = (width + 2 * pad - kernel) // stride + 1
    y = draft.node(
        "Conv",
        inputs,
        (batch, out_channels, out_h, out_w),
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        pads=[pad] * 4,
        group=group,
    )
    if data.draw(st.booleans()):
        n = out_channels
        scale, bias, mean = (draft.constant(s, draft.rng.standard_normal(n)) for s in "sbm")
        var = draft.constant("v", draft.rng.random(n) + 0.5)
        y = draft.node("BatchNormalization", [y, scale, bias, mean, var], draft.shapes[y])
    return y


@st.composite
def convnet(draw):
    data = draw(st.data())
    draft = GraphDraft(np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    channels, height, width = (
        draw(st.integers(1, 6)),
        draw(st.integers(3, 9)),
        draw(st.integers(3, 9)),
    )
    x = "X"
    draft.shapes[x] = (1, channels, height, width)
    for _ in range(draw(st.integers(1, 5))):
        step = draw(st.sampled_from(["conv", "conv", "act", "residual", "output", "siblings"]))
        if step == "conv":
            x = conv(draft, x, data, share=draw(st.booleans()))
        elif step == "act":
            x = activation(draft, x, draw(st.sampled_from(ACTIVATIONS)))
        elif step == "residual":
            before = x
            y = conv(draft, x, data, share=False)
            if draft.shapes[y] == draft.shapes[before]:
                x = draft.node("Add", [y, before], draft.shapes[y])
            else:
                x = y
        elif step == "output" and x != "X":
            draft.outputs.append(x)  # read on by the rest of the chain too
        elif step == "siblings":
            left, right = conv(draft, x, data, share=False), conv(draft, x, data, share=False)
            if draft.shapes[left][2:] == draft.shapes[right][2:]:
                joined = (
                    1,
                    draft.shapes[left][1] + draft.shapes[right][1],
                    *draft.shapes[left][2:],
                )
                x = draft.node("Concat", [left, right], joined, axis=1)
            else:
                x = left
    return finish(draft, x)


@st.composite
def mlp(draw):
    draft = GraphDraft(np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    rows, features = draw(st.integers(1, 9)), draw(st.integers(1, 40))
    x = "X"
    draft.shapes[x] = (rows, features)
    for _ in range(draw(st.integers(1, 5))):
        step = draw(st.sampled_from(["matmul", "gemm", "act", "residual", "output"]))
        k = draft.shapes[x][-1]
        if step in ("matmul", "gemm", "residual"):
            n = k if step == "residual" else draw(st.integers(1, 40))
            weight_shape = (k, n)
            shared = [name for name, shape in draft.weights if shape == weight_shape]
            if shared and draw(st.booleans()):
                weight = shared[0]
            else:
                weight = draft.constant("w", draft.sparse(weight_shape))
                draft.weights.append((weight, weight_shape))
            bias = draft.constant("b", draft.rng.standard_normal(n))
            if step == "gemm":
                y = draft.node("Gemm", [x, weight, bias], (rows, n), alpha=0.5, beta=2.0)
            else:
                product = draft.node("MatMul", [x, weight], (rows, n))
                y = draft.node("Add", [product, bias], (rows, n))
            x = draft.node("Add", [y, x], (rows, n)) if step == "residual" else y
        elif step == "act":
            x = activation(draft, x, draw(st.sampled_from(ACTIVATIONS)))
        elif step == "output" and x != "X":
            draft.outputs.append(x)
    return finish(draft, x)


def finish(draft, last):
    outputs = list(dict.fromkeys([*draft.outputs, last]))
    graph = helper.make_graph(
        draft.nodes,
        "fuzz",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(draft.shapes["X"]))],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(draft.shapes[name]))
            for name in outputs
        ],
        draft.initializers,
    )
    model = newest_model_versions().make_model(graph)
    onnx.checker.check_model(model, full_check=True)
    return model


def assert_rewrite_computes_the_same(model):
    rewritten = rewrite_model(model, min_sparsity=FORCE_REWRITE).model
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feeds = {"X": np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)}
    expected = run(model, feeds)
    actual = run(rewritten, feeds, ortsparse.library_path())
    for output, want, got in zip(model.graph.output, expected, actual):
        assert got.shape == want.shape, output.name
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        error = float(np.max(np.abs(got - want))) if want.size else 0.0
        assert error <= 1e-4 * scale + 1e-6, (
            f"{output.name}: max |diff| {error:g}, max |Y| {scale:g}"
        )


@EXAMPLES
@given(model=convnet())
def test_random_convnets_are_rewritten_to_what_ort_computes(model):
    assert_rewrite_computes_the_same(model)


@EXAMPLES
@given(model=mlp())
def test_random_mlps_are_rewritten_to_what_ort_computes(model):
    assert_rewrite_computes_the_same(model)
